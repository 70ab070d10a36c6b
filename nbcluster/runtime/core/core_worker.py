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
import logging
import os
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from nbcluster.runtime import ids
from nbcluster.runtime.config import RuntimeConfig
from nbcluster.runtime.credentials import driver_token
from nbcluster.runtime.core import worker_state
from nbcluster.runtime.core.actor_submitter import ActorSubmitter
from nbcluster.runtime.core.borrowing import Borrowing
from nbcluster.runtime.core.generator_streams import GeneratorStreams
from nbcluster.runtime.core.log_print import print_log_batch
from nbcluster.runtime.core.loop_thread import LoopThread
from nbcluster.runtime.core.object_values import ObjectValues
from nbcluster.runtime.core.peers import PeerConnections
from nbcluster.runtime.core.references import Entry, ReferenceTable
from nbcluster.runtime.core.submitter import TaskSubmitter
from nbcluster.runtime.core.task_events import TaskEvents
from nbcluster.runtime.objects import shm
from nbcluster.runtime.protocol import (
    common_pb2,
    core_worker_pb2 as cw_pb2,
    node_manager_pb2 as nm_pb2,
)
from nbcluster.runtime.session import Session
from nbcluster.runtime.transport import dial, framed, methods
from nbcluster.runtime.transport.errors import ConnectionLost, RemoteError

logger = logging.getLogger(__name__)

DRIVER = "driver"
WORKER = "worker"


class DriverSinks:
    """Where a driver shows what reaches it: remote output and lease warnings (the
    ``PublishLogs`` and ``LeaseWarning`` methods of the CoreWorker service)."""

    def __init__(self) -> None:
        #: Prints log lines of remote tasks (drivers); the kernel extension replaces it.
        self.log_sink: Callable[[cw_pb2.LogBatch], None] = print_log_batch
        #: Shows a node manager's warning about a lease (once per message).
        self.warning_sink: Callable[[str], None] = logging.getLogger("nbcluster").warning
        self._warned: set[str] = set()

    def PublishLogs(self, request: cw_pb2.LogBatch, conn: Any) -> common_pb2.Empty:
        """Output lines of remote tasks: to the log sink."""
        try:
            self.log_sink(request)
        except Exception:  # noqa: BLE001
            logger.exception("printing remote output failed")
        return common_pb2.Empty()

    def LeaseWarning(self, request: cw_pb2.LeaseWarningNotice, conn: Any) -> common_pb2.Empty:
        """A node manager's warning about a lease (an unschedulable task): logged once."""
        if request.message not in self._warned:
            self._warned.add(request.message)
            self.warning_sink(request.message)
        return common_pb2.Empty()


