"""Hooks for drivers that are not plain scripts — a Jupyter kernel above all.

Everything a driver submits carries a *submission context*, an opaque string (the
notebook layer uses the id of the cell's request). Output that tasks and actors print
comes back tagged with the context of the work that printed it, so a handler can show
it where that work came from, also long after; and the work of one context can be
cancelled at once (the stop button).

    nbcluster.driver.set_submission_context("cell-7")
    nbcluster.driver.set_output_handler(lambda out: ...)   # RemoteOutput records
    nbcluster.driver.cancel_context("cell-7")

Progress bars that tasks report as data (``nbcluster.util.tqdm``) reach
``set_progress_handler``'s handler as :class:`ProgressState` records; without one, a
driver shows them merged on one line of its stderr.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nbcluster.runtime import api
from nbcluster.runtime.core.log_print import TERMINAL, prefix
from nbcluster.runtime.core.progress import ProgressState
from nbcluster.runtime.core.object_ref import ObjectRef
from nbcluster.runtime.driver_core import connected_core, core_worker

__all__ = [
    "ProgressState", "RemoteOutput", "cancel_context", "connection", "on_disconnect", "set_output_handler",
    "set_progress_handler", "set_submission_context", "set_submit_hook", "submission_context", "unfinished",
]

#: ``on_disconnect(callback)``: call ``callback()`` whenever this process's driver is
#: about to disconnect by ``nbcluster.shutdown()`` (while the cluster is still
#: reachable; not at interpreter exit); returns a function that removes it.
on_disconnect = api.on_disconnect


@dataclass(frozen=True)
class RemoteOutput:
    """Lines a task or actor wrote, as they reach the driver."""

    #: The function or actor class that wrote them, and where it ran.
    source: str
    pid: int
    node_ip: str
    #: The submission context of the work that wrote them ("" when none was set).
    context: str
    #: "stdout" or "stderr".
    stream: str
    #: Complete lines, each ending with a newline; for a redraw, the redrawn line's
    #: latest state (no newline).
    text: str
    #: A carriage-return redraw (a progress bar printed with "\r"): it replaces the
    #: previous redraw of the same writer (``source``, ``pid``, ``node_ip``) and
    #: ``stream``; that writer's next lines on the stream begin with the line's final state.
    redraw: bool = False

    @property
    def prefix(self) -> str:
        """Ray's ``(name pid=N)`` prefix (with the node's address when not local)."""
        return prefix(self.source, self.pid, self.node_ip)


def set_submission_context(context: str) -> None:
    """Tag what this driver submits from now on with ``context``."""
    core_worker().task_context = context


def submission_context() -> str:
    """The submission context this driver tags its submissions with now ("" when none)."""
    return core_worker().task_context


def connection() -> object | None:
    """An opaque value naming this process's current connection to a cluster; None
    when not connected. It changes when the driver reconnects (``shutdown()`` then
    ``init()``), whose new connection has none of the hooks and handlers set on the
    old one: compare it to tell whether yours are still in place."""
    return connected_core()


def set_submit_hook(hook: Callable[[str, list[ObjectRef]], None] | None) -> None:
    """Call ``hook(context, refs)`` on the submitting thread right after each task or
    actor call this driver submits itself (not what its tasks submit), with the
    submission context and the call's refs; ``None`` removes it. Keep it cheap: it runs
    on every submission. An exception in it is logged, never raised."""
    core_worker().submit_hook = hook


class _Sink:
    """A driver's log sink that hands lines and progress bars to the handlers set here,
    and shows what has no handler as a script does."""

    def __init__(self) -> None:
        self.output: Callable[[RemoteOutput], None] | None = None
        self.progress: Callable[[ProgressState], None] | None = None

    def __call__(self, batch: Any) -> None:
        if self.output is None:
            TERMINAL.lines(batch)
        else:
            for out in _outputs(batch):
                self.output(out)
        states = [ProgressState.from_batch(batch, update) for update in batch.progress]
        if self.progress is None:
            TERMINAL.progress(states)
        else:
            for state in states:
                self.progress(state)


def _outputs(batch: Any) -> list[RemoteOutput]:
    """A batch's lines as records: consecutive lines of one stream together, each
    redraw on its own (order kept)."""
    out: list[RemoteOutput] = []
    run: list[str] = []
    for i, line in enumerate(batch.lines):
        stream = "stderr" if line.is_stderr else "stdout"
        if line.redraw:
            out.append(_record(batch, stream, line.text, True))
            continue
        run.append(line.text + "\n")
        following = batch.lines[i + 1] if i + 1 < len(batch.lines) else None
        if following is None or following.redraw or following.is_stderr != line.is_stderr:
            out.append(_record(batch, stream, "".join(run), False))
            run = []
    return out


def _record(batch: Any, stream: str, text: str, redraw: bool) -> RemoteOutput:
    return RemoteOutput(source=batch.source, pid=batch.pid, node_ip=batch.node_ip, context=batch.context,
                        stream=stream, text=text, redraw=redraw)


def _sink() -> _Sink:
    """The connected driver's sink (made on first use)."""
    core = core_worker()
    if not isinstance(core.log_sink, _Sink):
        core.log_sink = _Sink()
    return core.log_sink


def set_output_handler(handler: Callable[[RemoteOutput], None] | None) -> None:
    """Send remote output to ``handler`` (called on the runtime's thread; keep it short)
    instead of this process's stdout/stderr; ``None`` restores that."""
    _sink().output = handler


def set_progress_handler(handler: Callable[[ProgressState], None] | None) -> None:
    """Send the states of progress bars that tasks and actors report
    (``nbcluster.util.tqdm``; this driver's own bars too) to ``handler`` (the runtime's
    thread, or the reporting one in this driver), instead of one merged line on stderr;
    ``None`` restores that."""
    _sink().progress = handler


def unfinished(context: str) -> int | None:
    """How many tasks and actor calls this driver submitted with ``context`` have not
    finished; None when this driver cannot tell (a client-mode driver)."""
    count = getattr(core_worker(), "count_unfinished", None)
    return None if count is None else count(context)


def cancel_context(context: str, *, force: bool = False) -> int:
    """Cancel the unfinished tasks and actor calls this driver submitted with
    ``context`` (with their children); returns how many were asked to stop."""
    return core_worker().cancel_context(context, force)


