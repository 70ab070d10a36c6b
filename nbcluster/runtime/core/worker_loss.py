"""When a leased worker goes: its connection closes (ask the node manager that granted
it why it died, then retry or fail the tasks it had), or its lease is revoked (that
node drains: the tasks pushed finish there, the next ones go elsewhere).

A worker the node's memory monitor killed (``node/memory_monitor.py``) fails its
running task with :class:`~nbcluster.exceptions.OutOfMemoryError`, or retries it as
Ray does: OOM kills do not count against ``max_retries`` but against
``task_oom_retries`` (-1: always), after a delay that doubles from
``task_oom_retry_delay_base_ms`` (at most 60 s); a task with ``max_retries=0``, or the
last work of its owner on that node, is not retried. The tasks queued behind it on
that worker never started: they go back to their queue without using a retry. Any
other death uses a retry (``max_retries``), else fails with ``WorkerCrashedError``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from nbcluster.exceptions import OutOfMemoryError, TaskCancelledError, WorkerCrashedError
from nbcluster.runtime.protocol import node_manager_pb2 as nm_pb2
from nbcluster.runtime.states import TaskState
from nbcluster.runtime.transport import methods

if TYPE_CHECKING:
    from nbcluster.runtime.core.tasks import Task

logger = logging.getLogger(__name__)

#: How long a lease holder waits for the node manager to say why a worker died.
_ASK_TIMEOUT_S = 2.0
_MAX_OOM_DELAY_S = 60.0

Cause = nm_pb2.WorkerFailureCauseReply


def ask_failure_cause(nm: Any, worker_id: bytes, then: Callable[[Cause | None], None]) -> None:
    """Loop thread: call ``then`` once with the node manager's cause of the worker's
    death (None when it has none, cannot be asked, or does not answer in time)."""
    loop = asyncio.get_running_loop()
    called = False

    def once(cause: Cause | None) -> None:
        nonlocal called
        if not called:
            called = True
            then(cause)

    if nm is None or nm.closed:
        loop.call_soon(once, None)
        return
    fut = nm.call_future(methods.NodeManager.GetWorkerFailureCause, nm_pb2.WorkerFailureCauseRequest(worker_id=worker_id))

    def done(f: asyncio.Future) -> None:
        reply = None if f.cancelled() or f.exception() is not None else f.result()
        once(reply if reply is not None and reply.found else None)

    fut.add_done_callback(done)
    loop.call_later(_ASK_TIMEOUT_S, once, None)


class WorkerLoss:
    """Mixed into TaskSubmitter (which provides the methods used here)."""

    core: Any
    config: Any

    def revoke_lease(self, nm: Any, lease_id: int, reason: str) -> None:
        """The node manager ``nm`` revokes a lease (it drains): no more tasks go to its
        worker, which is returned once those pushed are done; its queue asks for
        another lease. One not taken up yet is returned when it is."""
        for shape in list(self._shapes.values()):
            lw = next((w for w in shape.workers if w.lease_id == lease_id and w.nm is nm), None)
            if lw is None:
                continue
            logger.info("lease %d revoked: %s", lease_id, reason)
            lw.revoked = True
            shape.workers.remove(lw)
            if lw.idle_timer is not None:
                lw.idle_timer.cancel()
                lw.idle_timer = None
            if not lw.inflight:
                self._drop_worker(lw)
                self._return(lw.nm, lw.lease_id, failed=False)
            self._dispatch(shape)
            return
        nm.state.setdefault("revoked", set()).add(lease_id)

    def connection_lost(self, conn: Any) -> None:
        """A leased worker's connection closed: once its node manager said why, retry or
        fail its tasks (module docstring)."""
        lw = conn.state.get("leased")
        if lw is None:
            return
        self._drop_worker(lw)
        reason = conn.close_reason or "connection lost"
        tasks = list(lw.inflight.values())  # in the order the worker runs them
        for task in tasks:
            self._unassign(task)
        lw.inflight.clear()
        ask_failure_cause(lw.nm, lw.address.worker_id, lambda cause: self._worker_lost(lw, tasks, reason, cause))

    def _worker_lost(self, lw: Any, tasks: list[Task], reason: str, cause: Cause | None) -> None:
        oom = cause is not None and cause.out_of_memory
        for i, task in enumerate(tasks):
            if task.machine.is_terminal():
                continue
            if task.cancelled:
                self._fail(task, TaskCancelledError(task.task_id.hex()), TaskState.CANCELLED)
            elif oom and i == 0:
                self._out_of_memory(task, cause)
            elif oom:  # queued behind the killed one: it never started
                task.machine.transition(TaskState.QUEUED)
                task.shape.queue.appendleft(task)
            elif not self._retry(task):
                why = cause.message if cause is not None else reason
                self._fail(
                    task,
                    WorkerCrashedError(
                        f"The worker running {task.fn.name} died ({why}); the task ran "
                        f"{task.attempt + 1} time(s) (max_retries={task.options.max_retries}). "
                        "Check the worker's log in the session's logs/ directory."
                    ),
                )
        self.core.refs.notify_ready()
        self._dispatch(lw.shape)

    def _out_of_memory(self, task: Task, cause: Cause) -> None:
        limit = self.config.task_oom_retries
        left = task.options.max_retries != 0 and cause.retriable and (limit < 0 or task.oom_kills < limit)
        task.oom_kills += 1
        if not left:
            if task.options.max_retries == 0:
                why = "it has max_retries=0"
            elif not cause.retriable:
                why = "it was its caller's last work on that node"
            else:
                why = f"it was killed {task.oom_kills} time(s) (task_oom_retries={limit})"
            self._fail(task, OutOfMemoryError(f"Task {task.fn.name} (task {task.task_id.hex()}) was killed because "
                                              f"{cause.message}. It is not retried: {why}."))
            return
        delay = min(self.config.task_oom_retry_delay_base_ms / 1000 * 2 ** (task.oom_kills - 1), _MAX_OOM_DELAY_S)
        logger.warning("task %s=%s killed by the memory monitor, retrying in %.1fs: %s",
                       task.fn.name, task.task_id.hex(), delay, cause.message)
        task.attempt += 1
        task.machine.transition(TaskState.QUEUED)
        self.core.loop.call_later(delay, self._requeue_after_oom, task)

    def _requeue_after_oom(self, task: Task) -> None:
        if task.machine.state is TaskState.QUEUED and not task.cancelled and task not in task.shape.queue:
            task.shape.queue.append(task)
            self._dispatch(task.shape)

    # provided by TaskSubmitter / SubmitterBase
    _shapes: dict[tuple, Any]

    def _drop_worker(self, lw: Any) -> None:  # pragma: no cover
        raise NotImplementedError

    def _return(self, nm: Any, lease_id: int, failed: bool) -> None:  # pragma: no cover
        raise NotImplementedError

    def _unassign(self, task: Task) -> None:  # pragma: no cover
        raise NotImplementedError

    def _retry(self, task: Task) -> bool:  # pragma: no cover
        raise NotImplementedError

    def _fail(self, task: Task, exc: BaseException, state: TaskState = TaskState.FAILED) -> None:  # pragma: no cover
        raise NotImplementedError

    def _dispatch(self, shape: Any) -> None:  # pragma: no cover
        raise NotImplementedError
