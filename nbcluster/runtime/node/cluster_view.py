"""The node manager's view of the cluster: the other nodes, as the GCS last listed them.

The view decides where spillback may send work (:meth:`ClusterView._others`: alive,
reachable, not draining, less what was just spilled there), tells local processes
of nodes that died, and gives the addresses of other node managers (relays, object
pulls) and the RPCs about it (``GetClusterView``, ``Relay``, ``CheckHealth``).
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from nbcluster.runtime.node import resources as rs
from nbcluster.runtime.protocol import common_pb2, core_worker_pb2, gcs_pb2
from nbcluster.runtime.protocol import node_manager_pb2 as nm_pb2
from nbcluster.runtime.transport import methods, relay
from nbcluster.runtime.transport.errors import ConnectionLost, RemoteError
from nbcluster.runtime.transport.grpc_carrier import GrpcChannel

if TYPE_CHECKING:
    from nbcluster.runtime.node.gcs_link import GcsLink
    from nbcluster.runtime.node.worker_pool import WorkerPool

#: How long a spill counts against the target's free resources in this node's view.
SPILL_RESERVATION_S = 1.0


class ClusterView:
    """Mixed into NodeManager (which provides the attributes below)."""

    node_id: bytes
    pool: "WorkerPool | None"
    _gcs: "GcsLink | None"
    _token: str
    _cluster: list[gcs_pb2.NodeInfo]
    _view_version: int
    #: The view fetch under way (``_refresh_view``), and whether another is wanted.
    _refreshing: "asyncio.Task | None" = None
    _refresh_again = False
    _clients: dict[bytes, Any]
    _peers: dict[str, Any]
    _tasks: list[asyncio.Task]
    #: Resources recently sent to other nodes by spillback (node -> [(when, resources)]).
    _spilled: dict[bytes, list[tuple[float, rs.Fixed]]]

    def _schedule(self) -> None:  # pragma: no cover - provided by NodeManager
        raise NotImplementedError

    def _on_view(self, nodes: list[gcs_pb2.NodeInfo], fresh: bool = True) -> None:
        """A cluster view (``fresh``: the GCS's, not this node's edit of the last one):
        tell local processes of nodes that are gone, and look again at requests that
        may fit elsewhere now."""
        before = {n.node_id for n in self._cluster}
        self._cluster = nodes
        if fresh:
            self._view_version += 1
        gone = before - {n.node_id for n in nodes} - {self.node_id}
        for node_id in gone:
            notice = core_worker_pb2.NodeDiedNotice(node_id=node_id, reason="the GCS declared it dead")
            for client in list(self._clients.values()):
                if client.kind != nm_pb2.CLIENT_KIND_GCS and not client.conn.closed:
                    client.conn.notify(methods.CoreWorker.NodeDied, notice)
        if self.pool is not None:
            self._schedule()

    def _on_node_death(self, event: gcs_pb2.Event) -> None:
        """A node died (the GCS's event, ahead of the next heartbeat): it leaves the
        view at once."""
        if any(n.node_id == event.node_id for n in self._cluster):
            self._on_view([n for n in self._cluster if n.node_id != event.node_id], fresh=False)

    def _refresh_view(self) -> None:
        """Fetch the cluster view now (not waiting for the next heartbeat); while a
        fetch is under way, one more follows it."""
        if self._refreshing is not None:
            self._refresh_again = True
            return

        async def refresh() -> None:
            assert self._gcs is not None
            try:
                while True:
                    self._refresh_again = False
                    try:
                        reply = await self._gcs.call(methods.Gcs.GetAllNodes, gcs_pb2.GetAllNodesRequest())
                    except (ConnectionLost, RemoteError, asyncio.TimeoutError):
                        return
                    self._on_view([n for n in reply.nodes if n.state == gcs_pb2.NODE_STATE_ALIVE])
                    if not self._refresh_again:
                        return
            finally:
                self._refreshing = None

        task = self._refreshing = asyncio.get_running_loop().create_task(refresh())
        self._tasks.append(task)
        task.add_done_callback(self._tasks.remove)

    def _others(self) -> list[gcs_pb2.NodeInfo]:
        """Nodes work may go to: alive, reachable, not draining; their free resources
        less what was spilled to them since the view came."""
        out = []
        for node in self._cluster:
            if node.node_id == self.node_id or not node.address or node.draining:
                continue
            spilled = self._recent_spills(node.node_id)
            if spilled:
                free = rs.to_fixed(node.available.amounts)
                for amounts in spilled:
                    rs.subtract(free, amounts)
                node = gcs_pb2.NodeInfo(node_id=node.node_id, address=node.address, total=node.total)
                node.available.amounts.update(rs.to_float({k: max(0, v) for k, v in free.items()}))
            out.append(node)
        return out

    def _recent_spills(self, node_id: bytes) -> list[rs.Fixed]:
        """Spills to ``node_id`` its reports may not include yet."""
        entries = self._spilled.get(node_id)
        if not entries:
            return []
        horizon = time.monotonic() - SPILL_RESERVATION_S
        entries[:] = [e for e in entries if e[0] > horizon]
        return [amounts for _, amounts in entries]

    def node_address(self, node_id: bytes) -> str | None:
        """The gRPC address of ``node_id`` in the view (None: unknown or unreachable)."""
        for node in self._cluster:
            if node.node_id == node_id and node.address:
                return node.address
        return None

    def node_object_address(self, node_id: bytes) -> str | None:
        """The object port of ``node_id`` in the view (None: unknown or it has none)."""
        for node in self._cluster:
            if node.node_id == node_id and node.object_address:
                return node.object_address
        return None

    def peer(self, address: str) -> Any:
        """A gRPC channel to another node manager (relays, object pulls)."""
        channel = self._peers.get(address)
        if channel is None or channel.closed:
            channel = self._peers[address] = GrpcChannel(address, self._token)
        return channel

    async def GetClusterView(self, request: nm_pb2.GetClusterViewRequest, conn: Any) -> nm_pb2.GetClusterViewReply:
        """The alive nodes as this node last heard from the GCS; fetched from the GCS
        first when asked about a node the view lacks (one that just joined)."""
        if request.node_id:
            await self.know_of(request.node_id)
        return nm_pb2.GetClusterViewReply(nodes=self._cluster)

    async def know_of(self, node_id: bytes) -> None:
        """Make sure the view has ``node_id`` if it is alive: fetched from the GCS when
        it is missing (a node that joined since the last report)."""
        if not any(n.node_id == node_id for n in self._cluster):
            self._refresh_view()
            if self._refreshing is not None:
                await asyncio.shield(self._refreshing)

    async def Relay(self, requests: Any, ctx: Any) -> Any:
        """Carry a framed connection from another machine to a process here."""
        async for chunk in relay.serve(requests, ctx):
            yield chunk

    def CheckHealth(self, request: nm_pb2.CheckHealthRequest, conn: Any) -> nm_pb2.CheckHealthReply:
        """The GCS's health check: answers when this is the node it asks about."""
        if request.node_id and request.node_id != self.node_id:
            raise RemoteError(common_pb2.ERROR_CODE_NOT_FOUND, f"this is node {self.node_id.hex()}")
        return nm_pb2.CheckHealthReply()
