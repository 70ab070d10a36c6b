"""The GCS's node table: node managers register, report their load and die.

A node's row (and a digest of the secret its node manager registered with) is kept in
the GCS store. A restarted head recovers the rows of the nodes that were alive: each
waits for its node manager, which re-registers under the same id with the same secret
(proving it is the process that registered it) and goes on as before, with its
workers, actors and objects. Until then the node counts as alive, and the health
checks declare it dead if nothing answers at its address (a node that went down with
the head).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import socket
import time
from typing import TYPE_CHECKING, Any

from nbcluster.runtime import ids
from nbcluster.runtime.protocol import common_pb2, gcs_pb2
from nbcluster.runtime.protocol import node_manager_pb2 as nm_pb2
from nbcluster.runtime.states import NODE_TRANSITIONS, NodeState, StateMachine
from nbcluster.runtime.transport import framed, methods, relay
from nbcluster.runtime.transport.errors import ConnectionLost, RemoteError

if TYPE_CHECKING:
    import asyncio

    from nbcluster.runtime.gcs.actors import ActorManager
    from nbcluster.runtime.gcs.pubsub import EventLog
    from nbcluster.runtime.gcs.store import GcsStore
    from nbcluster.runtime.session import Session

logger = logging.getLogger(__name__)

EventKind = gcs_pb2.EventKind


def format_resources(res: dict[str, float]) -> str:
    """``{CPU: 2, GPU: 1}`` — the node-ip and memory entries left out."""
    shown = {k: v for k, v in res.items() if not k.startswith("node:") and k not in ("memory", "object_store_memory")}
    parts = [f"{k}: {v:g}" for k, v in sorted(shown.items())]
    return "{" + ", ".join(parts) + "}"


#: The cluster view's identity in this GCS run: node managers send it back with the
#: version of the view they hold, and get only what changed since (a head that
#: restarted has another, and sends the whole view).
VIEW_EPOCH = secrets.randbits(63) | 1


def secret_digest(secret: bytes) -> bytes:
    """What the GCS keeps of a node manager's secret (the store never holds the secret)."""
    return hashlib.sha256(secret).digest()


class _Node:
    __slots__ = ("info", "machine", "last_seen", "registered", "started", "local", "reported", "drain_reason",
                 "digest", "recovered", "conn", "view_version", "view_key")

    def __init__(self, info: gcs_pb2.NodeInfo, digest: bytes, recovered: bool = False) -> None:
        self.info = info
        #: The digest of the secret its node manager proves itself with.
        self.digest = digest
        #: Recovered from the store by a restarted head: its node manager has not
        #: re-registered yet.
        self.recovered = recovered
        self.machine = StateMachine(NODE_TRANSITIONS, NodeState.ALIVE)
        #: When the node manager last called (registered or reported): proof of life
        #: that the health checks weigh (health.py).
        self.last_seen = time.monotonic()
        self.registered = time.monotonic()
        #: When its first load report came (its node manager has started: health
        #: checks count from then); a recovered node's was before the restart.
        self.started: float | None = self.registered if recovered else None
        self.reported = time.monotonic()  # when its last load report arrived
        self.local = False  # registered over a local socket, whose closing is its death
        self.conn: Any = None  # that socket
        self.drain_reason = ""  # set when the autoscaler drained it
        #: The view version of its row's last change, and the row as last compared.
        self.view_version = 0
        self.view_key = b""

    def proves(self, secret: bytes) -> bool:
        """Whether ``secret`` is the one its node manager registered with."""
        return bool(self.digest) and hmac.compare_digest(self.digest, secret_digest(secret))


