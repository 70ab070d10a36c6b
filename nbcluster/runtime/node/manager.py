"""The node manager: the node's resources and leases, its workers and object store.

Submitters ask for a *lease* on a worker for a resource shape. A lease is granted
when the shape fits the node's free resources; it holds them until the submitter
returns the worker or disconnects. The submitter then pushes tasks to the worker
directly — the node manager never sees individual tasks. A worker blocked in ``get``
gives its CPU back for the duration, so nested tasks cannot deadlock a node.

In a cluster of several nodes a request that fits better elsewhere is answered with
*spillback* (see scheduling); the node manager is also its machine's one door for
other machines: it relays framed connections to its processes, serves object pulls
and the GCS's health checks.

This module holds the lifecycle, the lease queue and the job glue; its sibling
modules the rest, mixed into :class:`NodeManager`: ``bundles.py`` (placement group
bundles), ``clients.py`` (registered processes), ``cluster_view.py`` (the other nodes),
``memory_monitor.py`` (killing a worker when memory runs low), ``reports.py`` (the node's row
for the GCS, stats), ``objects.py`` (the object RPCs), ``drain.py`` (taking no new work,
and draining before it stops) and ``handoff.py`` (a draining node's objects going to
other nodes); ``options.py`` holds what it is started with.
"""

from __future__ import annotations

import asyncio
import math
import logging
import time
from typing import Any

import psutil

from nbcluster.runtime import envvars, tls
from nbcluster.runtime.config import RuntimeConfig
from nbcluster.runtime.credentials import driver_token
from nbcluster.runtime import bundles
from nbcluster.runtime.node import resources as rs
from nbcluster.runtime.node.bundles import BundleHandlers
from nbcluster.runtime.node.clients import Client, ClientHandlers
from nbcluster.runtime.node.cluster_view import ClusterView
from nbcluster.runtime.node.drain import NodeDrain
from nbcluster.runtime.node.gcs_link import Fenced, GcsLink
from nbcluster.runtime.node.handoff import HandoffHandlers
from nbcluster.runtime.node.accelerators import GpuIds
from nbcluster.runtime.node.client_sessions import ClientSessions
from nbcluster.runtime.node.jobs import JobSupervisors
from nbcluster.runtime.node.memory_monitor import MemoryHandlers
from nbcluster.runtime.node.objects import ObjectHandlers
from nbcluster.runtime.node.options import NodeOptions, default_object_store_memory, node_resources
from nbcluster.runtime.node.reports import NodeReports
from nbcluster.runtime.node.scheduling import Decision, Verdict, decide
from nbcluster.runtime.node.transfer import TransferServer
from nbcluster.runtime.node.worker_pool import Worker, WorkerPool
from nbcluster.runtime.objects.store import ObjectStore
from nbcluster.runtime.procutil import wait_exit
from nbcluster.runtime.protocol import (
    common_pb2,
    core_worker_pb2,
    gcs_pb2,
)
from nbcluster.runtime.protocol import (
    node_manager_pb2 as nm_pb2,
)
from nbcluster.runtime.session import Session, store_dir
from nbcluster.runtime.states import WorkerState
from nbcluster.runtime.transport import framed, is_framed, methods, relay
from nbcluster.runtime.transport.errors import ConnectionLost, RemoteError
from nbcluster.runtime.transport.grpc_carrier import GrpcServer

logger = logging.getLogger(__name__)


class _Lease:
    __slots__ = ("lease_id", "worker", "shape", "holder", "cpu_released", "gpu_ids", "retriable", "description", "granted")

    def __init__(self, lease_id: int, worker: Worker, shape: rs.Fixed, holder: Client, request: nm_pb2.LeaseRequest) -> None:
        self.lease_id = lease_id
        self.worker = worker
        self.shape = shape
        self.holder = holder
        self.cpu_released = False
        self.gpu_ids: list[int] = []
        self.retriable, self.description, self.granted = request.retriable, request.description, time.monotonic()


