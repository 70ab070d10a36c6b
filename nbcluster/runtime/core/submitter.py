"""Submitting tasks: the hot path of DESIGN.md.

A task goes from the caller's thread into a queue per resource shape. For each shape
the submitter leases workers from its node manager and streams tasks straight to
them — batched, and pipelined when the function is known to be fast — and results
come back on the same connection. A worker is returned when its shape's queue has
been empty for ``lease_linger_s``. Nothing here talks to the head.
"""

from __future__ import annotations

import collections
import logging
import math
import threading
import traceback
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from nbcluster.exceptions import NbclusterSystemError, TaskCancelledError, WorkerCrashedError
from nbcluster.runtime import ids
from nbcluster.runtime.core.object_ref import ObjectRef
from nbcluster.runtime.objects.serialization import serialize
from nbcluster.runtime.protocol import (
    common_pb2,
    core_worker_pb2 as cw_pb2,
    node_manager_pb2 as nm_pb2,
)
from nbcluster.runtime.states import TASK_TRANSITIONS, StateMachine, TaskState
from nbcluster.runtime.transport import methods

if TYPE_CHECKING:
    from nbcluster.runtime.core.core_worker import CoreWorker

logger = logging.getLogger(__name__)

_OK = cw_pb2.TASK_STATUS_OK
_APP_ERROR = cw_pb2.TASK_STATUS_APP_ERROR
_CANCELLED = cw_pb2.TASK_STATUS_CANCELLED


class ArgRef:
    """Placeholder for a top-level ObjectRef argument: the executor puts the value
    in its place."""

    __slots__ = ("index",)

    def __init__(self, index: int) -> None:
        self.index = index

    def __reduce__(self) -> Any:
        return (ArgRef, (self.index,))


class FunctionInfo:
    """A remote function as the runtime ships it: pickled once, identified by digest."""

    __slots__ = ("function_id", "name", "pickled")

    def __init__(self, function_id: bytes, name: str, pickled: bytes) -> None:
        self.function_id = function_id
        self.name = name
        self.pickled = pickled


class TaskOptions:
    __slots__ = ("resources", "num_returns", "max_retries", "retry_exceptions", "retry_types", "name")

    def __init__(
        self,
        resources: dict[str, float],
        num_returns: int,
        max_retries: int,
        retry_exceptions: bool,
        retry_types: bytes,
        name: str,
    ) -> None:
        self.resources = resources
        self.num_returns = num_returns
        self.max_retries = max_retries
        self.retry_exceptions = retry_exceptions
        self.retry_types = retry_types
        self.name = name


class Task:
    __slots__ = (
        "task_id",
        "fn",
        "options",
        "args",
        "top_refs",
        "resolved",
        "waiting",
        "return_ids",
        "held",
        "retries_left",
        "machine",
        "attempt",
        "cancelled",
        "worker",
        "parent",
        "context",
        "shape",
        "counted_slow",
    )

    def __init__(self, task_id: bytes, fn: FunctionInfo, options: TaskOptions) -> None:
        self.task_id = task_id
        self.fn = fn
        self.options = options
        self.args: common_pb2.ObjectPayload | None = None
        self.top_refs: list[bytes] = []
        self.resolved: list[common_pb2.ObjectPayload | None] = []
        self.waiting = 0
        self.return_ids: list[bytes] = []
        self.held: list[bytes] = []
        self.retries_left = options.max_retries
        self.machine = StateMachine(TASK_TRANSITIONS, TaskState.WAITING_FOR_ARGS)
        self.attempt = 0
        self.cancelled = False
        self.worker: LeasedWorker | None = None
        self.parent = b""
        self.context = ""
        self.shape: ShapeQueue | None = None
        self.counted_slow = False


class ShapeQueue:
    """Tasks waiting for a worker of one resource shape, and the workers leased for it."""

    def __init__(self, key: tuple, resources: dict[str, float]) -> None:
        self.key = key
        self.resources = resources
        self.queue: collections.deque[Task] = collections.deque()
        self.workers: list[LeasedWorker] = []
        self.requests: dict[int, Any] = {}
        self.description = ""


class LeasedWorker:
    __slots__ = ("lease_id", "address", "conn", "shape", "inflight", "slow", "sent_job", "idle_timer", "sent_fns")

    def __init__(self, reply: nm_pb2.LeaseReply, conn: Any, shape: ShapeQueue) -> None:
        self.lease_id = reply.lease_id
        self.address = reply.worker
        self.conn = conn
        self.shape = shape
        self.inflight: dict[bytes, Task] = {}
        self.slow = 0
        self.sent_job = False
        self.idle_timer: Any = None
        sent = conn.state.get("sent_fns")
        if sent is None:
            sent = conn.state["sent_fns"] = set()
        self.sent_fns: set[bytes] = sent


