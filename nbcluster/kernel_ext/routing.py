"""Output lands under the cell that caused it, in every frontend.

Before each cell runs, the submission context becomes that cell's request id, so
everything the cell submits carries it; remote output comes back with it and is shown
under that cell (:class:`~nbcluster.kernel_ext.cell_output.CellOutput`: lines as
``stream`` messages, carriage-return redraws in place, at most ``limit`` lines) — also
when it arrives after the cell finished, or while another cell runs. JupyterLab and
Notebook 7 keep listening to a finished cell's request; headless clients (nbclient,
nbconvert) listen only to the running cell, so a cell that ends with work unfinished
gets an empty display area, which later output fills by display id — sent with the
cell's own request and with the running cell's (a display id names the area anywhere
in the notebook; setting it twice to the same state shows it once). Progress bars its tasks report (``nbcluster.util.tqdm``) share one
:class:`~nbcluster.widgets.bars.ProgressBars` view under the cell.

Output of work submitted outside any cell, or whose cell is forgotten (the most recent
``REMEMBERED_CELLS`` are kept), goes to the notebook's log console (a ``stream`` message
with no parent: no cell claims it, JupyterLab's log console lists it at its "info"
level) and to the kernel process's stderr (the Jupyter server's log) — in terminal
IPython to its stdout/stderr. After a kernel restart the old kernel's tasks have no
driver to send to: their output is in the workers' log files.
"""

from __future__ import annotations

import collections
import logging
import sys
import threading
from typing import Any

import nbcluster
import nbcluster.driver as driver
from nbcluster.kernel_ext.cell_output import DEFAULT_LIMIT, CellOutput, Message, new_display_id, unrouted_text

#: Cells remembered for late output (the most recent).
REMEMBERED_CELLS = 2000

logger = logging.getLogger(__name__)