class _LeaseRequest:
    __slots__ = ("request", "shape", "placement", "client", "future", "warned", "spread_turn", "view_asked")

    def __init__(self, request: nm_pb2.LeaseRequest, client: Client) -> None:
        self.request = request
        self.shape = rs.to_fixed(request.resources.amounts)
        # What must be free to grant it; only `shape` is held.
        self.placement = (
            rs.to_fixed(request.placement_resources.amounts)
            if request.HasField("placement_resources")
            else self.shape
        )
        self.client = client
        self.future: asyncio.Future = asyncio.get_running_loop().create_future()
        self.warned = False
        self.spread_turn = 0
        self.view_asked: int | None = None


class NodeManager(
    BundleHandlers, ClientHandlers, ClusterView, MemoryHandlers, NodeReports, ObjectHandlers, NodeDrain, HandoffHandlers
):
    """One node's resources, leases, workers and object store (see the module docstring)."""

    def __init__(self, session: Session, token: str, config: RuntimeConfig, options: NodeOptions) -> None:
        self.session = session
        self.config = config
        self.options = options
        self.node_id = options.node_id
        self._token = token
        self.local_endpoint = session.endpoint(f"node-{options.node_id.hex()[:12]}")
        self.start_time = time.time()
        self.address = ""
        self.total: rs.Fixed = {}
        self.gpus = GpuIds(options.gpu_ids or tuple(range(math.ceil(options.num_gpus or 0))))
        self.available: rs.Fixed = {}
        self._leases: dict[int, _Lease] = {}
        self._next_lease = 0
        self._queue: list[_LeaseRequest] = []
        self._clients: dict[bytes, Client] = {}
        self._cluster: list[gcs_pb2.NodeInfo] = []
        self._spread_turn = 0
        self._view_version = 0
        self._gcs: GcsLink | None = None
        self._framed: framed.FramedServer | None = None
        self._grpc: Any = None
        self._transfer: TransferServer | None = None
        self.object_address = ""
        #: This node's TLS certificate and key (a TLS cluster; tls.py), else None.
        self.identity: tls.Identity | None = None
        self._relay: relay.LocalRelay | None = None
        self._peers: dict[str, Any] = {}
        self._pulls: dict[bytes, asyncio.Future] = {}
        self._copies: dict[bytes, set[str]] = {}
        self._tasks: list[asyncio.Task] = []
        self.shutdown_requested = asyncio.Event()
        #: Set when the GCS declared this node dead: it must rejoin as a new node.
        self.fenced = False
        self.store: ObjectStore | None = None
        self.pool: WorkerPool | None = None
        self.jobs: JobSupervisors | None = None
        self.client_sessions: ClientSessions | None = None
        self._local = common_pb2.Address(node_id=self.node_id, endpoint=self.local_endpoint)
        #: Since when (monotonic) the node has been idle; None while busy.
        self._idle_since: float | None = time.monotonic()
        self.drain_requested = asyncio.Event()  # asked to stop: drain first (drain.py)
        #: Resources recently sent to other nodes by spillback (node -> [(when,
        #: resources)]), subtracted from what the view says is free there until their
        #: reports can include them; so one pass does not send everything to one node.
        self._spilled: dict[bytes, list[tuple[float, rs.Fixed]]] = {}
        self._bundles = {}  # placement group bundles here (bundles.py)
        self._removed_groups = set()

    # -- lifecycle ----------------------------------------------------------------
    async def start(self) -> None:
        """Open the store, join the GCS, start the worker pool and serve."""
        opts = self.options
        directory = store_dir(self.node_id, create=True)
        capacity = opts.object_store_memory or default_object_store_memory(directory)
        memory = opts.memory or int(psutil.virtual_memory().available * 0.7)
        self.total = rs.to_fixed(node_resources(opts, capacity, memory))
        self.available = dict(self.total)
        self.store = ObjectStore(
            directory, self.session.spill, capacity, self.config.object_store_full_timeout_s
        )
        self._gcs = GcsLink(
            opts.gcs_address,
            self._token,
            self.config,
            self._node_info,
            self._on_view,
            waiting=lambda: any(not r.future.done() for r in self._queue),
        )
        if opts.grpc_port is not None:
            self.identity = await self._tls_identity()
            self._grpc = GrpcServer(
                opts.node_ip, opts.grpc_port, self._token, {"NodeManager": self}, identity=self.identity
            )
            self.address = f"{opts.node_ip}:{await self._grpc.start()}"
            self._relay = relay.LocalRelay(relay.socket_of(self.local_endpoint), self._token, self.peer)
            await self._relay.start()
            self._transfer = TransferServer(
                opts.node_ip, opts.object_port, self._token, self.store.fd, self.store.view, self.serve_pull,
                identity=self.identity,
            )
            self.object_address = f"{opts.node_ip}:{await self._transfer.start()}"
        self._on_view(await self._gcs.register())
        self.jobs = JobSupervisors(
            self.session, self._token, self.config.to_env(), self._gcs_route, self._hold, self._release_held,
            self._report_job,
        )
        self.client_sessions = ClientSessions(
            self.session, self._token, self.config.to_env(), self.node_id, self.local_endpoint,
            self.config.startup_timeout_s,
        )
        self.pool = WorkerPool(
            base_size=max(0, int(opts.num_cpus)),
            spawn_args=self._worker_args(),
            log_dir=self.session.logs,
            env={envvars.CONFIG: self.config.to_env()},
            credential=driver_token(self._token),  # workers run user code: no cluster token
            idle_timeout=self.config.idle_worker_timeout_s,
            start_timeout=self.config.worker_start_timeout_s,
            max_task_workers=max(4, math.ceil(opts.num_cpus * self.config.max_task_workers_per_cpu)),
            on_dead=self._on_worker_dead, niceness=self.config.worker_niceness,
        )
        self.pool.ensure(0)  # prestart while the rest comes up
        # Local clients connect once the node is in the cluster's node table.
        dispatcher = framed.Dispatcher()
        dispatcher.register("NodeManager", self)
        self._framed = framed.FramedServer(self.local_endpoint, self._token, dispatcher, self._local)
        await self._framed.start()
        loop = asyncio.get_running_loop()
        self._tasks.append(loop.create_task(self._report_loop()))
        self._tasks.append(loop.create_task(self._maintain_loop()))
        self._tasks.append(loop.create_task(self._gcs.watch_deaths(self._on_node_death)))
        self._start_memory_monitor()
        logger.info(
            "node=%s serving on %s %s resources=%s",
            self.node_id.hex(), self.local_endpoint, self.address, rs.to_float(self.total),
        )

    async def _tls_identity(self) -> tls.Identity | None:
        """This node's certificate in a TLS cluster: the one kept in its session (made
        with the head's, or the user's), else one the head issues for its addresses."""
        identity = self.session.read_identity()
        ca = self.session.read_ca()
        if identity is not None or not ca:
            return identity
        assert self._gcs is not None
        csr, key = tls.make_csr(tls.node_hosts(self.options.node_ip))
        reply = await self._gcs.call(
            methods.Gcs.IssueCertificate, gcs_pb2.IssueCertificateRequest(csr_pem=csr),
            timeout=self.config.startup_timeout_s,
        )
        logger.info("node=%s got its TLS certificate from the head", self.node_id.hex())
        return tls.Identity(ca, reply.cert_pem, key)

    def _worker_args(self) -> list[str]:
        args = [
            "--session-dir", str(self.session.dir),
            "--node-id", self.node_id.hex(),
            "--node-endpoint", self.local_endpoint,
            "--node-ip", self.options.node_ip,
            "--gcs-address", self._gcs_route(),
        ]
        if self._relay is not None:
            args += ["--relay-endpoint", self._relay.endpoint]
        return args

    def _gcs_route(self) -> str:
        """How a worker here reaches the GCS: as this node manager does when that is a
        local socket; else through the head node's relay (workers have no gRPC)."""
        address = self.options.gcs_address
        if is_framed(address):
            return address
        assert self._gcs is not None and self._gcs.cluster_info is not None
        head = next((n for n in self._cluster if n.is_head and n.address), None)
        if head is None:
            raise RuntimeError(
                "this cluster takes no nodes from other processes: it was started embedded (nbcluster.init() "
                "or %cluster start), so its head serves only the processes of its own session. Start one "
                "that nodes can join with `nbcluster start --head` (or %cluster start --workers N)."
            )
        return relay.route(head.address, self._gcs.cluster_info.local_endpoint)

    async def stop(self) -> None:
        """Unregister, end workers and job supervisors, close the store and servers."""
        for task in self._tasks:
            task.cancel()
        procs = self.pool.shutdown() if self.pool else []
        supervisors = self.jobs.shutdown() if self.jobs is not None else []
        procs += self.client_sessions.shutdown() if self.client_sessions is not None else []
        if self._gcs is not None:
            if not self.fenced:
                await self._gcs.unregister(self.leave_reason)
            self._gcs.close()
        await asyncio.to_thread(wait_exit, procs, 2.0)
        # Supervisors end their entrypoints within the job stop grace; then whatever is left goes.
        await asyncio.to_thread(wait_exit, supervisors, self.config.job_stop_grace_s + 1.0)
        if self.jobs is not None:
            self.jobs.kill_groups()
        procs += supervisors
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
        await asyncio.to_thread(wait_exit, procs, 5.0)
        if self._transfer is not None:  # before the store: transfers read its file
            await self._transfer.stop()
        if self.store is not None:
            self.store.close()
        if self._framed is not None:
            await self._framed.stop()
        if self._relay is not None:
            await self._relay.stop()
        for channel in self._peers.values():
            channel.close()
        if self._grpc is not None:
            await self._grpc.stop(0)

    def _changed(self) -> None:
        if self._gcs is not None:
            self._gcs.dirty.set()

    async def _report_loop(self) -> None:
        assert self._gcs is not None
        try:
            await self._gcs.run()
        except Fenced as exc:
            logger.error("the GCS declared this node dead (%s): rejoining as a new node", exc)
            self.fenced = True
        self.shutdown_requested.set()

    # -- jobs and client sessions ----------------------------------------------------
    async def StartClientSession(
        self, request: nm_pb2.StartClientSessionRequest, conn: Any
    ) -> nm_pb2.StartClientSessionReply:
        """Client mode: start a proxy driver here for a client with no node of its own."""
        assert self.client_sessions is not None
        return await self.client_sessions.start(request, self._gcs_route())

    def StartJob(self, request: nm_pb2.StartJobRequest, conn: Any) -> nm_pb2.StartJobReply:
        """Start a job's supervisor here (refused while draining)."""
        assert self.jobs is not None
        if self.draining:
            return nm_pb2.StartJobReply(started=False, reason="this node is draining")
        reply = self.jobs.start(request)
        self._changed()
        return reply

    def StopJob(self, request: nm_pb2.StopJobRequest, conn: Any) -> common_pb2.Empty:
        """Stop a job's supervisor here."""
        assert self.jobs is not None
        self.jobs.stop(request.job_id)
        return common_pb2.Empty()

    async def _report_job(self, request: gcs_pb2.ReportJobRequest) -> None:
        assert self._gcs is not None
        try:
            await self._gcs.call(methods.Gcs.ReportJob, request)
        except (ConnectionLost, RemoteError, asyncio.TimeoutError) as exc:
            logger.warning("could not report job=%s to the GCS: %s", request.job_id.hex(), exc)

    def _hold(self, need: rs.Fixed) -> bool:
        """Take ``need`` from the free resources if it fits now (a job's entrypoint)."""
        if not rs.fits(self.available, need):
            return False
        rs.subtract(self.available, need)
        self._idle_since = None
        return True

    def _awaits_view_of_target(self, pending: _LeaseRequest, others: list[gcs_pb2.NodeInfo]) -> bool:
        """A soft node affinity to a node missing from the view (one that just joined,
        which the view learns of at the next report): look again once before running it
        elsewhere, as a hard affinity's refusal does."""
        req = pending.request
        if (req.strategy != nm_pb2.SCHEDULING_STRATEGY_NODE_AFFINITY or not req.affinity_soft
                or req.affinity_node_id in (b"", self.node_id)
                or any(n.node_id == req.affinity_node_id for n in others)):
            return False
        if pending.view_asked is None:
            pending.view_asked = self._view_version
            self._refresh_view()
            return True
        return self._view_version <= pending.view_asked

    def _release_held(self, held: rs.Fixed) -> None:
        rs.add(self.available, held)
        if self.pool is not None:
            self._schedule()
        self._changed()

    async def _maintain_loop(self) -> None:
        assert self.pool is not None
        while True:
            await asyncio.sleep(0.5)
            for worker in self.pool.maintain():
                await self._retire(worker)
            if self.jobs is not None:
                self.jobs.reap()
            if self.client_sessions is not None:
                self.client_sessions.reap()
            self.pool.ensure(0)
            if self.pool.startup_failures >= 3:
                self._fail_queue(
                    "workers fail to start on this node (3 in a row); see " + self.pool.last_failure_log
                )

    async def _retire(self, worker: Worker) -> None:
        """Ask an idle worker to exit; it declines while it owns objects in use."""
        assert self.pool is not None
        try:
            reply = await worker.conn.call(
                methods.CoreWorker.Exit, core_worker_pb2.ExitRequest(reason="idle"), timeout=5.0
            )
            accepted = reply.accepted
        except (ConnectionLost, RemoteError, asyncio.TimeoutError):
            accepted = True  # gone already, or unresponsive: end it
            self.pool.kill(worker, "unresponsive while idle")
        worker.retiring = False
        if not accepted:
            worker.idle_since = time.monotonic()  # ask again after another idle period
        self._schedule()

    # -- leases -------------------------------------------------------------------
    async def RequestWorkerLease(self, request: nm_pb2.LeaseRequest, conn: Any) -> nm_pb2.LeaseReply:
        """Wait for a worker lease, a spillback to another node, or a rejection."""
        client = self._client(conn)
        pending = _LeaseRequest(request, client)
        if request.strategy == nm_pb2.SCHEDULING_STRATEGY_SPREAD:
            pending.spread_turn = self._spread_turn
            self._spread_turn += 1
        self._queue.append(pending)
        self._schedule()
        try:
            return await pending.future
        except asyncio.CancelledError:
            if pending.future.done() and not pending.future.cancelled():
                reply = pending.future.result()
                if reply.lease_id in self._leases:  # granted as the caller went away
                    self._return(self._leases[reply.lease_id], failed=False)
            raise
        finally:
            if pending in self._queue:
                self._queue.remove(pending)

    def _warn_infeasible(self, pending: _LeaseRequest) -> None:
        if pending.warned or any(bundles.is_group_resource(k) for k in pending.placement):
            return  # a placement group's: the GCS warns about the group
        assert self._gcs is not None
        if any(rs.fits(rs.to_fixed(t.amounts), pending.placement) for t in self._gcs.launchable):
            return  # the autoscaler can add a node for it: waiting, not infeasible
        pending.warned = True
        wanted = rs.describe(rs.to_float(pending.placement))
        largest = rs.describe(
            {
                k: v
                for k, v in rs.to_float(self.total).items()
                if not k.startswith("node:") and k not in ("memory", "object_store_memory")
            }
        )
        largest = "no resources" if largest == "{}" else largest
        what = pending.request.description or "a task"
        message = (
            f"{what} requires {wanted}, which no node in the cluster has (this node offers {largest}). "
            "It stays pending until a node with these resources joins; lower the request "
            "or add such a node."
        )
        logger.warning(message)
        pending.client.conn.notify(
            methods.CoreWorker.LeaseWarning,
            core_worker_pb2.LeaseWarningNotice(message=message, request_id=pending.request.request_id),
        )

    def _schedule(self) -> None:
        assert self.pool is not None
        waiting = [0, 0]  # requests that fit but wait for a worker: [tasks', actors']
        others = self._others()
        # What is free once the requests waiting for a starting worker have theirs: a
        # worker is started per request that fits, not per request queued.
        free = dict(self.available)
        # Depth first: tasks' requests (their children) before drivers', in order.
        for pending in sorted(self._queue, key=lambda p: not p.request.nested):
            if pending.future.done():
                self._queue.remove(pending)
                continue
            req = pending.request
            if self.refused_for_removed_group(pending):
                continue
            if self._awaits_view_of_target(pending, others):
                continue
            if self.draining:
                # Nothing new here: another node, or wait until this one is gone.
                if req.no_spill:
                    req = nm_pb2.LeaseRequest()
                    req.CopyFrom(pending.request)
                    req.no_spill = False
                decision = decide(req, pending.placement, self.node_id, {}, {}, others, pending.spread_turn)
                if decision.verdict is Verdict.GRANT:  # it needs no resources: any other node
                    decision = Decision(Verdict.SPILL, others[0]) if others else Decision(Verdict.WAIT)
                elif decision.verdict is Verdict.INFEASIBLE:
                    # No other node can take it: wait here (no warning); when this node
                    # goes, the submitter asks again.
                    decision = Decision(Verdict.WAIT)
            else:
                decision = decide(req, pending.placement, self.node_id, free, self.total, others, pending.spread_turn)
            if decision.verdict is Verdict.SPILL:
                self._queue.remove(pending)
                target = decision.node
                assert target is not None
                self._spilled.setdefault(target.node_id, []).append((time.monotonic(), pending.placement))
                others = self._others()
                full = next((n for n in self._cluster if n.node_id == target.node_id), target)
                pending.future.set_result(nm_pb2.LeaseReply(spillback=full))
                continue
            if decision.verdict is Verdict.REJECT:
                if pending.view_asked is None:
                    # The view may predate a node that just joined: look again first.
                    pending.view_asked = self._view_version
                    self._refresh_view()
                    continue
                if self._view_version <= pending.view_asked:
                    continue  # not refreshed yet
                self._queue.remove(pending)
                pending.future.set_result(nm_pb2.LeaseReply(rejection=decision.rejection, reason=decision.reason))
                continue
            if decision.verdict is Verdict.INFEASIBLE:
                self._warn_infeasible(pending)
                continue
            if decision.verdict is Verdict.WAIT:
                continue
            if not self.gpus.fits(pending.shape.get("GPU", 0)):
                continue  # GPUs enough in all, but not whole ones: wait for some to come back
            worker = self.pool.pop_idle(req.job_id, req.runtime_env_hash, fresh=req.for_actor)
            rs.subtract(free, pending.shape)
            if worker is None:
                waiting[req.for_actor] += 1
                continue
            self._next_lease += 1
            lease = _Lease(self._next_lease, worker, pending.shape, pending.client, req)
            lease.gpu_ids = self.gpus.assign(pending.shape.get("GPU", 0)) or []
            rs.subtract(self.available, pending.shape)
            self._idle_since = None
            self._leases[lease.lease_id] = lease
            pending.client.leases.add(lease.lease_id)
            worker.lease, worker.hosts_actor = lease, req.for_actor
            worker.machine.transition(WorkerState.LEASED)
            self._queue.remove(pending)
            address = common_pb2.Address(node_id=self.node_id, worker_id=worker.worker_id, endpoint=worker.endpoint)
            pending.future.set_result(nm_pb2.LeaseReply(lease_id=lease.lease_id, worker=address, gpu_ids=lease.gpu_ids))
        if any(waiting):  # task workers only up to the cap (those blocked in get not counted)
            self.pool.ensure(waiting[1] + min(waiting[0], self.pool.task_room()))
        self._changed()

    def _fail_queue(self, reason: str) -> None:
        assert self.pool is not None
        for pending in self._queue:
            if not pending.future.done():
                pending.future.set_result(nm_pb2.LeaseReply(rejection=nm_pb2.LEASE_REJECTION_NODE_FAILED, reason=reason))
        self._queue.clear()
        self.pool.startup_failures = 0

    def _end_lease(self, lease: _Lease) -> None:
        if self._leases.pop(lease.lease_id, None) is None:
            return
        shape = dict(lease.shape)
        if lease.cpu_released:
            shape.pop("CPU", None)
        rs.add(self.available, shape)
        self.gpus.release(lease.gpu_ids, lease.shape.get("GPU", 0))
        lease.holder.leases.discard(lease.lease_id)
        lease.worker.lease = None

    def _return(self, lease: _Lease, failed: bool) -> None:
        assert self.pool is not None
        self._end_lease(lease)
        worker = lease.worker
        if failed:
            self.pool.kill(worker, "its lease holder reported it failed")
        elif worker.state is WorkerState.LEASED:
            worker.machine.transition(WorkerState.IDLE)
            worker.idle_since = time.monotonic()
            worker.blocked = False
        self._schedule()

    def ReturnWorker(self, request: nm_pb2.ReturnWorkerRequest, conn: Any) -> common_pb2.Empty:
        """The lease holder is done with its worker."""
        lease = self._leases.get(request.lease_id)
        if lease is not None and lease.holder is self._client(conn):
            self._return(lease, request.worker_failed)
        return common_pb2.Empty()

    def CancelLease(self, request: nm_pb2.CancelLeaseRequest, conn: Any) -> common_pb2.Empty:
        """Withdraw a queued lease request."""
        client = self._client(conn)
        for pending in self._queue:
            if pending.client is client and pending.request.request_id == request.request_id:
                if not pending.future.done():
                    pending.future.set_result(
                        nm_pb2.LeaseReply(rejection=nm_pb2.LEASE_REJECTION_CANCELLED, reason="cancelled")
                    )
                    self._changed()  # its demand is gone from the next report
        return common_pb2.Empty()

    def NotifyBlocked(self, request: nm_pb2.BlockedNotice, conn: Any) -> common_pb2.Empty:
        """A leased worker blocks in ``get`` (its CPU is lent out) or resumes."""
        worker = self._client(conn).worker
        lease = worker.lease if worker is not None else None
        if lease is None:
            return common_pb2.Empty()
        cpu, worker.blocked = lease.shape.get("CPU", 0), request.blocked
        if request.blocked and not lease.cpu_released:
            lease.cpu_released = True
            self.available["CPU"] = self.available.get("CPU", 0) + cpu
            self._schedule()
        elif not request.blocked and lease.cpu_released:
            lease.cpu_released = False
            self.available["CPU"] = self.available.get("CPU", 0) - cpu
            self._changed()
        return common_pb2.Empty()

    def ShutdownNode(self, request: nm_pb2.ShutdownNodeRequest, conn: Any) -> common_pb2.Empty:
        """Stop the node manager soon after replying."""
        logger.info("shutdown requested: %s", request.reason)
        asyncio.get_running_loop().call_later(0.01, self.shutdown_requested.set)
        return common_pb2.Empty()
