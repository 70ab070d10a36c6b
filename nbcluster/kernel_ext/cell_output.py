"""What one cell shows of its remote output, as Jupyter messages.

A :class:`CellOutput` turns the :class:`~nbcluster.driver.RemoteOutput` records of one
cell's tasks into the messages that show them under that cell:

- complete lines: ``stream`` messages (stdout or stderr, as written);
- redraws (a line rewritten with ``"\\r"``: tqdm and other progress bars): a display area
  per writer and stream (``display_data`` with a display id), rewritten in place by
  ``update_display_data``; the line's final state stays in it when the line ends;
- past ``limit`` lines, nothing more but one summary line, "… N more lines", whose
  count is kept up to date in place (a redraw area counts as one line);
- after the cell ended, when it made a *late area* (``make_late_area``: a cell that
  ends with work unfinished), what would be new outputs goes into that area instead,
  rewritten by ``update_display_data``: headless clients (nbclient, nbconvert,
  papermill) listen only to the running cell, so the router sends those updates with
  the running cell's request too; they find the area by its display id. A frontend
  that gets both (JupyterLab) sets the same state twice.
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
    """A display area of the cell: its id, what it shows, and whether it is drawn inside
    the late area rather than on its own (made after the cell ended)."""

    display_id: str
    text: str
    in_late: bool = False


@dataclass
class CellOutput:
    """The remote output of one cell (see the module docstring). Not thread-safe: the
    router calls it under its lock."""

    parent: dict
    limit: int = DEFAULT_LIMIT
    shown: int = 0
    dropped: int = 0
    #: The display area for output after the cell ended ("" when none was made).
    late_id: str = ""
    _summary: _Area | None = None
    #: Open redraw areas by writer and stream.
    _open: dict[tuple, _Area] = field(default_factory=dict)
    #: What the late area shows: lines, and redraw areas made after the cell ended.
    _late: list[str | _Area] = field(default_factory=list)

    def make_late_area(self) -> Message:
        """The (empty) display area that output arriving after the cell ended fills."""
        self.late_id = new_display_id("late")
        return _display("display_data", self.late_id, "")

    def take(self, out: driver.RemoteOutput, late: bool) -> list[Message]:
        """The messages that show ``out`` (``late``: the cell has ended). After the
        cell ended, what would be new outputs goes into the late area (when the cell
        made one), so every message then is an ``update_display_data``: the router
        also sends those with the running cell's request, for headless clients, and
        a frontend that gets both applies the same state twice."""
        messages: list[Message] = []
        into_late = late and bool(self.late_id)
        before = len(self._late)
        key = (out.source, out.pid, out.node_ip, out.stream)
        if out.redraw:
            self._redraw(key, out.prefix + out.text, into_late, messages)
        else:
            self._lines(key, out, into_late, messages)
        changed = len(self._late) != before or _LATE_CHANGED in messages
        messages = [m for m in messages if m is not _LATE_CHANGED]
        if changed:
            messages.append(_display("update_display_data", self.late_id, self._late_text()))
        return messages

    def _redraw(self, key: tuple, text: str, into_late: bool, messages: list[Message]) -> None:
        area = self._open.get(key)
        if area is None:
            if self.shown >= self.limit:
                return  # its final line is counted among the dropped ones
            self.shown += 1
            area = self._open[key] = _Area(new_display_id("redraw"), text, in_late=into_late)
            if into_late:
                self._late.append(area)
            else:
                messages.append(_display("display_data", area.display_id, text))
            return
        self._update(area, text, messages)

    def _update(self, area: _Area, text: str, messages: list[Message]) -> None:
        area.text = text
        if area.in_late:
            messages.append(_LATE_CHANGED)
        else:
            messages.append(_display("update_display_data", area.display_id, text))

    def _lines(self, key: tuple, out: driver.RemoteOutput, into_late: bool, messages: list[Message]) -> None:
        lines = out.text.splitlines()
        area = self._open.pop(key, None)
        if area is not None and lines:  # the redrawn line's final state
            self._update(area, out.prefix + lines.pop(0), messages)
        shown = []
        for line in lines:
            if self.shown < self.limit:
                self.shown += 1
                shown.append(out.prefix + line + "\n")
            else:
                self.dropped += 1
        if shown and into_late:
            self._late.extend(shown)
        elif shown:
            messages.append(Message("stream", {"name": out.stream, "text": "".join(shown)}))
        if len(shown) < len(lines):
            self._summarize(into_late, messages)

    def _summarize(self, into_late: bool, messages: list[Message]) -> None:
        text = summary_line(self.dropped)
        if self._summary is not None:
            self._update(self._summary, text, messages)
            return
        self._summary = _Area(new_display_id("summary"), text, in_late=into_late)
        if into_late:
            messages.append(_LATE_CHANGED)
        else:
            messages.append(_display("display_data", self._summary.display_id, text))

    def _late_text(self) -> str:
        parts = [item if isinstance(item, str) else item.text + "\n" for item in self._late]
        if self._summary is not None and self._summary.in_late:
            parts.append(self._summary.text)
        return "".join(parts)


#: Marks that the late area's text changed (replaced by its update in ``take``).
_LATE_CHANGED = Message("late", {})


def unrouted_text(out: driver.RemoteOutput) -> str:
    """``out`` as text for a stream (a redraw as its latest state on a line)."""
    if out.redraw:
        return out.prefix + out.text + "\n"
    return "".join(out.prefix + line + "\n" for line in out.text.splitlines())
