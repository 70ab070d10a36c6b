"""What the GCS does not keep, asked of the nodes: each alive node's workers and stored
objects (its node manager's ``GetNodeStats``), and its log files.

Log files are read where they are written, in the node's session directory, so the
logs of nodes on this machine are readable and those of other machines are reported
as out of reach (the caller says so rather than guess).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nbcluster.exceptions import ClusterConnectionError
from nbcluster.runtime import session as sessions
from nbcluster.runtime.driver_core import connected_core
from nbcluster.runtime.protocol import node_manager_pb2 as nm_pb2
from nbcluster.runtime.state import NodeState, list_nodes
from nbcluster.runtime.transport import methods

__all__ = ["NodeReport", "log_dir", "node_reports"]


@dataclass(frozen=True)
class NodeReport:
    """One alive node and what its node manager answered (``stats`` None and ``error``
    set when it could not be asked)."""

    node: NodeState
    stats: nm_pb2.GetNodeStatsReply | None
    error: str = ""


def node_reports(include_objects: bool = False, timeout: float = 10.0) -> list[NodeReport]:
    """Every alive node's workers (and stored objects, with ``include_objects``), asked
    of all node managers at once through this process's connection."""
    core = connected_core()
    if core is None:
        raise ClusterConnectionError("this process is not connected: call nbcluster.init() first")
    nodes = [n for n in list_nodes() if n.state == "ALIVE"]
    request = nm_pb2.GetNodeStatsRequest(include_objects=include_objects)

    async def ask(node: NodeState) -> Any:
        raw = bytes.fromhex(node.node_id)
        conn = core.nm if raw == core.node_id and core.nm is not None else await core.node_client(raw)
        return await conn.call(methods.NodeManager.GetNodeStats, request, timeout=timeout)

    async def ask_all() -> list[Any]:
        return await asyncio.gather(*(ask(n) for n in nodes), return_exceptions=True)

    replies = core.run_sync(ask_all())
    return [
        NodeReport(node, None, f"{type(r).__name__}: {r}") if isinstance(r, BaseException) else NodeReport(node, r)
        for node, r in zip(nodes, replies)
    ]


def log_dir(node_id: str) -> Path | None:
    """The directory of node ``node_id``'s logs (hex id) when that node runs, or ran, on
    this machine as this user; None otherwise."""
    for session in reversed(sessions.sessions()):
        if node_id in session.node_ids() or any(session.logs.glob(f"node-{node_id[:12]}.*")):
            return session.logs
    return None
