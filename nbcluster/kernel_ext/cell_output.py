"""What one cell shows of its remote output, as Jupyter messages.

A :class:`CellOutput` turns the :class:`~nbcluster.driver.RemoteOutput` records of one
cell's tasks into the messages that show them under that cell:

- complete lines: ``stream`` messages (stdout or stderr, as written);
- redraws (a line rewritten with ``"\\r"``: tqdm and other progress bars): a display area
  per writer and stream (``display_data`` with a display id), rewritten in place by
  ``update_display_data``; the line's final state stays in it when the line ends;
- past ``limit`` lines, nothing more but one summary line, "… N more lines", whose
  count is kept up to date in place (a redraw area counts as one line);
- *mirror* messages for headless clients (nbclient, nbconvert, papermill), which listen
  only to the cell that is running: output that arrives after its cell ended is also
  written into a display area made in that cell while it ran (``late_id``), and the
  redraw areas made then are updated too — by display id, sent with the running cell's
  request as parent. JupyterLab ignores these (that cell's output area has no such
  display id) and shows the output from the messages to the cell's own request.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass, field

import nbcluster.driver as driver

__all__ = ["CellOutput", "Message", "summary_line", "unrouted_text"]

#: Lines a cell shows of its remote output before summarizing the rest.
DEFAULT_LIMIT = 1000

_ids = itertools.count(1)


def new_display_id(kind: str) -> str:
    """A display id unique in this kernel."""
    return f"nbcluster-{kind}-{os.getpid()}-{next(_ids)}"


def summary_line(count: int) -> str:
    """What stands for the lines a cell does not show."""
    lines = "line" if count == 1 else "lines"
    return (f"… {count} more {lines} not shown (the full output is in the workers' log files, "
            f"logs/ in the cluster's session directory)\n")


@dataclass(frozen=True)
class Message:
    """One iopub message: its type and content."""

    msg_type: str
    content: dict


def _display(msg_type: str, display_id: str, text: str) -> Message:
    return Message(msg_type, {"data": {"text/plain": text}, "metadata": {}, "transient": {"display_id": display_id}})


@dataclass
class _Area:
    """A redraw area: its display id, what it shows, and whether it was made while the
    cell ran (so a headless client has it)."""

    display_id: str
    text: str
    live: bool


@dataclass
class CellOutput:
    """The remote output of one cell (see the module docstring). Not thread-safe: the
    router calls it under its lock."""

    parent: dict
    limit: int = DEFAULT_LIMIT
    shown: int = 0
    dropped: int = 0
    _summary_area: _Area | None = None
    #: The display area for late output in headless clients ("" when none was made).
    late_id: str = ""
    #: Open redraw areas by writer and stream.
    _open: dict[tuple, _Area] = field(default_factory=dict)
    #: What the late area shows: lines, and redraw areas made after the cell ended.
    _late: list[str | _Area] = field(default_factory=list)

    def make_late_area(self) -> Message:
        """The (empty) display area late output fills for headless clients."""
        self.late_id = new_display_id("late")
        return _display("display_data", self.late_id, "")

    def take(self, out: driver.RemoteOutput, late: bool) -> tuple[list[Message], list[Message]]:
        """The messages for ``out``: those to the cell's request, and (``late``: the cell
        has ended) the mirror messages for a headless client."""
        own: list[Message] = []
        mirror: list[Message] = []
        key = (out.source, out.pid, out.node_ip, out.stream)
        if out.redraw:
            self._redraw(key, out.prefix + out.text, late, own, mirror)
        else:
            self._lines(key, out, late, own, mirror)
        if late and self.late_id and self._late:
            mirror.append(_display("update_display_data", self.late_id, self._late_text()))
        return own, mirror

    def _redraw(self, key: tuple, text: str, late: bool, own: list[Message], mirror: list[Message]) -> None:
        area = self._open.get(key)
        if area is None:
            if self.shown >= self.limit:
                return  # its final line is counted among the dropped ones
            self.shown += 1
            area = self._open[key] = _Area(new_display_id("redraw"), text, live=not late)
            own.append(_display("display_data", area.display_id, text))
            if late:
                self._late.append(area)
            return
        self._update(area, text, late, own, mirror)

    def _update(self, area: _Area, text: str, late: bool, own: list[Message], mirror: list[Message]) -> None:
        area.text = text
        own.append(_display("update_display_data", area.display_id, text))
        if late and area.live:
            mirror.append(own[-1])

    def _lines(self, key: tuple, out: driver.RemoteOutput, late: bool, own: list[Message], mirror: list[Message]) -> None:
        lines = out.text.splitlines()
        area = self._open.pop(key, None)
        if area is not None and lines:  # the redrawn line's final state
            self._update(area, out.prefix + lines.pop(0), late, own, mirror)
        shown = []
        for line in lines:
            if self.shown < self.limit:
                self.shown += 1
                shown.append(out.prefix + line + "\n")
            else:
                self.dropped += 1
        if shown:
            own.append(Message("stream", {"name": out.stream, "text": "".join(shown)}))
            if late:
                self._late.extend(shown)
        if len(shown) < len(lines):
            self._summary(late, own, mirror)

    def _summary(self, late: bool, own: list[Message], mirror: list[Message]) -> None:
        text = summary_line(self.dropped)
        if self._summary_area is None:
            self._summary_area = _Area(new_display_id("summary"), text, live=not late)
            own.append(_display("display_data", self._summary_area.display_id, text))
        else:
            self._update(self._summary_area, text, late, own, mirror)

    def _late_text(self) -> str:
        parts = [item if isinstance(item, str) else item.text + "\n" for item in self._late]
        if self._summary_area is not None and not self._summary_area.live:
            parts.append(self._summary_area.text)
        return "".join(parts)


def unrouted_text(out: driver.RemoteOutput) -> str:
    """``out`` as text for a stream (a redraw as its latest state on a line)."""
    if out.redraw:
        return out.prefix + out.text + "\n"
    return "".join(out.prefix + line + "\n" for line in out.text.splitlines())