class TaskSubmitter:
    def __init__(self, core: "CoreWorker") -> None:
        self.core = core
        self.config = core.config
        self._new: collections.deque[Task] = collections.deque()
        self._shapes: dict[tuple, ShapeQueue] = {}
        self._tasks: dict[bytes, Task] = {}
        self._children: dict[bytes, set[bytes]] = {}
        self._durations: dict[bytes, float] = {}
        self._next_request = 0
        self._empty_args: common_pb2.ObjectPayload | None = None
        self._lock = threading.Lock()
        self.stopped = False

    # -- submitting (caller's thread) ----------------------------------------------
    def submit(self, fn: FunctionInfo, args: tuple, kwargs: dict, options: TaskOptions, parent: bytes = b"", context: str = "") -> list[ObjectRef]:
        core = self.core
        task = Task(core.ids.next(), fn, options)
        task.parent = parent
        task.context = context
        self._prepare_args(task, args, kwargs)
        refs = []
        for index in range(1, options.num_returns + 1):
            oid = ids.object_id(task.task_id, index)
            task.return_ids.append(oid)
            core.refs.add_owned(oid, task=task)
            refs.append(ObjectRef(oid, core.address_bytes, core))
        self._new.append(task)
        core._wake()
        return refs

    def _prepare_args(self, task: Task, args: tuple, kwargs: dict) -> None:
        core = self.core
        if not args and not kwargs:
            if self._empty_args is None:
                data = serialize(((), {})).to_bytes()
                self._empty_args = common_pb2.ObjectPayload(data=data, size=len(data))
            task.args = self._empty_args
            return
        top: list[ObjectRef] = []

        def swap(value: Any) -> Any:
            if type(value) is ObjectRef:
                top.append(value)
                return ArgRef(len(top) - 1)
            return value

        packed = (tuple(swap(a) for a in args), {k: swap(v) for k, v in kwargs.items()})
        try:
            obj = serialize(packed)
        except Exception as exc:
            raise TypeError(describe_unpicklable(task.fn.name, args, kwargs, exc)) from exc
        held = [ref._id for ref in top] + [ref._id for ref in obj.contained]
        if obj.total_size > self.config.inline_threshold:
            args_id = ids.object_id(task.task_id, 0)
            task.args = core.store(args_id, obj)
            core.refs.add_owned(args_id, task.args)  # held by this task, freed at its end
        else:
            task.args = common_pb2.ObjectPayload(data=obj.to_bytes(), size=obj.total_size)
        for oid in held:
            core.refs.incref(oid)
        if not task.args.HasField("data"):
            held.append(task.args.object_id)
        task.held = held
        task.top_refs = [ref._id for ref in top]

    # -- the loop: resolving arguments, queueing ------------------------------------
    def drain_new(self) -> None:
        new = self._new
        touched: set[ShapeQueue] = set()
        while new:
            task = new.popleft()
            if task.machine.is_terminal():
                continue  # cancelled before it reached the loop
            self._tasks[task.task_id] = task
            if task.parent:
                self._children.setdefault(task.parent, set()).add(task.task_id)
            if task.top_refs:
                self._resolve(task)
            else:
                touched.add(self._enqueue(task, dispatch=False))
        for shape in touched:
            self._dispatch(shape)

    def _resolve(self, task: Task) -> None:
        refs = self.core.refs
        task.resolved = [None] * len(task.top_refs)
        for i, oid in enumerate(task.top_refs):
            entry = refs.get(oid)
            if entry is None:
                from nbcluster.runtime.core.core_worker import error_payload
                from nbcluster.exceptions import ObjectLostError

                task.resolved[i] = error_payload(oid, ObjectLostError(oid.hex()))
            elif entry.payload is not None:
                task.resolved[i] = entry.payload
            else:
                task.waiting += 1
                if entry.callbacks is None:
                    entry.callbacks = []
                entry.callbacks.append(lambda _oid, payload, t=task, i=i: self._resolved(t, i, payload))
                if not entry.owned and not entry.fetching:
                    entry.fetching = True
                    self.core.spawn(self.core._fetch(oid))
        if task.waiting == 0:
            self._enqueue(task)

    def _resolved(self, task: Task, index: int, payload: common_pb2.ObjectPayload) -> None:
        if task.machine.state is not TaskState.WAITING_FOR_ARGS:
            return  # cancelled while waiting
        task.resolved[index] = payload
        task.waiting -= 1
        if task.waiting == 0 and task.machine.state is TaskState.WAITING_FOR_ARGS:
            self._enqueue(task)

    def _enqueue(self, task: Task, dispatch: bool = True) -> ShapeQueue:
        resources = task.options.resources
        key = tuple(sorted(resources.items()))
        shape = self._shapes.get(key)
        if shape is None:
            shape = self._shapes[key] = ShapeQueue(key, resources)
        shape.description = f"Task {task.fn.name}"
        task.shape = shape
        task.machine.transition(TaskState.QUEUED)
        shape.queue.append(task)
        if dispatch:
            self._dispatch(shape)
        return shape

    # -- leases and pushing -----------------------------------------------------------
    def _fast(self, fn: FunctionInfo) -> bool:
        return self._durations.get(fn.function_id, math.inf) < self.config.pipeline_below_s

    def _dispatch(self, shape: ShapeQueue) -> None:
        queue = shape.queue
        limit = self.config.max_tasks_in_flight_per_worker
        for lw in shape.workers:
            if not queue:
                break
            batch = []
            while queue and len(lw.inflight) < limit:
                task = queue[0]
                fast = self._fast(task.fn)
                if lw.inflight and (not fast or lw.slow):
                    break
                queue.popleft()
                lw.inflight[task.task_id] = task
                task.counted_slow = not fast
                if not fast:
                    lw.slow += 1
                task.worker = lw
                task.machine.transition(TaskState.RUNNING)
                batch.append(task)
            if batch:
                if lw.idle_timer is not None:
                    lw.idle_timer.cancel()
                    lw.idle_timer = None
                self._push(lw, batch)
        wanted = min(len(queue), self.config.max_pending_lease_requests)
        while len(shape.requests) < wanted:
            self._request_lease(shape)
        if not queue and shape.requests:
            self._cancel_requests(shape)

    def _request_lease(self, shape: ShapeQueue) -> None:
        core = self.core
        self._next_request += 1
        request_id = self._next_request
        request = nm_pb2.LeaseRequest(
            request_id=request_id,
            resources=common_pb2.ResourceSet(amounts=shape.resources),
            job_id=core.job_id,
            runtime_env_hash=core.job_config.runtime_env_hash if core.job_config else "",
            description=shape.description,
        )
        fut = core.nm.call_future(methods.NodeManager.RequestWorkerLease, request)
        shape.requests[request_id] = fut
        fut.add_done_callback(lambda f: self._on_lease(shape, request_id, f))

    def _cancel_requests(self, shape: ShapeQueue) -> None:
        nm = self.core.nm
        for request_id in list(shape.requests):
            nm.notify(methods.NodeManager.CancelLease, nm_pb2.CancelLeaseRequest(request_id=request_id))

    def _on_lease(self, shape: ShapeQueue, request_id: int, fut: Any) -> None:
        shape.requests.pop(request_id, None)
        if fut.cancelled():
            return
        exc = fut.exception()
        if self.stopped:
            return
        if exc is not None:
            logger.warning("lease request failed: %s", exc)
            if not shape.workers and not shape.requests:
                self._fail_queue(shape, NbclusterSystemError(f"Cannot run {shape.description}: the node manager refused a lease ({exc})"))
            return
        reply: nm_pb2.LeaseReply = fut.result()
        if reply.rejected:
            if reply.reason != "cancelled":
                self._fail_queue(shape, NbclusterSystemError(f"Cannot run {shape.description}: {reply.reason}"))
            else:  # cancelled while the queue was empty; tasks may have arrived since
                self._dispatch(shape)
            return
        conn = self.core.connection_nowait(reply.worker.endpoint)
        if conn is not None:
            self._add_worker(shape, reply, conn)
        else:
            self.core.spawn(self._connect_worker(shape, reply))

    async def _connect_worker(self, shape: ShapeQueue, reply: nm_pb2.LeaseReply) -> None:
        try:
            conn = await self.core.connect_to(reply.worker)
        except Exception as exc:  # noqa: BLE001
            logger.warning("cannot reach leased worker %s: %s", reply.worker.endpoint, exc)
            self._return(reply.lease_id, failed=True)
            self._dispatch(shape)
            return
        self._add_worker(shape, reply, conn)

    def _add_worker(self, shape: ShapeQueue, reply: nm_pb2.LeaseReply, conn: Any) -> None:
        lw = LeasedWorker(reply, conn, shape)
        if self.stopped or conn.closed:
            self._return(lw.lease_id, failed=conn.closed)
            return
        conn.state["leased"] = lw
        shape.workers.append(lw)
        self._dispatch(shape)
        if not lw.inflight:
            self._idle(lw)

    def _push(self, lw: LeasedWorker, batch: list[Task]) -> None:
        core = self.core
        request = cw_pb2.PushTasksRequest(job_id=core.job_id)
        if core.driver_address is not None:
            request.driver.CopyFrom(core.driver_address)
        if not lw.sent_job:
            request.job_config.CopyFrom(core.job_config)
            lw.sent_job = True
        for task in batch:
            spec = request.tasks.add()
            spec.task_id = task.task_id
            spec.job_id = core.job_id
            spec.parent_task_id = task.parent
            fn = task.fn
            spec.function.function_id = fn.function_id
            spec.function.name = fn.name
            if fn.function_id not in lw.sent_fns:
                spec.function.pickled = fn.pickled
                lw.sent_fns.add(fn.function_id)
            spec.args.CopyFrom(task.args)
            if task.resolved:
                spec.resolved_refs.extend(task.resolved)
            opts = task.options
            spec.num_returns = opts.num_returns
            spec.caller.CopyFrom(core.address)
            spec.attempt = task.attempt
            if opts.retry_exceptions:
                spec.retry_exceptions = True
                spec.retry_exception_types = opts.retry_types
            if opts.name:
                spec.name = opts.name
            if task.context:
                spec.context = task.context
        lw.conn.notify(methods.CoreWorker.PushTasks, request)

    def _idle(self, lw: LeasedWorker) -> None:
        if lw.idle_timer is None:
            lw.idle_timer = self.core.loop.call_later(self.config.lease_linger_s, self._linger_over, lw)

    def _linger_over(self, lw: LeasedWorker) -> None:
        lw.idle_timer = None
        if lw.inflight:
            return
        if lw.shape.queue:
            self._dispatch(lw.shape)
            return
        self._drop_worker(lw)
        self._return(lw.lease_id, failed=False)

    def _drop_worker(self, lw: LeasedWorker) -> None:
        if lw in lw.shape.workers:
            lw.shape.workers.remove(lw)
        if lw.conn.state.get("leased") is lw:
            del lw.conn.state["leased"]
        if lw.idle_timer is not None:
            lw.idle_timer.cancel()
            lw.idle_timer = None

    def _return(self, lease_id: int, failed: bool) -> None:
        nm = self.core.nm
        if nm is not None and not nm.closed:
            nm.notify(methods.NodeManager.ReturnWorker, nm_pb2.ReturnWorkerRequest(lease_id=lease_id, worker_failed=failed))

    # -- results ------------------------------------------------------------------------
    def on_results(self, results: Iterable[cw_pb2.TaskResult], conn: Any) -> None:
        lw: LeasedWorker | None = conn.state.get("leased")
        touched = False
        for result in results:
            task = self._tasks.get(result.task_id)
            if task is None or task.worker is None:
                continue
            self._unassign(task)
            prev = self._durations.get(task.fn.function_id)
            self._durations[task.fn.function_id] = (
                result.duration if prev is None else 0.8 * prev + 0.2 * result.duration
            )
            if task.cancelled and result.status != _OK:
                self._fail(task, TaskCancelledError(task.task_id.hex()), TaskState.CANCELLED)
            elif result.status == _APP_ERROR and result.retryable and self._retry(task):
                pass
            else:
                self._finish(task, result)
            touched = True
        if touched:
            self.core.refs.notify_ready()
            self.core.process_releases()
        if lw is not None:
            self._dispatch(lw.shape)
            if not lw.inflight:
                self._idle(lw)

    def _unassign(self, task: Task) -> None:
        worker = task.worker
        if worker is not None:
            worker.inflight.pop(task.task_id, None)
            if task.counted_slow and worker.slow:
                worker.slow -= 1
        task.worker = None
        task.counted_slow = False

    def _retry(self, task: Task) -> bool:
        if task.cancelled or task.retries_left == 0:
            return False
        if task.retries_left > 0:
            task.retries_left -= 1
        task.attempt += 1
        task.machine.transition(TaskState.QUEUED)
        assert task.shape is not None
        task.shape.queue.append(task)
        self.core.loop.call_soon(self._dispatch, task.shape)
        return True

    def _finish(self, task: Task, result: cw_pb2.TaskResult) -> None:
        refs = self.core.refs
        state = TaskState.FINISHED if result.status == _OK else TaskState.FAILED
        task.machine.transition(state)
        for oid, payload in zip(task.return_ids, result.returns):
            if payload.contained:
                entry = refs.get(oid)
                inner = []
                for info in payload.contained:
                    refs.add_borrowed(info.object_id, info.owner.SerializeToString(), registered=True)
                    inner.append(info.object_id)
                if entry is not None:
                    entry.contained = inner
                else:
                    for oid_inner in inner:
                        refs.release(oid_inner)
            self._set(oid, payload)
        self._done(task)

    def _set(self, oid: bytes, payload: common_pb2.ObjectPayload) -> None:
        entry = self.core.refs.set_payload(oid, payload)
        if entry is not None:
            entry.task = None
            if entry.freeable:
                self.core._on_freed(oid, entry)

    def _fail(self, task: Task, exc: BaseException, state: TaskState = TaskState.FAILED) -> None:
        from nbcluster.runtime.core.core_worker import error_payload

        task.machine.transition(state)
        for oid in task.return_ids:
            self._set(oid, error_payload(oid, exc))
        self._done(task)

    def _done(self, task: Task) -> None:
        self._tasks.pop(task.task_id, None)
        if task.parent:
            siblings = self._children.get(task.parent)
            if siblings is not None:
                siblings.discard(task.task_id)
                if not siblings:
                    del self._children[task.parent]
        for oid in task.held:
            self.core.refs.release(oid)
        task.held = []
        task.resolved = []

    def _fail_queue(self, shape: ShapeQueue, exc: BaseException) -> None:
        while shape.queue:
            self._fail(shape.queue.popleft(), exc)
        self.core.refs.notify_ready()

    def connection_lost(self, conn: Any) -> None:
        lw: LeasedWorker | None = conn.state.get("leased")
        if lw is None:
            return
        self._drop_worker(lw)
        reason = conn.close_reason or "connection lost"
        for task in list(lw.inflight.values()):
            self._unassign(task)
            if task.cancelled:
                self._fail(task, TaskCancelledError(task.task_id.hex()), TaskState.CANCELLED)
            elif not self._retry(task):
                self._fail(
                    task,
                    WorkerCrashedError(
                        f"The worker running {task.fn.name} died ({reason}); the task ran "
                        f"{task.attempt + 1} time(s) (max_retries={task.options.max_retries}). "
                        "Check the worker's log in the session's logs/ directory."
                    ),
                )
        lw.inflight.clear()
        self.core.refs.notify_ready()
        self._dispatch(lw.shape)

    # -- cancelling ---------------------------------------------------------------------
    def cancel(self, oid: bytes, force: bool, recursive: bool) -> None:
        """Cancel the task that returns ``oid`` (loop thread)."""
        entry = self.core.refs.get(oid)
        task = entry.task if entry is not None else None
        if task is None or task.machine.is_terminal():
            return
        task.cancelled = True
        state = task.machine.state
        if state is TaskState.WAITING_FOR_ARGS:
            self._fail(task, TaskCancelledError(task.task_id.hex()), TaskState.CANCELLED)
        elif state is TaskState.QUEUED:
            assert task.shape is not None
            try:
                task.shape.queue.remove(task)
            except ValueError:
                pass
            self._fail(task, TaskCancelledError(task.task_id.hex()), TaskState.CANCELLED)
        elif state is TaskState.RUNNING and task.worker is not None:
            task.worker.conn.notify(
                methods.CoreWorker.CancelTask,
                cw_pb2.CancelTaskRequest(task_id=task.task_id, force=force, recursive=recursive),
            )
        self.core.refs.notify_ready()

    def cancel_children(self, parent: bytes, force: bool) -> None:
        for task_id in list(self._children.get(parent, ())):
            task = self._tasks.get(task_id)
            if task is not None and task.return_ids:
                self.cancel(task.return_ids[0], force, recursive=True)

    def busy(self) -> bool:
        """Tasks submitted here are still in flight."""
        return bool(self._tasks) or bool(self._new)

    def stop(self) -> None:
        self.stopped = True
        for shape in self._shapes.values():
            for lw in list(shape.workers):
                if lw.idle_timer is not None:
                    lw.idle_timer.cancel()
            shape.workers.clear()


def describe_unpicklable(fn_name: str, args: tuple, kwargs: dict, exc: BaseException) -> str:
    """Name the argument that cannot be pickled, its type, and the fix."""
    for where, value in [*((f"argument {i}", a) for i, a in enumerate(args)), *((f"argument {k!r}", v) for k, v in kwargs.items())]:
        try:
            serialize(value)
        except Exception as inner:  # noqa: BLE001
            kind = f"{type(value).__module__}.{type(value).__qualname__}"
            return (
                f"Cannot send {where} of {fn_name}() to a worker: a {kind} cannot be pickled "
                f"({type(inner).__name__}: {inner}). Pass something picklable instead, or "
                "create the object inside the task."
            )
    detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    return f"Cannot send the arguments of {fn_name}() to a worker: {detail}"

