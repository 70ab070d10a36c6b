"""The scaling policy: a pure function from what the cluster looks like to what to do.

``plan(PolicyInput) -> Plan`` — no processes, no clocks, no I/O; the reconcile loop
gathers the input and carries the plan out. The rules (Ray's, where Ray has one):

- **Keep min_workers** of each node type.
- **Demand** (resource shapes the node managers could not place: tasks and actors;
  and the bundles of placement groups waiting for room — a STRICT_PACK group's as one
  shape, a STRICT_SPREAD group's at most one to a node) is first packed onto the free resources of alive nodes and the full resources of
  nodes on their way; what is left is packed onto new nodes, first-fit decreasing,
  choosing for each shape the smallest node type that fits it.
- **request_resources** bundles are packed onto the *total* resources of all nodes
  (alive and on their way), ignoring what runs there; what is left launches nodes.
- **Caps:** a node type's ``max_workers``, the cluster's ``max_workers``, and at most
  ``max(1, upscaling_speed × alive nodes)`` nodes on their way at once.
- **Infeasible** demand — no node type could ever hold it — is reported, never
  launched for. Node types backing off after a failed launch are not used.
- **Scale-down:** a worker node idle for ``idle_timeout`` (no tasks, actors, queued
  work or objects in use) is removed, unless its type would fall below
  ``min_workers``, or it is needed for ``request_resources``, or waiting demand fits it.

Every decision comes with a sentence for people.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from nbcluster.runtime import ids
from nbcluster.runtime.autoscaler.config import AutoscalingConfig, NodeTypeConfig
from nbcluster.runtime.node import resources as rs

Shape = tuple[tuple[str, float], ...]  # a sorted, hashable resource shape

#: Resource names left out of sentences (every node has them; they say nothing).
_QUIET = ("memory", "object_store_memory")


def shape_of(amounts: Mapping[str, float]) -> Shape:
    """A resource amount as a hashable, sorted shape (zeros and ``node:`` entries left out)."""
    return tuple(sorted((k, float(v)) for k, v in amounts.items() if v and not k.startswith("node:")))


def describe(shape: Shape | Mapping[str, float]) -> str:
    """``{CPU: 1, GPU: 1}``: the resources a person cares about."""
    items = shape.items() if isinstance(shape, Mapping) else shape
    return rs.describe({k: v for k, v in items if k not in _QUIET and not k.startswith("node:")})


@dataclass(frozen=True)
class Demand:
    """One resource shape somebody waits for."""

    shape: Shape
    kind: str = "task"  # "task", "actor", "placement group bundle" or "request" (request_resources)
    #: A STRICT_SPREAD placement group's id: at most one of its bundles per node.
    spread_group: str = ""


@dataclass(frozen=True)
class NodeView:
    """An alive node, as the GCS sees it."""

    node_id: bytes
    node_type: str
    total: dict[str, float]
    available: dict[str, float]
    #: Seconds it has been idle; None while busy.
    idle_s: float | None = None
    is_head: bool = False
    #: The autoscaler instance it belongs to ("" when the autoscaler did not launch it).
    instance_id: str = ""
    draining: bool = False


@dataclass(frozen=True)
class InstanceView:
    """A node the autoscaler launched that is on its way or running."""

    instance_id: str
    node_type: str
    #: True while on its way (requested, launching); False once running or draining.
    pending: bool


@dataclass(frozen=True)
class PolicyInput:
    """Everything the policy looks at: config, nodes, instances, demand, requests, backoffs."""

    config: AutoscalingConfig
    nodes: Sequence[NodeView]
    instances: Sequence[InstanceView]
    demand: Sequence[Demand] = ()
    #: The last ``request_resources`` bundles.
    requested: Sequence[Shape] = ()
    #: Node types not to launch right now, with why (a launch of them failed).
    backing_off: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Launch:
    """Launch ``count`` nodes of ``node_type``; ``message`` says why."""

    node_type: str
    count: int
    message: str


@dataclass(frozen=True)
class Removal:
    """Remove an idle node; ``message`` says which and why."""

    node_id: bytes
    instance_id: str
    node_type: str
    message: str
    #: The short why ("idle for 60 s").
    reason: str = ""


#: How waiting demand is classed (``Unmet.status``).
WAITING_FOR_LAUNCH = "waiting-for-launch"  # nodes for it are on their way (or will be)
INFEASIBLE = "infeasible"  # no node type can ever hold it
CAPPED = "capped"  # a max_workers limit stops the launch it needs
WAITING = "waiting"  # it fits a node already there, once resources free up


@dataclass(frozen=True)
class Unmet:
    """Demand still waiting after this step, grouped, with its class and why."""

    demand: Demand
    count: int
    status: str
    reason: str


@dataclass(frozen=True)
class Plan:
    """What one step does: launches, removals, and the demand still unmet."""

    launches: tuple[Launch, ...] = ()
    removals: tuple[Removal, ...] = ()
    unmet: tuple[Unmet, ...] = ()


# -- packing ----------------------------------------------------------------------
class _Bin:
    __slots__ = ("free", "node_type", "limited", "spread_groups")

    def __init__(self, free: Mapping[str, float], node_type: str = "") -> None:
        self.free = rs.to_fixed(free)
        self.node_type = node_type
        self.limited = True  # counts against upscaling_speed
        self.spread_groups: set[str] = set()  # STRICT_SPREAD groups with a bundle here

    def take(self, need: rs.Fixed, spread_group: str = "") -> bool:
        if spread_group in self.spread_groups or not rs.fits(self.free, need):
            return False
        rs.subtract(self.free, need)
        if spread_group:
            self.spread_groups.add(spread_group)
        return True


def _free(b: _Bin) -> dict[str, float]:
    return rs.to_float(b.free)


#: What a node of a type offers for memory it does not declare: the node will have
#: some (its machine's), so a request for memory does not rule the type out.
_UNDECLARED = {"memory": float(2**62), "object_store_memory": float(2**62)}


def _offer(node_type: NodeTypeConfig) -> dict[str, float]:
    return {**_UNDECLARED, **node_type.resources}


def _type_size(node_type: NodeTypeConfig) -> tuple:
    """Smaller first: by GPUs, CPUs, then the other declared resources (not bytes)."""
    r = node_type.resources
    others = sum(v for k, v in r.items() if k not in ("GPU", "CPU") and k not in _QUIET)
    return (r.get("GPU", 0), r.get("CPU", 0), others, node_type.name)


def _pack(needs: Iterable[Demand], bins: Sequence[_Bin]) -> list[Demand]:
    """First-fit decreasing: put each demand in the first bin with room; return the rest."""
    left = []
    for demand in sorted(needs, key=_size, reverse=True):
        need = rs.to_fixed(dict(demand.shape))
        if not any(b.take(need, demand.spread_group) for b in bins):
            left.append(demand)
    return left


def _size(demand: Demand) -> tuple:
    amounts = dict(demand.shape)
    return (amounts.get("GPU", 0), amounts.get("CPU", 0), sum(amounts.values()), demand.shape)


def _type_fits(node_type: NodeTypeConfig, demand: Demand) -> bool:
    return rs.fits(rs.to_fixed(_offer(node_type)), rs.to_fixed(dict(demand.shape)))


def _why_infeasible(config: AutoscalingConfig, nodes: Sequence[NodeView], demand: Demand) -> str | None:
    """None when some node type (or existing node) could hold ``demand``; else why not."""
    need = rs.to_fixed(dict(demand.shape))
    types = config.worker_types.values()
    if any(rs.fits(rs.to_fixed(_offer(t)), need) for t in types):
        return None
    if any(rs.fits(rs.to_fixed(n.total), need) for n in nodes if not n.draining):
        return None
    offered = set().union(*(t.resources for t in types), *(n.total for n in nodes)) if (types or nodes) else set()
    missing = sorted(k for k in dict(demand.shape) if k not in offered and k not in _QUIET)
    if missing:
        return f"no node type provides {', '.join(missing)}"
    if not types:
        return "the autoscaler has no worker node types (every max_workers is 0)"
    # The type that comes closest on the resource most short.
    short = max(dict(demand.shape), key=lambda k: dict(demand.shape)[k] - max(t.resources.get(k, 0) for t in types))
    largest = max(types, key=lambda t: (t.resources.get(short, 0), t.name))
    return f"it is larger than every node type (the largest, {largest.name}, offers {describe(largest.resources)})"


# -- the plan ---------------------------------------------------------------------
def plan(inp: PolicyInput) -> Plan:
    """What to do now for ``inp``: the nodes to launch (min_workers first, then
    ``request_resources``, then queued tasks and actors), the idle nodes to remove, and
    why each demand is still unmet. Pure: the same input gives the same plan."""
    return _Planner(inp).run()


_ON_THE_WAY = "waiting for nodes being launched"
#: How unmet demand is listed: the worst first.
_STATUS_ORDER = {INFEASIBLE: 0, CAPPED: 1, WAITING_FOR_LAUNCH: 2, WAITING: 3}


class _Planner:
    """One ``plan`` step's working state: the launches chosen so far and why, and the
    demand left waiting (with its status and reason)."""

    def __init__(self, inp: PolicyInput) -> None:
        self.inp = inp
        self.config = inp.config
        self.types = inp.config.worker_types
        self.counted = Counter(i.node_type for i in inp.instances)
        self.workers = len(inp.instances)
        pending = sum(1 for i in inp.instances if i.pending)
        self.room_pending = max(1, math.floor(self.config.upscaling_speed * max(len(inp.nodes), 1))) - pending
        self.launches: Counter[str] = Counter()
        self.reasons: dict[str, list[Demand]] = {}
        self.min_launch: Counter[str] = Counter()
        self.waiting: Counter[tuple[Demand, str, str]] = Counter()  # (demand, status, reason)

    def run(self) -> Plan:
        self._min_workers()
        # Bins: nodes on their way (and the min_workers ones) at their full size.
        types = self.types
        pending_bins = [
            _Bin(_offer(types[i.node_type]), i.node_type) for i in self.inp.instances if i.pending and i.node_type in types
        ]
        pending_bins += [_Bin(_offer(types[name]), name) for name, n in self.min_launch.items() for _ in range(n)]
        queued, requested = self._feasible()
        pending_bins += self._place_requests(requested, pending_bins)
        self._place_queued(queued, pending_bins)
        return Plan(self._launch_list(), _removals(self.inp), self._unmet())

    def _headroom(self, name: str) -> tuple[str, str] | None:
        """None when one more node of ``name`` may be launched now; else (status, why not)."""
        types, launches = self.types, self.launches
        if self.counted[name] + launches[name] >= types[name].max_workers:
            return CAPPED, f"{name} is at max_workers={types[name].max_workers}"
        if self.workers + sum(launches.values()) >= self.config.max_workers:
            return CAPPED, f"the cluster is at max_workers={self.config.max_workers}"
        if name in self.inp.backing_off:
            return WAITING_FOR_LAUNCH, self.inp.backing_off[name]
        return None

    def _min_workers(self) -> None:
        """1. min_workers (not limited by upscaling_speed: these are the floor)."""
        for name, node_type in sorted(self.types.items()):
            while self.counted[name] + self.launches[name] < node_type.min_workers and self._headroom(name) is None:
                self.launches[name] += 1
                self.min_launch[name] += 1

    def _feasible(self) -> tuple[list[Demand], list[Demand]]:
        """The demand some node type or node could hold, as (queued, requested); the
        rest waits as INFEASIBLE with why."""
        feasible: list[Demand] = []
        for demand in list(self.inp.demand) + [Demand(s, "request") for s in self.inp.requested]:
            why = _why_infeasible(self.config, self.inp.nodes, demand)
            if why is None:
                feasible.append(demand)
            else:
                self.waiting[(demand, INFEASIBLE, f"Cannot schedule {describe(demand.shape)}: {why}")] += 1
        return [d for d in feasible if d.kind != "request"], [d for d in feasible if d.kind == "request"]

    def _place_requests(self, requested: list[Demand], pending_bins: list[_Bin]) -> list[_Bin]:
        """3. request_resources: against the total resources of every node (busy or
        not) and of nodes on their way; what is left opens nodes, not held back by
        upscaling_speed (as Ray). Returns those nodes, full size (they are on their way)."""
        request_new: list[_Bin] = []
        totals = [_Bin(n.total, n.node_type) for n in self.inp.nodes if not n.draining]
        for demand in _pack(requested, totals + [_Bin(_free(b), b.node_type) for b in pending_bins]):
            self._launch_for(demand, request_new, limited=False)
        return [_Bin(_offer(self.types[b.node_type]), b.node_type) for b in request_new]

    def _place_queued(self, queued: list[Demand], pending_bins: list[_Bin]) -> None:
        """4. Queued tasks and actors: free resources of alive nodes, then nodes on
        their way, then new nodes."""
        live_bins = [_Bin(n.available, n.node_type) for n in self.inp.nodes if not n.draining]
        not_free = _pack(queued, live_bins)
        for demand, n in (Counter(queued) - Counter(not_free)).items():
            self.waiting[(demand, WAITING, "fits free resources of a node; about to be placed")] += n
        left = _pack(not_free, pending_bins)
        for demand, n in (Counter(not_free) - Counter(left)).items():
            self.waiting[(demand, WAITING_FOR_LAUNCH, _ON_THE_WAY)] += n
        queued_new: list[_Bin] = []
        for demand in sorted(left, key=_size, reverse=True):
            self._launch_for(demand, queued_new, limited=True)

    def _launch_for(self, demand: Demand, new_bins: list[_Bin], limited: bool) -> None:
        """Put ``demand`` on a node opened this step, opening one if allowed."""
        need = rs.to_fixed(dict(demand.shape))
        placed = next((b for b in new_bins if b.take(need, demand.spread_group)), None)
        if placed is not None:
            self.reasons[placed.node_type].append(demand)
            self.waiting[(demand, WAITING_FOR_LAUNCH, _ON_THE_WAY)] += 1
            return
        chosen, blocked = self._choose_type(demand)
        if chosen is not None and limited and sum(1 for b in new_bins if b.limited) >= self.room_pending:
            chosen, blocked = None, (WAITING_FOR_LAUNCH, "more nodes follow as those on their way register "
                                                         "(upscaling_speed)")
        if chosen is None:
            assert blocked is not None
            self._blocked(demand, *blocked)
            return
        self.launches[chosen.name] += 1
        bin_ = _Bin(_offer(chosen), chosen.name)
        bin_.limited = limited
        bin_.take(need, demand.spread_group)
        new_bins.append(bin_)
        self.reasons.setdefault(chosen.name, []).append(demand)
        self.waiting[(demand, WAITING_FOR_LAUNCH, _ON_THE_WAY)] += 1

    def _choose_type(self, demand: Demand) -> tuple[NodeTypeConfig | None, tuple[str, str] | None]:
        """The smallest type that holds ``demand`` and may be launched now; else None
        and (status, why not)."""
        candidates = sorted((t for t in self.types.values() if _type_fits(t, demand)), key=_type_size)
        blocked = None if candidates else (WAITING, "only existing nodes can hold it; waiting for one to free up")
        for node_type in candidates:
            why = self._headroom(node_type.name)
            if why is None:
                return node_type, None
            blocked = blocked or why
        return None, blocked

    def _blocked(self, demand: Demand, status: str, why_not: str) -> None:
        self.waiting[(demand, status, f"Not adding nodes: {why_not}" if status == CAPPED else why_not)] += 1
        if status == CAPPED:
            # The sentence of a launch names all the demand it was for, also what a cap left out.
            opened = [t for t in self.launches if self.launches[t] and _type_fits(self.types[t], demand)]
            if opened:
                self.reasons.setdefault(opened[0], []).append(demand)

    def _unmet(self) -> tuple[Unmet, ...]:
        ordered = sorted(self.waiting.items(), key=lambda kv: (_STATUS_ORDER[kv[0][1]], kv[0][0].shape))
        return tuple(Unmet(demand, count, status, reason) for (demand, status, reason), count in ordered)

    def _launch_list(self) -> tuple[Launch, ...]:
        return tuple(
            Launch(
                name, count,
                _launch_sentence(name, count, self.min_launch[name], self.reasons.get(name, []), self.types[name]),
            )
            for name, count in sorted(self.launches.items())
            if count
        )


def _launch_sentence(name: str, count: int, for_min: int, demands: list[Demand], node_type: NodeTypeConfig) -> str:
    nodes = f"{count} node{'s' if count != 1 else ''} of type {name}"
    parts = []
    by_shape = Counter((d.kind, d.shape) for d in demands)
    for (kind, shape), n in sorted(by_shape.items()):
        if kind == "request":
            parts.append(f"requested resources {describe(shape)} x{n}")
        else:
            parts.append(f"{n} pending {kind}{'s' if n != 1 else ''} {describe(shape)}")
    if for_min:
        parts.append(f"min_workers={node_type.min_workers}")
    return f"Adding {nodes} for {' and '.join(parts)}" if parts else f"Adding {nodes}"


def _removals(inp: PolicyInput) -> tuple[Removal, ...]:
    config = inp.config
    timeout = config.idle_timeout_s
    running = Counter(n.node_type for n in inp.nodes if n.instance_id and not n.draining)
    # Nodes request_resources needs: pack the requests onto whole nodes, biggest first.
    needed: set[bytes] = set()
    if inp.requested:
        order = sorted((n for n in inp.nodes if not n.draining), key=lambda n: (n.idle_s is not None, n.node_id))
        bins = [(_Bin(n.total), n.node_id) for n in order]
        for shape in sorted(inp.requested, key=lambda s: _size(Demand(s)), reverse=True):
            need = rs.to_fixed(dict(shape))
            for b, node_id in bins:
                if b.take(need):
                    needed.add(node_id)
                    break
    waiting = [rs.to_fixed(dict(d.shape)) for d in inp.demand]
    out = []
    for node in sorted(inp.nodes, key=lambda n: -(n.idle_s or 0)):
        if not node.instance_id or node.draining or node.is_head or node.idle_s is None or node.idle_s < timeout:
            continue
        node_type = config.available_node_types.get(node.node_type)
        floor = node_type.min_workers if node_type is not None else 0
        if running[node.node_type] <= floor or node.node_id in needed:
            continue
        total = rs.to_fixed(node.total)
        if any(rs.fits(total, need) for need in waiting):
            continue
        running[node.node_type] -= 1
        reason = f"idle for {node.idle_s:.0f} s"
        out.append(
            Removal(
                node.node_id,
                node.instance_id,
                node.node_type,
                f"Removing node {ids.short(node.node_id)}… ({node.node_type}): {reason}",
                reason,
            )
        )
    return tuple(out)
