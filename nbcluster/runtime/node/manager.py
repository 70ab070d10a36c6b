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

This module holds the lifecycle and the job glue; its sibling modules the rest,
mixed into :class:`NodeManager`: ``leases.py`` (the lease queue), ``bundles.py`` (placement group
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
from nbcluster.runtime.node.leases import LeaseHandlers, Lease, PendingLease
from nbcluster.runtime.node.memory_monitor import MemoryHandlers
from nbcluster.runtime.node.objects import ObjectHandlers
from nbcluster.runtime.node.options import NodeOptions, default_object_store_memory, node_resources
from nbcluster.runtime.node.reports import NodeReports
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
from nbcluster.runtime.transport import framed, is_framed, methods, relay
from nbcluster.runtime.transport.errors import ConnectionLost, RemoteError
from nbcluster.runtime.transport.grpc_carrier import GrpcServer

logger = logging.getLogger(__name__)


class NodeManager(
    LeaseHandlers,  # first: the other mixins declare its methods they call
    BundleHandlers,
    ClientHandlers,
    ClusterView,
    MemoryHandlers,
    NodeReports,
    ObjectHandlers,
    NodeDrain,
    HandoffHandlers,
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
        self._leases: dict[int, Lease] = {}
        self._next_lease = 0
        self._queue: list[PendingLease] = []
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
            start_method=self.config.worker_start_method,
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
        """Unregister, end workers and job supervisors, close the store and servers
        (the store and servers also when ending the processes fails)."""
        for task in self._tasks:
            task.cancel()
        try:
            await self._end_processes()
        finally:
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

    async def _end_processes(self) -> None:
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

    def ShutdownNode(self, request: nm_pb2.ShutdownNodeRequest, conn: Any) -> common_pb2.Empty:
        """Stop the node manager soon after replying."""
        logger.info("shutdown requested: %s", request.reason)
        asyncio.get_running_loop().call_later(0.01, self.shutdown_requested.set)
        return common_pb2.Empty()
