"""Where a lease request goes: this node, another node (spillback), or nowhere yet.

A pure function of the request, this node's resources and the cluster view the GCS
broadcasts, so it is unit-tested without processes. Ray's policies:

- DEFAULT (hybrid): here when it fits now; else the node with the most free CPUs
  that fits now; else wait here if it could ever fit here; else the node that could
  ever fit it; else it is infeasible (wait, and warn).
- SPREAD: the nodes that could fit it, in turn.
- NODE_AFFINITY: that node (soft: any node when that one is gone or cannot fit).

A request sent on another node's advice (``no_spill``) stays where it lands, unless
it cannot run there now and another node can (one that joined meanwhile).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from nbcluster.runtime.node import resources as rs
from nbcluster.runtime.protocol import gcs_pb2, node_manager_pb2 as nm_pb2


class Verdict(enum.Enum):
    """What to do with a lease request."""

    GRANT = "GRANT"  # here, now
    WAIT = "WAIT"  # here, when resources free up
    SPILL = "SPILL"  # ask ``node`` instead
    INFEASIBLE = "INFEASIBLE"  # no node can ever fit it: wait, and warn
    REJECT = "REJECT"  # cannot be served at all (``rejection``, ``reason``)


@dataclass(frozen=True)
class Decision:
    """A verdict, with the node to spill to or the reason of a rejection."""

    verdict: Verdict
    node: gcs_pb2.NodeInfo | None = None
    reason: str = ""
    #: REJECT: why, as the LeaseReply's code (nm_pb2.LeaseRejection).
    rejection: int = nm_pb2.LEASE_REJECTION_UNSPECIFIED


def _fits_total(node: gcs_pb2.NodeInfo, need: rs.Fixed) -> bool:
    return rs.fits(rs.to_fixed(node.total.amounts), need)


def _fits_now(node: gcs_pb2.NodeInfo, need: rs.Fixed) -> bool:
    return rs.fits(rs.to_fixed(node.available.amounts), need)


def decide(
    request: nm_pb2.LeaseRequest,
    need: rs.Fixed,
    here: bytes,
    available: rs.Fixed,
    total: rs.Fixed,
    others: Sequence[gcs_pb2.NodeInfo],
    spread_turn: int = 0,
) -> Decision:
    """Where ``request`` (needing ``need`` free) should be served. ``others`` are the
    alive nodes other than this one."""
    fits_here_now = rs.fits(available, need)
    fits_here_ever = rs.fits(total, need)
    strategy = request.strategy

    if strategy == nm_pb2.SCHEDULING_STRATEGY_NODE_AFFINITY and request.affinity_node_id:
        target = request.affinity_node_id
        if target == here:
            if fits_here_ever or not request.affinity_soft:
                return _here(fits_here_now, fits_here_ever)
        else:
            node = next((n for n in others if n.node_id == target), None)
            if node is not None and (_fits_total(node, need) or not request.affinity_soft):
                return Decision(Verdict.SPILL, node)
            if not request.affinity_soft:
                return Decision(
                    Verdict.REJECT,
                    rejection=nm_pb2.LEASE_REJECTION_UNSCHEDULABLE,
                    reason=f"NodeAffinitySchedulingStrategy(soft=False) names node {target.hex()}, which is not alive",
                )
        # soft affinity that cannot be honoured: as DEFAULT

    if request.no_spill:
        # Sent here on another node's advice: stay, unless this node cannot run it
        # now and another can (a node joined since) — never to a node that is busy too.
        if not fits_here_now and strategy != nm_pb2.SCHEDULING_STRATEGY_SPREAD:
            room = [n for n in others if _fits_now(n, need)]
            if room:
                return Decision(Verdict.SPILL, max(room, key=lambda n: (n.available.amounts.get("CPU", 0), n.node_id)))
        return _here(fits_here_now, fits_here_ever)

    if strategy == nm_pb2.SCHEDULING_STRATEGY_SPREAD:
        candidates = sorted([n for n in others if _fits_total(n, need)], key=lambda n: n.node_id)
        if fits_here_ever:
            candidates.append(None)  # type: ignore[arg-type]
        if candidates:
            chosen = candidates[spread_turn % len(candidates)]
            if chosen is None:
                return _here(fits_here_now, fits_here_ever)
            return Decision(Verdict.SPILL, chosen)
        return Decision(Verdict.INFEASIBLE)

    if fits_here_now:
        return Decision(Verdict.GRANT)
    room = [n for n in others if _fits_now(n, need)]
    if room:
        return Decision(Verdict.SPILL, max(room, key=lambda n: (n.available.amounts.get("CPU", 0), n.node_id)))
    if fits_here_ever:
        return Decision(Verdict.WAIT)
    able = [n for n in others if _fits_total(n, need)]
    if able:
        return Decision(Verdict.SPILL, max(able, key=lambda n: (n.total.amounts.get("CPU", 0), n.node_id)))
    return Decision(Verdict.INFEASIBLE)


def _here(now: bool, ever: bool) -> Decision:
    if now:
        return Decision(Verdict.GRANT)
    return Decision(Verdict.WAIT if ever else Verdict.INFEASIBLE)
