"""A restarted head takes its actors (and its drivers' jobs) back.

The actor table is in the GCS store. A restarted head reads it: dead actors stay as
records; actors that were being placed are placed again; actors that were alive are
*taken back* — their node managers kept the workers' leases when the old head's
connection went (``node/clients.py``) and hand them to the new head when it
registers, and the head reconnects to each worker. Named and detached actors are
found again by name; callers holding handles go on calling the same process. An actor
whose worker did not survive (its node went down with the head) is restarted if it
may be, else it is dead, with that reason. A driver's job that was running stays
RUNNING while its driver answers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from nbcluster.runtime.gcs.actors import ActorManager, ActorState, _Actor
from nbcluster.runtime.gcs.job_table import JobStatus
from nbcluster.runtime.protocol import gcs_pb2, node_manager_pb2 as nm_pb2
from nbcluster.runtime.transport.errors import ConnectionLost, RemoteError

if TYPE_CHECKING:
    from nbcluster.runtime.gcs.store import GcsStore

logger = logging.getLogger(__name__)


class ActorRecovery:
    """Recovers the actor table of a restarted head."""

    def __init__(self, manager: ActorManager) -> None:
        self._manager = manager
        manager.on_adopted = self.adopted
        #: Actors that were alive, by their worker's id, until their lease is back.
        self._waiting: dict[bytes, _Actor] = {}

    def recover(self, store: "GcsStore") -> None:
        """Load the stored actors; take back the live ones, place again the pending."""
        manager = self._manager
        for info in store.actors():
            actor = _Actor(info)
            manager.actors[info.actor_id] = actor
            state = ActorState(info.state)
            if state is not ActorState.PENDING:
                actor.machine.transition(state)
            if state is ActorState.DEAD:
                continue
            if info.name:
                manager.names[(info.namespace, info.name)] = info.actor_id
            if not info.detached:
                manager._watch_owner(info.owner)  # (once per owner: before it is noted)
                manager._owners.setdefault(info.owner.worker_id, set()).add(info.actor_id)
            if state is ActorState.ALIVE:
                self._waiting[info.address.worker_id] = actor
                actor.task = manager._spawn(self._take_back(actor))
            elif info.HasField("creation_task"):
                actor.task = manager._spawn(manager._place(actor))
        if self._waiting:
            logger.info("taking back %d actor(s) alive when the head stopped", len(self._waiting))

    def adopted(self, nm: Any, leases: Iterable[nm_pb2.AdoptedLease]) -> None:
        """A node manager handed over the leases the previous head held: each goes
        to the actor it runs; one no actor claims (a constructor the old head was
        running) is given back, its worker ended."""
        unclaimed = []
        for lease in leases:
            actor = self._waiting.pop(lease.worker_id, None)
            if actor is not None and actor.state is ActorState.ALIVE:
                actor.lease = (nm, lease.lease_id)
            else:
                unclaimed.append(lease)
        self._manager._return_adopted(nm, unclaimed)

    def watch_driver(self, job: gcs_pb2.JobInfo) -> None:
        """A driver's job that was running when the head stopped: it goes on while its
        driver is there; it ends FAILED when the driver is gone (or already was)."""
        manager, job_id = self._manager, job.job_id

        def gone(why: str) -> None:
            manager.gcs.job_table.finish(job_id, JobStatus.FAILED, why)

        async def watch() -> None:
            try:
                conn = await manager._connect(job.driver)
            except (ConnectionLost, RemoteError, OSError, asyncio.TimeoutError):
                gone("its driver was gone when the head restarted")
                return
            conn.on_close(lambda _c: gone("the driver exited without calling shutdown()"))

        manager._spawn(watch())

    async def _take_back(self, actor: _Actor) -> None:
        manager, info = self._manager, actor.info
        node = next((n for n in manager.gcs.alive_nodes() if n.node_id == info.node_id), None)
        try:
            if node is None:
                raise ConnectionLost("its node is not alive")
            await manager.node_connection(node)  # hands over its lease (adopted above)
            if actor.lease is None:
                raise ConnectionLost("its node manager no longer held its worker")
            conn = await manager._connect(info.address)
        except (ConnectionLost, RemoteError, OSError, asyncio.TimeoutError) as exc:
            self._waiting.pop(info.address.worker_id, None)
            manager._release_lease(actor, failed=True)
            manager._after_death(actor, f"it was lost while the head restarted ({exc})")
            return
        actor.worker_conn = conn
        conn.on_close(lambda c, a=actor: manager._worker_lost(a, c))
        logger.info("took back actor=%s (%s) on node=%s", info.actor_id.hex(), info.class_name, info.node_id.hex())
        if actor.no_restart and actor.end_reason:  # its owner went while the head was away
            manager._end(actor, actor.end_reason, no_restart=True)

