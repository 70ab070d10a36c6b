"""Calling actors: method calls go straight to the actor's worker, in order.

Each actor this process calls has a queue. Calls leave it in submission order (a
call waiting for its arguments holds back the ones after it), on one connection, so
a synchronous actor runs one caller's calls in the order they were made. Where the
actor lives comes from the GCS, asked again whenever the connection drops: a
restarting actor's calls wait for it, and calls that were running when it died are
sent again if ``max_task_retries`` allows, else fail with ActorDiedError.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from nbcluster.exceptions import ActorDiedError, TaskCancelledError
from nbcluster.runtime import ids
from nbcluster.runtime.core.object_ref import ObjectRef
from nbcluster.runtime.core.tasks import FunctionInfo, SubmitterBase, Task, TaskOptions, fill_spec
from nbcluster.runtime.objects.serialization import serialize
from nbcluster.runtime.protocol import common_pb2, core_worker_pb2 as cw_pb2, gcs_pb2
from nbcluster.runtime.states import TaskState
from nbcluster.runtime.transport import methods
from nbcluster.runtime.transport.errors import ConnectionLost, RemoteError, domain_error

if TYPE_CHECKING:
    from nbcluster.runtime.core.core_worker import CoreWorker

logger = logging.getLogger(__name__)

_DEAD = gcs_pb2.ACTOR_STATE_DEAD
_HANDLE_INDEX = 0xFFFFFFFF


def handle_object_id(actor_id: bytes) -> bytes:
    """The object whose references are an actor's handles (counted like any object)."""
    return ids.object_id(actor_id, _HANDLE_INDEX)


def serialize_none() -> bytes:
    """The serialized ``None`` that an actor's handle object holds."""
    return serialize(None).to_bytes()


_ALIVE = gcs_pb2.ACTOR_STATE_ALIVE


def actor_call(
    task_id: bytes, actor_id: bytes, class_name: str, method: str, options: TaskOptions, parent: bytes, context: str
) -> Task:
    """A call of an actor's method, its arguments not yet set."""
    task = Task(task_id, FunctionInfo(b"", f"{class_name}.{method}", b""), options)
    task.method = method
    task.parent = parent
    task.context = context
    task.actor = actor_id
    return task


def creation_task(cls: FunctionInfo, info: gcs_pb2.ActorInfo) -> Task:
    """An actor's constructor call, its arguments not yet set."""
    task = Task(info.actor_id, FunctionInfo(cls.function_id, cls.name, cls.pickled), TaskOptions({}, 0, 0, False, b"", ""))
    task.method = "__init__"
    task.actor = info
    return task


class ActorQueue:
    """This process's view of one actor, and its calls to it."""

    def __init__(self, actor_id: bytes, class_name: str) -> None:
        self.actor_id = actor_id
        self.class_name = class_name
        self.version = 0
        self.info: gcs_pb2.ActorInfo | None = None
        self.conn: Any = None
        self.pending: collections.deque[Task] = collections.deque()
        self.inflight: dict[bytes, Task] = {}
        #: Calls that were running when the connection dropped, awaiting the verdict.
        self.orphans: list[Task] = []
        self.watcher: asyncio.Task | None = None
        self.dead: ActorDiedError | None = None
        self.sent_job = False


