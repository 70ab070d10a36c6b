"""A node's share of placement groups: the bundles the GCS placed here.

The GCS places a group in two phases (``gcs/placement_groups.py``). *Prepare* sets a
bundle's resources aside from the free ones — all the bundles of a request or none —
so nothing else takes them; *commit* makes them appear under the group's names
(``runtime/bundles.py``: ``CPU_group_0_<id>``, ``CPU_group_<id>``, ...) in the node's
total and free resources, where the group's tasks and actors lease them as any other
resource. *Release* gives a bundle back: leases on its resources end and their workers
are killed, the group's names disappear, the plain resources are free again. A
released group that was removed is remembered, and lease requests for its resources
are refused from then on (its work fails instead of waiting for ever).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from nbcluster.runtime import bundles
from nbcluster.runtime.node import resources as rs
from nbcluster.runtime.protocol import common_pb2
from nbcluster.runtime.protocol import node_manager_pb2 as nm_pb2

if TYPE_CHECKING:
    from nbcluster.runtime.node.worker_pool import WorkerPool

logger = logging.getLogger(__name__)


class _Bundle:
    __slots__ = ("resources", "added")

    def __init__(self, resources: rs.Fixed) -> None:
        #: What it holds of the node's plain resources.
        self.resources = resources
        #: What committing it added under the group's names (empty while prepared).
        self.added: rs.Fixed = {}


class BundleHandlers:
    """Mixed into NodeManager (which provides the attributes below)."""

    node_id: bytes
    total: rs.Fixed
    available: rs.Fixed
    draining: bool
    pool: "WorkerPool | None"
    _leases: dict[int, Any]
    _queue: list[Any]
    _idle_since: float | None
    #: (group id, bundle index) -> the bundle, prepared or committed here.
    _bundles: dict[tuple[bytes, int], _Bundle]
    #: Groups removed while this node was up (hex ids): their requests are refused.
    _removed_groups: set[str]

    def _schedule(self) -> None:  # pragma: no cover - provided by NodeManager
        raise NotImplementedError

    def _changed(self) -> None:  # pragma: no cover - provided by NodeManager
        raise NotImplementedError

    def _end_lease(self, lease: Any) -> None:  # pragma: no cover - provided by NodeManager
        raise NotImplementedError

    def PrepareBundles(self, request: nm_pb2.PrepareBundlesRequest, conn: Any) -> nm_pb2.PrepareBundlesReply:
        """Set the bundles' resources aside: all of them, or none (``prepared`` false)."""
        need: rs.Fixed = {}
        fresh = []
        for spec in request.bundles:
            if spec.placement_group_id.hex() in self._removed_groups:
                return nm_pb2.PrepareBundlesReply(prepared=False, reason="the group was removed")
            key = (spec.placement_group_id, spec.index)
            if key not in self._bundles:  # a repeated request: prepared already
                fresh.append((key, rs.to_fixed(spec.resources.amounts)))
                rs.add(need, fresh[-1][1])
        if self.draining:
            return nm_pb2.PrepareBundlesReply(prepared=False, reason="the node is draining")
        if not rs.fits(self.available, need):
            free = rs.describe({k: v for k, v in rs.to_float(self.available).items() if k in need})
            return nm_pb2.PrepareBundlesReply(
                prepared=False, reason=f"needs {rs.describe(rs.to_float(need))}, {free} free",
                resources=self._resources(),
            )
        rs.subtract(self.available, need)
        for key, amounts in fresh:
            self._bundles[key] = _Bundle(amounts)
        self._idle_since = None
        self._changed()
        return nm_pb2.PrepareBundlesReply(prepared=True, resources=self._resources())

    def CommitBundles(self, request: nm_pb2.CommitBundlesRequest, conn: Any) -> nm_pb2.CommitBundlesReply:
        """Make prepared bundles' resources appear under the group's names."""
        for spec in request.bundles:
            bundle = self._bundles.get((spec.placement_group_id, spec.index))
            if bundle is None or bundle.added:
                continue
            bundle.added = rs.to_fixed(
                bundles.committed_resources(spec.placement_group_id, spec.index, rs.to_float(bundle.resources))
            )
            rs.add(self.total, bundle.added)
            rs.add(self.available, bundle.added)
            logger.info("committed bundle %d of placement_group=%s", spec.index, spec.placement_group_id.hex())
        if self.pool is not None:
            self._schedule()
        self._changed()
        return nm_pb2.CommitBundlesReply(resources=self._resources())

    def ReleaseBundles(self, request: nm_pb2.ReleaseBundlesRequest, conn: Any) -> nm_pb2.ReleaseBundlesReply:
        """Give bundles back; ``removed``: every bundle of the group, which is gone."""
        group_id = request.placement_group_id
        reason = request.reason or "its placement group released it"
        if request.removed:
            self._removed_groups.add(group_id.hex())
            self._kill_leases(lambda name: bundles.group_of(name) == group_id.hex(), reason)
        keys = [k for k in self._bundles if k[0] == group_id and (request.removed or k[1] in request.indexes)]
        for key in keys:
            bundle = self._bundles.pop(key)
            if bundle.added:  # the leases on this bundle's own names
                mine = f"_group_{key[1]}_"
                self._kill_leases(lambda name, b=bundle, m=mine: name in b.added and m in name, reason)
            rs.subtract(self.total, bundle.added)
            rs.subtract(self.available, bundle.added)
            rs.add(self.available, bundle.resources)
        for name in [k for k, v in self.total.items() if v <= 0 and bundles.is_group_resource(k)]:
            del self.total[name]
            self.available.pop(name, None)
        if keys:
            logger.info("released %d bundle(s) of placement_group=%s: %s", len(keys), group_id.hex(), reason)
        if self.pool is not None:
            self._schedule()
        self._changed()
        return nm_pb2.ReleaseBundlesReply(resources=self._resources())

    def _resources(self) -> nm_pb2.NodeResources:
        return nm_pb2.NodeResources(
            total=common_pb2.ResourceSet(amounts=rs.to_float(self.total)),
            available=common_pb2.ResourceSet(amounts=rs.to_float(self.available)),
        )

    def _kill_leases(self, uses: Any, reason: str) -> None:
        """End the leases that hold a resource ``uses(name)`` picks, killing their workers."""
        for lease in list(self._leases.values()):
            if any(uses(name) for name in lease.shape):
                self._end_lease(lease)
                if self.pool is not None:
                    self.pool.kill(lease.worker, reason)

    def refused_for_removed_group(self, pending: Any) -> bool:
        """Refuse a queued lease request that asks for the resources of a removed group
        (its work fails: the group will not come back); whether it was refused."""
        if not self._removed_groups:
            return False
        for name in pending.placement:
            group = bundles.group_of(name)
            if group is not None and group in self._removed_groups:
                self._queue.remove(pending)
                pending.future.set_result(nm_pb2.LeaseReply(
                    rejection=nm_pb2.LEASE_REJECTION_UNSCHEDULABLE, reason=f"its placement group {group} was removed"
                ))
                return True
        return False
