"""The node's lease queue, mixed into NodeManager: lease requests wait here until a
worker is granted, the request spills to another node (scheduling.py) or is rejected;
a lease holds its shape of the node's resources until the holder returns the worker.
A worker blocked in ``get`` lends its CPU back for the duration.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from nbcluster.runtime import bundles
from nbcluster.runtime.node import resources as rs
from nbcluster.runtime.node.scheduling import Decision, Verdict, decide
from nbcluster.runtime.protocol import common_pb2, core_worker_pb2, gcs_pb2
from nbcluster.runtime.protocol import node_manager_pb2 as nm_pb2
from nbcluster.runtime.states import WorkerState
from nbcluster.runtime.transport import methods

if TYPE_CHECKING:
    from nbcluster.runtime.node.accelerators import GpuIds
    from nbcluster.runtime.node.clients import Client
    from nbcluster.runtime.node.gcs_link import GcsLink
    from nbcluster.runtime.node.worker_pool import Worker, WorkerPool

logger = logging.getLogger(__name__)


class Lease:
    """A granted lease: a worker, the resources it holds, its holder."""

    __slots__ = ("lease_id", "worker", "shape", "holder", "cpu_released", "gpu_ids", "retriable", "description", "granted")

    def __init__(self, lease_id: int, worker: Worker, shape: rs.Fixed, holder: Client, request: nm_pb2.LeaseRequest) -> None:
        self.lease_id = lease_id
        self.worker = worker
        self.shape = shape
        self.holder = holder
        self.cpu_released = False
        self.gpu_ids: list[int] = []
        self.retriable, self.description, self.granted = request.retriable, request.description, time.monotonic()


class PendingLease:
    """A lease request waiting in the queue; ``future`` gets its reply."""

    __slots__ = ("request", "shape", "placement", "client", "future", "warned", "spread_turn", "view_asked")

    def __init__(self, request: nm_pb2.LeaseRequest, client: Client) -> None:
        self.request = request
        self.shape = rs.to_fixed(request.resources.amounts)
        # What must be free to grant it; only `shape` is held.
        self.placement = (
            rs.to_fixed(request.placement_resources.amounts)
            if request.HasField("placement_resources")
            else self.shape
        )
        self.client = client
        self.future: asyncio.Future = asyncio.get_running_loop().create_future()
        self.warned = False
        self.spread_turn = 0
        self.view_asked: int | None = None


class LeaseHandlers:
    """Mixed into NodeManager (which provides the attributes below)."""

    node_id: bytes
    total: rs.Fixed
    available: rs.Fixed
    gpus: "GpuIds"
    pool: "WorkerPool | None"
    _gcs: "GcsLink | None"
    _leases: dict[int, Lease]
    _next_lease: int
    _queue: list[PendingLease]
    _cluster: list[gcs_pb2.NodeInfo]
    _spread_turn: int
    _view_version: int
    _idle_since: float | None
    _spilled: dict[bytes, list[tuple[float, rs.Fixed]]]
    draining: bool

    def _awaits_view_of_target(self, pending: PendingLease, others: list[gcs_pb2.NodeInfo]) -> bool:
        """A soft node affinity to a node missing from the view (one that just joined,
        which the view learns of at the next report): look again once before running it
        elsewhere, as a hard affinity's refusal does."""
        req = pending.request
        if (req.strategy != nm_pb2.SCHEDULING_STRATEGY_NODE_AFFINITY or not req.affinity_soft
                or req.affinity_node_id in (b"", self.node_id)
                or any(n.node_id == req.affinity_node_id for n in others)):
            return False
        if pending.view_asked is None:
            pending.view_asked = self._view_version
            self._refresh_view()
            return True
        return self._view_version <= pending.view_asked

    async def RequestWorkerLease(self, request: nm_pb2.LeaseRequest, conn: Any) -> nm_pb2.LeaseReply:
        """Wait for a worker lease, a spillback to another node, or a rejection."""
        client = self._client(conn)
        pending = PendingLease(request, client)
        if request.strategy == nm_pb2.SCHEDULING_STRATEGY_SPREAD:
            pending.spread_turn = self._spread_turn
            self._spread_turn += 1
        self._queue.append(pending)
        self._schedule()
        try:
            return await pending.future
        except asyncio.CancelledError:
            if pending.future.done() and not pending.future.cancelled():
                reply = pending.future.result()
                if reply.lease_id in self._leases:  # granted as the caller went away
                    self._return(self._leases[reply.lease_id], failed=False)
            raise
        finally:
            if pending in self._queue:
                self._queue.remove(pending)

    def _warn_infeasible(self, pending: PendingLease) -> None:
        if pending.warned or any(bundles.is_group_resource(k) for k in pending.placement):
            return  # a placement group's: the GCS warns about the group
        assert self._gcs is not None
        if any(rs.fits(rs.to_fixed(t.amounts), pending.placement) for t in self._gcs.launchable):
            return  # the autoscaler can add a node for it: waiting, not infeasible
        pending.warned = True
        wanted = rs.describe(rs.to_float(pending.placement))
        largest = rs.describe(
            {
                k: v
                for k, v in rs.to_float(self.total).items()
                if not k.startswith("node:") and k not in ("memory", "object_store_memory")
            }
        )
        largest = "no resources" if largest == "{}" else largest
        what = pending.request.description or "a task"
        message = (
            f"{what} requires {wanted}, which no node in the cluster has (this node offers {largest}). "
            "It stays pending until a node with these resources joins; lower the request "
            "or add such a node."
        )
        logger.warning(message)
        pending.client.conn.notify(
            methods.CoreWorker.LeaseWarning,
            core_worker_pb2.LeaseWarningNotice(message=message, request_id=pending.request.request_id),
        )

    def _schedule(self) -> None:
        assert self.pool is not None
        waiting = [0, 0]  # requests that fit but wait for a worker: [tasks', actors']
        none_idle: set[tuple[bytes, str, bool]] = set()
        others = self._others()
        # What is free once the requests waiting for a starting worker have theirs: a
        # worker is started per request that fits, not per request queued.
        free = dict(self.available)
        # Depth first: tasks' requests (their children) before drivers', in order.
        for pending in sorted(self._queue, key=lambda p: not p.request.nested):
            if pending.future.done():
                self._queue.remove(pending)
                continue
            req = pending.request
            if self.refused_for_removed_group(pending):
                continue
            if self._awaits_view_of_target(pending, others):
                continue
            if self.draining:
                decision = self._decide_draining(pending, others)
            else:
                decision = decide(req, pending.placement, self.node_id, free, self.total, others, pending.spread_turn)
            if decision.verdict is Verdict.SPILL:
                self._queue.remove(pending)
                target = decision.node
                assert target is not None
                self._spilled.setdefault(target.node_id, []).append((time.monotonic(), pending.placement))
                others = self._others()
                full = next((n for n in self._cluster if n.node_id == target.node_id), target)
                pending.future.set_result(nm_pb2.LeaseReply(spillback=full))
                continue
            if decision.verdict is Verdict.REJECT:
                if pending.view_asked is None:
                    # The view may predate a node that just joined: look again first.
                    pending.view_asked = self._view_version
                    self._refresh_view()
                    continue
                if self._view_version <= pending.view_asked:
                    continue  # not refreshed yet
                self._queue.remove(pending)
                pending.future.set_result(nm_pb2.LeaseReply(rejection=decision.rejection, reason=decision.reason))
                continue
            if decision.verdict is Verdict.INFEASIBLE:
                self._warn_infeasible(pending)
                continue
            if decision.verdict is Verdict.WAIT:
                continue
            if not self.gpus.fits(pending.shape.get("GPU", 0)):
                continue  # GPUs enough in all, but not whole ones: wait for some to come back
            # One pass finds no idle worker for a kind it found none for before: 1,000
            # actors waiting must not scan the pool 1,000 times each time one registers.
            # (An actor takes only an unbound worker, whatever its job.)
            kind = (b"", "", True) if req.for_actor else (req.job_id, req.runtime_env_hash, False)
            worker = None if kind in none_idle else self.pool.pop_idle(
                req.job_id, req.runtime_env_hash, fresh=req.for_actor
            )
            rs.subtract(free, pending.shape)
            if worker is None:
                none_idle.add(kind)
                waiting[req.for_actor] += 1
                continue
            self._grant(pending, worker)
        if any(waiting):  # task workers only up to the cap (those blocked in get not counted)
            self.pool.ensure(waiting[1] + min(waiting[0], self.pool.task_room()))
        self._changed()

    def _decide_draining(self, pending: PendingLease, others: list[gcs_pb2.NodeInfo]) -> Decision:
        """Nothing new on a draining node: another node, or wait until this one is gone."""
        req = pending.request
        if req.no_spill:
            req = nm_pb2.LeaseRequest()
            req.CopyFrom(pending.request)
            req.no_spill = False
        decision = decide(req, pending.placement, self.node_id, {}, {}, others, pending.spread_turn)
        if decision.verdict is Verdict.GRANT:  # it needs no resources: any other node
            return Decision(Verdict.SPILL, others[0]) if others else Decision(Verdict.WAIT)
        if decision.verdict is Verdict.INFEASIBLE:
            # No other node can take it: wait here (no warning); when this node goes,
            # the submitter asks again.
            return Decision(Verdict.WAIT)
        return decision

    def _grant(self, pending: PendingLease, worker: Worker) -> None:
        req = pending.request
        self._next_lease += 1
        lease = Lease(self._next_lease, worker, pending.shape, pending.client, req)
        lease.gpu_ids = self.gpus.assign(pending.shape.get("GPU", 0)) or []
        rs.subtract(self.available, pending.shape)
        self._idle_since = None
        self._leases[lease.lease_id] = lease
        pending.client.leases.add(lease.lease_id)
        worker.lease, worker.hosts_actor = lease, req.for_actor
        worker.machine.transition(WorkerState.LEASED)
        self._queue.remove(pending)
        address = common_pb2.Address(node_id=self.node_id, worker_id=worker.worker_id, endpoint=worker.endpoint)
        pending.future.set_result(nm_pb2.LeaseReply(lease_id=lease.lease_id, worker=address, gpu_ids=lease.gpu_ids))

    def _fail_queue(self, reason: str) -> None:
        assert self.pool is not None
        for pending in self._queue:
            if not pending.future.done():
                pending.future.set_result(nm_pb2.LeaseReply(rejection=nm_pb2.LEASE_REJECTION_NODE_FAILED, reason=reason))
        self._queue.clear()
        self.pool.startup_failures = 0

    def _end_lease(self, lease: Lease) -> None:
        if self._leases.pop(lease.lease_id, None) is None:
            return
        shape = dict(lease.shape)
        if lease.cpu_released:
            shape.pop("CPU", None)
        rs.add(self.available, shape)
        self.gpus.release(lease.gpu_ids, lease.shape.get("GPU", 0))
        lease.holder.leases.discard(lease.lease_id)
        lease.worker.lease = None

    def _return(self, lease: Lease, failed: bool) -> None:
        assert self.pool is not None
        self._end_lease(lease)
        worker = lease.worker
        if failed:
            self.pool.kill(worker, "its lease holder reported it failed")
        elif worker.state is WorkerState.LEASED:
            worker.machine.transition(WorkerState.IDLE)
            worker.idle_since = time.monotonic()
            worker.blocked = False
        self._schedule()

    def ReturnWorker(self, request: nm_pb2.ReturnWorkerRequest, conn: Any) -> common_pb2.Empty:
        """The lease holder is done with its worker."""
        lease = self._leases.get(request.lease_id)
        if lease is not None and lease.holder is self._client(conn):
            self._return(lease, request.worker_failed)
        return common_pb2.Empty()

    def CancelLease(self, request: nm_pb2.CancelLeaseRequest, conn: Any) -> common_pb2.Empty:
        """Withdraw a queued lease request."""
        client = self._client(conn)
        for pending in self._queue:
            if pending.client is client and pending.request.request_id == request.request_id:
                if not pending.future.done():
                    pending.future.set_result(
                        nm_pb2.LeaseReply(rejection=nm_pb2.LEASE_REJECTION_CANCELLED, reason="cancelled")
                    )
                    self._changed()  # its demand is gone from the next report
        return common_pb2.Empty()

    def NotifyBlocked(self, request: nm_pb2.BlockedNotice, conn: Any) -> common_pb2.Empty:
        """A leased worker blocks in ``get`` (its CPU is lent out) or resumes."""
        worker = self._client(conn).worker
        lease = worker.lease if worker is not None else None
        if lease is None:
            return common_pb2.Empty()
        cpu, worker.blocked = lease.shape.get("CPU", 0), request.blocked
        if request.blocked and not lease.cpu_released:
            lease.cpu_released = True
            self.available["CPU"] = self.available.get("CPU", 0) + cpu
            self._schedule()
        elif not request.blocked and lease.cpu_released:
            lease.cpu_released = False
            self.available["CPU"] = self.available.get("CPU", 0) - cpu
            self._changed()
        return common_pb2.Empty()
