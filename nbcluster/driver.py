"""Hooks for drivers that are not plain scripts — a Jupyter kernel above all.

Everything a driver submits carries a *submission context*, an opaque string (the
notebook layer uses the id of the cell's request). Output that tasks and actors print
comes back tagged with the context of the work that printed it, so a handler can show
it where that work came from, also long after; and the work of one context can be
cancelled at once (the stop button).

    nbcluster.driver.set_submission_context("cell-7")
    nbcluster.driver.set_output_handler(lambda out: ...)   # RemoteOutput records
    nbcluster.driver.cancel_context("cell-7")
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from nbcluster.runtime import api
from nbcluster.runtime.core.core_worker import print_log_batch
from nbcluster.runtime.core.object_ref import ObjectRef
from nbcluster.runtime.driver_core import connected_core, core_worker

__all__ = [
    "RemoteOutput", "cancel_context", "connection", "on_disconnect", "set_output_handler",
    "set_submission_context", "set_submit_hook", "submission_context",
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
    #: Complete lines, each ending with a newline.
    text: str

    @property
    def prefix(self) -> str:
        """Ray's ``(name pid=N)`` prefix (with the node's address when not local)."""
        ip = f", ip={self.node_ip}" if self.node_ip and self.node_ip != "127.0.0.1" else ""
        return f"({self.source} pid={self.pid}{ip}) "


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


def set_output_handler(handler: Callable[[RemoteOutput], None] | None) -> None:
    """Send remote output to ``handler`` (called on the runtime's thread; keep it short)
    instead of this process's stdout/stderr; ``None`` restores that."""
    core = core_worker()
    if handler is None:
        core.log_sink = print_log_batch
        return

    def sink(batch: object) -> None:
        for stream, is_stderr in (("stdout", False), ("stderr", True)):
            lines = [line.text for line in batch.lines if line.is_stderr is is_stderr]  # type: ignore[attr-defined]
            if lines:
                handler(
                    RemoteOutput(
                        source=batch.source,  # type: ignore[attr-defined]
                        pid=batch.pid,  # type: ignore[attr-defined]
                        node_ip=batch.node_ip,  # type: ignore[attr-defined]
                        context=batch.context,  # type: ignore[attr-defined]
                        stream=stream,
                        text="".join(line + "\n" for line in lines),
                    )
                )

    core.log_sink = sink


def cancel_context(context: str, *, force: bool = False) -> int:
    """Cancel the unfinished tasks and actor calls this driver submitted with
    ``context`` (with their children); returns how many were asked to stop."""
    return core_worker().cancel_context(context, force)


