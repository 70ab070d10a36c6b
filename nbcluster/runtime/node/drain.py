"""Draining: a node that takes no new work — idle, for the autoscaler (``DrainNode``),
or asked to stop (SIGTERM, what Kubernetes sends a deleted or evicted pod) — and
then leaves (docs/architecture.md, "Node lifecycle").

A worker node asked to stop drains for at most ``drain_timeout_s``
(``RuntimeConfig``; a pod's grace period less a margin):

1. it marks itself draining and tells the GCS at once (``NodeInfo.draining``,
   ``drain_reason`` SHUTDOWN, ``drain_deadline``): the cluster view, other nodes'
   schedulers, the GCS's actor and job placement and the autoscaler send it nothing
   new; its own queued lease requests spill to other nodes;
2. it revokes its task leases (``CoreWorker.RevokeLease``): their holders push no
   more tasks on them and return them when the tasks pushed are done;
3. meanwhile it hands the primary copies of the objects only it holds to other nodes
   (``handoff.py``), those its finishing tasks store too;
4. it leaves when no task lease is left and nothing is left to hand off, or at the
   deadline: the tasks still running are killed with their workers (their owners
   retry them, as on a node's death), objects not handed off are rebuilt from lineage
   when needed. Its log says how many of each.

Actors on the node do not hold the drain up (as in Ray, they run until the node
leaves); they are restarted elsewhere as on a node's death, if their
``max_restarts`` allows. A second SIGTERM, or SIGINT, stops the node at once. The
head node does not drain: its SIGTERM stops it as before.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from nbcluster.runtime.node.handoff import Held
from nbcluster.runtime.objects.store import ObjectState
from nbcluster.runtime.protocol import common_pb2, core_worker_pb2, gcs_pb2
from nbcluster.runtime.protocol import node_manager_pb2 as nm_pb2
from nbcluster.runtime.transport import methods

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

    from nbcluster.runtime.config import RuntimeConfig
    from nbcluster.runtime.node.options import NodeOptions
    from nbcluster.runtime.objects.store import ObjectStore

logger = logging.getLogger(__name__)

#: Once the last task lease is gone, how long objects still being written may take
#: to be sealed (the writer's seal travels on its own connection).
SEAL_WAIT_S = 1.0
#: How often the drain looks at what is left.
POLL_S = 0.05


class NodeDrain:
    """Mixed into NodeManager (which provides the attributes below)."""

    node_id: bytes
    config: "RuntimeConfig"
    options: "NodeOptions"
    store: "ObjectStore | None"
    pool: Any
    _leases: dict[int, Any]
    shutdown_requested: asyncio.Event
    drain_requested: asyncio.Event
    #: Takes no new work (the autoscaler's drain, or stopping).
    draining = False
    drain_reason: int = gcs_pb2.DRAIN_REASON_UNSPECIFIED
    drain_message = ""
    #: When (unix time) a node that stops on its own will have left (0: no deadline).
    drain_deadline = 0.0
    #: What the node tells the GCS when it leaves.
    leave_reason = "it shut down"
    #: Gives objects to other nodes (``HandoffHandlers.hand_off``).
    hand_off: "Callable[[Sequence[Held], float], Awaitable[set[bytes]]]"

    def busy(self) -> str:  # pragma: no cover - provided by NodeManager
        """Why the node is not idle ("" when it is): ``reports.py``."""
        raise NotImplementedError

    def _changed(self) -> None:  # pragma: no cover - provided by NodeManager
        raise NotImplementedError

    def _schedule(self) -> None:  # pragma: no cover - provided by NodeManager
        raise NotImplementedError

    # -- the autoscaler's drain ------------------------------------------------------------
    def DrainNode(self, request: nm_pb2.DrainNodeRequest, conn: Any) -> nm_pb2.DrainNodeReply:
        """Take no new work, if the node is idle; else say what keeps it busy."""
        busy = self.busy()
        if busy:
            return nm_pb2.DrainNodeReply(accepted=False, busy=busy)
        if not self.draining:
            logger.info("draining: %s", request.reason)
            self.draining = True
            self.drain_reason = gcs_pb2.DRAIN_REASON_IDLE_TERMINATION
            self.drain_message = f"removed by the autoscaler: {request.reason}"
            self._changed()
        return nm_pb2.DrainNodeReply(accepted=True)

    # -- asked to stop -----------------------------------------------------------------------
    def request_drain(self, why: str) -> bool:
        """Drain, then stop (a signal handler's call): False when this node stops at
        once instead — the head node, ``drain_timeout_s`` 0, not started yet, or
        draining already (a second request)."""
        timeout = self.config.drain_timeout_s
        if self.options.is_head or timeout <= 0 or self.pool is None or self.drain_requested.is_set():
            return False
        self.draining = True
        self.drain_reason = gcs_pb2.DRAIN_REASON_SHUTDOWN
        self.drain_message = why
        self.drain_deadline = time.time() + timeout
        self.drain_requested.set()
        self._changed()  # the GCS hears of it with the next report, which this hastens
        self._schedule()  # queued requests go elsewhere now
        return True

    async def serve_until_stopped(self) -> None:
        """Run until asked to stop: at once (``shutdown_requested``: ShutdownNode, a
        second signal, losing the GCS), or after draining (``request_drain``)."""
        stop = asyncio.ensure_future(self.shutdown_requested.wait())
        drain = asyncio.ensure_future(self.drain_requested.wait())
        draining: asyncio.Future | None = None
        try:
            await asyncio.wait({stop, drain}, return_when=asyncio.FIRST_COMPLETED)
            if stop.done():
                return
            draining = asyncio.ensure_future(self._drain())
            await asyncio.wait({stop, draining}, return_when=asyncio.FIRST_COMPLETED)
            if not draining.done():
                logger.warning("stopping at once: the drain was cut short")
                self.leave_reason = f"{self.drain_message}; stopped at once while draining"
        finally:
            for fut in (stop, drain, draining):
                if fut is not None and not fut.done():
                    fut.cancel()
            if draining is not None:
                await asyncio.gather(draining, return_exceptions=True)
                if draining.done() and not draining.cancelled() and draining.exception() is not None:
                    logger.error("draining failed", exc_info=draining.exception())

    async def _drain(self) -> None:
        """Let the tasks finish and hand the objects off, until the deadline."""
        assert self.store is not None
        started = time.monotonic()
        until = started + max(0.0, self.drain_deadline - time.time())
        running = len(self._task_leases())
        logger.info("draining: %s; %d task(s) running, %d object(s) to hand off; leaving within %.1f s",
                    self.drain_message, running, len(self._to_hand_off()), until - started)
        self._revoke_task_leases()
        tried: set[bytes] = set()
        handed: set[bytes] = set()
        settled_since: float | None = None
        while (remaining := until - time.monotonic()) > 0:
            todo = [h for h in self._to_hand_off() if h.object_id not in tried]
            if todo:
                tried.update(h.object_id for h in todo)
                handed |= await self.hand_off(todo, remaining)
                continue
            if self._task_leases():
                settled_since = None
            else:
                settled_since = settled_since or time.monotonic()
                writing = any(not e.secondary and e.state is ObjectState.CREATING for e in self.store.entries.values())
                if not writing or time.monotonic() - settled_since > SEAL_WAIT_S:
                    break
            await asyncio.sleep(min(POLL_S, remaining))
        killed = len(self._task_leases())
        left = sum(1 for h in self._to_hand_off() if h.object_id not in handed)
        took = time.monotonic() - started
        summary = (
            f"{max(0, running - killed)} of {running} running task(s) finished, {killed} left to be retried "
            f"elsewhere; {len(handed)} object(s) handed off to other nodes, {left} left (rebuilt from lineage "
            "when needed)"
        )
        log = logger.warning if killed or left else logger.info
        log("drained in %.1f s%s: %s", took, " (the deadline passed)" if killed else "", summary)
        self.leave_reason = f"{self.drain_message}; drained in {took:.1f} s: {summary}"

    def _task_leases(self) -> list[Any]:
        """Leases of workers that run tasks (not actors)."""
        return [lease for lease in self._leases.values() if not lease.worker.hosts_actor]

    def _revoke_task_leases(self) -> None:
        """Tell each task lease's holder to push no more tasks on it."""
        for lease in self._task_leases():
            conn = lease.holder.conn
            if not conn.closed:
                conn.notify(
                    methods.CoreWorker.RevokeLease,
                    core_worker_pb2.RevokeLeaseNotice(lease_id=lease.lease_id, reason=self.drain_message),
                )

    def _to_hand_off(self) -> list[Held]:
        """The complete objects only this node holds whose owners live elsewhere
        (objects of owners here are lost with them)."""
        assert self.store is not None
        out = []
        for entry in self.store.entries.values():
            if entry.secondary or entry.freed or entry.state is ObjectState.CREATING or not entry.owner_address:
                continue
            owner = common_pb2.Address.FromString(entry.owner_address)
            if owner.node_id and owner.node_id != self.node_id:
                out.append(Held(entry.object_id, entry.size, owner))
        return out
