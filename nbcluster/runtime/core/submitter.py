"""Submitting tasks: the hot path (docs/architecture.md, "The path of a task").

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
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from nbcluster.exceptions import NbclusterSystemError, TaskCancelledError, TaskUnschedulableError
from nbcluster.runtime.core.object_ref import ObjectRef
from nbcluster.runtime.core.task_env import job_config_for
from nbcluster.runtime.core.tasks import FunctionInfo, Placement, SubmitterBase, Task, TaskOptions, fill_spec
from nbcluster.runtime.core.worker_loss import WorkerLoss
from nbcluster.runtime.protocol import (
    common_pb2,
    core_worker_pb2 as cw_pb2,
    node_manager_pb2 as nm_pb2,
)
from nbcluster.runtime.states import TaskState
from nbcluster.runtime.transport import methods
from nbcluster.runtime.transport.errors import ConnectionLost, RemoteError

if TYPE_CHECKING:
    from nbcluster.runtime.core.core_worker import CoreWorker

logger = logging.getLogger(__name__)

_OK = cw_pb2.TASK_STATUS_OK
_APP_ERROR = cw_pb2.TASK_STATUS_APP_ERROR
_CANCELLED = cw_pb2.TASK_STATUS_CANCELLED


class ShapeQueue:
    """Tasks waiting for a worker of one resource shape (and placement), and the
    workers leased for it."""

    def __init__(self, key: tuple, resources: dict[str, float], placement: Placement | None, home: bytes) -> None:
        self.key = key
        self.resources = resources
        self.placement = placement
        #: The node holding most of these tasks' large arguments ("" : here).
        self.home = home
        self.queue: collections.deque[Task] = collections.deque()
        self.workers: list[LeasedWorker] = []
        #: Lease requests out: id -> (node manager connection, reply future), or None
        #: while a connection to another node's node manager is being opened.
        self.requests: dict[int, tuple[Any, Any] | None] = {}
        self.description = ""
        self.retriable = True
        #: The JobConfig its workers bind to (None: the process's own).
        self.job_config: common_pb2.JobConfig | None = None

    @property
    def spread(self) -> bool:
        """Tasks of this queue are spread over the nodes (SPREAD)."""
        return self.placement is not None and self.placement.strategy == nm_pb2.SCHEDULING_STRATEGY_SPREAD


class LeasedWorker:
    """A worker leased for a ShapeQueue, and the tasks pushed to it."""

    __slots__ = ("lease_id", "address", "conn", "nm", "shape", "inflight", "slow", "sent_job", "idle_timer", "sent_fns",
                 "gpu_ids", "revoked")

    def __init__(self, reply: nm_pb2.LeaseReply, conn: Any, nm: Any, shape: ShapeQueue) -> None:
        self.lease_id = reply.lease_id
        self.address = reply.worker
        self.gpu_ids = list(reply.gpu_ids)  # CUDA_VISIBLE_DEVICES of the tasks it runs
        self.conn = conn
        self.nm = nm  # the node manager that granted the lease
        self.shape = shape
        self.inflight: dict[bytes, Task] = {}
        self.slow = 0
        self.sent_job = False
        self.idle_timer: Any = None
        self.revoked = False  # its node drains: the tasks pushed finish, no more go (worker_loss.py)
        sent = conn.state.get("sent_fns")
        if sent is None:
            sent = conn.state["sent_fns"] = set()
        self.sent_fns: set[bytes] = sent


class TaskSubmitter(SubmitterBase, WorkerLoss):
    """Submits this process's normal tasks: leases workers per resource shape and pushes tasks to them."""

    def __init__(self, core: "CoreWorker") -> None:
        super().__init__(core)
        self._new: collections.deque[Task] = collections.deque()
        self._shapes: dict[tuple, ShapeQueue] = {}
        self._durations: dict[bytes, float] = {}
        self._next_request = 0
        #: Stored results -> the finished task that made them (kept to rebuild them).
        self._lineage: dict[bytes, Task] = {}
        self.stopped = False

    # -- submitting (caller's thread) ----------------------------------------------
    def submit(self, fn: FunctionInfo, args: tuple, kwargs: dict, options: TaskOptions, parent: bytes = b"", context: str = "") -> list[ObjectRef]:
        """Queue a task (caller's thread); returns its refs."""
        task = Task(self.core.ids.next(), fn, options)
        if options.runtime_env:  # its own environment: its own workers (task_env.py)
            task.job_config = job_config_for(self.core, options.runtime_env)
        task.parent = parent
        task.context = context
        self.prepare_args(task, args, kwargs)
        return self.queue(task)

    def queue(self, task: Task) -> list[ObjectRef]:
        """Queue a task whose arguments are set (any thread); returns its refs."""
        refs = self.make_returns(task)
        self._new.append(task)
        self.core.wake()
        return refs

    # -- the loop: resolving arguments, queueing ------------------------------------
    def drain_new(self) -> None:
        """Loop thread: take the tasks submitted since the last wake-up into their queues."""
        new = self._new
        touched: set[ShapeQueue] = set()
        while new:
            task = new.popleft()
            if not self._register(task):
                continue  # cancelled before it reached the loop
            if task.top_refs:
                self._resolve(task)
            else:
                touched.add(self._enqueue(task, dispatch=False))
        for shape in touched:
            self._dispatch(shape)

    def _ready(self, task: Task) -> None:
        self._enqueue(task)

    def _enqueue(self, task: Task, dispatch: bool = True) -> ShapeQueue:
        resources = task.options.resources
        placement = task.options.placement
        home = self._home(task) if placement is None or placement.local_first else b""
        retriable = task.options.max_retries != 0  # the memory monitor kills retriable work first
        env = task.job_config.runtime_env_hash if task.job_config is not None else None
        key = (tuple(sorted(resources.items())), placement.key if placement else None, home, retriable, env)
        shape = self._shapes.get(key)
        if shape is None:
            shape = self._shapes[key] = ShapeQueue(key, resources, placement, home)
            shape.retriable, shape.job_config = retriable, task.job_config
        shape.description = f"Task {task.fn.name}"
        task.shape = shape
        task.machine.transition(TaskState.QUEUED)
        self.core.task_events.record(task, "QUEUED")
        shape.queue.append(task)
        if dispatch:
            self._dispatch(shape)
        return shape

    # -- leases and pushing -----------------------------------------------------------
    def _fast(self, fn: FunctionInfo) -> bool:
        return self._durations.get(fn.function_id, math.inf) < self.config.pipeline_below_s

    def _home(self, task: Task) -> bytes:
        """Locality: the other node holding most bytes of the task's stored
        arguments (b"" when that is this node, or they are inline)."""
        weight: dict[bytes, int] = {}
        for payload in (task.args, *task.resolved):
            if payload is not None and payload.node_id:
                weight[payload.node_id] = weight.get(payload.node_id, 0) + payload.size
        if not weight:
            return b""
        node = max(weight, key=weight.__getitem__)
        return b"" if node == self.core.node_id or node in self.core.dead_nodes else node

    def _dispatch(self, shape: ShapeQueue) -> None:
        queue = shape.queue
        # SPREAD: one task per lease, so tasks go to as many leases (nodes) as possible.
        limit = 1 if shape.spread else self.config.max_tasks_in_flight_per_worker
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
            self._request_lease(shape, shape.home)
        if not queue and shape.requests:
            self._cancel_requests(shape)

    def _request_lease(self, shape: ShapeQueue, node_id: bytes = b"", no_spill: bool = False) -> None:
        """Ask a node manager for a worker: this node's, or ``node_id``'s."""
        core = self.core
        self._next_request += 1
        request_id = self._next_request
        request = nm_pb2.LeaseRequest(
            request_id=request_id,
            resources=common_pb2.ResourceSet(amounts=shape.resources),
            job_id=core.job_id,
            runtime_env_hash=(shape.job_config or core.job_config or common_pb2.JobConfig()).runtime_env_hash,
            description=shape.description,
            no_spill=no_spill,
            nested=core.executor is not None,
            retriable=shape.retriable,
        )
        placement = shape.placement
        if placement is not None:
            request.strategy = placement.strategy
            request.affinity_node_id = placement.node_id
            request.affinity_soft = placement.soft
        if not node_id or node_id == core.node_id:
            self._send_request(shape, request, core.nm)
            return
        shape.requests[request_id] = None
        core.spawn(self._request_remote(shape, request, node_id))

    async def _request_remote(self, shape: ShapeQueue, request: nm_pb2.LeaseRequest, node_id: bytes) -> None:
        try:
            nm = await self.core.node_client(node_id)
        except (ConnectionLost, RemoteError) as exc:
            logger.info("node=%s unreachable for a lease (%s): asking here", node_id.hex(), exc)
            shape.requests.pop(request.request_id, None)
            if shape.home == node_id:
                shape.home = b""
            self._dispatch(shape)
            return
        if request.request_id in shape.requests:  # not cancelled meanwhile
            self._send_request(shape, request, nm)

    def _send_request(self, shape: ShapeQueue, request: nm_pb2.LeaseRequest, nm: Any) -> None:
        request_id = request.request_id
        fut = nm.call_future(methods.NodeManager.RequestWorkerLease, request)
        shape.requests[request_id] = (nm, fut)
        fut.add_done_callback(lambda f: self._on_lease(shape, request_id, nm, f))

    def _cancel_requests(self, shape: ShapeQueue) -> None:
        for request_id, sent in list(shape.requests.items()):
            if sent is None:
                del shape.requests[request_id]  # its connection is still opening: drop it
            elif not sent[0].closed:
                sent[0].notify(methods.NodeManager.CancelLease, nm_pb2.CancelLeaseRequest(request_id=request_id))

    def _on_lease(self, shape: ShapeQueue, request_id: int, nm: Any, fut: Any) -> None:
        shape.requests.pop(request_id, None)
        if fut.cancelled():
            return
        exc = fut.exception()
        if self.stopped:
            return
        if exc is not None:
            logger.warning("lease request failed: %s", exc)
            if nm is not self.core.nm:  # that node went away: ask here instead
                shape.home = b""
                self._dispatch(shape)
            elif not shape.workers and not shape.requests:
                self._fail_queue(shape, NbclusterSystemError(f"Cannot run {shape.description}: the node manager refused a lease ({exc})"))
            return
        reply: nm_pb2.LeaseReply = fut.result()
        if reply.HasField("spillback"):
            if shape.queue:  # the node manager points at another node
                self._request_lease(shape, reply.spillback.node_id, no_spill=True)
            return
        if reply.rejection != nm_pb2.LEASE_REJECTION_UNSPECIFIED:
            if reply.rejection == nm_pb2.LEASE_REJECTION_CANCELLED:
                self._dispatch(shape)  # cancelled while the queue was empty; tasks may have arrived since
            elif reply.rejection == nm_pb2.LEASE_REJECTION_UNSCHEDULABLE:
                self._fail_queue(shape, TaskUnschedulableError(f"Cannot run {shape.description}: {reply.reason}"))
            else:
                self._fail_queue(shape, NbclusterSystemError(f"Cannot run {shape.description}: {reply.reason}"))
            return
        conn = self.core.connection_nowait(reply.worker.endpoint)
        if conn is not None:
            self._add_worker(shape, reply, conn, nm)
        else:
            self.core.spawn(self._connect_worker(shape, reply, nm))

    async def _connect_worker(self, shape: ShapeQueue, reply: nm_pb2.LeaseReply, nm: Any) -> None:
        try:
            conn = await self.core.connect_to(reply.worker)
        except Exception as exc:  # noqa: BLE001
            logger.warning("cannot reach leased worker %s: %s", reply.worker.endpoint, exc)
            self._return(nm, reply.lease_id, failed=True)
            self._dispatch(shape)
            return
        self._add_worker(shape, reply, conn, nm)

    def _add_worker(self, shape: ShapeQueue, reply: nm_pb2.LeaseReply, conn: Any, nm: Any) -> None:
        lw = LeasedWorker(reply, conn, nm, shape)
        revoked = nm.state.get("revoked")
        if revoked and lw.lease_id in revoked:  # its node drains (worker_loss.py): ask elsewhere
            revoked.discard(lw.lease_id)
            self._return(nm, lw.lease_id, failed=False)
            self._dispatch(shape)
            return
        if self.stopped or conn.closed:
            self._return(nm, lw.lease_id, failed=conn.closed)
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
            request.job_config.CopyFrom(lw.shape.job_config or core.job_config)
            lw.sent_job = True
        node_id = lw.address.node_id
        record = core.task_events.record
        for task in batch:
            record(task, "RUNNING", node_id)
            spec = request.tasks.add()
            fill_spec(spec, task, core)
            if lw.gpu_ids:
                spec.gpu_ids.extend(lw.gpu_ids)
            fn = task.fn
            if fn.function_id not in lw.sent_fns:
                spec.function.pickled = fn.pickled
                lw.sent_fns.add(fn.function_id)
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
        self._return(lw.nm, lw.lease_id, failed=False)

    def _drop_worker(self, lw: LeasedWorker) -> None:
        if lw in lw.shape.workers:
            lw.shape.workers.remove(lw)
        if lw.conn.state.get("leased") is lw:
            del lw.conn.state["leased"]
        if lw.idle_timer is not None:
            lw.idle_timer.cancel()
            lw.idle_timer = None

    def _return(self, nm: Any, lease_id: int, failed: bool) -> None:
        if nm is not None and not nm.closed:
            nm.notify(methods.NodeManager.ReturnWorker, nm_pb2.ReturnWorkerRequest(lease_id=lease_id, worker_failed=failed))

    # -- results ------------------------------------------------------------------------
    def on_results(self, results: Iterable[cw_pb2.TaskResult], conn: Any) -> None:
        """Results of tasks, from the worker that ran them."""
        lw: LeasedWorker | None = conn.state.get("leased")
        touched = False
        for result in results:
            task = self._tasks.get(result.task_id)
            if task is None or task.worker is None or result.attempt != task.attempt:
                continue  # unknown, or late from an attempt given up on (its node died)
            if lw is not None:
                self.core.task_events.ran(task, result.duration, result.pid, lw.address, result.status != _OK)
            self._unassign(task)
            self._settle(task, result)
            touched = True
        if touched:
            self.core.refs.notify_ready()
            self.core.process_releases()
        if lw is not None:
            if (lw.shape.spread or lw.revoked) and not lw.inflight:
                # SPREAD: a lease serves one task; the next goes where the node
                # managers' round-robin puts it, not back to this worker.
                self._drop_worker(lw)
                self._return(lw.nm, lw.lease_id, failed=False)
            self._dispatch(lw.shape)
            if lw.inflight or lw not in lw.shape.workers:
                return
            self._idle(lw)

    def _settle(self, task: Task, result: cw_pb2.TaskResult) -> None:
        """A task's result: its returns set, or the task retried or failed."""
        prev = self._durations.get(task.fn.function_id)
        self._durations[task.fn.function_id] = result.duration if prev is None else 0.8 * prev + 0.2 * result.duration
        if task.cancelled and result.status != _OK:
            self._fail(task, TaskCancelledError(task.task_id.hex()), TaskState.CANCELLED)
        elif result.status == _APP_ERROR and result.retryable and self._retry(task):
            pass
        else:
            self._finish(task, result)

    # -- running a child inline ------------------------------------------------------------
    def take_queued(self, oid: bytes) -> Task | None:
        """Loop thread: the normal task returning ``oid``, if it waits in a queue here for
        a worker (arguments ready, no placement): taken out to run in this process
        (a parent blocked on it runs it itself instead of a new worker). Only tasks
        that ask for at most one CPU and nothing else."""
        entry = self.core.refs.get(oid)
        task = entry.task if entry is not None else None
        if task is None or task.method or task.shape is None or task.options.placement is not None:
            return None
        if task.options.returns_kind or task.job_config is not None:
            return None  # a generator streams from a worker; a runtime_env of its own needs a worker set up for it
        resources = task.options.resources
        if set(resources) - {"CPU"} or resources.get("CPU", 0) > 1:
            return None  # it needs what this worker's lease may not hold (another node's resources)
        if task.machine.state is not TaskState.QUEUED or task.cancelled:
            return None
        try:
            task.shape.queue.remove(task)
        except ValueError:
            return None
        task.machine.transition(TaskState.RUNNING)
        self.core.task_events.record(task, "RUNNING", self.core.node_id)
        return task

    def finish_inline(self, task: Task, result: cw_pb2.TaskResult, contained: list[tuple[bytes, bytes]]) -> None:
        """Loop thread: the result of a task this process ran inline (``take_queued``)."""
        if not task.machine.is_terminal():
            self.core.task_events.ran(task, result.duration, result.pid, self.core.address, result.status != _OK)
            self._settle(task, result)
        for oid, _owner in contained:  # the executor's holds, kept until now
            self.core.refs.release(oid)
        self.core.refs.notify_ready()
        self.core.process_releases()

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

    def _fail_queue(self, shape: ShapeQueue, exc: BaseException) -> None:
        while shape.queue:
            self._fail(shape.queue.popleft(), exc)
        self.core.refs.notify_ready()

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
            self._dispatch(task.shape)  # its lease requests go if nothing else waits for them
        elif state is TaskState.RUNNING and task.worker is not None:
            task.worker.conn.notify(
                methods.CoreWorker.CancelTask,
                cw_pb2.CancelTaskRequest(task_id=task.task_id, force=force, recursive=recursive),
            )
        self.core.refs.notify_ready()

    def cancel_children(self, parent: bytes, force: bool) -> None:
        """Cancel the tasks that task ``parent`` submitted."""
        for task in self.children_of(parent):
            if task.return_ids:
                self.cancel(task.return_ids[0], force, recursive=True)

    def busy(self) -> bool:
        """Tasks submitted here are still in flight."""
        return super().busy() or bool(self._new)

    # -- lineage ------------------------------------------------------------------------
    def _done(self, task: Task) -> None:
        """A finished task whose results live in a node's store keeps its arguments
        (its lineage) while those results are referenced, so it can run again if
        their node dies (Ray's lineage pinning)."""
        stored = [
            oid
            for oid in task.return_ids
            if (e := self.core.refs.get(oid)) is not None and e.payload is not None and e.payload.node_id
        ]
        if stored and task.retries_left != 0 and task.machine.state is TaskState.FINISHED:
            self._tasks.pop(task.task_id, None)
            for oid in stored:
                self._lineage[oid] = task
            return
        super()._done(task)

    def lineage_freed(self, oid: bytes) -> None:
        """A stored result went out of scope: its task's lineage may go too."""
        task = self._lineage.pop(oid, None)
        if task is not None and not any(self._lineage.get(o) is task for o in task.return_ids):
            super()._done(task)

    def reconstruct(self, oid: bytes, entry: Any) -> bool:
        """Run again the task that made ``oid`` (its only copy was on a dead node);
        False when there is no lineage or no retry left (the object is lost)."""
        task = self._lineage.get(oid)
        if task is None or task.retries_left == 0:
            return False
        again = Task(task.task_id, task.fn, task.options)
        again.args, again.top_refs, again.held = task.args, task.top_refs, task.held
        again.return_ids = task.return_ids
        again.parent, again.context, again.job_config = task.parent, task.context, task.job_config
        again.retries_left = task.retries_left - 1 if task.retries_left > 0 else -1
        again.attempt = task.attempt + 1
        for ret in task.return_ids:
            self._lineage.pop(ret, None)
            ret_entry = self.core.refs.get(ret)
            if ret_entry is not None:  # readers wait for the new value
                ret_entry.payload = None
                ret_entry.task = again
        logger.info("rebuilding object=%s by running %s again", oid.hex(), task.fn.name)
        self._register(again)
        if again.top_refs:
            self._resolve(again)  # values again: some may have been rebuilt too
        else:
            self._enqueue(again)
        return True

    def stop(self) -> None:
        """Stop leasing: drop the leased workers (at shutdown)."""
        self.stopped = True
        for shape in self._shapes.values():
            for lw in list(shape.workers):
                if lw.idle_timer is not None:
                    lw.idle_timer.cancel()
            shape.workers.clear()
