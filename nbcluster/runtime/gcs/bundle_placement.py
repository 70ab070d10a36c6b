"""Where a placement group's bundles go: a pure function of the bundles, the strategy
and the nodes' room, so it is unit-tested without processes. Ray's strategies:

- PACK: as few nodes as possible — all on one node when one has room, else greedily,
  preferring nodes that already hold bundles of the group;
- SPREAD: as many nodes as possible — each bundle on the fitting node holding fewest
  bundles of the group;
- STRICT_PACK: all on one node (when rescheduling: the node holding the others);
- STRICT_SPREAD: each on a node of its own (none where another of its bundles is).

The GCS asks with the nodes' free resources to place a group now, and with their
totals (and node types the autoscaler may add) to tell a group that waits for room
from one no cluster of these nodes can ever hold.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from nbcluster.runtime.bundles import sum_bundles
from nbcluster.runtime.node import resources as rs

#: Bound on the STRICT_SPREAD search (bundles to distinct nodes), in steps.
_SEARCH_STEPS = 20000


@dataclass(frozen=True)
class NodeRoom:
    """A node's resources for placing bundles: free now, and in total."""

    node_id: bytes
    available: rs.Fixed
    total: rs.Fixed


def place(
    strategy: str,
    bundles: Mapping[int, rs.Fixed],
    nodes: Sequence[NodeRoom],
    placed: Mapping[int, bytes] | None = None,
    *,
    ever: bool = False,
) -> dict[int, bytes] | None:
    """Node per bundle index for ``bundles`` (those not placed yet), or None when they
    do not all fit. ``placed``: bundles of the group still held (index -> node).
    ``ever``: against the nodes' totals rather than their free resources."""
    placed = placed or {}
    room = {n.node_id: dict(n.total if ever else n.available) for n in nodes}
    holders = Counter(placed.values())
    # Nodes already holding the group first, then the roomiest; ties by id.
    order = sorted(room, key=lambda nid: (-holders[nid], -room[nid].get("CPU", 0), nid))
    todo = sorted(bundles.items(), key=lambda kv: (-kv[1].get("GPU", 0), -kv[1].get("CPU", 0), -sum(kv[1].values()), kv[0]))
    if not todo:
        return {}
    if strategy == "STRICT_SPREAD":
        return _distinct(todo, [nid for nid in order if nid not in holders], room)
    if strategy in ("PACK", "STRICT_PACK"):
        need: rs.Fixed = {}
        for _, bundle in todo:
            rs.add(need, bundle)
        where = [nid for nid in order if strategy == "PACK" or not holders or nid in holders]
        node = next((nid for nid in where if rs.fits(room[nid], need)), None)
        if node is not None:
            return {index: node for index, _ in todo}
        if strategy == "STRICT_PACK":
            return None
    return _greedy(todo, order, room, holders, spread=strategy == "SPREAD")


def _greedy(
    todo: list[tuple[int, rs.Fixed]], order: list[bytes], room: dict[bytes, rs.Fixed], holders: Counter, spread: bool
) -> dict[int, bytes] | None:
    counts = Counter(holders)
    rank = {nid: i for i, nid in enumerate(order)}
    out = {}
    for index, need in todo:
        fitting = [nid for nid in order if rs.fits(room[nid], need)]
        if not fitting:
            return None
        if spread:
            node = min(fitting, key=lambda nid: (counts[nid], rank[nid]))
        else:
            node = min(fitting, key=lambda nid: (-counts[nid], rank[nid]))
        rs.subtract(room[node], need)
        counts[node] += 1
        out[index] = node
    return out


def _distinct(todo: list[tuple[int, rs.Fixed]], nodes: list[bytes], room: dict[bytes, rs.Fixed]) -> dict[int, bytes] | None:
    """Each bundle on a different node (a bounded depth-first search)."""
    if len(todo) > len(nodes):
        return None
    out: dict[int, bytes] = {}
    used: set[bytes] = set()
    steps = 0

    def go(k: int) -> bool:
        nonlocal steps
        if k == len(todo):
            return True
        index, need = todo[k]
        for nid in nodes:
            steps += 1
            if steps > _SEARCH_STEPS:
                return False
            if nid in used or not rs.fits(room[nid], need):
                continue
            out[index] = nid
            used.add(nid)
            if go(k + 1):
                return True
            used.discard(nid)
            del out[index]
        return False

    return dict(out) if go(0) else None


def demand_shapes(strategy: str, bundles: Sequence[Mapping[str, float]]) -> list[dict[str, float]]:
    """What a waiting group asks the autoscaler for: its bundles, or (STRICT_PACK) their
    sum, since they must share one node."""
    if strategy != "STRICT_PACK":
        return [dict(b) for b in bundles]
    return [sum_bundles(bundles)] if bundles else []
