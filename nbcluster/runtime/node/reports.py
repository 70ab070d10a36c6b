"""What the node manager tells about its node: its row for the GCS (resources, load,
pending demand, idle or busy and why) and ``GetNodeStats`` for status and tests.
"""

from __future__ import annotations

import os
import socket
import time
from typing import TYPE_CHECKING, Any

import psutil

from nbcluster.runtime import bundles
from nbcluster.runtime.node import resources as rs
from nbcluster.runtime.protocol import common_pb2, gcs_pb2
from nbcluster.runtime.protocol import node_manager_pb2 as nm_pb2

if TYPE_CHECKING:
    from nbcluster.runtime.node.jobs import JobSupervisors
    from nbcluster.runtime.node.options import NodeOptions
    from nbcluster.runtime.node.worker_pool import WorkerPool
    from nbcluster.runtime.objects.store import ObjectStore
    from nbcluster.runtime.session import Session


class NodeReports:
    """Mixed into NodeManager (which provides the attributes below)."""

    node_id: bytes
    session: "Session"
    options: "NodeOptions"
    start_time: float
    address: str
    local_endpoint: str
    object_address: str
    total: rs.Fixed
    available: rs.Fixed
    draining: bool
    drain_reason: int
    drain_message: str
    drain_deadline: float
    store: "ObjectStore | None"
    pool: "WorkerPool | None"
    jobs: "JobSupervisors | None"
    _leases: dict[int, Any]
    _bundles: dict[tuple[bytes, int], Any]
    _queue: list[Any]
    _next_lease: int
    #: Since when (monotonic) the node has been idle; None while busy.
    _idle_since: float | None

    def busy(self) -> str:
        """Why the node is not idle ("" when it is): leases (tasks, actors), queued
        requests, objects being read or sent, objects made here still referenced."""
        assert self.store is not None
        why = []
        if self._leases:
            why.append(f"{len(self._leases)} leased workers")
        if self._bundles:
            why.append(f"{len(self._bundles)} placement group bundles")
        if self.jobs is not None and self.jobs.running:
            why.append(f"{len(self.jobs.running)} job entrypoints")
        queued = sum(1 for r in self._queue if not r.future.done())
        if queued:
            why.append(f"{queued} queued requests")
        pinned = self.store.pinned_count()
        if pinned:
            why.append(f"{pinned} objects in use")
        held = self.store.primary_count()
        if held:
            # Removing the node would lose them (or make their tasks run again).
            why.append(f"{held} objects still referenced")
        return ", ".join(why)

    def _node_info(self) -> gcs_pb2.NodeInfo:
        """This node's row for the GCS: resources, load, demand, idleness."""
        assert self.store is not None
        running = sum(1 for lease in self._leases.values() if not lease.cpu_released)
        now = time.monotonic()
        if self.busy():
            self._idle_since = None
        elif self._idle_since is None:
            self._idle_since = now
        # Requests for a placement group's resources are its demand, which the GCS tells.
        queued = [
            r for r in self._queue
            if not r.future.done() and not any(bundles.is_group_resource(k) for k in r.placement)
        ]
        memory = psutil.virtual_memory()
        return gcs_pb2.NodeInfo(
            node_id=self.node_id,
            address=self.address,
            local_endpoint=self.local_endpoint,
            hostname=socket.gethostname(),
            node_ip=self.options.node_ip,
            total=common_pb2.ResourceSet(amounts=rs.to_float(self.total)),
            available=common_pb2.ResourceSet(amounts=rs.to_float(self.available)),
            is_head=self.options.is_head,
            start_time=self.start_time,
            node_type=self.options.node_type,
            object_store_used=self.store.used,
            object_store_capacity=self.store.capacity,
            num_workers=len(self.pool.workers) if self.pool is not None else 0,
            tasks_running=running,
            pending_demand=[
                common_pb2.ResourceSet(amounts=rs.to_float(r.placement)) for r in queued if not r.request.for_actor
            ],
            pending_actor_demand=[
                common_pb2.ResourceSet(amounts=rs.to_float(r.placement)) for r in queued if r.request.for_actor
            ],
            session_dir=str(self.session.dir),
            pid=os.getpid(),
            object_address=self.object_address,
            idle=self._idle_since is not None,
            idle_for_s=now - self._idle_since if self._idle_since is not None else 0.0,
            draining=self.draining,
            drain_reason=self.drain_reason,
            drain_message=self.drain_message,
            drain_deadline=self.drain_deadline,
            instance_id=self.options.instance_id,
            memory_used=memory.total - memory.available,
            memory_total=memory.total,
        )

    def GetNodeStats(self, request: nm_pb2.GetNodeStatsRequest, conn: Any) -> nm_pb2.GetNodeStatsReply:
        """Resources, store, workers and leases of this node (``nbcluster status``, tests)."""
        assert self.store is not None and self.pool is not None
        return nm_pb2.GetNodeStatsReply(
            node_id=self.node_id,
            total=common_pb2.ResourceSet(amounts=rs.to_float(self.total)),
            available=common_pb2.ResourceSet(amounts=rs.to_float(self.available)),
            store_used=self.store.used,
            store_capacity=self.store.capacity,
            num_objects=len(self.store.entries),
            num_spilled=sum(1 for e in self.store.entries.values() if e.state.name == "SPILLED"),
            spilled_bytes=self.store.spilled_bytes(),
            num_pinned=self.store.num_pinned(),
            workers=[
                nm_pb2.WorkerStats(
                    worker_id=w.worker_id,
                    pid=w.pid,
                    state=w.state.value,
                    job_id=w.job_id,
                    lease_id=w.lease.lease_id if w.lease else 0,
                )
                for w in self.pool.workers.values()
            ],
            pending_leases=sum(1 for r in self._queue if not r.future.done()),
            restored_total=self.store.restored_total,
            spilled_total=self.store.spilled_total,
            leases_granted=self._next_lease,
            objects=[
                nm_pb2.StoredObject(object_id=e.object_id, size=e.size, state=e.state.value, pins=e.pins)
                for e in self.store.entries.values()
            ]
            if request.include_objects
            else [],
        )
