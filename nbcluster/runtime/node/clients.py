"""The node manager's clients: the processes registered with it (drivers, workers,
the GCS), and what happens when one goes — its queued lease requests are cancelled,
the workers it leased are killed, its pins released and the objects it owned freed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nbcluster.runtime.credentials import SCOPE_CLUSTER, SCOPE_DRIVER
from nbcluster.runtime.node import resources as rs
from nbcluster.runtime.node.worker_pool import Worker
from nbcluster.runtime.protocol import common_pb2
from nbcluster.runtime.protocol import node_manager_pb2 as nm_pb2
from nbcluster.runtime.transport.errors import RemoteError

if TYPE_CHECKING:
    from nbcluster.runtime.node.worker_pool import WorkerPool
    from nbcluster.runtime.objects.store import ObjectStore
    from nbcluster.runtime.session import Session


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
    session: "Session"
    total: rs.Fixed
    store: "ObjectStore | None"
    pool: "WorkerPool | None"
    _clients: dict[bytes, Client]
    _queue: list[Any]
    _leases: dict[int, Any]
    _relay: Any
    client_sessions: Any

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
        return nm_pb2.RegisterClientReply(
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

    def _on_client_closed(self, client: Client) -> None:
        assert self.pool is not None and self.store is not None
        self._clients.pop(client.worker_id, None)
        for request in self._queue:
            if request.client is client and not request.future.done():
                request.future.cancel()
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
