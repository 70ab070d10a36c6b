"""The core worker: the runtime inside every driver and worker process.

It runs on its own thread with its own asyncio loop (so it works inside a Jupyter
kernel, whose loop is already running, as well as in scripts); the public API calls
into it from the user's threads. It owns this process's connections, its reference
table, its task submitter, and (in workers) the executor, and it serves the
``CoreWorker`` service: task results, object status for objects it owns, borrower
updates, log lines.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

from nbcluster.exceptions import (
    GetTimeoutError,
    ObjectLostError,
    ObjectStoreFullError,
    OwnerDiedError,
    TaskError,
)
from nbcluster.runtime import ids
from nbcluster.runtime.config import RuntimeConfig
from nbcluster.runtime.credentials import driver_token
from nbcluster.runtime.core import worker_state
from nbcluster.runtime.core.actor_submitter import ActorSubmitter
from nbcluster.runtime.core.borrowing import Borrowing
from nbcluster.runtime.core.object_ref import ObjectRef
from nbcluster.runtime.core.payloads import error_payload
from nbcluster.runtime.core.references import Entry, ReferenceTable
from nbcluster.runtime.objects import shm
from nbcluster.runtime.objects.serialization import SerializedObject, deserialize, serialize
from nbcluster.runtime.protocol import (
    common_pb2,
    core_worker_pb2 as cw_pb2,
    node_manager_pb2 as nm_pb2,
)
from nbcluster.runtime.core.submitter import TaskSubmitter
from nbcluster.runtime.core.task_events import TaskEvents
from nbcluster.runtime.session import Session
from nbcluster.runtime.transport import dial, framed, methods, relay
from nbcluster.runtime.transport.errors import ConnectionLost, RemoteError

logger = logging.getLogger(__name__)

DRIVER = "driver"
WORKER = "worker"


class CoreWorker:
    def __init__(
        self,
        *,
        mode: str,
        session_dir: Path,
        token: str,
        node_id: bytes,
        node_endpoint: str,
        node_ip: str,
        worker_id: bytes,
        config: RuntimeConfig,
        gcs_address: str = "",
        relay_endpoint: str = "",
    ) -> None:
        self.mode = mode
        self.gcs_address = gcs_address
        #: This machine's node manager relay socket, to reach other nodes ("": none).
        self.relay_endpoint = relay_endpoint
        self._nodes: dict[bytes, Any] = {}
        self.dead_nodes: set[bytes] = set()
        self.session = Session(Path(session_dir))
        self.config = config
        #: What this process presents to the GCS and its node manager (a worker: the
        #: driver credential; a driver: what it was given).
        self.token = token
        #: What it presents to other drivers and workers, which accept only this.
        self.peer_token = driver_token(token)
        self.node_id = node_id
        self.node_ip = node_ip
        self.node_endpoint = node_endpoint
        self.worker_id = worker_id
        self.pid = os.getpid()
        self.endpoint = self.session.endpoint(f"w-{worker_id.hex()[:16]}")
        self.address = common_pb2.Address(node_id=node_id, worker_id=worker_id, endpoint=self.endpoint)
        self.address_bytes = self.address.SerializeToString()
        self.ids = ids.IdGenerator()
        self.refs = ReferenceTable(self.address_bytes, self.wake)
        self.loop = asyncio.new_event_loop()
        self.closed = False
        #: Set when the driver starts to disconnect (connections closing are expected).
        self.disconnecting = False
        self.job_id = b""
        self.job_config: Any = None
        #: Where this job's task output goes (its driver).
        self.driver_address: common_pb2.Address | None = None
        self.namespace = ""
        self.arena: shm.Arena | None = None
        self.nm: framed.Connection | None = None
        #: The GCS connection (drivers).
        self.gcs: Any = None
        #: Opaque context attached to submitted tasks (the kernel sets the cell id).
        self.task_context = ""
        #: Called as hook(context, refs) after each task or actor call the driver submits (nbcluster.driver).
        self.submit_hook: Any = None
        self._thread: threading.Thread | None = None
        self._server: framed.FramedServer | None = None
        self.dispatcher = framed.Dispatcher()
        self.dispatcher.register("CoreWorker", self)
        self._conns: dict[str, framed.Connection] = {}
        self._connecting: dict[str, asyncio.Future] = {}
        self._addresses: dict[bytes, common_pb2.Address] = {}
        self._wake_scheduled = False
        self._releases: collections.deque[bytes] = collections.deque()
        self._seals: collections.deque[bytes] = collections.deque()
        #: (node id, object id) of stored objects to free (from any thread).
        self._frees: collections.deque[tuple[bytes, bytes]] = collections.deque()
        self._warned: set[str] = set()
        self._tasks: set[asyncio.Task] = set()
        #: Prints log lines of remote tasks (drivers); the kernel extension replaces it.
        self.log_sink: Callable[[cw_pb2.LogBatch], None] = print_log_batch
        self.task_events = TaskEvents(self)
        self.borrowing = Borrowing(self)
        self.submitter = TaskSubmitter(self)
        self.actor_submitter = ActorSubmitter(self)
        self.executor: Any = None

    # -- thread and loop ----------------------------------------------------------
    def start(self, setup: Callable[[], Coroutine[Any, Any, None]] | None = None) -> None:
        """Start the loop thread, connect to the node manager, then run ``setup``."""
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            self.loop.call_soon(ready.set)
            self.loop.run_forever()

        self._thread = threading.Thread(target=run, name="nbcluster-core", daemon=True)
        self._thread.start()
        ready.wait()
        self.run_sync(self._start(setup))

    async def _start(self, setup: Callable[[], Coroutine[Any, Any, None]] | None) -> None:
        self._server = framed.FramedServer(
            self.endpoint, self.token, self.dispatcher, self.address, on_connection=self._adopt
        )
        await self._server.start()
        if setup is not None:
            await setup()

    async def connect_node(self, kind: int) -> None:
        """Connect and register with this node's node manager."""
        self.nm = await dial(
            self.node_endpoint,
            self.token,
            dispatcher=self.dispatcher,
            local=self.address,
            timeout=self.config.startup_timeout_s,
        )
        reply = await self.nm.call(
            methods.NodeManager.RegisterClient,
            nm_pb2.RegisterClientRequest(kind=kind, address=self.address, pid=self.pid, job_id=self.job_id),
        )
        self.arena = shm.Arena(reply.arena_path, reply.arena_size)
        self.relay_endpoint = reply.relay_endpoint or self.relay_endpoint
        self.nm.on_close(self._on_node_lost)

    async def gcs_connection(self) -> Any:
        """The connection to the GCS (drivers have one; workers open one on need)."""
        gcs = self.gcs
        if gcs is None or gcs.closed:
            if not self.gcs_address:
                raise ConnectionLost("this process does not know the cluster's head")
            gcs = self.gcs = await dial(self.gcs_address, self.token, timeout=self.config.startup_timeout_s)
        return gcs

    def _on_node_lost(self, conn: Any) -> None:
        if not self.closed:
            logger.error("lost the connection to the node manager: %s", conn.close_reason)

    def run_sync(self, coro: Coroutine[Any, Any, Any], timeout: float | None = None) -> Any:
        """Run a coroutine on the loop from another thread and wait for it."""
        if threading.current_thread() is self._thread:
            raise RuntimeError("run_sync called on the runtime's own loop thread")
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call_soon(self, fn: Callable[..., Any], *args: Any) -> None:
        self.loop.call_soon_threadsafe(fn, *args)

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task:
        """Start a coroutine owned by this core worker (cancelled at shutdown)."""
        task = self.loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("background task failed", exc_info=task.exception())

    def shutdown(self) -> None:
        """Close every connection and stop the loop thread (idempotent)."""
        if self.closed or self._thread is None:
            return
        self.closed = True
        self.refs.closed = True
        try:
            self.run_sync(self._stop(), timeout=5.0)
        except Exception:  # noqa: BLE001
            logger.exception("core worker stop failed")
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5.0)
        if not self.loop.is_running():
            self.loop.close()
        if worker_state.current is self:
            worker_state.current = None

    async def _stop(self) -> None:
        try:  # the last task states, so `nbcluster list tasks` shows how they ended
            await asyncio.wait_for(self.task_events.flush(wait=True), 1.5)
        except (asyncio.TimeoutError, OSError):
            pass
        self.submitter.stop()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:  # let them unwind (close what they opened) while the loop still runs
            await asyncio.wait(tasks, timeout=2.0)
        if self._server is not None:
            await self._server.stop()
        for conn in list(self._conns.values()):
            conn.close()
        if self.nm is not None:
            self.nm.close()

    # -- connections ----------------------------------------------------------------
    def parse_address(self, raw: bytes) -> common_pb2.Address:
        addr = self._addresses.get(raw)
        if addr is None:
            addr = common_pb2.Address.FromString(raw)
            self._addresses[raw] = addr
        return addr

    def _adopt(self, conn: framed.Connection) -> None:
        peer = conn.peer
        if peer is None or not peer.endpoint:
            return
        existing = self._conns.get(peer.endpoint)
        if existing is None or existing.closed:
            self._conns[peer.endpoint] = conn
        conn.on_close(self._on_conn_closed)

    def _on_conn_closed(self, conn: framed.Connection) -> None:
        peer = conn.peer
        if peer is not None and self._conns.get(peer.endpoint) is conn:
            del self._conns[peer.endpoint]
        if peer is not None and not any(c.peer and c.peer.worker_id == peer.worker_id for c in self._conns.values()):
            self.borrowing.drop(peer.worker_id)
        self.submitter.connection_lost(conn)

    def connection_nowait(self, endpoint: str) -> framed.Connection | None:
        conn = self._conns.get(endpoint)
        return conn if conn is not None and not conn.closed else None

    async def connect_to(self, address: common_pb2.Address) -> framed.Connection:
        """A connection to another core worker (reused, opened on first use)."""
        endpoint = address.endpoint
        conn = self._conns.get(endpoint)
        if conn is not None and not conn.closed:
            return conn
        pending = self._connecting.get(endpoint)
        if pending is not None:
            return await asyncio.shield(pending)
        fut = self.loop.create_future()
        self._connecting[endpoint] = fut
        try:
            route = await self._route(address)
            conn = await dial(
                route, self.peer_token, dispatcher=self.dispatcher, local=self.address, timeout=10.0,
                relay=self.relay_endpoint or None,
            )
        except BaseException as exc:
            fut.set_exception(exc)
            fut.exception()
            raise
        finally:
            self._connecting.pop(endpoint, None)
        self._conns[endpoint] = conn
        conn.on_close(self._on_conn_closed)
        fut.set_result(conn)
        return conn

    async def _route(self, address: common_pb2.Address) -> str:
        """Where to dial a process: its socket here, else through its node's relay."""
        if not address.node_id or address.node_id == self.node_id:
            return address.endpoint
        node = await self.node_info(address.node_id)
        if node is None or not node.address:
            raise ConnectionLost(f"node {ids.short(address.node_id)} is not alive")
        return relay.route(node.address, address.endpoint)

    async def node_info(self, node_id: bytes) -> Any:
        """A node of the cluster (None when it is not alive), from the local node
        manager's view of the cluster."""
        if node_id in self.dead_nodes:
            return None
        node = self._nodes.get(node_id)
        if node is None and self.nm is not None and not self.nm.closed:
            reply = await self.nm.call(methods.NodeManager.GetClusterView, nm_pb2.GetClusterViewRequest())
            self._nodes = {n.node_id: n for n in reply.nodes}
            node = self._nodes.get(node_id)
        return node

    async def node_client(self, node_id: bytes) -> framed.Connection:
        """A connection to another node's node manager, as its (remote) client."""
        node = await self.node_info(node_id)
        if node is None:
            raise ConnectionLost(f"node {ids.short(node_id)} is not alive")
        conn = await self.connect_to(common_pb2.Address(node_id=node_id, endpoint=node.local_endpoint))
        registered = conn.state.get("registered")
        if registered is None:
            registered = conn.state["registered"] = asyncio.ensure_future(
                conn.call(
                    methods.NodeManager.RegisterClient,
                    nm_pb2.RegisterClientRequest(
                        kind=nm_pb2.CLIENT_KIND_REMOTE, address=self.address, pid=self.pid, job_id=self.job_id
                    ),
                )
            )
        await asyncio.shield(registered)
        return conn

    def NodeDied(self, request: cw_pb2.NodeDiedNotice, conn: Any) -> common_pb2.Empty:
        """A node is gone: whatever this process had going there is lost with it."""
        node_id = request.node_id
        if node_id in self.dead_nodes:
            return common_pb2.Empty()
        logger.info("node=%s died: %s", node_id.hex(), request.reason)
        self.dead_nodes.add(node_id)
        self._nodes.pop(node_id, None)
        for c in list(self._conns.values()):
            if c.peer is not None and c.peer.node_id == node_id:
                c.close()  # its tasks are retried, its actors followed, its borrows dropped
        self.objects_lost_with(node_id)
        return common_pb2.Empty()

    # -- wake-ups: releases, pins, seals, new tasks ---------------------------------
    def wake(self) -> None:
        if not self._wake_scheduled and not self.closed:
            self._wake_scheduled = True
            try:
                self.loop.call_soon_threadsafe(self._on_wake)
            except RuntimeError:  # loop closed
                pass

    def _on_wake(self) -> None:
        self._wake_scheduled = False
        self.process_releases()
        self.submitter.drain_new()
        self.actor_submitter.drain_new()
        self._flush_object_notices()

    def process_releases(self) -> None:
        while self.refs.pending_decrements():
            for oid, entry in self.refs.drain():
                self.on_freed(oid, entry)
        self.flush_frees()
        if self.borrowing.removes:
            self.borrowing.flush()

    def on_freed(self, oid: bytes, entry: Entry) -> None:
        if entry.owned:
            if oid in self.actor_submitter.handles:
                self.actor_submitter.handle_freed(oid)
            payload = entry.payload
            if payload is not None and payload.HasField("node_id"):
                self._frees.append((payload.node_id, oid))
                self.submitter.lineage_freed(oid)
            if entry.contained:
                for contained in entry.contained:
                    self.refs.release(contained)
        elif entry.registered:
            self.borrowing.queue_remove(entry.owner, oid)

    def flush_frees(self) -> None:
        if self._frees:
            self._flush_object_notices()

    def _flush_object_notices(self) -> None:
        nm = self.nm
        if nm is None or nm.closed:
            return
        for queue, method in (
            (self._seals, methods.NodeManager.SealObjects),
            (self._releases, methods.NodeManager.ReleaseObjects),
        ):
            if queue:
                # popleft, not copy-and-clear: other threads append concurrently.
                ids_ = [queue.popleft() for _ in range(len(queue))]
                nm.notify(method, nm_pb2.ObjectIds(object_ids=ids_))
        if self._frees:
            by_node: dict[bytes, list[bytes]] = {}
            for _ in range(len(self._frees)):
                node_id, oid = self._frees.popleft()
                by_node.setdefault(node_id, []).append(oid)
            for node_id, oids in by_node.items():
                request = nm_pb2.ObjectIds(object_ids=oids)
                if node_id == self.node_id:
                    nm.notify(methods.NodeManager.FreeObjects, request)
                elif node_id not in self.dead_nodes:
                    self.spawn(self._notify_node(node_id, methods.NodeManager.FreeObjects, request))

    async def _notify_node(self, node_id: bytes, method: Any, request: Any) -> None:
        """A one-way message to another node's node manager."""
        try:
            node = await self.node_info(node_id)
            if node is None:
                return
            conn = await self.connect_to(common_pb2.Address(node_id=node_id, endpoint=node.local_endpoint))
            conn.notify(method, request)
        except (ConnectionLost, RemoteError) as exc:
            logger.debug("node=%s unreachable: %s", node_id.hex(), exc)

    def UpdateBorrowers(self, request: cw_pb2.UpdateBorrowersRequest, conn: Any) -> common_pb2.Empty:
        self.borrowing.on_update(request, conn)
        return common_pb2.Empty()

    # -- storing objects ----------------------------------------------------------------
    def store(self, object_id: bytes, obj: SerializedObject, owner: common_pb2.Address | None = None) -> common_pb2.ObjectPayload:
        """Make a payload for a serialized value: inline when small, else written to
        this node's shared-memory store. Called from user threads."""
        if obj.total_size <= self.config.inline_threshold:
            return common_pb2.ObjectPayload(
                object_id=object_id, data=obj.to_bytes(), size=obj.total_size, is_error=obj.is_error
            )
        assert self.nm is not None and self.arena is not None
        try:
            reply = self.run_sync(
                self.nm.call(
                    methods.NodeManager.CreateObject,
                    nm_pb2.CreateObjectRequest(object_id=object_id, size=obj.total_size, owner=owner or self.address),
                )
            )
        except RemoteError as exc:
            if exc.code == common_pb2.ERROR_CODE_OBJECT_STORE_FULL:
                raise ObjectStoreFullError(exc.message) from None
            raise
        self.arena.write(reply.offset, obj)
        self._seals.append(object_id)
        self.wake()
        return common_pb2.ObjectPayload(
            object_id=object_id, node_id=self.node_id, size=obj.total_size, is_error=obj.is_error
        )

    def put(self, value: Any) -> ObjectRef:
        if isinstance(value, ObjectRef):
            raise TypeError(
                "put() of an ObjectRef is not allowed: the ref already names a stored value. "
                "Pass the ref itself, or put([ref]) to wrap it."
            )
        obj = serialize(value)
        oid = ids.object_id(self.ids.next(), 0)
        payload = self.store(oid, obj)
        entry = self.refs.add_owned(oid, payload)
        if obj.contained:
            entry.contained = [ref._id for ref in obj.contained]
            for ref in obj.contained:
                self.refs.incref(ref._id)
        return ObjectRef(oid, self.address_bytes, self)

    # -- reading objects ----------------------------------------------------------------
    def read(self, payload: common_pb2.ObjectPayload) -> Any:
        """The value of a payload; raises if it holds an error."""
        return self.read_many([payload])[0]

    def read_many(self, payloads: Sequence[common_pb2.ObjectPayload]) -> list[Any]:
        """Values of payloads, in order; raises the first error one holds. Objects in
        shared memory are pinned with one request for all of them (pulled first from
        the nodes that hold them, when those are other nodes)."""
        shared = [p for p in payloads if not p.HasField("data")]
        views = self._pin_views(shared) if shared else {}
        values = []
        for payload in payloads:
            if payload.HasField("data"):
                value = deserialize(payload.data, copy_buffers=True)
            else:
                value = deserialize(views[payload.object_id], copy_buffers=False)
            if payload.is_error:
                if isinstance(value, TaskError):
                    raise value.as_instanceof_cause()
                raise value
            values.append(value)
        return values

    def _pin_views(self, payloads: Sequence[common_pb2.ObjectPayload]) -> dict[bytes, memoryview]:
        """Pin objects in this node's arena (restoring spilled ones, pulling remote
        ones) and map them."""
        assert self.arena is not None
        oids = [p.object_id for p in payloads]
        for payload in payloads:
            if payload.node_id in self.dead_nodes:
                raise self._lost_error(payload.object_id, payload.node_id)
        hints = [p.node_id if p.node_id != self.node_id else b"" for p in payloads]
        reply = self.run_sync(self._get_objects(oids, hints))
        views = {}
        lost = []
        for payload, offset, size, missing in zip(payloads, reply.offsets, reply.sizes, reply.missing):
            oid = payload.object_id
            if missing:
                lost.append(payload)
                continue
            # every pinned object gets a view, so its pin is released with it
            views[oid] = self.arena.view(offset, size, lambda oid=oid: self._unpin(oid))
            if payload.node_id and payload.node_id != self.node_id:
                self.call_soon(self._copied_here, oid)
        if lost:
            raise self._lost_error(lost[0].object_id, lost[0].node_id)
        return views

    def _lost_error(self, oid: bytes, node_id: bytes) -> ObjectLostError:
        if node_id and node_id != self.node_id:
            where = f"node {node_id.hex()}, which is dead" if node_id in self.dead_nodes else f"node {node_id.hex()}"
            return ObjectLostError(
                oid.hex(), f"Object {oid.hex()} is lost: its only copy was on {where}, and it cannot be rebuilt."
            )
        return ObjectLostError(oid.hex(), f"Object {oid.hex()} is no longer in the object store.")

    def _copied_here(self, oid: bytes) -> None:
        """Tell the object's owner this node now has a copy too."""
        entry = self.refs.get(oid)
        if entry is None:
            return
        if entry.owned:
            entry.add_location(self.node_id)
            return
        request = cw_pb2.ObjectLocationsRequest(object_id=oid, node_id=self.node_id)

        async def tell() -> None:
            try:
                conn = await self.connect_to(self.parse_address(entry.owner))
                conn.notify(methods.CoreWorker.AddObjectLocation, request)
            except (ConnectionLost, RemoteError):
                pass

        self.spawn(tell())

    def AddObjectLocation(self, request: cw_pb2.ObjectLocationsRequest, conn: Any) -> common_pb2.Empty:
        entry = self.refs.get(request.object_id)
        if entry is not None and entry.owned:
            entry.add_location(request.node_id)
        return common_pb2.Empty()

    def objects_lost_with(self, node_id: bytes) -> None:
        """Owned objects stored on a dead node: served from a copy if one exists
        elsewhere, else rebuilt by the task that made them, else lost."""
        lost = []
        with self.refs.lock:
            entries = list(self.refs.entries.items())
        for oid, entry in entries:
            payload = entry.payload
            if payload is None or payload.node_id != node_id:
                continue
            if not entry.owned:
                entry.payload = None  # ask the owner again: it knows of copies and rebuilds
                entry.fetching = False
                continue
            copies = [n for n in (entry.locations or ()) if n != node_id and n not in self.dead_nodes]
            if copies:
                moved = common_pb2.ObjectPayload()
                moved.CopyFrom(payload)
                moved.node_id = copies[0]
                entry.payload = moved
            elif not self.submitter.reconstruct(oid, entry):
                lost.append(oid)
        for oid in lost:
            self.refs.set_payload(oid, error_payload(oid, self._lost_error(oid, node_id)))
        if lost:
            self.refs.notify_ready()

    def free_stored(self, oids: list[bytes]) -> None:
        """Free objects this process stored for someone else that will never learn
        of them (a task that failed after storing some of its returns)."""
        if oids:
            self._frees.extend((self.node_id, oid) for oid in oids)
            self.wake()

    def _unpin(self, oid: bytes) -> None:
        if not self.closed:
            self._releases.append(oid)
            self.wake()

    async def _get_objects(self, oids: list[bytes], hints: list[bytes]) -> nm_pb2.GetObjectsReply:
        assert self.nm is not None
        self._flush_object_notices()
        try:
            return await self.nm.call(
                methods.NodeManager.GetObjects, nm_pb2.GetObjectsRequest(object_ids=oids, node_hints=hints)
            )
        except RemoteError as exc:
            if exc.code == common_pb2.ERROR_CODE_OBJECT_STORE_FULL:
                raise ObjectStoreFullError(exc.message) from None
            raise

    # -- waiting for objects ------------------------------------------------------------
    def _check_ref(self, ref: Any) -> bytes:
        if not isinstance(ref, ObjectRef):
            raise TypeError(
                f"get() and wait() take ObjectRefs (or lists of them), not {type(ref).__name__}: "
                f"{ref!r:.80}. Pass what .remote() or put() returned."
            )
        return ref._id

    def _fetch_missing(self, oids: Sequence[bytes]) -> None:
        """Ask owners for the status of borrowed objects not yet known here."""
        wanted = []
        for oid in oids:
            entry = self.refs.get(oid)
            if entry is not None and not entry.owned and entry.payload is None and not entry.fetching:
                entry.fetching = True
                wanted.append(oid)
        if wanted:
            self.call_soon(self._start_fetches, wanted)

    def _start_fetches(self, oids: list[bytes]) -> None:
        for oid in oids:
            self.spawn(self.fetch_status(oid))

    async def fetch_status(self, oid: bytes) -> None:
        entry = self.refs.get(oid)
        if entry is None:
            return
        owner = self.parse_address(entry.owner)
        try:
            conn = await self.connect_to(owner)
            reply = await conn.call(methods.CoreWorker.GetObjectStatus, cw_pb2.GetObjectStatusRequest(object_id=oid))
            payload = reply.payload
        except ConnectionLost as exc:
            payload = error_payload(
                oid,
                OwnerDiedError(
                    oid.hex(),
                    f"Object {oid.hex()} is lost: its owner (the process that created it, "
                    f"worker {ids.short(owner.worker_id)}) has exited ({exc}).",
                ),
            )
        except RemoteError as exc:
            payload = error_payload(oid, ObjectLostError(oid.hex(), exc.message))
        entry.fetching = False
        self.refs.set_payload(oid, payload)
        self.refs.notify_ready()

    async def GetObjectStatus(self, request: cw_pb2.GetObjectStatusRequest, conn: Any) -> cw_pb2.GetObjectStatusReply:
        oid = request.object_id
        entry = self.refs.get(oid)
        if entry is None or not entry.owned:
            raise RemoteError(
                common_pb2.ERROR_CODE_OBJECT_LOST,
                f"Object {oid.hex()} is not known to its owner (it was freed, or its owner restarted).",
            )
        if entry.payload is None:
            fut = self.loop.create_future()
            if entry.callbacks is None:
                entry.callbacks = []
            entry.callbacks.append(lambda _oid, payload: fut.done() or fut.set_result(payload))
            payload = await fut
        else:
            payload = entry.payload
        return cw_pb2.GetObjectStatusReply(payload=payload)

    def _blocked(self) -> Callable[[], None] | None:
        """In a worker running a task: tell the node manager this worker is blocked
        (its CPU is free for others); returns the call that undoes it."""
        if self.executor is None or not self.executor.in_task() or self.nm is None:
            return None
        nm = self.nm
        self.call_soon(nm.notify, methods.NodeManager.NotifyBlocked, nm_pb2.BlockedNotice(blocked=True))
        return lambda: self.call_soon(
            nm.notify, methods.NodeManager.NotifyBlocked, nm_pb2.BlockedNotice(blocked=False)
        )

    def wait_payloads(self, oids: Sequence[bytes], num_ready: int, timeout: float | None) -> list[bool]:
        """Block until at least ``num_ready`` of the objects have values (or the
        timeout passes); return which are ready."""
        entries = self.refs.entries
        ready = [(e := entries.get(oid)) is not None and e.payload is not None for oid in oids]
        if sum(ready) >= num_ready:
            return ready
        missing = [oid for oid, r in zip(oids, ready) if not r]
        for oid in missing:
            if oid not in entries:
                raise ObjectLostError(oid.hex(), f"Object {oid.hex()} is unknown here (freed, or from an earlier session).")
        self._fetch_missing(missing)
        deadline = None if timeout is None else time.monotonic() + timeout
        unblock = self._blocked()
        try:
            cond = self.refs.ready
            while True:
                with cond:
                    version = self.refs.version
                    ready = [(e := entries.get(oid)) is not None and e.payload is not None for oid in oids]
                    if sum(ready) >= num_ready:
                        return ready
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        return ready
                    if self.closed:
                        raise RuntimeError("the runtime shut down while waiting")
                    if self.refs.version == version:
                        cond.wait(remaining if remaining is None else min(remaining, 1.0))
        finally:
            if unblock is not None:
                unblock()

    def get(self, refs: Sequence[Any], timeout: float | None) -> list[Any]:
        oids = [self._check_ref(r) for r in refs]
        deadline = None if timeout is None else time.monotonic() + timeout
        entries = self.refs.entries
        while True:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready = self.wait_payloads(oids, len(oids), remaining)
            if not all(ready):
                waiting = sum(1 for r in ready if not r)
                raise GetTimeoutError(
                    f"get() timed out after {timeout} s: {waiting} of {len(oids)} objects not ready. "
                    "Raise the timeout, or use wait() to take the ready ones."
                )
            payloads = [entries[oid].payload for oid in oids]
            try:
                return self.read_many(payloads)
            except ObjectLostError:
                # A node holding some of them is unreachable: once the cluster declares
                # it dead, those objects are served from a copy, rebuilt, or lost for good.
                elsewhere = {p.node_id for p in payloads if p.node_id and p.node_id != self.node_id}
                if not elsewhere or elsewhere <= self.dead_nodes or not self._await_verdict(elsewhere, deadline):
                    raise

    def _await_verdict(self, nodes: set[bytes], deadline: float | None) -> bool:
        """Wait until the GCS declares ``nodes`` dead (True), or for as long as
        that could take (False: they are alive, the objects are simply gone)."""
        config = self.config
        bound = (
            config.health_check_initial_delay_s
            + config.health_check_period_s * (config.health_check_failure_threshold + 1)
            + config.health_check_timeout_s
            + 2 * config.heartbeat_interval_s
        )
        limit = time.monotonic() + bound
        if deadline is not None:
            limit = min(limit, deadline)
        while time.monotonic() < limit:
            if nodes <= self.dead_nodes:
                return True
            time.sleep(0.05)
        return nodes <= self.dead_nodes

    def get_future(self, ref: ObjectRef) -> concurrent.futures.Future:
        """A future of ``ref``'s value, resolved from the loop thread."""
        result: concurrent.futures.Future = concurrent.futures.Future()
        oid = ref._id

        def resolve(_oid: bytes, payload: common_pb2.ObjectPayload) -> None:
            def read() -> None:
                try:
                    result.set_result(self.read(payload))
                except BaseException as exc:  # noqa: BLE001
                    result.set_exception(exc)

            if payload.HasField("data"):
                read()
            else:  # reading a stored object may need the loop: not on the loop thread
                threading.Thread(target=read, daemon=True).start()

        def register() -> None:
            entry = self.refs.get(oid)
            if entry is None:
                result.set_exception(ObjectLostError(oid.hex(), f"Object {oid.hex()} is unknown here."))
            elif entry.payload is not None:
                resolve(oid, entry.payload)
            else:
                if entry.callbacks is None:
                    entry.callbacks = []
                entry.callbacks.append(resolve)
                if not entry.owned and not entry.fetching:
                    entry.fetching = True
                    self.spawn(self.fetch_status(oid))

        self.call_soon(register)
        return result

    # -- CoreWorker service: results, logs, warnings ----------------------------------
    def ReportTaskResults(self, request: cw_pb2.TaskResultsNotice, conn: Any) -> common_pb2.Empty:
        if "actor_queue" in conn.state:
            self.actor_submitter.on_results(request.results, conn)
        else:
            self.submitter.on_results(request.results, conn)
        return common_pb2.Empty()

    def PublishLogs(self, request: cw_pb2.LogBatch, conn: Any) -> common_pb2.Empty:
        try:
            self.log_sink(request)
        except Exception:  # noqa: BLE001
            logger.exception("printing remote output failed")
        return common_pb2.Empty()

    def LeaseWarning(self, request: cw_pb2.LeaseWarningNotice, conn: Any) -> common_pb2.Empty:
        if request.message not in self._warned:
            self._warned.add(request.message)
            logging.getLogger("nbcluster").warning(request.message)
        return common_pb2.Empty()

    def PushTasks(self, request: cw_pb2.PushTasksRequest, conn: Any) -> common_pb2.Empty:
        if self.executor is None:
            raise RemoteError(common_pb2.ERROR_CODE_UNIMPLEMENTED, "a driver does not run tasks")
        self.executor.push(request, conn)
        return common_pb2.Empty()

    def CancelTask(self, request: cw_pb2.CancelTaskRequest, conn: Any) -> cw_pb2.CancelTaskReply:
        found = False
        if self.executor is not None:
            found = self.executor.cancel(request.task_id, request.force)
        if request.recursive:
            self.submitter.cancel_children(request.task_id, request.force)
            self.actor_submitter.cancel_children(request.task_id)
        return cw_pb2.CancelTaskReply(found=found)

    def Exit(self, request: cw_pb2.ExitRequest, conn: Any) -> cw_pb2.ExitReply:
        if not request.force:
            self.process_releases()
            busy = self.executor is not None and (self.executor.in_task() or not self.executor.idle())
            owns = any(entry.owned for entry in self.refs.entries.values())
            if busy or owns or self.submitter.busy() or self.actor_submitter.busy():
                logger.info("declined to exit (%s): busy=%s owns objects=%s", request.reason, busy, owns)
                return cw_pb2.ExitReply(accepted=False)
        logger.info("exiting: %s", request.reason)
        self.loop.call_later(0.01, os._exit, 0)
        return cw_pb2.ExitReply(accepted=True)


def print_log_batch(batch: cw_pb2.LogBatch) -> None:
    """The default sink: ``(name pid=N) line`` to this process's stdout/stderr."""
    ip = f", ip={batch.node_ip}" if batch.node_ip and batch.node_ip not in ("127.0.0.1", "") else ""
    prefix = f"({batch.source} pid={batch.pid}{ip}) "
    out = [line for line in batch.lines if not line.is_stderr]
    err = [line for line in batch.lines if line.is_stderr]
    if out:
        sys.stdout.write("".join(prefix + line.text + "\n" for line in out))
        sys.stdout.flush()
    if err:
        sys.stderr.write("".join(prefix + line.text + "\n" for line in err))
        sys.stderr.flush()
