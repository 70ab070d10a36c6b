"""The GCS's placement group table: creating groups, placing their bundles, moving
them off dead nodes, removing them.

A group is placed in two phases, one group at a time (a single-flight loop, woken
when resources or membership change): every chosen node *prepares* its bundles — sets
their resources aside, all or none — then every one *commits* them, and only then is
the group CREATED. When any node refuses or cannot be reached, everything prepared or
committed in that round is given back and the group waits for the next change; so a
group is never half-held. Committed bundles become resources under the group's names
on their node (``runtime/bundles.py``), which the ordinary scheduler uses to place the
group's tasks and actors there.

A node that dies takes its bundles with it: the group goes RESCHEDULING until they
are placed again. Removing a group ends its actors, kills its running tasks (their
node managers end the leases on its resources) and gives the resources back; a group
that is not detached is removed when its job ends. Rows are kept in the GCS's SQLite.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from nbcluster.runtime import ids
from nbcluster.runtime.gcs.bundle_placement import NodeRoom, demand_shapes, place
from nbcluster.runtime.node import resources as rs
from nbcluster.runtime.protocol import common_pb2, gcs_pb2
from nbcluster.runtime.protocol import node_manager_pb2 as nm_pb2
from nbcluster.runtime.states import PLACEMENT_GROUP_TRANSITIONS, PlacementGroupState, StateMachine
from nbcluster.runtime.transport import methods
from nbcluster.runtime.transport.errors import ConnectionLost, RemoteError

if TYPE_CHECKING:
    from nbcluster.runtime.gcs.server import GcsServer
    from nbcluster.runtime.gcs.store import GcsStore

logger = logging.getLogger(__name__)

State = PlacementGroupState
_WAITING = (State.PENDING, State.RESCHEDULING)
_FAILURES = (ConnectionLost, RemoteError, asyncio.TimeoutError, OSError)
_STATE_PB = {
    State.PENDING: gcs_pb2.PLACEMENT_GROUP_STATE_PENDING,
    State.CREATED: gcs_pb2.PLACEMENT_GROUP_STATE_CREATED,
    State.RESCHEDULING: gcs_pb2.PLACEMENT_GROUP_STATE_RESCHEDULING,
    State.REMOVED: gcs_pb2.PLACEMENT_GROUP_STATE_REMOVED,
}
_STATE_FROM_PB = {v: k for k, v in _STATE_PB.items()}


def strategy_name(info: gcs_pb2.PlacementGroupInfo) -> str:
    """The group's strategy as Ray names it (PACK when unset)."""
    return gcs_pb2.PlacementStrategy.Name(info.strategy or gcs_pb2.PLACEMENT_STRATEGY_PACK).removeprefix(
        "PLACEMENT_STRATEGY_"
    )


def describe(info: gcs_pb2.PlacementGroupInfo) -> str:
    """``Placement group 'name' (3f2a…)`` for messages."""
    name = f" {info.name!r}" if info.name else ""
    return f"Placement group{name} ({ids.short(info.placement_group_id)})"


class _Group:
    __slots__ = ("info", "machine", "changed", "warned")

    def __init__(self, info: gcs_pb2.PlacementGroupInfo, state: State) -> None:
        self.info = info
        self.machine = StateMachine(PLACEMENT_GROUP_TRANSITIONS, state)
        self.changed = asyncio.Event()
        self.warned = ""

    @property
    def state(self) -> State:
        return self.machine.state


