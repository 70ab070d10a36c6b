"""Output lands under the cell that caused it.

Before each cell runs, the submission context becomes that cell's request id, so
everything the cell submits carries it; remote output comes back with it and is sent
to the frontend as a ``stream`` message whose parent is that cell's request — also
when it arrives after the cell finished, or while another cell runs. Output of work
submitted outside any cell (or whose cell is forgotten) goes to the kernel's stdout.
"""

from __future__ import annotations

import collections
import sys
import threading
from typing import Any

import nbcluster
import nbcluster.driver as driver

#: Cells remembered for late output (the most recent).
REMEMBERED_CELLS = 2000


class CellRouter:
    """Tags what each cell submits with the cell's request id and sends remote output back
    under that cell (see the module docstring)."""

    def __init__(self, shell: Any) -> None:
        self.shell = shell
        self.kernel = getattr(shell, "kernel", None)
        self._parents: collections.OrderedDict[str, dict] = collections.OrderedDict()
        self._lock = threading.Lock()
        self.current = ""

    # -- IPython events --------------------------------------------------------------
    def pre_run_cell(self, info: Any = None) -> None:
        """IPython's ``pre_run_cell`` event: remember the cell's request and make it the
        submission context."""
        parent = self._parent()
        msg_id = parent.get("header", {}).get("msg_id", "") if parent else ""
        self.current = msg_id
        if msg_id:
            with self._lock:
                self._parents[msg_id] = parent
                while len(self._parents) > REMEMBERED_CELLS:
                    self._parents.popitem(last=False)
        if _connected():
            driver.set_submission_context(msg_id)

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
        """Route this driver's remote output (call after connecting)."""
        driver.set_output_handler(self.handle)
        driver.set_submission_context(self.current)

    def handle(self, out: driver.RemoteOutput) -> None:
        """Show a piece of remote output under the cell that submitted the work, or on the
        kernel's stdout/stderr when that cell is unknown."""
        text = "".join(out.prefix + line + "\n" for line in out.text.splitlines())
        with self._lock:
            parent = self._parents.get(out.context)
        kernel = self.kernel
        if parent is None or kernel is None:
            stream = sys.stderr if out.stream == "stderr" else sys.stdout
            stream.write(text)
            stream.flush()
            return
        kernel.session.send(
            kernel.iopub_socket,
            "stream",
            {"name": out.stream, "text": text},
            parent=parent,
            ident=f"stream.{out.stream}".encode(),
        )


def _connected() -> bool:
    return nbcluster.is_initialized()