class CoreWorker(LoopThread, DriverSinks, PeerConnections, ObjectValues):
    """This process's runtime: its loop thread, connections, reference table, task
    and actor submitters, (in workers) executor, and the ``CoreWorker`` service.

    Connections to peers are in :class:`PeerConnections` (core/peers.py), object
    values in :class:`ObjectValues` (core/object_values.py)."""

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
        LoopThread.__init__(self)
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
        self._server: framed.FramedServer | None = None
        self.dispatcher = framed.Dispatcher()
        self.dispatcher.register("CoreWorker", self)
        self._init_peers()
        self._wake_scheduled = False
        self._releases: collections.deque[bytes] = collections.deque()
        self._seals: collections.deque[bytes] = collections.deque()
        #: (node id, object id) of stored objects to free (from any thread).
        self._frees: collections.deque[tuple[bytes, bytes]] = collections.deque()
        DriverSinks.__init__(self)
        self.task_events = TaskEvents(self)
        self.borrowing = Borrowing(self)
        self.submitter = TaskSubmitter(self)
        self.actor_submitter = ActorSubmitter(self)
        #: Streams of the generator tasks this process submitted.
        self.generators = GeneratorStreams(self)
        self.executor: Any = None

    # -- thread and loop ----------------------------------------------------------
    def start(self, setup: Callable[[], Coroutine[Any, Any, None]] | None = None) -> None:
        """Start the loop thread, connect to the node manager, then run ``setup``."""
        self.start_loop()
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
            gcs = self.gcs = await dial(self.gcs_address, self.token, timeout=self.config.startup_timeout_s,
                                        reconnect_wait_s=self.config.gcs_reconnect_timeout_s)
        return gcs

    def _on_node_lost(self, conn: Any) -> None:
        if not self.closed:
            logger.error("lost the connection to the node manager: %s", conn.close_reason)

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
        self.stop_loop()
        if worker_state.current is self:
            worker_state.current = None

    async def _stop(self) -> None:
        try:  # the last task states, so `nbcluster list tasks` shows how they ended
            await asyncio.wait_for(self.task_events.flush(wait=True), 1.5)
        except (asyncio.TimeoutError, OSError):
            pass
        self.submitter.stop()
        await self.cancel_spawned()  # while the loop still runs
        if self._server is not None:
            await self._server.stop()
        for conn in list(self._conns.values()):
            conn.close()
        if self.nm is not None:
            self.nm.close()

    # -- wake-ups: releases, pins, seals, new tasks ---------------------------------
    def wake(self) -> None:
        """Have the loop thread process releases, seals and new submissions (from any thread)."""
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
        """Loop thread: apply released references, freeing what is no longer referenced."""
        while self.refs.pending_decrements():
            for oid, entry in self.refs.drain():
                self.on_freed(oid, entry)
        self.flush_frees()
        if self.borrowing.removes:
            self.borrowing.flush()

    def on_freed(self, oid: bytes, entry: Entry) -> None:
        """An object's last reference here went: free its stored value (owned) or tell its owner (borrowed)."""
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
        """Send the pending frees of stored objects to their node managers."""
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

    def UpdateBorrowers(self, request: cw_pb2.UpdateBorrowersRequest, conn: Any) -> common_pb2.Empty:
        """A borrower's added and removed references to objects owned here."""
        self.borrowing.on_update(request, conn)
        return common_pb2.Empty()

    # -- CoreWorker service: results, logs, warnings ----------------------------------
    def ReportTaskResults(self, request: cw_pb2.TaskResultsNotice, conn: Any) -> common_pb2.Empty:
        """Results of tasks or actor calls this process submitted."""
        if "actor_queue" in conn.state:
            self.actor_submitter.on_results(request.results, conn)
        else:
            self.submitter.on_results(request.results, conn)
        return common_pb2.Empty()

    def ReportGeneratorItems(self, request: cw_pb2.GeneratorItemsNotice, conn: Any) -> common_pb2.Empty:
        """Items a streaming generator task this process submitted has yielded."""
        self.generators.on_items(request, conn)
        return common_pb2.Empty()

    def GeneratorConsumed(self, request: cw_pb2.GeneratorConsumedNotice, conn: Any) -> common_pb2.Empty:
        """The caller of a streaming task running here has taken items (backpressure)."""
        if self.executor is not None:
            self.executor.on_consumed(request)
        return common_pb2.Empty()

    def PushTasks(self, request: cw_pb2.PushTasksRequest, conn: Any) -> common_pb2.Empty:
        """Tasks to run here (workers only)."""
        if self.executor is None:
            raise RemoteError(common_pb2.ERROR_CODE_UNIMPLEMENTED, "a driver does not run tasks")
        self.executor.push(request, conn)
        return common_pb2.Empty()

    def cancel(self, oid: bytes, force: bool, recursive: bool) -> None:
        """Cancel the task that returns ``oid`` (any thread); ValueError when it is not
        a task submitted by this process, or ``force`` for an actor call."""
        entry = self.refs.get(oid)
        if entry is None or not entry.owned:
            raise ValueError(
                f"cancel() needs the ObjectRef returned by .remote() in this process; ObjectRef({oid.hex()}) "
                "is not a task owned here."
            )
        task = entry.task
        if task is not None and task.method:  # an actor call
            if force:
                raise ValueError("force=True is not supported for actor calls; use nbcluster.kill(actor) instead")
            self.call_soon(self.actor_submitter.cancel, oid, recursive)
            return
        self.call_soon(self.submitter.cancel, oid, force, recursive)

    def _unfinished(self, context: str) -> list[tuple[bytes, bool]]:
        """(first return id, is an actor call) of each unfinished task and actor call
        this process submitted with ``context`` (loop thread)."""
        found = []
        for object_id, entry in list(self.refs.entries.items()):
            task = entry.task
            if task is None or not entry.owned or task.context != context:
                continue
            if task.machine.is_terminal() or object_id != task.return_ids[0]:
                continue
            found.append((object_id, bool(task.method)))
        return found

    def count_unfinished(self, context: str) -> int:
        """How many tasks and actor calls this process submitted with ``context`` have
        not finished (any thread)."""

        async def count() -> int:
            return len(self._unfinished(context))

        return self.run_sync(count())

    def cancel_context(self, context: str, force: bool) -> int:
        """Cancel the unfinished tasks and actor calls this process submitted with
        ``context`` (and their children; any thread); how many were asked to stop."""

        async def collect() -> list[tuple[bytes, bool]]:
            return self._unfinished(context)

        found = self.run_sync(collect())
        for object_id, is_actor_call in found:
            if is_actor_call:
                self.call_soon(self.actor_submitter.cancel, object_id, True)
            else:
                self.call_soon(self.submitter.cancel, object_id, force, True)
        return len(found)

    def CancelTask(self, request: cw_pb2.CancelTaskRequest, conn: Any) -> cw_pb2.CancelTaskReply:
        """Cancel a task running or queued here (and, recursively, what it submitted)."""
        found = False
        if self.executor is not None:
            found = self.executor.cancel(request.task_id, request.force, request.recursive)
        if request.recursive:
            self.submitter.cancel_children(request.task_id, request.force)
            self.actor_submitter.cancel_children(request.task_id)
        return cw_pb2.CancelTaskReply(found=found)

    def RevokeLease(self, request: cw_pb2.RevokeLeaseNotice, conn: Any) -> common_pb2.Empty:
        """The node manager that granted a lease drains: push no more tasks on it."""
        self.submitter.revoke_lease(conn, request.lease_id, request.reason)
        return common_pb2.Empty()

    def Exit(self, request: cw_pb2.ExitRequest, conn: Any) -> cw_pb2.ExitReply:
        """The node manager asks this worker to exit; an idle one that owns nothing accepts."""
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