class NodeService:
    """The node RPCs of the Gcs service and the node table, mixed into GcsServer
    (which provides the attributes below)."""

    session: "Session"
    events: "EventLog"
    actors: "ActorManager"
    stopped: "asyncio.Event"
    stopping: "asyncio.Event"
    job_table: Any
    jobs: Any
    placement_groups: Any
    head_node_id: bytes
    _nodes: dict[bytes, _Node]
    _store: "GcsStore | None"
    #: Bumped by every change of a row of the cluster view (a join, a death, a load
    #: change; not the memory and idle time every report carries).
    _view_version = 0

    def _launchable(self) -> list[common_pb2.ResourceSet]:  # pragma: no cover - provided by GcsServer
        raise NotImplementedError

    def _wake_autoscaler(self) -> None:  # pragma: no cover - provided by GcsServer
        raise NotImplementedError

    def _recover_nodes(self, store: "GcsStore") -> None:
        """A restarted head: the stored rows; those alive wait for their node managers."""
        digests = store.node_digests()
        for info in store.nodes():
            alive = info.state == gcs_pb2.NODE_STATE_ALIVE
            node = _Node(info, digests.get(info.node_id, b""), recovered=alive)
            if not alive:
                node.machine.transition(NodeState.DEAD)
            elif info.is_head:
                self.head_node_id = info.node_id
            self._nodes[info.node_id] = node

    def _view_changed(self, node: _Node) -> None:
        self._view_version += 1
        node.view_version = self._view_version

    def _view_reply(self, request: gcs_pb2.ReportNodeStateRequest) -> gcs_pb2.ReportNodeStateReply:
        """The cluster view for a node manager that holds ``request``'s: the rows
        changed since, or (a view of another GCS run, or none) every alive node."""
        reply = gcs_pb2.ReportNodeStateReply(
            launchable=self._launchable(), view_epoch=VIEW_EPOCH, view_version=self._view_version
        )
        if request.view_epoch == VIEW_EPOCH and 0 < request.view_version <= self._view_version:
            reply.view_delta = True
            reply.nodes.extend(n.info for n in self._nodes.values() if n.view_version > request.view_version)
        else:
            reply.nodes.extend(self._alive_nodes())
        return reply

    def _came_back(self, node: _Node, conn: Any) -> None:
        """A recovered node's node manager proved itself to the restarted head."""
        node.recovered = False
        node.registered = node.last_seen = time.monotonic()
        self._watch_local(node, conn)
        self.events.publish(
            EventKind.EVENT_KIND_NODE_ADDED,
            f"Node {ids.short(node.info.node_id)} ({node.info.node_ip}) is back: its node manager "
            "re-registered with the restarted head",
            node_id=node.info.node_id,
            data={"resources": dict(node.info.total.amounts), "address": node.info.address,
                  "is_head": node.info.is_head, "node_type": node.info.node_type, "rejoined": True},
        )
        self._wake_autoscaler()

    def _watch_local(self, node: _Node, conn: Any) -> None:
        """A node manager on a local socket is dead when that socket closes."""
        if isinstance(conn, framed.Connection) and node.conn is not conn:
            node.local, node.conn = True, conn
            nid = node.info.node_id
            conn.on_close(lambda c: self._mark_dead(nid, "its node manager disconnected") if node.conn is c else None)

    def RegisterNode(self, request: gcs_pb2.RegisterNodeRequest, conn: Any) -> gcs_pb2.RegisterNodeReply:
        """A node manager joins (see ``gcs.proto``); the reply is the cluster view."""
        info = request.node
        if not info.node_id or len(request.node_secret) < 16:
            raise RemoteError(common_pb2.ERROR_CODE_INVALID_ARGUMENT, "node_id and a node_secret of 16 bytes are required")
        existing = self._nodes.get(info.node_id)
        if existing is not None and existing.machine.state is NodeState.DEAD:
            raise RemoteError(
                common_pb2.ERROR_CODE_ALREADY_EXISTS,
                f"node {info.node_id.hex()} was declared dead; rejoin with a new node id",
            )
        if existing is not None and existing.proves(request.node_secret):
            # Its node manager again, after its connection broke (or the head restarted).
            existing.info.CopyFrom(info)
            existing.info.state = gcs_pb2.NODE_STATE_ALIVE
            existing.last_seen = time.monotonic()
            self._view_changed(existing)
            if existing.recovered:
                self._came_back(existing, conn)
            else:
                self._watch_local(existing, conn)
            assert self._store is not None
            self._store.put_node(existing.info)
            return gcs_pb2.RegisterNodeReply(nodes=self._alive_nodes(), launchable=self._launchable())
        if existing is not None:
            logger.warning("refused to register node=%s again: it is alive and registered by another process",
                           info.node_id.hex())
            raise RemoteError(
                common_pb2.ERROR_CODE_ALREADY_EXISTS,
                f"node {info.node_id.hex()} is registered and alive; a node manager joins with a new node id",
            )
        info.state = gcs_pb2.NODE_STATE_ALIVE
        info.start_time = info.start_time or time.time()
        node = _Node(info, secret_digest(request.node_secret))
        self._nodes[info.node_id] = node
        self._view_changed(node)
        if info.is_head:
            old = self._nodes.get(self.head_node_id)
            if old is not None and old.recovered:  # the head's node of before the restart: gone with it
                self._mark_dead(old.info.node_id, "a new head node replaced it after the head restarted")
            self.head_node_id = info.node_id
        assert self._store is not None
        self._store.put_node(info, node.digest)
        self._watch_local(node, conn)
        total = dict(info.total.amounts)
        self.events.publish(
            EventKind.EVENT_KIND_NODE_ADDED,
            f"Node {ids.short(info.node_id)} ({info.node_ip}) joined with {format_resources(total)}",
            node_id=info.node_id,
            data={"resources": total, "address": info.address, "is_head": info.is_head, "node_type": info.node_type},
        )
        self._wake_autoscaler()
        return gcs_pb2.RegisterNodeReply(nodes=self._alive_nodes(), launchable=self._launchable())

    def _mark_dead(self, node_id: bytes, reason: str) -> None:
        node = self._nodes.get(node_id)
        if node is None or node.machine.state is NodeState.DEAD or self.stopping.is_set():
            return  # (a stopping head's connections closing: the node lives on)
        if node.drain_reason:
            reason = f"removed by the autoscaler: {node.drain_reason}"
        node.machine.transition(NodeState.DEAD)
        node.info.state = gcs_pb2.NODE_STATE_DEAD
        self._view_changed(node)
        node.info.end_time = time.time()
        node.info.death_reason = reason
        if self._store is not None and not self.stopping.is_set():
            self._store.put_node(node.info)
        self.events.publish(
            EventKind.EVENT_KIND_NODE_DEAD,
            f"Node {ids.short(node_id)} ({node.info.node_ip}) is dead: {reason}",
            node_id=node_id,
            data={"reason": reason},
        )
        self.actors.node_died(node_id)
        self.placement_groups.node_died(node_id)
        self.jobs.node_died(node_id)
        self._wake_autoscaler()
        self.job_table.driver_node_died(node_id)

    def _registered(self, node_id: bytes, secret: bytes, conn: Any = None) -> _Node:
        """The alive node ``node_id``, if ``secret`` is the one it registered with."""
        node = self._nodes.get(node_id)
        if node is None or node.machine.state is NodeState.DEAD or not node.digest:
            raise RemoteError(
                common_pb2.ERROR_CODE_NOT_FOUND,
                f"node {node_id.hex()} is not registered (or was declared dead)",
            )
        if not node.proves(secret):
            logger.warning("refused a call about node=%s from a process that did not register it", node_id.hex())
            raise RemoteError(
                common_pb2.ERROR_CODE_PERMISSION_DENIED,
                f"node {node_id.hex()} was registered by another node manager",
            )
        if node.recovered:  # it reported before it re-registered
            self._came_back(node, conn)
        return node

    def UnregisterNode(self, request: gcs_pb2.UnregisterNodeRequest, conn: Any) -> common_pb2.Empty:
        """A node manager leaves: its node is dead."""
        self._registered(request.node_id, request.node_secret)
        self._mark_dead(request.node_id, request.reason or "it shut down")
        return common_pb2.Empty()

    def ReportNodeState(
        self, request: gcs_pb2.ReportNodeStateRequest, conn: Any
    ) -> gcs_pb2.ReportNodeStateReply:
        """A node's periodic load report; the reply is the cluster view."""
        report = request.node
        node = self._registered(report.node_id, request.node_secret, conn)
        node.last_seen = node.reported = time.monotonic()
        if node.started is None:
            node.started = node.reported
        info = node.info
        info.total.CopyFrom(report.total)  # a placement group's bundles change it
        info.available.CopyFrom(report.available)
        info.object_store_used = report.object_store_used
        info.object_store_capacity = report.object_store_capacity or info.object_store_capacity
        info.memory_used, info.memory_total = report.memory_used, report.memory_total
        info.num_workers = report.num_workers
        info.tasks_running = report.tasks_running
        del info.pending_demand[:]
        info.pending_demand.extend(report.pending_demand)
        del info.pending_actor_demand[:]
        info.pending_actor_demand.extend(report.pending_actor_demand)
        info.idle = report.idle
        info.idle_for_s = report.idle_for_s
        info.draining = report.draining or bool(node.drain_reason)
        if report.drain_reason:
            info.drain_reason, info.drain_message = report.drain_reason, report.drain_message
            info.drain_deadline = report.drain_deadline
        began = self._began_draining(node)
        # What the view compares: the row less what moves with every report.
        idle_for, memory_used = info.idle_for_s, info.memory_used
        info.idle_for_s, info.memory_used = 0.0, 0
        key = info.SerializeToString(deterministic=True)
        info.idle_for_s, info.memory_used = idle_for, memory_used
        if key != node.view_key:
            node.view_key = key
            self._view_changed(node)
        self.events.publish(
            EventKind.EVENT_KIND_NODE_STATE,
            began,
            node_id=info.node_id,
            data={
                "available": dict(info.available.amounts),
                "object_store_used": info.object_store_used,
                "memory_used": info.memory_used,
                "memory_total": info.memory_total,
                "tasks_running": info.tasks_running,
                "num_workers": info.num_workers,
                "draining": info.draining,
                "drain_message": info.drain_message,
            },
            source="node",
        )
        self._wake_autoscaler()
        return self._view_reply(request)

    def _began_draining(self, node: _Node) -> str:
        """A draining node still ALIVE in the table moves to DRAINING: the sentence
        that says so ("" when nothing changed)."""
        info = node.info
        if not info.draining or node.machine.state is not NodeState.ALIVE:
            return ""
        node.machine.transition(NodeState.DRAINING)
        why = info.drain_message or node.drain_reason or "it takes no new work"
        until = f"; it leaves within {max(0.0, info.drain_deadline - time.time()):.0f} s" if info.drain_deadline else ""
        logger.info("node=%s is draining: %s", info.node_id.hex(), why)
        return f"Node {ids.short(info.node_id)} ({info.node_ip}) is draining: {why}{until}"

    def report_age(self, node_id: bytes) -> float:
        """Seconds since the node's last load report."""
        node = self._nodes.get(node_id)
        return time.monotonic() - node.reported if node is not None else 0.0

    def death_reason(self, node_id: bytes) -> str:
        """Why the GCS declared ``node_id`` dead ("" if it did not, or knows no such node)."""
        node = self._nodes.get(node_id)
        return node.info.death_reason if node is not None else ""

    async def drain_node(self, node_id: bytes, reason: str) -> tuple[bool, str]:
        """Ask a node to take no new work (it is about to be removed). Only an idle
        node accepts; returns (accepted, why not)."""
        node = self._nodes.get(node_id)
        if node is None or node.machine.state is NodeState.DEAD:
            return False, "not alive"
        try:
            conn = await self.actors.node_connection(node.info)
            reply = await conn.call(
                methods.NodeManager.DrainNode, nm_pb2.DrainNodeRequest(reason=reason), timeout=5.0
            )
        except (ConnectionLost, RemoteError, asyncio.TimeoutError, OSError) as exc:
            return False, f"unreachable ({exc})"
        if reply.accepted:
            node.drain_reason = reason
            node.info.draining = True
            if not node.info.drain_reason:
                node.info.drain_reason = gcs_pb2.DRAIN_REASON_IDLE_TERMINATION
                node.info.drain_message = f"removed by the autoscaler: {reason}"
            self._began_draining(node)
            self._view_changed(node)
        return reply.accepted, reply.busy

    def alive_nodes(self) -> list[gcs_pb2.NodeInfo]:
        """The rows of the nodes that are alive."""
        return self._alive_nodes()

    def route(self, node_id: bytes, endpoint: str) -> str:
        """How the GCS dials a process: its socket when it is on the head's own node
        (same session), else through its node manager's relay."""
        node = self._nodes.get(node_id)
        if node is None or not node.info.address or node.info.session_dir == str(self.session.dir):
            return endpoint
        return relay.route(node.info.address, endpoint)

    def _alive_nodes(self) -> list[gcs_pb2.NodeInfo]:
        return [n.info for n in self._nodes.values() if n.machine.state is not NodeState.DEAD]

    def local_nodes(self) -> list[gcs_pb2.NodeInfo]:
        """Nodes whose node manager runs on this machine (same hostname)."""
        host = socket.gethostname()
        return [n.info for n in self._nodes.values() if n.info.hostname == host and n.info.pid]

    def GetAllNodes(self, request: gcs_pb2.GetAllNodesRequest, conn: Any) -> gcs_pb2.GetAllNodesReply:
        """Every node, alive or dead."""
        return gcs_pb2.GetAllNodesReply(nodes=[n.info for n in self._nodes.values()])