class PlacementGroupManager:
    """The placement group table and the loop that places waiting groups (see the
    module docstring). ``start()`` starts the loop; ``wake()`` asks it to look again."""

    def __init__(self, gcs: "GcsServer") -> None:
        self.gcs = gcs
        self.groups: dict[bytes, _Group] = {}
        self.names: dict[tuple[str, str], bytes] = {}
        self._store: GcsStore | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._tasks: set[asyncio.Task] = set()
        #: Nodes that refused to prepare (monotonic time): left out until they report again,
        #: so a stale view of them is not tried over and over.
        self._refused: dict[bytes, float] = {}

    # -- lifecycle ----------------------------------------------------------------
    def recover(self, store: "GcsStore") -> None:
        """Load the groups ``store`` holds (a restarted head)."""
        self._store = store
        for info in store.placement_groups():
            group = _Group(info, _STATE_FROM_PB.get(info.state, State.REMOVED))
            self.groups[info.placement_group_id] = group
            if info.name and group.state is not State.REMOVED:
                self.names[(info.namespace, info.name)] = info.placement_group_id

    async def start(self) -> None:
        """Start the placing loop; groups of jobs that ended while the head was down go."""
        self._task = asyncio.get_running_loop().create_task(self._run())
        running = (gcs_pb2.JOB_STATE_PENDING, gcs_pb2.JOB_STATE_RUNNING)
        for group in list(self.groups.values()):
            info = group.info
            job = self.gcs.job_table.info(info.job_id)
            if group.state is not State.REMOVED and not info.detached and (job is None or job.state not in running):
                await self._remove(group, "its job ended")
        self.wake()

    def stop(self) -> None:
        """Stop the placing loop and the removals under way."""
        for task in [self._task, *self._tasks]:
            if task is not None:
                task.cancel()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def wake(self) -> None:
        """Resources or membership changed: waiting groups are looked at again."""
        if any(g.state in _WAITING for g in self.groups.values()):
            self._wake.set()

    # -- RPCs ---------------------------------------------------------------------
    def create(self, request: gcs_pb2.CreatePlacementGroupRequest) -> gcs_pb2.CreatePlacementGroupReply:
        """Register a group (PENDING) and wake the loop to place it."""
        info = request.group
        known = self.groups.get(info.placement_group_id)
        if known is not None:
            return gcs_pb2.CreatePlacementGroupReply(group=known.info, warning=known.warned)
        if len(info.placement_group_id) != 16 or not info.bundles:
            raise RemoteError(common_pb2.ERROR_CODE_INVALID_ARGUMENT, "a placement group needs a 16-byte id and bundles")
        if info.name:
            if (info.namespace, info.name) in self.names:
                raise RemoteError(
                    common_pb2.ERROR_CODE_ALREADY_EXISTS,
                    f"a placement group named {info.name!r} already exists in namespace {info.namespace!r}; "
                    "pick another name or remove that group first",
                )
            self.names[(info.namespace, info.name)] = info.placement_group_id
        for i, bundle in enumerate(info.bundles):
            bundle.index = i
            bundle.ClearField("node_id")
        info.create_time = time.time()
        info.state = _STATE_PB[State.PENDING]
        group = self.groups[info.placement_group_id] = _Group(info, State.PENDING)
        self._changed(group, f"{describe(info)} is PENDING ({len(info.bundles)} bundles, {strategy_name(info)})")
        infeasible = self._infeasible(group)
        if infeasible:
            info.reason = infeasible
            group.warned = f"{describe(info)} is {infeasible} (lower the request, or add such nodes)"
            logger.warning(group.warned)
            self.gcs.events.publish(gcs_pb2.EVENT_KIND_PLACEMENT_GROUP, group.warned, job_id=info.job_id,
                                    data=self._data(group), source="scheduler")
        self._wake.set()
        return gcs_pb2.CreatePlacementGroupReply(group=info, warning=group.warned)

    async def remove(self, request: gcs_pb2.RemovePlacementGroupRequest) -> None:
        """Remove a group (idempotent); returns once its nodes gave its resources back."""
        group = self.groups.get(request.placement_group_id)
        if group is None:
            raise RemoteError(
                common_pb2.ERROR_CODE_NOT_FOUND, f"no placement group {request.placement_group_id.hex()}"
            )
        await self._remove(group, "it was removed with remove_placement_group()")

    async def get(self, request: gcs_pb2.GetPlacementGroupRequest) -> gcs_pb2.GetPlacementGroupReply:
        """A group's row by id or name; with ``wait_until_ready``, once it is CREATED or
        REMOVED (or the timeout passed)."""
        group_id = request.placement_group_id
        if not group_id and request.name:
            group_id = self.names.get((request.namespace, request.name), b"")
        group = self.groups.get(group_id)
        if group is None:
            return gcs_pb2.GetPlacementGroupReply(found=False)
        if request.wait_until_ready:
            deadline = time.monotonic() + max(request.timeout_s, 0.0)
            while group.state in _WAITING and (left := deadline - time.monotonic()) > 0:
                try:
                    await asyncio.wait_for(group.changed.wait(), left)
                except asyncio.TimeoutError:
                    break
        return gcs_pb2.GetPlacementGroupReply(found=True, group=group.info)

    def list(self) -> list[gcs_pb2.PlacementGroupInfo]:
        """Every group's row, oldest first."""
        return [g.info for g in self.groups.values()]

    # -- what the GCS tells it ------------------------------------------------------
    def node_died(self, node_id: bytes) -> None:
        """The bundles on ``node_id`` are lost: their groups go RESCHEDULING."""
        for group in self.groups.values():
            if group.state is State.REMOVED:
                continue
            lost = [b for b in group.info.bundles if b.node_id == node_id]
            if not lost:
                continue
            for bundle in lost:
                bundle.ClearField("node_id")
            group.info.reason = (
                f"node {ids.short(node_id)} died with bundle(s) {', '.join(str(b.index) for b in lost)}"
            )
            if group.state is State.CREATED:
                group.info.num_reschedules += 1
                self._transition(group, State.RESCHEDULING, f"{describe(group.info)} is RESCHEDULING: {group.info.reason}")
            else:
                self._changed(group)
        self.wake()

    def job_finished(self, job_id: bytes) -> None:
        """Remove the groups of ``job_id`` that are not detached (not once the GCS is
        stopping: its drivers' connections closing end their jobs then)."""
        if self._task is None or self._task.done():
            return
        for group in list(self.groups.values()):
            if group.info.job_id == job_id and not group.info.detached and group.state is not State.REMOVED:
                self._spawn(self._remove(group, "its job ended"))

    def demand(self) -> list[tuple[bytes, str, list[dict[str, float]]]]:
        """(group id, strategy, resource shapes) of what waiting groups still need placed:
        their bundles, or (STRICT_PACK) their sum."""
        out = []
        for group in self.groups.values():
            if group.state in _WAITING:
                todo = [dict(b.resources.amounts) for b in group.info.bundles if not b.node_id]
                strategy = strategy_name(group.info)
                out.append((group.info.placement_group_id, strategy, demand_shapes(strategy, todo)))
        return out

    # -- placing --------------------------------------------------------------------
    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            for group in [g for g in self.groups.values() if g.state in _WAITING]:
                try:
                    await self._place(group)
                except asyncio.CancelledError:
                    raise
                except Exception:  # noqa: BLE001 - one group's failure must not stop the loop
                    logger.exception("placing placement_group=%s failed", group.info.placement_group_id.hex())

    def _rooms(self, skip_refused: bool = True) -> tuple[list[NodeRoom], dict[bytes, gcs_pb2.NodeInfo]]:
        """The nodes bundles may go to now (not draining; not one that refused since its
        last report, when ``skip_refused``), as rooms and by id."""
        now = time.monotonic()
        self._refused = {n: t for n, t in self._refused.items() if now - self.gcs.report_age(n) <= t}
        skip = self._refused if skip_refused else {}
        nodes = {n.node_id: n for n in self.gcs.alive_nodes() if not n.draining and n.node_id not in skip}
        rooms = [
            NodeRoom(n.node_id, rs.to_fixed(n.available.amounts), rs.to_fixed(n.total.amounts)) for n in nodes.values()
        ]
        return rooms, nodes

    async def _place(self, group: _Group) -> None:
        """One two-phase round for a waiting group, when its bundles fit now."""
        info = group.info
        rooms, nodes = self._rooms()
        todo = {b.index: rs.to_fixed(b.resources.amounts) for b in info.bundles if not b.node_id}
        placed = {b.index: b.node_id for b in info.bundles if b.node_id}
        choice = place(strategy_name(info), todo, rooms, placed)
        if choice is None:
            why = self._infeasible(group) or "waiting for resources: its bundles do not fit the free resources now"
            if why != info.reason:
                info.reason = why
                self._changed(group)
            return
        info.attempts += 1
        by_node: dict[bytes, list[nm_pb2.BundleSpec]] = {}
        for index, node_id in sorted(choice.items()):
            by_node.setdefault(node_id, []).append(
                nm_pb2.BundleSpec(placement_group_id=info.placement_group_id, index=index,
                                  resources=info.bundles[index].resources)
            )
        why = await self._two_phase(group, [(nodes[n], specs) for n, specs in by_node.items()])
        if group.state is State.REMOVED:
            return
        if why:
            info.reason = why
            self._changed(group)
            return
        for index, node_id in choice.items():
            info.bundles[index].node_id = node_id
        info.ready_time = time.time()
        info.reason = ""
        where = ", ".join(sorted({ids.short(n) for n in choice.values()}))
        self._transition(group, State.CREATED, f"{describe(info)} is CREATED on node(s) {where}")

    async def _two_phase(self, group: _Group, by_node: list[tuple[gcs_pb2.NodeInfo, list[nm_pb2.BundleSpec]]]) -> str:
        """Prepare on every node, then commit on every one; on any failure give all of
        it back. Returns why it failed ("" when every bundle is committed)."""
        done: list[tuple[gcs_pb2.NodeInfo, list[nm_pb2.BundleSpec]]] = []
        why = ""
        for node, specs in by_node:
            try:
                reply = await self._call(node, methods.NodeManager.PrepareBundles, nm_pb2.PrepareBundlesRequest(bundles=specs))
            except _FAILURES as exc:
                why = f"node {ids.short(node.node_id)} could not be reached ({exc})"
                break
            self._update(node, reply)
            done.append((node, specs))
            if not reply.prepared:
                why = f"node {ids.short(node.node_id)} had no room after all ({reply.reason})"
                self._refused[node.node_id] = time.monotonic()
                break
        if not why and group.state is not State.REMOVED:
            for node, specs in done:
                try:
                    reply = await self._call(node, methods.NodeManager.CommitBundles, nm_pb2.CommitBundlesRequest(bundles=specs))
                except _FAILURES as exc:
                    why = f"node {ids.short(node.node_id)} could not be reached ({exc})"
                    break
                self._update(node, reply)
        if why or group.state is State.REMOVED:
            for node, specs in done:
                await self._release(node, group.info.placement_group_id, [s.index for s in specs], why or "removed")
            logger.info("placement_group=%s not placed this round: %s", group.info.placement_group_id.hex(), why)
        return why

    async def _call(self, node: gcs_pb2.NodeInfo, method: Any, request: Any) -> Any:
        conn = await self.gcs.node_connection(node)
        return await conn.call(method, request, timeout=10.0)

    async def _release(self, node: gcs_pb2.NodeInfo, group_id: bytes, indexes: Iterable[int], reason: str,
                       removed: bool = False) -> None:
        request = nm_pb2.ReleaseBundlesRequest(
            placement_group_id=group_id, indexes=list(indexes), removed=removed, reason=reason
        )
        try:
            self._update(node, await self._call(node, methods.NodeManager.ReleaseBundles, request))
        except _FAILURES as exc:
            logger.warning("could not release placement_group=%s on node=%s: %s", group_id.hex(), node.node_id.hex(), exc)

    @staticmethod
    def _update(node: gcs_pb2.NodeInfo, reply: Any) -> None:
        """The GCS's row of ``node`` with the resources a bundle call says it has now, so
        scheduling sees the change before the node's next report."""
        if reply.HasField("resources"):
            node.total.CopyFrom(reply.resources.total)
            node.available.CopyFrom(reply.resources.available)

    async def _remove(self, group: _Group, reason: str) -> None:
        """End the group's actors, release its bundles on every node, free its name."""
        if group.state is State.REMOVED:
            return
        info = group.info
        holders = {b.node_id for b in info.bundles if b.node_id}
        info.end_time = time.time()
        info.reason = reason
        if info.name and self.names.get((info.namespace, info.name)) == info.placement_group_id:
            del self.names[(info.namespace, info.name)]
        self._transition(group, State.REMOVED, f"{describe(info)} is REMOVED: {reason}")
        self.gcs.actors.end_group(info.placement_group_id, f"its placement group was removed ({reason})")
        await asyncio.gather(*(
            self._release(node, info.placement_group_id, [], reason, removed=True)
            for node in self.gcs.alive_nodes() if node.node_id in holders
        ))
        for node in self.gcs.alive_nodes():
            if node.node_id not in holders:  # so it refuses requests for the group's resources
                self._spawn(self._release(node, info.placement_group_id, [], reason, removed=True))
        for bundle in info.bundles:
            bundle.ClearField("node_id")
        self._changed(group)
        self.wake()

    # -- state and messages -----------------------------------------------------------
    def _infeasible(self, group: _Group) -> str | None:
        """Why no cluster of these nodes (and node types the autoscaler may add) can ever
        hold the group's waiting bundles ("infeasible: ..."); None when one can."""
        info = group.info
        rooms, _ = self._rooms(skip_refused=False)
        todo = {b.index: rs.to_fixed(b.resources.amounts) for b in info.bundles if not b.node_id}
        placed = {b.index: b.node_id for b in info.bundles if b.node_id}
        launchable = self.gcs.autoscaler.launchable() if self.gcs.autoscaler is not None else []
        for k, shape in enumerate(launchable):
            fixed = rs.to_fixed(shape)
            rooms += [NodeRoom(f"launchable-{k}-{i}".encode(), fixed, fixed) for i in range(len(todo))]
        if place(strategy_name(info), todo, rooms, placed, ever=True) is not None:
            return None
        wanted = ", ".join(rs.describe(dict(b.resources.amounts)) for b in info.bundles if not b.node_id)
        return (
            f"infeasible: the cluster's nodes cannot hold its bundles [{wanted}] together ({strategy_name(info)}); "
            "it waits for nodes that can"
        )

    def _transition(self, group: _Group, state: State, message: str) -> None:
        group.machine.transition(state)
        group.info.state = _STATE_PB[state]
        self._changed(group, message)

    def _changed(self, group: _Group, message: str = "") -> None:
        info = group.info
        info.version += 1
        if self._store is not None and not self.gcs.stopping.is_set():
            self._store.put_placement_group(info)
        group.changed.set()
        group.changed = asyncio.Event()
        if message:
            self.gcs.events.publish(gcs_pb2.EVENT_KIND_PLACEMENT_GROUP, message, job_id=info.job_id,
                                    data=self._data(group))

    @staticmethod
    def _data(group: _Group) -> dict[str, Any]:
        info = group.info
        return {
            "placement_group_id": info.placement_group_id.hex(),
            "name": info.name,
            "state": group.state.value,
            "strategy": strategy_name(info),
            "bundles": [dict(b.resources.amounts) for b in info.bundles],
            "bundles_to_node_id": {b.index: b.node_id.hex() for b in info.bundles if b.node_id},
        }


