"""The node manager's clients: the processes registered with it (drivers, workers,
the GCS), and what happens when one goes — its queued lease requests are cancelled,
the workers it leased are killed, its pins released and the objects it owned freed.

The GCS is the exception: the workers it leased are actors', which must outlive a
head that restarts. When its connection goes, they are kept for
``gcs_reconnect_timeout_s``; the next GCS to register takes them over (the reply
lists them), and only if none comes are they killed.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from nbcluster.runtime.credentials import SCOPE_CLUSTER, SCOPE_DRIVER
from nbcluster.runtime.node import resources as rs
from nbcluster.runtime.node.worker_pool import Worker
from nbcluster.runtime.protocol import common_pb2
from nbcluster.runtime.protocol import node_manager_pb2 as nm_pb2
from nbcluster.runtime.transport.errors import RemoteError

if TYPE_CHECKING:
    from nbcluster.runtime.config import RuntimeConfig
    from nbcluster.runtime.node.worker_pool import WorkerPool
    from nbcluster.runtime.objects.store import ObjectStore
    from nbcluster.runtime.session import Session

logger = logging.getLogger(__name__)


class Client:
    """A process registered with this node manager: a driver, a worker or the GCS."""

    __slots__ = ("kind", "worker_id", "pid", "job_id", "conn", "leases", "pins", "worker")

    def __init__(self, request: nm_pb2.RegisterClientRequest, conn: Any) -> None:
        self.kind = request.kind
        self.worker_id = request.address.worker_id
        self.pid = request.pid
        self.job_id = request.job_id
        self.conn = conn
        self.leases: set[int] = set()
        self.pins: dict[bytes, int] = {}
        self.worker: Worker | None = None


class ClientHandlers:
    """Mixed into NodeManager (which provides the attributes below)."""

    node_id: bytes
    config: "RuntimeConfig"
    session: "Session"
    total: rs.Fixed
    store: "ObjectStore | None"
    pool: "WorkerPool | None"
    _clients: dict[bytes, Client]
    _queue: list[Any]
    _leases: dict[int, Any]
    _relay: Any
    client_sessions: Any
    #: GCS connections that went with actors' leases still held, each with the timer
    #: that kills those workers unless a GCS registers (and takes them) first.
    _gcs_gone: dict[Client, asyncio.TimerHandle] | None = None

    def _schedule(self) -> None:  # pragma: no cover - provided by NodeManager
        raise NotImplementedError

    def _end_lease(self, lease: Any) -> None:  # pragma: no cover - provided by NodeManager
        raise NotImplementedError

    def _changed(self) -> None:  # pragma: no cover - provided by NodeManager
        raise NotImplementedError

    def RegisterClient(self, request: nm_pb2.RegisterClientRequest, conn: Any) -> nm_pb2.RegisterClientReply:
        """A local process introduces itself; a worker becomes leasable."""
        assert self.pool is not None and self.store is not None
        if request.kind == nm_pb2.CLIENT_KIND_GCS and getattr(conn, "scope", SCOPE_DRIVER) != SCOPE_CLUSTER:
            raise RemoteError(common_pb2.ERROR_CODE_PERMISSION_DENIED, "only the head registers as the GCS")
        client = Client(request, conn)
        conn.state["client"] = client
        previous = self._clients.get(client.worker_id)
        self._clients[client.worker_id] = client
        conn.on_close(lambda _c: self._on_client_closed(client))
        if request.kind == nm_pb2.CLIENT_KIND_WORKER:
            worker = self.pool.registered(client.worker_id, conn, request.address.endpoint)
            if worker is None:
                raise RemoteError(common_pb2.ERROR_CODE_NOT_FOUND, "unknown worker id")
            client.worker = worker
            self._schedule()
        elif request.kind == nm_pb2.CLIENT_KIND_DRIVER and self.client_sessions is not None:
            self.client_sessions.registered(client.worker_id)
        adopted = []
        if request.kind == nm_pb2.CLIENT_KIND_GCS:
            still_open = previous if previous is not None and previous.kind == request.kind else None
            adopted = self._hand_over_actor_leases(client, still_open)
        return nm_pb2.RegisterClientReply(
            adopted=adopted,
            node_id=self.node_id,
            arena_path=str(self.store.arena_path),
            arena_size=self.store.capacity,
            session_dir=str(self.session.dir),
            total=common_pb2.ResourceSet(amounts=rs.to_float(self.total)),
            relay_endpoint=self._relay.endpoint if self._relay is not None else "",
        )

    def _client(self, conn: Any) -> Client:
        client = conn.state.get("client")
        if client is None:
            raise RemoteError(common_pb2.ERROR_CODE_INVALID_ARGUMENT, "call RegisterClient first")
        return client

    def _hand_over_actor_leases(self, gcs: Client, previous: Client | None) -> list[nm_pb2.AdoptedLease]:
        """A GCS registered: the leases earlier GCS connections held are its now
        (``previous``, a connection that still looks open, is a head that is gone:
        one runs at a time)."""
        adopted = []
        gone = self._gcs_gone or {}
        for old in [*gone, *([previous] if previous is not None else [])]:
            timer = gone.pop(old, None)
            if timer is not None:
                timer.cancel()
            for lease_id in old.leases:
                lease = self._leases.get(lease_id)
                if lease is not None:
                    lease.holder = gcs
                    gcs.leases.add(lease_id)
                    adopted.append(nm_pb2.AdoptedLease(lease_id=lease_id, worker_id=lease.worker.worker_id))
            old.leases = set()
        if adopted:
            logger.info("a GCS registered: it holds the %d actor worker lease(s) kept for it", len(adopted))
        return adopted

    def _keep_actor_leases(self, gcs: Client) -> None:
        """The GCS's connection went: keep its actors' workers for the next GCS."""
        if self._gcs_gone is None:
            self._gcs_gone = {}
        wait = self.config.gcs_reconnect_timeout_s
        logger.warning("the GCS disconnected: keeping %d actor worker(s) for %.0f s for the head to come back",
                       len(gcs.leases), wait)
        self._gcs_gone[gcs] = asyncio.get_running_loop().call_later(wait, self._gcs_stayed_away, gcs)

    def _gcs_stayed_away(self, gcs: Client) -> None:
        assert self.pool is not None
        if self._gcs_gone is None or self._gcs_gone.pop(gcs, None) is None:
            return
        for lease_id in list(gcs.leases):
            lease = self._leases.get(lease_id)
            if lease is not None:
                self.pool.kill(lease.worker, "no head came back to hold its actor")
        self._schedule()

    def _on_client_closed(self, client: Client) -> None:
        assert self.pool is not None and self.store is not None
        replaced = self._clients.get(client.worker_id) is not client  # a GCS registered again
        if not replaced:
            self._clients.pop(client.worker_id, None)
        for request in self._queue:
            if request.client is client and not request.future.done():
                request.future.cancel()
        if client.kind == nm_pb2.CLIENT_KIND_GCS and (client.leases or replaced):
            self.store.release_all(client.pins)
            if client.leases:
                self._keep_actor_leases(client)
            self._schedule()
            return
        for lease_id in list(client.leases):
            lease = self._leases.get(lease_id)
            if lease is not None:
                # The holder is gone: whatever the worker runs for it is orphaned.
                self.pool.kill(lease.worker, "its lease holder disconnected")
        self.store.release_all(client.pins)
        self.store.free_owner(client.worker_id)
        if client.worker is not None:
            self.pool.dead(client.worker, "disconnected")
        elif client.kind == nm_pb2.CLIENT_KIND_DRIVER and client.job_id:
            # Idle workers of the job go; leased ones end with their lease holders
            # (detached actors, leased by the GCS, outlive the driver).
            self.pool.kill_idle_of_job(client.job_id, "its driver exited")
        self._schedule()

    def _on_worker_dead(self, worker: Worker, reason: str) -> None:
        assert self.store is not None
        lease = worker.lease
        if lease is not None:
            self._end_lease(lease)
        self.store.free_owner(worker.worker_id)
        self._changed()
