"""The core worker's connections to other processes: other drivers and workers
(dialed directly on this machine, through their node's relay elsewhere) and other
nodes' node managers; and what follows when a node dies.

A mixin of :class:`~nbcluster.runtime.core.core_worker.CoreWorker`: it uses the
core worker's address, tokens, dispatcher, loop and node manager connection.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from nbcluster.runtime import ids
from nbcluster.runtime.protocol import (
    common_pb2,
    core_worker_pb2 as cw_pb2,
    node_manager_pb2 as nm_pb2,
)
from nbcluster.runtime.transport import dial, framed, methods, relay
from nbcluster.runtime.transport.errors import ConnectionLost, RemoteError

logger = logging.getLogger(__name__)


class PeerConnections:
    """Connections to other core workers and node managers, opened on first use and
    reused; the cluster's view of which nodes are alive."""

    def _init_peers(self) -> None:
        self._nodes: dict[bytes, Any] = {}
        self.dead_nodes: set[bytes] = set()
        self._conns: dict[str, framed.Connection] = {}
        self._connecting: dict[str, asyncio.Future] = {}
        self._addresses: dict[bytes, common_pb2.Address] = {}

    def parse_address(self, raw: bytes) -> common_pb2.Address:
        """An Address from its serialized form (cached)."""
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
        """The open connection to ``endpoint``, or None."""
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
            # One this process has not heard of may have just joined: the node manager
            # asks the GCS when its own view lacks it too.
            reply = await self.nm.call(
                methods.NodeManager.GetClusterView, nm_pb2.GetClusterViewRequest(node_id=node_id)
            )
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
            # Shielded below: a caller that goes away (shutdown) leaves it unawaited.
            registered.add_done_callback(lambda f: f.cancelled() or f.exception())
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

