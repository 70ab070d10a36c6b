"""The autoscaler on the head: one single-flight ``reconcile()`` step, run about once a
second and whenever demand or membership changes.

Each step first records what changed in the world — launch errors, nodes that
registered, nodes that died, terminated nodes that are gone — moving each instance
through its state table (see ``instances``); then it asks the pure policy what to do
and does it: launch nodes, drain and terminate idle ones. Every decision is an
``EVENT_KIND_AUTOSCALER`` event on the GCS stream with a sentence for people; the
last ones are also kept for ``nbcluster status``.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
import time
from typing import Any, Protocol

from nbcluster.runtime import ids
from nbcluster.runtime.autoscaler import policy
from nbcluster.runtime.autoscaler.config import AutoscalingConfig
from nbcluster.runtime.autoscaler.instances import COUNTED, PENDING, Instance, InstanceState
from nbcluster.runtime.autoscaler.providers import (
    ClusterContext,
    LaunchError,
    LaunchRequest,
    NodeProvider,
    load_provider,
)
from nbcluster.runtime.config import RuntimeConfig
from nbcluster.runtime.gcs.pubsub import EventLog
from nbcluster.runtime.protocol import common_pb2, gcs_pb2
from nbcluster.runtime.session import Session

logger = logging.getLogger(__name__)

S = InstanceState
#: Autoscaler events kept for status (the event stream keeps more, of every kind).
RECENT_EVENTS = 100
#: Launch-failure backoff: first delay, doubling up to the cap.
BACKOFF_FIRST_S = 5.0
BACKOFF_MAX_S = 60.0
#: At least this long between two steps, however often something changes.
MIN_STEP_GAP_S = 0.2


class _Backoff:
    def __init__(self) -> None:
        self._until: dict[str, tuple[float, float, str]] = {}  # type -> (until, delay, reason)

    def failed(self, node_type: str, message: str, now: float) -> float:
        """Back off after a failed launch; further failures of the same round (while
        backing off already) do not lengthen it."""
        until, delay, _ = self._until.get(node_type, (0.0, BACKOFF_FIRST_S / 2, ""))
        if until > now:
            return until - now
        delay = min(delay * 2, BACKOFF_MAX_S)
        self._until[node_type] = (now + delay, delay, message)
        return delay

    def succeeded(self, node_type: str) -> None:
        self._until.pop(node_type, None)

    def active(self, now: float) -> dict[str, str]:
        return {
            t: f"a launch of {t} failed ({reason}); retrying in {until - now:.0f} s"
            for t, (until, _, reason) in self._until.items()
            if until > now
        }


def on_its_way(inst: Instance, now: float, settle_s: float) -> bool:
    """Whether ``inst`` counts as a node on its way (a bin at its full size for queued
    demand): launching, or joined less than ``settle_s`` ago (wall clock ``now``). What
    a node just took on (a request spilled to it) may still be in another node's older
    report too; counted twice, it would launch a node for nothing."""
    if inst.state in PENDING:
        return True
    return inst.state is S.RUNNING and now - inst.since() < settle_s


class AutoscalerHost(Protocol):
    """What the autoscaler uses of the GCS that hosts it (``gcs/server.py``)."""

    config: RuntimeConfig
    session: Session
    token: str
    #: The GCS's addresses for other machines and for this one (set once it serves).
    address: str
    local_endpoint: str
    events: EventLog

    def alive_nodes(self) -> list[gcs_pb2.NodeInfo]:
        """The rows of the alive nodes."""

    def death_reason(self, node_id: bytes) -> str:
        """Why a node was declared dead ("" if it was not)."""

    def report_age(self, node_id: bytes) -> float:
        """Seconds since the node's last load report."""

    async def drain_node(self, node_id: bytes, reason: str) -> tuple[bool, str]:
        """Ask a node to take no new work; (accepted, why not)."""

    def placement_group_demand(self) -> list[tuple[bytes, str, list[dict[str, float]]]]:
        """(group id, strategy, shapes) of the placement groups waiting for room."""


