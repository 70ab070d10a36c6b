"""Placement groups (as ``ray.util.placement_group``): bundles of resources reserved
together across the cluster, for work that must run side by side (a gang of
workers) or apart (replicas)::

    from nbcluster.util.placement_group import placement_group, remove_placement_group
    from nbcluster.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    pg = placement_group([{"CPU": 1}] * 4, strategy="SPREAD")
    nbcluster.get(pg.ready())
    ref = f.options(scheduling_strategy=PlacementGroupSchedulingStrategy(pg, placement_group_bundle_index=0)).remote()
    remove_placement_group(pg)

The head reserves a group in two phases (every chosen node prepares its bundles, then
all commit), so a group is held whole or not at all; a group that does not fit waits
(PENDING) and counts as autoscaler demand. Strategies: PACK, SPREAD, STRICT_PACK,
STRICT_SPREAD (Ray's meanings). See docs/placement_groups.md.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import nbcluster
from nbcluster.runtime import bundles as bundle_rules
from nbcluster.runtime.driver_core import core_worker
from nbcluster.runtime.protocol import common_pb2, gcs_pb2
from nbcluster.runtime.state import PlacementGroupState, gcs_call
from nbcluster.runtime.transport import methods
from nbcluster.util.scheduling_strategies import PlacementGroupSchedulingStrategy

__all__ = [
    "PlacementGroup",
    "PlacementGroupID",
    "get_current_placement_group",
    "get_placement_group",
    "placement_group",
    "placement_group_table",
    "remove_placement_group",
]

#: Longest single wait on the head (its calls time out at 30 s); longer waits repeat it.
_WAIT_SLICE_S = 20.0


class PlacementGroupID:
    """A placement group's id: ``hex()``, ``binary()``."""

    __slots__ = ("_raw",)

    def __init__(self, raw: bytes) -> None:
        if not isinstance(raw, bytes) or len(raw) != 16:
            raise ValueError(f"a placement group id is 16 bytes, got {raw!r}")
        self._raw = raw

    def binary(self) -> bytes:
        """The id's bytes."""
        return self._raw

    def hex(self) -> str:
        """The id in hex, as tables and ``get_runtime_context().get_placement_group_id()`` show it."""
        return self._raw.hex()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PlacementGroupID) and other._raw == self._raw

    def __hash__(self) -> int:
        return hash(self._raw)

    def __repr__(self) -> str:
        return f"PlacementGroupID({self.hex()})"

    def __reduce__(self) -> Any:
        return (PlacementGroupID, (self._raw,))


def _bundle_reservation_check(placement_group: "PlacementGroup") -> "PlacementGroup":
    """What ``ready()`` runs in the group: it can run once the group's bundles are there."""
    return placement_group


_reservation_check: Any = None


class PlacementGroup:
    """A handle to a placement group (picklable: pass it to tasks and actors)."""

    def __init__(self, id: PlacementGroupID, bundle_cache: list[dict[str, float]] | None = None) -> None:
        self.id = id
        self._bundles = bundle_cache

    @property
    def bundle_specs(self) -> list[dict[str, float]]:
        """The resources of each bundle, in order."""
        if self._bundles is None:
            self._bundles = [dict(b.resources.amounts) for b in _info(self.id).bundles]
        return self._bundles

    @property
    def bundle_count(self) -> int:
        """How many bundles the group has."""
        return len(self.bundle_specs)

    def ready(self) -> Any:
        """An ObjectRef that resolves (to this group) once the group is placed: use it
        with ``nbcluster.get`` or ``nbcluster.wait``. A task that needs no resources
        runs in the group for it, as in Ray."""
        global _reservation_check
        if _reservation_check is None:
            _reservation_check = nbcluster.remote(num_cpus=0, max_retries=0)(_bundle_reservation_check)
        strategy = PlacementGroupSchedulingStrategy(self)
        return _reservation_check.options(scheduling_strategy=strategy).remote(self)

    def wait(self, timeout_seconds: float = 30) -> bool:
        """Wait up to ``timeout_seconds`` for the group to be placed; whether it is."""
        deadline = time.monotonic() + timeout_seconds
        while True:
            left = deadline - time.monotonic()
            reply = gcs_call(
                methods.Gcs.GetPlacementGroup,
                gcs_pb2.GetPlacementGroupRequest(
                    placement_group_id=self.id.binary(), wait_until_ready=True, timeout_s=min(max(left, 0), _WAIT_SLICE_S)
                ),
            )
            if not reply.found:
                raise ValueError(f"no placement group {self.id.hex()} in this cluster")
            state = reply.group.state
            if state != gcs_pb2.PLACEMENT_GROUP_STATE_PENDING and state != gcs_pb2.PLACEMENT_GROUP_STATE_RESCHEDULING:
                return state == gcs_pb2.PLACEMENT_GROUP_STATE_CREATED
            if deadline - time.monotonic() <= 0:
                return False

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PlacementGroup) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        return f"PlacementGroup({self.id.hex()}, {self._bundles})"

    def __reduce__(self) -> Any:
        return (PlacementGroup, (self.id, self._bundles))


