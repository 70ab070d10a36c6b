"""The GCS service: node table (``nodes.py``), job table, KV and event pub/sub.

Served on the framed carrier (processes on the head's machine) and on gRPC (other
machines). A node manager or driver connected over the framed carrier is watched
through its connection: when the connection closes, the node is dead or the driver
has exited.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nbcluster._version import __version__
from nbcluster.runtime import tls
from nbcluster.runtime.config import RuntimeConfig
from nbcluster.runtime.credentials import Verifier, driver_token
from nbcluster.runtime.gcs.actor_recovery import ActorRecovery
from nbcluster.runtime.gcs.actors import ActorManager
from nbcluster.runtime.gcs.health import HealthChecker
from nbcluster.runtime.gcs.job_table import JobTable
from nbcluster.runtime.gcs.nodes import NodeService, _Node
from nbcluster.runtime.gcs.placement_groups import PlacementGroupManager, PlacementGroupService
from nbcluster.runtime.gcs.pubsub import EventLog
from nbcluster.runtime.gcs.store import GcsStore
from nbcluster.runtime.gcs.tasks import TaskTable
from nbcluster.runtime.jobs.manager import JobManager
from nbcluster.runtime.private_dir import make_private_dir, touch_private
from nbcluster.runtime.protocol import common_pb2, gcs_pb2
from nbcluster.runtime.session import Session
from nbcluster.runtime.states import NodeState
from nbcluster.runtime.transport import framed, methods
from nbcluster.runtime.transport.errors import RemoteError
from nbcluster.runtime.transport.grpc_carrier import GrpcServer

if TYPE_CHECKING:
    from nbcluster.runtime.autoscaler.config import AutoscalingConfig
    from nbcluster.runtime.autoscaler.reconcile import Autoscaler

logger = logging.getLogger(__name__)

#: Where ``request_resources``' last request is kept (the store's KV table, a system namespace).
_REQUESTS_NS, _REQUESTS_KEY = "_nbcluster_autoscaler", b"resource_request"


class GcsServer(NodeService, PlacementGroupService):
    """The head's control store. ``start()`` returns once both carriers listen."""

    def __init__(
        self,
        session: Session,
        token: str,
        config: RuntimeConfig,
        host: str = "127.0.0.1",
        port: int = 0,
        autoscaling: AutoscalingConfig | None = None,
        jobs_host: str = "127.0.0.1",
        jobs_port: int | None = 0,
    ) -> None:
        self.session = session
        self.config = config
        self.token = token
        self.verifier = Verifier(token)
        #: What the GCS presents to drivers and workers (they accept only this).
        self.driver_token = driver_token(token)
        self._host = host
        self._port = port
        self.node_id = b""
        self.head_node_id = b""
        self.start_time = time.time()
        self.events = EventLog(config.event_retention)
        self._nodes: dict[bytes, _Node] = {}
        self._store: GcsStore | None = None
        self._framed: framed.FramedServer | None = None
        self._grpc: Any = None
        self._dispatcher: framed.Dispatcher | None = None
        self.address = ""
        self.local_endpoint = session.endpoint("gcs")
        self.stopped = asyncio.Event()
        #: Set first thing in stop(): connections the GCS closes itself then are not deaths
        #: (of nodes or actors) to record — a head started again takes them back.
        self.stopping = asyncio.Event()
        self.shutdown_requested = asyncio.Event()
        self.tasks = TaskTable(config.task_table_size, self.events)
        self.job_table = JobTable(self.events, self.tasks, self.stopping)
        self.actors = ActorManager(self)
        self.actor_recovery = ActorRecovery(self.actors)
        self.placement_groups = PlacementGroupManager(self)
        self.job_table.on_finish.append(self.placement_groups.job_finished)
        self.health = HealthChecker(
            config,
            token,
            # Node managers connected over a local socket are watched through it. A node
            # is checked once its node manager has started (its first report), or
            # startup_timeout_s after it registered if it never reports.
            lambda: [
                (n.info, n.started if n.started is not None else n.registered + config.startup_timeout_s, n.last_seen)
                for n in self._nodes.values()
                if n.machine.state is not NodeState.DEAD and not n.local
            ],
            self._mark_dead,
        )
        self.jobs = JobManager(self.job_table, self)
        self._jobs_host = jobs_host
        self._jobs_port = jobs_port
        self._http: Any = None
        self.jobs_address = ""
        self.identity: tls.Identity | None = None
        self.autoscaler: Autoscaler | None = None
        if autoscaling is not None:
            # Loaded only for a cluster that autoscales (the providers and YAML cost every
            # head ~40 ms at start, on the path of init()).
            from nbcluster.runtime.autoscaler.reconcile import Autoscaler

            self.autoscaler = Autoscaler(autoscaling, self)

    # -- lifecycle ----------------------------------------------------------------
    async def start(self) -> None:
        """Open the store, recover its tables, serve both carriers (and the Jobs API), write
        the session's ``address.json`` and start the health checks and the autoscaler."""
        self._store = GcsStore(self._store_path())
        self._recover()
        dispatcher = self._dispatcher = framed.Dispatcher()
        dispatcher.register("Gcs", self)
        local = common_pb2.Address(endpoint=self.local_endpoint)
        self._framed = framed.FramedServer(self.local_endpoint, self.token, dispatcher, local)
        await self._framed.start()
        self.identity = self.session.read_identity()  # a TLS cluster's (tls.py)
        self._grpc = GrpcServer(
            self._host, self._port, self.token, {"Gcs": self}, dispatcher.served, identity=self.identity
        )
        port = await self._grpc.start()
        self.address = f"{self._host}:{port}"
        if self._jobs_port is not None:
            # Loaded only for a head that serves the Jobs API (tornado: ~25 ms at start).
            from nbcluster.runtime.jobs import http as jobs_http

            self._http, jobs_port = jobs_http.serve(
                self.jobs, self.verifier, self.identity, self._jobs_host, self._jobs_port
            )
            # host:port, or an https:// URL when the cluster uses TLS.
            scheme = "https://" if self.identity is not None else ""
            self.jobs_address = f"{scheme}{self._jobs_host}:{jobs_port}"
        self.session.write_address(
            {
                "gcs_address": self.address,
                "jobs_address": self.jobs_address,
                "local_endpoint": self.local_endpoint,
                "head_pid": os.getpid(),
                "session_dir": str(self.session.dir),
                "hostname": socket.gethostname(),
                "version": __version__,
            }
        )
        self.health.start()
        await self.placement_groups.start()
        if self.autoscaler is not None:
            await self.autoscaler.start()
        logger.info("GCS serving on %s and %s", self.address, self.local_endpoint)

    def _store_path(self) -> Path:
        """The GCS database: in the session, or in ``gcs_storage_dir`` (which outlives it)."""
        if not self.config.gcs_storage_dir:
            return self.session.private_file(self.session.gcs_db)
        fix = "Remove it, or set gcs_storage_dir to a directory of your own"
        directory = make_private_dir(self.config.gcs_storage_dir, fix)
        return touch_private(directory / self.session.gcs_db.name, fix)

    async def stop(self) -> None:
        """Stop the autoscaler, the health checks, the Jobs API and both carriers; close the store."""
        self.stopping.set()
        if self.autoscaler is not None:
            await self.autoscaler.stop()
        self.health.stop()
        if self._http is not None:
            self._http.stop()
            await self._http.close_all_connections()
        self.actors.stop()
        self.placement_groups.stop()
        self.tasks.close()
        self.events.close()
        if self._framed is not None:
            await self._framed.stop()
        if self._grpc is not None:
            await self._grpc.stop(0)
        if self._store is not None:
            self._store.close()
        self.stopped.set()

    def _recover(self) -> None:
        assert self._store is not None
        self._recover_nodes(self._store)
        self.actor_recovery.recover(self._store)
        for job in self.job_table.recover(self._store):
            self.actor_recovery.watch_driver(job)
        self.placement_groups.recover(self._store)
        requested = self._store.kv_get(_REQUESTS_NS, _REQUESTS_KEY)
        if requested and self.autoscaler is not None:
            self.autoscaler.request_resources(json.loads(requested))

    # -- nodes --------------------------------------------------------------------
    def _launchable(self) -> list[common_pb2.ResourceSet]:
        launchable = self.autoscaler.launchable() if self.autoscaler is not None else []
        return [common_pb2.ResourceSet(amounts=r) for r in launchable]

    def _wake_autoscaler(self) -> None:
        """Resources or membership changed: the autoscaler, pending jobs and placement groups look again."""
        if self.autoscaler is not None:
            self.autoscaler.wake()
        self.jobs.place()
        self.placement_groups.wake()

    def store_actor(self, info: gcs_pb2.ActorInfo) -> None:
        """Write an actor's row to the store (not once the GCS is stopping)."""
        if self._store is not None and not self.stopping.is_set():
            self._store.put_actor(info)

    # -- jobs ---------------------------------------------------------------------
    def RegisterJob(self, request: gcs_pb2.RegisterJobRequest, conn: Any) -> gcs_pb2.RegisterJobReply:
        """A driver connected: its job (``job_table.py``)."""
        info = self.job_table.register(request.job, conn)
        return gcs_pb2.RegisterJobReply(
            job_id=info.job_id, session_dir=str(self.session.dir), head_node_id=self.head_node_id
        )

    def FinishJob(self, request: gcs_pb2.FinishJobRequest, conn: Any) -> common_pb2.Empty:
        """A driver finished its job."""
        self.job_table.finish_request(request)
        return common_pb2.Empty()

    # -- for the job manager (jobs.manager.JobHost) -------------------------------------
    async def node_connection(self, node: gcs_pb2.NodeInfo) -> Any:
        """A connection to ``node``'s node manager."""
        return await self.actors.node_connection(node)

    def job_progress(self, job_id: bytes) -> dict[str, int]:
        """The task counts of ``job_id`` and its number of live actors."""
        progress = self.tasks.progress(job_id)
        progress["actors"] = sum(
            1 for a in self.actors.list() if a.job_id == job_id and a.state != gcs_pb2.ACTOR_STATE_DEAD
        )
        return progress

    def kv_get(self, namespace: str, key: bytes) -> bytes | None:
        """The value of ``key`` in ``namespace``, None if unset."""
        assert self._store is not None
        return self._store.kv_get(namespace, key)

    def kv_delete_prefix(self, namespace: str, prefix: bytes) -> None:
        """Delete the keys of ``namespace`` that start with ``prefix``."""
        assert self._store is not None
        self._store.kv_del(namespace, prefix, True)

    def kv_put(self, namespace: str, key: bytes, value: bytes) -> None:
        """Set ``key`` in ``namespace`` to ``value`` (overwriting)."""
        assert self._store is not None
        self._store.kv_put(namespace, key, value, True)

    def ReportJob(self, request: gcs_pb2.ReportJobRequest, conn: Any) -> gcs_pb2.ReportJobReply:
        """A job supervisor's report (``jobs/manager.py``)."""
        return self.jobs.report(request)

    def GetAllJobs(self, request: gcs_pb2.GetAllJobsRequest, conn: Any) -> gcs_pb2.GetAllJobsReply:
        """Every job, with task counts."""
        return self.job_table.all_jobs()

    def UpdateJobMetadata(
        self, request: gcs_pb2.UpdateJobMetadataRequest, conn: Any
    ) -> gcs_pb2.UpdateJobMetadataReply:
        """Set keys of a running job's metadata (``job_table.py``)."""
        return self.job_table.update_metadata(request)

    # -- KV -----------------------------------------------------------------------
    def KvPut(self, request: gcs_pb2.KvPutRequest, conn: Any) -> gcs_pb2.KvPutReply:
        """Set a key of the KV store."""
        assert self._store is not None
        added = self._store.kv_put(request.namespace, request.key, request.value, request.overwrite)
        return gcs_pb2.KvPutReply(added=added)

    def KvGet(self, request: gcs_pb2.KvGetRequest, conn: Any) -> gcs_pb2.KvGetReply:
        """Read a key of the KV store."""
        assert self._store is not None
        value = self._store.kv_get(request.namespace, request.key)
        return gcs_pb2.KvGetReply(found=value is not None, value=value or b"")

    def KvDel(self, request: gcs_pb2.KvDelRequest, conn: Any) -> gcs_pb2.KvDelReply:
        """Delete a key (or every key with a prefix) of the KV store."""
        assert self._store is not None
        return gcs_pb2.KvDelReply(deleted=self._store.kv_del(request.namespace, request.key, request.by_prefix))

    def KvKeys(self, request: gcs_pb2.KvKeysRequest, conn: Any) -> gcs_pb2.KvKeysReply:
        """The keys of a namespace with a prefix."""
        assert self._store is not None
        return gcs_pb2.KvKeysReply(keys=self._store.kv_keys(request.namespace, request.prefix))

    # -- events -------------------------------------------------------------------
    def Publish(self, request: gcs_pb2.PublishRequest, conn: Any) -> common_pb2.Empty:
        """Events from another process onto the event stream."""
        for event in request.events:
            self.events.append(event)
        return common_pb2.Empty()

    async def Watch(self, request: gcs_pb2.WatchRequest, conn: Any) -> AsyncIterator[gcs_pb2.Event]:
        """The event stream, from a cursor, as it grows."""
        async for event in self.events.watch(request):
            yield event

    # -- actors -------------------------------------------------------------------
    async def CreateActor(self, request: gcs_pb2.CreateActorRequest, conn: Any) -> gcs_pb2.CreateActorReply:
        """Register and place an actor (``actors.py``)."""
        return await self.actors.create(request)

    async def GetActorInfo(self, request: gcs_pb2.GetActorInfoRequest, conn: Any) -> gcs_pb2.GetActorInfoReply:
        """An actor's row, by id or by name."""
        return await self.actors.get(request)

    async def KillActor(self, request: gcs_pb2.KillActorRequest, conn: Any) -> common_pb2.Empty:
        """Kill an actor (and, if asked, do not restart it)."""
        await self.actors.kill(request)
        return common_pb2.Empty()

    def ListActors(self, request: gcs_pb2.ListActorsRequest, conn: Any) -> gcs_pb2.ListActorsReply:
        """Every actor's row."""
        return gcs_pb2.ListActorsReply(actors=self.actors.list())

    def ReportActorExit(self, request: gcs_pb2.ReportActorExitRequest, conn: Any) -> common_pb2.Empty:
        """An actor's worker says why it is exiting."""
        self.actors.report_exit(request)
        return common_pb2.Empty()

    # -- tasks --------------------------------------------------------------------
    def ReportTaskEvents(self, request: gcs_pb2.ReportTaskEventsRequest, conn: Any) -> common_pb2.Empty:
        """Task state changes, for the task table."""
        self.tasks.report(request)
        return common_pb2.Empty()

    def ListTasks(self, request: gcs_pb2.ListTasksRequest, conn: Any) -> gcs_pb2.ListTasksReply:
        """Rows of the task table."""
        return gcs_pb2.ListTasksReply(
            tasks=self.tasks.list(request.job_id, request.limit, request.task_ids), total=self.tasks.total
        )

    # -- cluster ------------------------------------------------------------------
    def GetClusterInfo(
        self, request: gcs_pb2.GetClusterInfoRequest, conn: Any
    ) -> gcs_pb2.GetClusterInfoReply:
        """The session, version, addresses and call counts of this GCS."""
        return gcs_pb2.GetClusterInfoReply(
            session_dir=str(self.session.dir),
            version=__version__,
            start_time=self.start_time,
            head_node_id=self.head_node_id,
            gcs_address=self.address,
            local_endpoint=self.local_endpoint,
            head_pid=os.getpid(),
            jobs_address=self.jobs_address,
            calls_served={
                m.name: self._dispatcher.served[m.index] for m in methods.methods_of("Gcs")
            },
        )

    # -- autoscaler -------------------------------------------------------------------
    def RequestResources(self, request: gcs_pb2.RequestResourcesRequest, conn: Any) -> common_pb2.Empty:
        """``request_resources``: demand the autoscaler keeps room for."""
        if self.autoscaler is None:
            raise RemoteError(
                common_pb2.ERROR_CODE_UNAVAILABLE,
                "this cluster has no autoscaler; start it with an autoscaling config "
                "(nbcluster start --head --autoscaling-config FILE, or init(autoscaling_config=...))",
            )
        bundles = [dict(b.amounts) for b in request.bundles]
        self.autoscaler.request_resources(bundles)
        if self._store is not None:  # a restarted head keeps room for it too (as Ray's GCS KV)
            self._store.kv_put(_REQUESTS_NS, _REQUESTS_KEY, json.dumps(bundles).encode(), overwrite=True)
        return common_pb2.Empty()

    def SetWorkerBounds(
        self, request: gcs_pb2.SetWorkerBoundsRequest, conn: Any
    ) -> gcs_pb2.SetWorkerBoundsReply:
        """Change a node type's min/max workers in the autoscaler."""
        if self.autoscaler is None:
            raise RemoteError(
                common_pb2.ERROR_CODE_UNAVAILABLE,
                "this cluster has no autoscaler, so its size is fixed; start one with an autoscaling config",
            )
        try:
            name = self.autoscaler.set_bounds(request.node_type, request.min_workers, request.max_workers)
        except ValueError as exc:
            raise RemoteError(common_pb2.ERROR_CODE_INVALID_ARGUMENT, str(exc)) from None
        return gcs_pb2.SetWorkerBoundsReply(node_type=name)

    def GetAutoscalerStatus(
        self, request: gcs_pb2.GetAutoscalerStatusRequest, conn: Any
    ) -> gcs_pb2.GetAutoscalerStatusReply:
        """The autoscaler's instances, plan and recent decisions."""
        if self.autoscaler is None:
            return gcs_pb2.GetAutoscalerStatusReply(enabled=False)
        return self.autoscaler.status()

    def IssueCertificate(
        self, request: gcs_pb2.IssueCertificateRequest, conn: Any
    ) -> gcs_pb2.IssueCertificateReply:
        """Sign a joining node's certificate request with the cluster's CA (a TLS cluster)."""
        ca_key = self.session.read_ca_key()
        if self.identity is None or not ca_key:
            reason = (
                "this cluster does not use TLS" if self.identity is None
                else "this cluster's CA is the user's (--tls-ca-file): start the node with its own "
                "--tls-cert-file and --tls-key-file"
            )
            raise RemoteError(common_pb2.ERROR_CODE_UNAVAILABLE, f"cannot issue a certificate: {reason}")
        try:
            cert = tls.issue(self.identity.ca_pem, ca_key, request.csr_pem)
        except tls.TlsError as exc:
            raise RemoteError(common_pb2.ERROR_CODE_INVALID_ARGUMENT, str(exc)) from None
        return gcs_pb2.IssueCertificateReply(cert_pem=cert, ca_pem=self.identity.ca_pem)

    def Shutdown(self, request: gcs_pb2.ShutdownRequest, conn: Any) -> common_pb2.Empty:
        """Stop the head soon after replying."""
        logger.info("shutdown requested: %s", request.reason)
        asyncio.get_running_loop().call_later(0.01, self.shutdown_requested.set)
        return common_pb2.Empty()