class CellRouter:
    """Tags what each cell submits with the cell's request id and sends remote output back
    under that cell (see the module docstring)."""

    def __init__(self, shell: Any, limit: int = DEFAULT_LIMIT) -> None:
        self.shell = shell
        self.kernel = getattr(shell, "kernel", None)
        #: Lines of remote output a cell shows before summarizing the rest.
        self.limit = limit
        self._cells: collections.OrderedDict[str, CellOutput] = collections.OrderedDict()
        self._bars: dict[str, tuple[Any, str]] = {}  # cell -> (ProgressBars, display id)
        self._lock = threading.Lock()
        self.current = ""
        #: The request id of the cell running now ("" between cells).
        self.running = ""

    # -- IPython events --------------------------------------------------------------
    def pre_run_cell(self, info: Any = None) -> None:
        """IPython's ``pre_run_cell`` event: remember the cell's request and make it the
        submission context."""
        parent = self._parent()
        msg_id = parent.get("header", {}).get("msg_id", "") if parent else ""
        self.current = msg_id
        with self._lock:
            self.running = msg_id
            if msg_id:
                self._cells[msg_id] = CellOutput(parent, self.limit)
                while len(self._cells) > REMEMBERED_CELLS:
                    forgotten, _ = self._cells.popitem(last=False)
                    self._bars.pop(forgotten, None)
        if _connected():
            driver.set_submission_context(msg_id)

    def post_run_cell(self, result: Any = None) -> None:
        """IPython's ``post_run_cell`` event (before the cell's request ends): a cell
        that leaves work running gets the display area late output fills for headless
        clients."""
        msg_id = self.running
        unfinished = 0
        if msg_id and _connected():
            try:
                unfinished = driver.unfinished(msg_id)
            except Exception:  # noqa: BLE001 - a cluster gone mid-cell: nothing more will come
                logger.debug("counting the cell's unfinished work failed", exc_info=True)
        with self._lock:
            self.running = ""
            cell = self._cells.get(msg_id)
            if cell is not None and unfinished != 0 and not cell.late_id:
                self._send([cell.make_late_area()], cell.parent)

    def _parent(self) -> dict:
        kernel = self.kernel
        if kernel is None:
            return {}
        get_parent = getattr(kernel, "get_parent", None)
        if get_parent is not None:
            try:
                return get_parent("shell") or {}
            except TypeError:
                return get_parent() or {}
        return getattr(kernel, "_parent_header", {}) or {}

    # -- output ------------------------------------------------------------------------
    def install(self) -> None:
        """Route this driver's remote output and progress bars (call after connecting)."""
        driver.set_output_handler(self.handle)
        driver.set_progress_handler(self.handle_progress)
        driver.set_submission_context(self.current)

    def handle(self, out: driver.RemoteOutput) -> None:
        """Show a piece of remote output under the cell that submitted the work, or on the
        kernel's stderr when that cell is unknown."""
        with self._lock:
            cell = self._cells.get(out.context)
            if cell is None or self.kernel is None:
                self._unrouted(unrouted_text(out), out.stream)
                return
            late = self.running != out.context
            messages = cell.take(out, late)
            self._send(messages, cell.parent)
            if late:
                self._mirror([m for m in messages if m.msg_type == "update_display_data"])

    def handle_progress(self, state: driver.ProgressState) -> None:
        """Show a progress bar's state in the cell's bars view (made on its first bar)."""
        with self._lock:
            cell = self._cells.get(state.context)
            if cell is None or self.kernel is None:
                if state.closed and not state.drop:
                    self._unrouted(f"({state.source} pid={state.pid}) {state.text()}\n", "stderr")
                return
            shown = self._bars.get(state.context)
        if shown is None:
            shown = self._show_bars(state.context, cell)
        view, display_id = shown
        view.update(state)
        if state.closed:  # the static form too (what a saved notebook keeps)
            with self._lock:
                self._resend_bars(view, display_id, cell, state.context)

    def _show_bars(self, context: str, cell: CellOutput) -> tuple[Any, str]:
        from nbcluster.widgets.bars import ProgressBars

        view = ProgressBars()
        with self._lock:
            shown = self._bars.get(context)
            if shown is not None:  # another thread made it first
                view.close()
                return shown
            display_id = new_display_id("bars")
            self._bars[context] = (view, display_id)
            bundle = {"data": _bundle(view), "metadata": {}, "transient": {"display_id": display_id}}
            self._send([Message("display_data", bundle)], cell.parent)
        return view, display_id

    def _resend_bars(self, view: Any, display_id: str, cell: CellOutput, context: str) -> None:
        update = Message("update_display_data", {"data": _bundle(view), "metadata": {}, "transient": {"display_id": display_id}})
        self._send([update], cell.parent)
        if self.running != context:
            self._mirror([update])

    def _unrouted(self, text: str, stream: str) -> None:
        """Output with no cell to go under, never into whichever cell runs now: in a
        kernel a ``stream`` message with no parent — which no cell claims and
        JupyterLab's log console shows (at its "info" level) — and the kernel process's
        stderr (the Jupyter server's log); in a terminal as it came."""
        if self.kernel is None:
            target = sys.stderr if stream == "stderr" else sys.stdout
        else:
            self._send([Message("stream", {"name": stream, "text": text})], {})
            target = sys.__stderr__
        if target is not None:
            target.write(text)
            target.flush()

    def _mirror(self, updates: list[Message]) -> None:
        """Display updates for a cell that has ended, sent again with the running cell's
        request: headless clients listen to nothing else (JupyterLab applies both)."""
        running = self._cells.get(self.running)
        if running is not None and updates:
            self._send(updates, running.parent)

    def _send(self, messages: list[Message], parent: dict) -> None:
        kernel = self.kernel
        for message in messages:
            ident = f"stream.{message.content['name']}".encode() if message.msg_type == "stream" else None
            kernel.session.send(kernel.iopub_socket, message.msg_type, message.content, parent=parent, ident=ident)


def _bundle(view: Any) -> dict:
    bundle = view._repr_mimebundle_()
    return bundle[0] if isinstance(bundle, tuple) else bundle




def _connected() -> bool:
    return nbcluster.is_initialized()