class PlacementGroupService:
    """The placement group RPCs of the Gcs service, mixed into GcsServer (which
    provides ``placement_groups``)."""

    placement_groups: PlacementGroupManager

    def CreatePlacementGroup(
        self, request: gcs_pb2.CreatePlacementGroupRequest, conn: Any
    ) -> gcs_pb2.CreatePlacementGroupReply:
        """Register a placement group; it is placed as soon as its bundles fit."""
        return self.placement_groups.create(request)

    async def RemovePlacementGroup(self, request: gcs_pb2.RemovePlacementGroupRequest, conn: Any) -> common_pb2.Empty:
        """Remove a placement group: its actors and tasks end, its resources go back."""
        await self.placement_groups.remove(request)
        return common_pb2.Empty()

    async def GetPlacementGroup(
        self, request: gcs_pb2.GetPlacementGroupRequest, conn: Any
    ) -> gcs_pb2.GetPlacementGroupReply:
        """A placement group's row, by id or name (optionally once it is ready)."""
        return await self.placement_groups.get(request)

    def ListPlacementGroups(
        self, request: gcs_pb2.ListPlacementGroupsRequest, conn: Any
    ) -> gcs_pb2.ListPlacementGroupsReply:
        """Every placement group's row."""
        return gcs_pb2.ListPlacementGroupsReply(groups=self.placement_groups.list())

    def placement_group_demand(self) -> list[tuple[bytes, str, list[dict[str, float]]]]:
        """For the autoscaler: what waiting placement groups need placed."""
        return self.placement_groups.demand()
