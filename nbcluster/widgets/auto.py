"""``auto_progress(N)``: a progress view under every cell that submits more than N tasks.

    import nbcluster.widgets
    nbcluster.widgets.auto_progress(100)     # from now on, in this kernel
    nbcluster.widgets.auto_progress(None)    # off

Counting is per cell: a submit hook (``nbcluster.driver.set_submit_hook``) counts the
tasks and actor calls the cell submits; the call that goes past N displays a
:class:`ProgressWidget` of the cell's tasks in that cell's output, and later
submissions of the cell join it. When the cell ends the view is sealed: it stops
listening once its tasks have ended. Until a cell crosses N it costs a counter and a
list of at most N refs (one per call, held until the cell ends). Cells may submit from
several threads: they share the cell's one view.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import nbcluster
import nbcluster.driver

from .progress import ProgressWidget

__all__ = ["auto_progress"]

logger = logging.getLogger(__name__)


class _AutoProgress:
    def __init__(self, shell: Any) -> None:
        self.shell = shell
        self.min_tasks = 0
        self._lock = threading.Lock()
        self._refs: list[Any] = []  # the cell's refs until it crosses min_tasks
        self._count = 0
        self._view: ProgressWidget | None = None
        self._hooked: object | None = None  # the driver connection the hook is set on
        self._making: int | None = None  # the cell whose view is being made (outside the lock)
        self._cell = 0  # which cell submissions count towards (bumped at each seal)

    # -- IPython events ------------------------------------------------------------------
    def start(self) -> None:
        self.shell.events.register("pre_run_cell", self._pre_run_cell)
        self.shell.events.register("post_run_cell", self._post_run_cell)
        self._install()

    def stop(self) -> None:
        for name, callback in (("pre_run_cell", self._pre_run_cell), ("post_run_cell", self._post_run_cell)):
            try:
                self.shell.events.unregister(name, callback)
            except ValueError:
                pass
        self._seal()
        if self._hooked is not None and nbcluster.is_initialized():
            nbcluster.driver.set_submit_hook(None)
        self._hooked = None

    def _install(self) -> None:
        """Set the hook on the current driver (again after a reconnect)."""
        connection = nbcluster.driver.connection()
        if connection is not None and self._hooked is not connection:
            nbcluster.driver.set_submit_hook(self._on_submit)
            self._hooked = connection

    def _pre_run_cell(self, *args: Any) -> None:
        self._seal()
        self._install()

    def _post_run_cell(self, *args: Any) -> None:
        self._seal()

    def _seal(self) -> None:
        with self._lock:
            view, self._view = self._view, None
            self._refs, self._count = [], 0
            self._cell += 1  # a view still being made for the cell that ended is sealed when made
        if view is not None:
            view.seal()

    # -- submissions -----------------------------------------------------------------------
    def _on_submit(self, context: str, refs: list[Any]) -> None:
        """On the submitting thread (the cell's, or a thread it started: several at
        once). The call that crosses min_tasks makes the one view; calls made while it
        is being made are queued for it."""
        if not refs:
            return
        with self._lock:
            self._count += 1
            view, cell = self._view, self._cell
            if view is None:
                self._refs.extend(refs[:1])  # one task per call: its first return names it
                if self._making == cell or self._count <= self.min_tasks:
                    return
                show, self._refs, self._making = self._refs, [], cell
        if view is not None:
            view.add_refs(refs[:1])
            return
        made = None
        try:
            made = ProgressWidget(refs=show, open_ended=True)
        finally:
            with self._lock:
                current = cell == self._cell
                queued: list[Any] = []
                if current:  # else the refs queued now are the next cell's
                    self._making, self._view = None, made
                    queued, self._refs = self._refs, []
        if queued:
            made.add_refs(queued)
        if not current:
            made.seal()  # its cell ended while it was being made
        from IPython.display import display

        display(made)


_auto: _AutoProgress | None = None


def auto_progress(min_tasks: int | None = 100) -> None:
    """Show a live progress view under every cell that submits more than
    ``min_tasks`` tasks (``None`` or ``0``: stop doing so). Works in IPython kernels;
    takes effect for the driver connected now and any connected later."""
    global _auto
    if min_tasks is not None and (isinstance(min_tasks, bool) or not isinstance(min_tasks, int) or min_tasks < 0):
        raise ValueError(f"min_tasks must be a whole number >= 0 or None, got {min_tasks!r}")
    from IPython import get_ipython

    shell = get_ipython()
    if shell is None:
        raise RuntimeError("auto_progress() works in IPython and Jupyter kernels; in a script use progress(refs)")
    if not min_tasks:
        if _auto is not None:
            _auto.stop()
            _auto = None
        return
    if _auto is None or _auto.shell is not shell:
        if _auto is not None:
            _auto.stop()
        _auto = _AutoProgress(shell)
        _auto.start()
    _auto.min_tasks = min_tasks