class Autoscaler:
    """Launches and removes nodes so the cluster fits its demand and bounds (see the
    module docstring); ``wake()`` asks for a step soon."""

    def __init__(self, config: AutoscalingConfig, gcs: AutoscalerHost) -> None:
        self.config = config
        self.gcs = gcs
        runtime = gcs.config
        self._interval = runtime.autoscaler_interval_s
        self._start_timeout = runtime.autoscaler_node_start_timeout_s
        #: How long a node that joined still counts as on its way (two reports).
        self._settle_s = 2 * runtime.heartbeat_interval_s + 0.5
        self.provider: NodeProvider | None = None
        self.instances: dict[str, Instance] = {}
        self._requested: list[policy.Shape] = []
        self._backoff = _Backoff()
        self._reported: set[str] = set()
        self._last_plan = policy.Plan()
        #: Launched instances that cannot start yet, and why (from the provider).
        self._waits: dict[str, str] = {}
        self.recent: collections.deque[gcs_pb2.Event] = collections.deque(maxlen=RECENT_EVENTS)
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None

    # -- lifecycle ----------------------------------------------------------------
    async def start(self) -> None:
        """Load the provider for this cluster and start the reconcile loop."""
        gcs = self.gcs
        cluster = ClusterContext(
            gcs_address=gcs.address,
            gcs_local_endpoint=gcs.local_endpoint,
            token=gcs.token,
            session_dir=gcs.session.dir,
            config_env=gcs.config.to_env(),
            node_ip=gcs.address.rsplit(":", 1)[0].strip("[]"),
            cluster_name=self.config.cluster_name,
        )
        self.provider = load_provider(self.config.provider, cluster)
        await self._adopt()
        if self.config.ignored_keys:
            logger.info("Ray keys not used here: %s", ", ".join(self.config.ignored_keys))
        self._task = asyncio.get_running_loop().create_task(self._run())
        logger.info(
            "autoscaler started: cluster=%s provider=%s types=%s",
            self.config.cluster_name,
            self.config.provider.type,
            ", ".join(self.config.worker_types) or "none",
        )

    async def stop(self) -> None:
        """Stop the loop; the provider ends the nodes it started."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        if self.provider is not None:
            await asyncio.to_thread(self.provider.close)

    def wake(self) -> None:
        """Something changed: take a step soon."""
        self._wake.set()

    async def _run(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), self._interval)
            except asyncio.TimeoutError:
                pass
            self._wake.clear()
            try:
                await self.reconcile()
            except Exception:  # noqa: BLE001 - one bad step must not end the autoscaler
                logger.exception("autoscaler step failed")
            await asyncio.sleep(MIN_STEP_GAP_S)

    # -- inputs from the cluster ------------------------------------------------------
    def request_resources(self, bundles: list[dict[str, float]]) -> None:
        """Keep room for ``bundles`` (replacing the previous request)."""
        self._requested = [policy.shape_of(b) for b in bundles if any(b.values())]
        self._publish(
            f"Resources requested: {', '.join(policy.describe(s) for s in self._requested) or 'none'}",
            {"action": "request_resources", "bundles": bundles},
        )
        self.wake()

    def set_bounds(self, node_type: str, min_workers: int, max_workers: int) -> str:
        """New min/max workers for ``node_type`` ("" : the only worker type); the
        cluster's max_workers grows to fit. Returns the type's name."""
        types = self.config.worker_types or {
            n: t for n, t in self.config.available_node_types.items() if n != self.config.head_node_type
        }
        if not node_type:
            if len(types) != 1:
                raise ValueError(f"name the node type: this cluster has {', '.join(sorted(types)) or 'none'}")
            node_type = next(iter(types))
        current = self.config.available_node_types.get(node_type)
        if current is None or node_type == self.config.head_node_type:
            raise ValueError(f"no worker node type {node_type!r}; the types are {', '.join(sorted(types))}")
        if min_workers > max_workers:
            raise ValueError(f"min_workers ({min_workers}) is above max_workers ({max_workers})")
        others = sum(t.min_workers for n, t in self.config.worker_types.items() if n != node_type)
        updated = dataclasses.replace(current, min_workers=min_workers, max_workers=max_workers)
        self.config = dataclasses.replace(
            self.config,
            available_node_types={**self.config.available_node_types, node_type: updated},
            max_workers=max(self.config.max_workers, max_workers, others + min_workers),
        )
        self._publish(
            f"Bounds of {node_type} set to min_workers={min_workers}, max_workers={max_workers}",
            {"action": "set_bounds", "node_type": node_type, "min_workers": min_workers, "max_workers": max_workers},
        )
        self.wake()
        return node_type

    def launchable(self) -> list[dict[str, float]]:
        """Resources of the node types that may be added (for the node managers)."""
        return [dict(t.resources) for t in self.config.worker_types.values()]

    # -- the step -------------------------------------------------------------------
    async def reconcile(self) -> None:
        """One step: record what changed, ask the policy, launch and remove nodes."""
        await self._observe()
        plan = policy.plan(self._input())
        self._last_plan = self._explained(plan)
        await self._act(plan)

    async def _observe(self) -> None:
        assert self.provider is not None
        now = time.monotonic()
        errors = await asyncio.to_thread(self.provider.poll_errors)
        existing = {n.instance_id for n in await asyncio.to_thread(self.provider.non_terminated)}
        self._record_errors(errors, now)
        self._record_waits(await asyncio.to_thread(self.provider.pending_reasons))
        alive = {n.instance_id: n for n in self.gcs.alive_nodes() if n.instance_id}
        for inst in list(self.instances.values()):
            node = alive.get(inst.instance_id)
            state = inst.state
            if state is S.LAUNCHING:
                if node is not None:
                    inst.node_id = node.node_id
                    inst.to(S.RUNNING)
                    self._backoff.succeeded(inst.node_type)
                elif inst.instance_id not in existing:
                    self._launch_failed(inst, "its node manager ended before it registered", now)
                elif now - inst.created > self._start_timeout:
                    why = f"it did not register within {self._start_timeout:.0f} s"
                    await self._terminate(inst)
                    inst.to(S.TERMINATING, why)
                    delay = self._backoff.failed(inst.node_type, why, now)
                    self._publish(
                        f"Terminating a {inst.node_type} node (instance {inst.instance_id}): {why}; "
                        f"retrying in {delay:.0f} s",
                        {"action": "start_timeout", "node_type": inst.node_type, "instance_id": inst.instance_id},
                    )
            elif state in (S.RUNNING, S.DRAINING):
                if node is not None:
                    inst.node_id = node.node_id  # a node that rejoined has a new id
                    if node.draining and node.drain_reason == gcs_pb2.DRAIN_REASON_SHUTDOWN:
                        # Asked to stop by someone else (a deleted or evicted pod): it
                        # finishes its work and leaves by itself; it is not ended here.
                        if state is S.RUNNING:
                            inst.to(S.DRAINING, node.drain_message or "it is stopping")
                            self._publish(
                                f"{self._name(inst)} is stopping: {inst.reason}",
                                {"action": "stopping", "node_type": inst.node_type, "node_id": inst.node_id.hex()},
                            )
                    elif node.draining:
                        # Drained (perhaps the reply was lost) or a terminate that failed:
                        # it takes no work, so end it.
                        if state is S.RUNNING:
                            inst.to(S.DRAINING, "drained")
                        if await self._terminate(inst):
                            inst.to(S.TERMINATING, inst.reason or "drained")
                elif inst.instance_id in existing:
                    reason = self.gcs.death_reason(inst.node_id) or "it left the cluster"
                    await self._terminate(inst)
                    if state is S.RUNNING:
                        self._lost(inst, reason, terminal=False)
                    else:
                        inst.to(S.TERMINATING, reason)
                else:
                    self._lost(inst, self.gcs.death_reason(inst.node_id) or "its process ended")
            elif state is S.TERMINATING and inst.instance_id not in existing:
                inst.to(S.TERMINATED)
        # Ended instances are kept a while for status, then forgotten.
        for inst in [i for i in self.instances.values() if i.machine.is_terminal()]:
            if time.time() - inst.since() > 600:
                del self.instances[inst.instance_id]

    def _record_errors(self, errors: list[LaunchError], now: float) -> None:
        """Launch failures and nodes that ended by themselves, as the provider reports them."""
        for error in errors:
            inst = self.instances.get(error.request_id)
            if inst is None:
                continue
            if inst.lost and inst.reason != error.message:
                # It left the cluster before its provider said why (an evicted pod): say it now.
                inst.reason = error.message
                self._publish(
                    f"{self._name(inst)} ended: {error.message}",
                    {"action": "ended", "node_type": inst.node_type, "node_id": inst.node_id.hex()},
                )
            elif inst.machine.is_terminal():
                continue
            elif inst.state in PENDING:
                self._launch_failed(inst, error.message, now)
            elif inst.state is not S.TERMINATING:
                self._lost(inst, error.message)

    def _record_waits(self, reasons: dict[str, str]) -> None:
        """Launched nodes that cannot start yet (a pod the scheduler cannot place): each
        new reason is an event, and the instance shows it."""
        self._waits = {}
        for instance_id, reason in reasons.items():
            inst = self.instances.get(instance_id)
            if inst is None or inst.state is not S.LAUNCHING:
                continue
            self._waits[instance_id] = reason
            if inst.reason != reason:
                inst.reason = reason
                self._publish(
                    f"A {inst.node_type} node (instance {instance_id}) cannot start yet: {reason}",
                    {"action": "launch_waiting", "node_type": inst.node_type, "instance_id": instance_id},
                )

    async def _adopt(self) -> None:
        """A new head: take over the nodes its provider still runs (a restarted head's
        pods). They count as launching until their node managers register again (and
        are terminated if they do not within the start timeout); nodes of a type this
        config does not launch are terminated at once."""
        assert self.provider is not None
        found = await asyncio.to_thread(self.provider.non_terminated)
        adopted: list[str] = []
        for node in found:
            if node.instance_id in self.instances:
                continue
            inst = Instance(node.node_type, instance_id=node.instance_id)
            self.instances[inst.instance_id] = inst
            if node.node_type not in self.config.worker_types:
                await self._terminate(inst)
                inst.to(S.LAUNCHING)
                inst.to(S.TERMINATING, f"its node type {node.node_type!r} is not a worker type of this cluster")
                continue
            inst.to(S.LAUNCHING, "adopted")
            adopted.append(inst.instance_id)
        if found:
            self._publish(
                f"Found {len(found)} node{'s' if len(found) != 1 else ''} this cluster's provider runs: adopting "
                f"{len(adopted)}, terminating {len(found) - len(adopted)}",
                {"action": "adopt", "adopted": adopted},
            )

    @staticmethod
    def _name(inst: Instance) -> str:
        return f"Node {ids.short(inst.node_id)}… ({inst.node_type})" if inst.node_id else f"A {inst.node_type} node"

    def _launch_failed(self, inst: Instance, message: str, now: float) -> None:
        inst.to(S.LAUNCH_FAILED, message)
        delay = self._backoff.failed(inst.node_type, message, now)
        self._publish(
            f"Failed to launch a {inst.node_type} node: {message}; retrying in {delay:.0f} s",
            {"action": "launch_failed", "node_type": inst.node_type, "instance_id": inst.instance_id},
        )

    def _lost(self, inst: Instance, reason: str, terminal: bool = True) -> None:
        if inst.state is S.RUNNING:
            self._publish(
                f"{self._name(inst)} was lost: {reason}",
                {"action": "lost", "node_type": inst.node_type, "node_id": inst.node_id.hex()},
            )
        inst.lost = True
        inst.to(S.TERMINATED if terminal else S.TERMINATING, reason)

    def _input(self) -> policy.PolicyInput:
        ours = {i.instance_id for i in self.instances.values() if i.state in (S.RUNNING, S.DRAINING)}
        nodes = []
        demand: list[policy.Demand] = []
        for info in self.gcs.alive_nodes():
            idle_s = info.idle_for_s + self.gcs.report_age(info.node_id) if info.idle else None
            nodes.append(
                policy.NodeView(
                    node_id=info.node_id,
                    node_type=info.node_type,
                    total=dict(info.total.amounts),
                    available=dict(info.available.amounts),
                    idle_s=idle_s,
                    is_head=info.is_head,
                    instance_id=info.instance_id if info.instance_id in ours else "",
                    draining=info.draining,
                )
            )
            demand += [policy.Demand(policy.shape_of(d.amounts), "task") for d in info.pending_demand]
            demand += [policy.Demand(policy.shape_of(d.amounts), "actor") for d in info.pending_actor_demand]
        for group_id, strategy, shapes in self.gcs.placement_group_demand():
            spread = group_id.hex() if strategy == "STRICT_SPREAD" else ""
            demand += [policy.Demand(policy.shape_of(s), "placement group bundle", spread) for s in shapes]
        alive_ids = {n.node_id for n in nodes}
        now = time.time()
        instances = [
            policy.InstanceView(i.instance_id, i.node_type, pending=on_its_way(i, now, self._settle_s))
            for i in self.instances.values()
            # A terminating node stops counting once it has left the cluster (one that
            # never joined counts until its provider says it is gone).
            if i.state in COUNTED and not (i.state is S.TERMINATING and i.node_id and i.node_id not in alive_ids)
        ]
        return policy.PolicyInput(
            config=self.config,
            nodes=nodes,
            instances=instances,
            demand=demand,
            requested=list(self._requested),
            backing_off=self._backoff.active(time.monotonic()),
        )

    def _explained(self, plan: policy.Plan) -> policy.Plan:
        """``plan`` with the reason of demand waiting for launched nodes extended by why
        some of them cannot start (for status: why it is not scaling)."""
        if not self._waits:
            return plan
        counts = collections.Counter(self.instances[i].node_type for i in self._waits if i in self.instances)
        why = "; ".join(
            f"{n} {t} node{'s' if n != 1 else ''} cannot start: "
            f"{next(r for i, r in self._waits.items() if self.instances[i].node_type == t)}"
            for t, n in sorted(counts.items())
        )
        unmet = tuple(
            dataclasses.replace(u, reason=f"{u.reason} ({why})") if u.status == policy.WAITING_FOR_LAUNCH else u
            for u in plan.unmet
        )
        return dataclasses.replace(plan, unmet=unmet)

    async def _act(self, plan: policy.Plan) -> None:
        assert self.provider is not None
        for launch in plan.launches:
            self._publish(launch.message, {"action": "launch", "node_type": launch.node_type, "count": launch.count})
            node_type = self.config.available_node_types[launch.node_type]
            for _ in range(launch.count):
                inst = Instance(launch.node_type)
                self.instances[inst.instance_id] = inst
                request = LaunchRequest(inst.instance_id, node_type.name, dict(node_type.resources), dict(node_type.node_config))
                try:
                    await asyncio.to_thread(self.provider.launch, request)
                except Exception as exc:  # noqa: BLE001 - a provider's failure is reported, not fatal
                    logger.exception("launch of instance=%s failed", inst.instance_id)
                    self._launch_failed(inst, f"{type(exc).__name__}: {exc}", time.monotonic())
                    continue
                inst.to(S.LAUNCHING)
        by_id = {i.instance_id: i for i in self.instances.values()}
        for removal in plan.removals:
            inst = by_id.get(removal.instance_id)
            if inst is None or inst.state is not S.RUNNING:
                continue
            accepted, busy = await self.gcs.drain_node(removal.node_id, removal.reason)
            if not accepted:
                logger.info("node=%s not drained: %s", removal.node_id.hex(), busy)
                continue
            inst.to(S.DRAINING, removal.reason)
            self._publish(
                removal.message,
                {"action": "remove", "node_type": removal.node_type, "node_id": removal.node_id.hex()},
            )
            if await self._terminate(inst):
                inst.to(S.TERMINATING, removal.reason)  # else: tried again next step
        # Infeasible and capped demand: said once, again only after it went away.
        current = {u.reason: u for u in plan.unmet if u.status in (policy.INFEASIBLE, policy.CAPPED)}
        for reason, unmet in current.items():
            if reason not in self._reported:
                self._publish(
                    reason,
                    {"action": unmet.status, "shape": dict(unmet.demand.shape), "count": unmet.count},
                )
        self._reported = set(current)

    async def _terminate(self, inst: Instance) -> bool:
        assert self.provider is not None
        try:
            await asyncio.to_thread(self.provider.terminate, inst.instance_id)
            return True
        except Exception:  # noqa: BLE001 - retried at the next step
            logger.exception("terminating instance=%s failed", inst.instance_id)
            return False

    def _publish(self, message: str, data: dict[str, Any]) -> None:
        event = self.gcs.events.publish(
            gcs_pb2.EVENT_KIND_AUTOSCALER, message, data=data, source="autoscaler"
        )
        self.recent.append(event)

    # -- status -------------------------------------------------------------------
    def status(self) -> gcs_pb2.GetAutoscalerStatusReply:
        """Instances per type, the last plan's unmet demand and recent decisions."""
        config = self.config
        counts: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
        for inst in self.instances.values():
            counts[inst.node_type][inst.state] += 1
        types = []
        for name, node_type in sorted(config.available_node_types.items()):
            c = counts[name]
            types.append(
                gcs_pb2.NodeTypeStatus(
                    name=name,
                    resources=common_pb2.ResourceSet(amounts=node_type.resources),
                    running=c[S.RUNNING],
                    pending=c[S.REQUESTED] + c[S.LAUNCHING],
                    stopping=c[S.DRAINING] + c[S.TERMINATING],
                    min_workers=node_type.min_workers,
                    max_workers=node_type.max_workers,
                )
            )
        demand = [
            gcs_pb2.DemandStatus(
                shape=common_pb2.ResourceSet(amounts=dict(u.demand.shape)),
                kind=u.demand.kind,
                count=u.count,
                status=u.status,
                reason=u.reason,
            )
            for u in self._last_plan.unmet
        ]
        instances = [
            gcs_pb2.InstanceStatus(
                instance_id=i.instance_id,
                node_type=i.node_type,
                state=i.state.value,
                node_id=i.node_id,
                reason=i.reason,
                since=i.since(),
            )
            for i in self.instances.values()
        ]
        return gcs_pb2.GetAutoscalerStatusReply(
            enabled=True,
            cluster_name=config.cluster_name,
            node_types=types,
            demand=demand,
            instances=instances,
            events=list(self.recent),
            max_workers=config.max_workers,
            idle_timeout_s=config.idle_timeout_s,
        )