def _info(group_id: PlacementGroupID | None = None, name: str = "", namespace: str = "") -> gcs_pb2.PlacementGroupInfo:
    core_worker()  # connects first (an embedded cluster), as the other API calls
    request = gcs_pb2.GetPlacementGroupRequest(
        placement_group_id=group_id.binary() if group_id is not None else b"", name=name, namespace=namespace
    )
    reply = gcs_call(methods.Gcs.GetPlacementGroup, request)
    if not reply.found:
        what = f"named {name!r} in namespace {namespace!r}" if name else group_id.hex() if group_id else ""
        raise ValueError(f"no placement group {what} in this cluster")
    return reply.group


def placement_group(
    bundles: list[dict[str, float]], strategy: str = "PACK", name: str = "", lifetime: str | None = None
) -> PlacementGroup:
    """Reserve ``bundles`` (a list of resource dicts, e.g. ``[{"CPU": 1}] * 4``) together,
    placed by ``strategy`` (PACK, SPREAD, STRICT_PACK, STRICT_SPREAD). Returns at once;
    ``ready()``/``wait()`` tell when it is placed. ``name``: find it with
    :func:`get_placement_group` (unique in the namespace). ``lifetime="detached"``: it
    outlives its job; otherwise it is removed when the job's driver exits."""
    checked = bundle_rules.validate_bundles(bundles)
    bundle_rules.validate_strategy(strategy)
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, not {type(name).__name__}")
    if lifetime not in (None, "detached"):
        raise ValueError(f"lifetime must be None or 'detached', got {lifetime!r}")
    core_worker()
    context = nbcluster.get_runtime_context()
    info = gcs_pb2.PlacementGroupInfo(
        placement_group_id=os.urandom(16),
        name=name,
        namespace=context.namespace,
        strategy=bundle_rules.STRATEGIES.index(strategy) + 1,
        bundles=[gcs_pb2.Bundle(resources=common_pb2.ResourceSet(amounts=b)) for b in checked],
        job_id=bytes.fromhex(context.get_job_id()),
        detached=lifetime == "detached",
    )
    reply = gcs_call(methods.Gcs.CreatePlacementGroup, gcs_pb2.CreatePlacementGroupRequest(group=info))
    if reply.warning:
        logging.getLogger("nbcluster").warning(reply.warning)
    return PlacementGroup(PlacementGroupID(info.placement_group_id), checked)


def remove_placement_group(placement_group: PlacementGroup) -> None:
    """Remove the group: tasks and actors running in it are killed, its resources are
    free again (also when it was still pending). Removing it again does nothing."""
    if not isinstance(placement_group, PlacementGroup):
        raise TypeError(f"remove_placement_group() takes a PlacementGroup, not {type(placement_group).__name__}")
    _info(placement_group.id)
    gcs_call(methods.Gcs.RemovePlacementGroup,
             gcs_pb2.RemovePlacementGroupRequest(placement_group_id=placement_group.id.binary()))


def get_placement_group(placement_group_name: str) -> PlacementGroup:
    """The group named ``placement_group_name`` in this job's namespace (not removed);
    ValueError when there is none."""
    info = _info(name=placement_group_name, namespace=nbcluster.get_runtime_context().namespace)
    return PlacementGroup(PlacementGroupID(info.placement_group_id), [dict(b.resources.amounts) for b in info.bundles])


def get_current_placement_group() -> PlacementGroup | None:
    """The group the calling task or actor runs in; None outside groups (a driver)."""
    if not nbcluster.is_initialized():
        return None
    group = nbcluster.get_runtime_context().get_placement_group_id()
    return PlacementGroup(PlacementGroupID(bytes.fromhex(group))) if group else None


def placement_group_table(placement_group: PlacementGroup | None = None) -> dict[str, Any]:
    """Ray's table: for each group (by hex id) its ``placement_group_id``, ``name``,
    ``bundles`` (index -> resources), ``bundles_to_node_id`` (index -> node, placed ones),
    ``strategy``, ``state``, ``stats`` and more; with a group, only that group's entry."""
    core_worker()
    if placement_group is not None:
        return _table_entry(PlacementGroupState.from_info(_info(placement_group.id)))
    reply = gcs_call(methods.Gcs.ListPlacementGroups, gcs_pb2.ListPlacementGroupsRequest())
    entries = (_table_entry(PlacementGroupState.from_info(info)) for info in reply.groups)
    return {entry["placement_group_id"]: entry for entry in entries}


def _table_entry(group: PlacementGroupState) -> dict[str, Any]:
    created = group.ready_time and group.state != "PENDING"
    return {
        "placement_group_id": group.placement_group_id,
        "name": group.name,
        "namespace": group.namespace,
        "bundles": dict(enumerate(group.bundles)),
        "bundles_to_node_id": {i: node for i, node in enumerate(group.bundles_to_node_id) if node},
        "strategy": group.strategy,
        "state": group.state,
        "is_detached": group.detached,
        "job_id": group.job_id,
        "reason": group.reason,
        "stats": {
            "end_to_end_creation_latency_ms": (group.ready_time - group.create_time) * 1000 if created else 0.0,
            "scheduling_attempt": group.attempts,
            "scheduling_state": {"CREATED": "FINISHED"}.get(group.state, group.state),
            "num_reschedules": group.num_reschedules,
        },
    }