class ActorSubmitter(SubmitterBase):
    """Submits this process's actor calls and actor creations (one ActorQueue per actor)."""

    def __init__(self, core: "CoreWorker") -> None:
        super().__init__(core)
        self._new: collections.deque[Task] = collections.deque()
        self._actors: dict[bytes, ActorQueue] = {}
        #: Handle objects of actors created here: (actor id, detached, constructor holds).
        self.handles: dict[bytes, tuple[bytes, bool, list[bytes]]] = {}

    # -- caller's thread ------------------------------------------------------------------
    def submit(
        self,
        actor_id: bytes,
        class_name: str,
        method: str,
        args: tuple,
        kwargs: dict,
        options: TaskOptions,
        handle_ref: ObjectRef | None,
        parent: bytes = b"",
        context: str = "",
    ) -> list[ObjectRef]:
        """Queue a call of ``method`` on the actor (caller's thread); returns its refs."""
        task = actor_call(self.core.ids.next(), actor_id, class_name, method, options, parent, context)
        self.prepare_args(task, args, kwargs)
        return self.queue(task, handle_ref._id if handle_ref is not None else b"")

    def queue(self, task: Task, handle_id: bytes = b"") -> list[ObjectRef]:
        """Queue an actor call whose arguments are set (any thread); returns its refs.
        ``handle_id``: the handle object the caller holds (the actor lives at least
        until this call is done)."""
        core = self.core
        if handle_id:
            core.refs.incref(handle_id)
            task.held.append(handle_id)
        refs = self.make_returns(task)
        self._new.append(task)
        core.wake()
        return refs

    def create(
        self, cls: FunctionInfo, args: tuple, kwargs: dict, info: gcs_pb2.ActorInfo, get_if_exists: bool
    ) -> tuple[gcs_pb2.ActorInfo, ObjectRef | None]:
        """Register a new actor with the GCS (or find the existing one of that name);
        returns its record and the handle reference that keeps it alive.

        Returns at once: when a constructor argument is a ref still being computed,
        the actor is registered now (its name reserved) and its constructor call
        follows once the arguments are ready."""
        task = creation_task(cls, info)
        self.prepare_args(task, args, kwargs)
        return self.create_prepared(task, get_if_exists)

    def create_prepared(self, task: Task, get_if_exists: bool) -> tuple[gcs_pb2.ActorInfo, ObjectRef | None]:
        """``create`` for a constructor call whose arguments are set (not on the loop thread)."""
        core = self.core
        info: gcs_pb2.ActorInfo = task.actor
        entries = core.refs.entries
        ready = all((e := entries.get(oid)) is not None and e.payload is not None for oid in task.top_refs)
        try:
            if ready:
                task.resolved = [entries[oid].payload for oid in task.top_refs]
                self._fill_creation(task, info)
            reply = core.run_sync(self._create(info, get_if_exists))
        except BaseException:
            self._release(task.held)
            raise
        if reply.existed:
            self._release(task.held)
            return reply.actor, self.borrow_handle(reply.actor)
        oid = handle_object_id(info.actor_id)
        marker = serialize_none()
        core.refs.add_owned(oid, common_pb2.ObjectPayload(object_id=oid, data=marker, size=len(marker)))
        self.handles[oid] = (info.actor_id, info.detached, task.held)
        if not ready:
            core.call_soon(self._resolve_creation, task)
        return reply.actor, ObjectRef(oid, core.address_bytes, core)

    def _fill_creation(self, task: Task, info: gcs_pb2.ActorInfo) -> None:
        spec = info.creation_task
        fill_spec(spec, task, self.core)
        spec.function.pickled = task.fn.pickled
        spec.kind = common_pb2.TASK_KIND_ACTOR_CREATION
        spec.actor_id = info.actor_id
        spec.max_concurrency = info.max_concurrency
        spec.is_async = info.is_async
        spec.class_name = info.class_name
        spec.resources.CopyFrom(info.resources)
        spec.placement_group_id = info.placement_group_id
        spec.placement_group_capture = info.placement_group_capture

    def _resolve_creation(self, task: Task) -> None:
        if self._register(task):
            self._resolve(task)

    def _send_creation(self, task: Task) -> None:
        """The constructor's arguments are ready: hand the GCS its call."""
        self._tasks.pop(task.task_id, None)  # its holds stay with the handle
        info: gcs_pb2.ActorInfo = task.actor
        self._fill_creation(task, info)

        async def send() -> None:
            try:
                await self._create(info, False)
            except Exception:  # noqa: BLE001
                logger.exception("could not start actor=%s", info.actor_id.hex())

        self.core.spawn(send())

    async def _create(self, info: gcs_pb2.ActorInfo, get_if_exists: bool) -> gcs_pb2.CreateActorReply:
        gcs = await self.core.gcs_connection()
        try:
            return await gcs.call(
                methods.Gcs.CreateActor, gcs_pb2.CreateActorRequest(actor=info, get_if_exists=get_if_exists)
            )
        except RemoteError as exc:
            raise domain_error(exc) or exc from None

    def borrow_handle(self, info: gcs_pb2.ActorInfo) -> ObjectRef | None:
        """A reference to another process's actor handle object (non-detached actors
        live as long as such references do)."""
        if info.detached:
            return None
        core = self.core
        oid = handle_object_id(info.actor_id)
        owner = info.owner.SerializeToString()
        core.refs.add_borrowed(oid, owner)
        core.call_soon(core.borrowing.flush)
        return ObjectRef(oid, owner, core)

    def _release(self, oids: list[bytes]) -> None:
        for oid in oids:
            self.core.refs.release(oid)

    def handle_freed(self, oid: bytes) -> None:
        """Loop thread: no handle to an actor created here remains anywhere."""
        actor_id, detached, held = self.handles.pop(oid)
        self._release(held)
        if not detached:
            self.core.spawn(self._kill(actor_id, "all handles to it went out of scope", no_restart=True))

    async def _kill(self, actor_id: bytes, reason: str, no_restart: bool) -> None:
        try:
            gcs = await self.core.gcs_connection()
            await gcs.call(
                methods.Gcs.KillActor, gcs_pb2.KillActorRequest(actor_id=actor_id, no_restart=no_restart, reason=reason)
            )
        except (ConnectionLost, RemoteError) as exc:
            logger.debug("could not end actor=%s: %s", actor_id.hex(), exc)

    # -- loop thread ------------------------------------------------------------------------
    def queue_of(self, actor_id: bytes, class_name: str = "") -> ActorQueue:
        """This process's queue of calls to an actor (made on first use)."""
        queue = self._actors.get(actor_id)
        if queue is None:
            queue = self._actors[actor_id] = ActorQueue(actor_id, class_name)
        return queue

    def drain_new(self) -> None:
        """Loop thread: take the calls submitted since the last wake-up into their queues."""
        new = self._new
        touched: set[ActorQueue] = set()
        while new:
            task = new.popleft()
            if not self._register(task):
                continue
            queue = self.queue_of(task.actor, task.fn.name.split(".")[0])
            task.actor = queue
            if queue.dead is not None:
                self._fail(task, queue.dead)
                continue
            queue.pending.append(task)
            self.core.task_events.record(task, "QUEUED")
            if task.top_refs:
                self._resolve(task)
            else:
                task.machine.transition(TaskState.QUEUED)
            touched.add(queue)
        for queue in touched:
            self._pump(queue)

    def _ready(self, task: Task) -> None:
        if task.method == "__init__":
            self._send_creation(task)
            return
        task.machine.transition(TaskState.QUEUED)
        self._pump(task.actor)

    def _pump(self, queue: ActorQueue) -> None:
        """Send the calls at the head of the queue whose arguments are ready."""
        conn = queue.conn
        if conn is None or conn.closed:
            self._watch(queue)
            return
        batch = []
        while queue.pending and queue.pending[0].machine.state is TaskState.QUEUED:
            task = queue.pending.popleft()
            task.machine.transition(TaskState.RUNNING)
            queue.inflight[task.task_id] = task
            batch.append(task)
        if not batch:
            return
        core = self.core
        request = cw_pb2.PushTasksRequest(job_id=core.job_id)
        node_id = queue.info.node_id if queue.info is not None else b""
        for task in batch:
            core.task_events.record(task, "RUNNING", node_id)
            spec = request.tasks.add()
            fill_spec(spec, task, core)
            spec.kind = common_pb2.TASK_KIND_ACTOR_TASK
            spec.actor_id = queue.actor_id
            spec.method = task.method
            if task.options.concurrency_group:
                spec.concurrency_group = task.options.concurrency_group
        conn.notify(methods.CoreWorker.PushTasks, request)

    # -- where the actor is -------------------------------------------------------------------
    def _watch(self, queue: ActorQueue) -> None:
        if self.core.closed:
            return
        if queue.watcher is None or queue.watcher.done():
            queue.watcher = self.core.spawn(self._follow(queue))

    async def _follow(self, queue: ActorQueue) -> None:
        """Ask the GCS about the actor until it is reachable (or dead)."""
        core = self.core
        unreachable_since: float | None = None
        while not core.closed:
            try:
                gcs = await core.gcs_connection()
                reply = await gcs.call(
                    methods.Gcs.GetActorInfo,
                    gcs_pb2.GetActorInfoRequest(actor_id=queue.actor_id, after_version=queue.version, wait=True),
                )
            except ConnectionLost as exc:
                # The head may be restarting (it takes its actors back): ask again
                # until it has been away for gcs_reconnect_timeout_s.
                if core.closed:
                    return
                now = time.monotonic()
                unreachable_since = unreachable_since or now
                if now - unreachable_since > core.config.gcs_reconnect_timeout_s:
                    self._dead(queue, f"the cluster's head cannot be reached ({exc})")
                    return
                await asyncio.sleep(0.5)
                continue
            except RemoteError as exc:
                self._dead(queue, f"the cluster's head cannot be reached ({exc})")
                return
            unreachable_since = None
            if not reply.found:
                self._dead(queue, "the cluster does not know it")
                return
            info = reply.actor
            queue.version = info.version
            queue.info = info
            if queue.orphans:  # any news after a lost connection settles them
                self._settle_orphans(queue, info)
            if info.state == _DEAD:
                self._dead(queue, info.death_cause or "it died")
                return
            if info.state == _ALIVE:
                try:
                    conn = await core.connect_to(info.address)
                except ConnectionLost as exc:
                    if info.address.node_id and info.address.node_id != core.node_id:
                        self._dead(queue, f"it runs on another node, which cannot be reached ({exc})")
                        return
                    continue  # it died meanwhile: the next version tells
                queue.conn = conn
                conn.state["actor_queue"] = queue
                conn.on_close(lambda c, q=queue: self._lost(q, c))
                self._pump(queue)
                return

    def _settle_orphans(self, queue: ActorQueue, info: gcs_pb2.ActorInfo) -> None:
        """Calls cut off by the actor's death: sent again (max_task_retries) or failed."""
        orphans, queue.orphans = queue.orphans, []
        resend = []
        for task in orphans:
            if task.cancelled:
                self._fail(task, TaskCancelledError(task.task_id.hex()), TaskState.CANCELLED)
            elif info.state != _DEAD and task.retries_left != 0:
                if task.retries_left > 0:
                    task.retries_left -= 1
                task.attempt += 1
                task.machine.transition(TaskState.QUEUED)
                resend.append(task)
            else:
                cause = info.death_cause or "its process died"
                self._fail(task, ActorDiedError(self._died_message(queue, cause, running=True)))
        queue.pending.extendleft(reversed(resend))
        self.core.refs.notify_ready()

    def _died_message(self, queue: ActorQueue, cause: str, running: bool = False) -> str:
        what = "while running this call" if running else "so the call cannot run"
        return f"The actor {queue.class_name} ({ids.short(queue.actor_id)}) died {what}: {cause}"

    def _dead(self, queue: ActorQueue, cause: str) -> None:
        queue.dead = ActorDiedError(self._died_message(queue, cause))
        for task in [*queue.orphans, *queue.inflight.values(), *queue.pending]:
            if task.machine.is_terminal():
                continue
            if task.cancelled:
                self._fail(task, TaskCancelledError(task.task_id.hex()), TaskState.CANCELLED)
            else:
                running = task in queue.orphans or task.task_id in queue.inflight
                self._fail(task, ActorDiedError(self._died_message(queue, cause, running)))
        queue.orphans.clear()
        queue.inflight.clear()
        queue.pending.clear()
        queue.conn = None
        self._actors.pop(queue.actor_id, None)  # a later call asks the GCS again
        self.core.refs.notify_ready()
        self.core.process_releases()

    def _lost(self, queue: ActorQueue, conn: Any) -> None:
        if queue.conn is not conn:
            return
        queue.conn = None
        queue.orphans.extend(queue.inflight.values())
        queue.inflight.clear()
        self._watch(queue)

    # -- results -------------------------------------------------------------------------------
    def on_results(self, results: Iterable[cw_pb2.TaskResult], conn: Any) -> None:
        """Results of actor calls, from the actor's worker."""
        queue: ActorQueue | None = conn.state.get("actor_queue")
        for result in results:
            task = self._tasks.get(result.task_id)
            if task is None:
                continue
            if queue is not None:
                queue.inflight.pop(task.task_id, None)
                if queue.info is not None:
                    ok = result.status == cw_pb2.TASK_STATUS_OK
                    self.core.task_events.ran(task, result.duration, result.pid, queue.info.address, not ok)
            if task.cancelled and result.status != cw_pb2.TASK_STATUS_OK:
                self._fail(task, TaskCancelledError(task.task_id.hex()), TaskState.CANCELLED)
            else:
                self._finish(task, result)
        self.core.refs.notify_ready()
        self.core.process_releases()

    # -- cancelling -------------------------------------------------------------------------
    def cancel(self, oid: bytes, recursive: bool) -> bool:
        """Cancel the actor call returning ``oid``; False if it is not an actor call."""
        entry = self.core.refs.get(oid)
        task = entry.task if entry is not None else None
        if task is None or task.task_id not in self._tasks:
            return False
        if task.machine.is_terminal():
            return True
        task.cancelled = True
        queue: ActorQueue = task.actor
        if task.machine.state in (TaskState.WAITING_FOR_ARGS, TaskState.QUEUED):
            try:
                queue.pending.remove(task)
            except ValueError:
                pass
            self._fail(task, TaskCancelledError(task.task_id.hex()), TaskState.CANCELLED)
            self.core.refs.notify_ready()
            self._pump(queue)
        elif queue.conn is not None and task.task_id in queue.inflight:
            queue.conn.notify(
                methods.CoreWorker.CancelTask,
                cw_pb2.CancelTaskRequest(task_id=task.task_id, recursive=recursive),
            )
        return True

    def cancel_children(self, parent: bytes) -> None:
        """Cancel the actor calls that task ``parent`` submitted."""
        for task in self.children_of(parent):
            if task.return_ids:
                self.cancel(task.return_ids[0], recursive=True)

    def busy(self) -> bool:
        """Actor calls submitted here are still in flight."""
        return super().busy() or bool(self._new)
