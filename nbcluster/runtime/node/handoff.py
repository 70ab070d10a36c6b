"""Handing objects off: a draining node gives the primary copies it holds to other
nodes before it leaves, so their owners read them there instead of rebuilding them
(docs/architecture.md, "Node lifecycle").

For each object it holds the only copy of (its own, not a copy pulled from
elsewhere) whose owner lives on another node, the draining node picks a target
(:func:`plan_handoff`: a node that holds a copy already, else the owner's node, else
the node with the most free room) and asks it to ``TakeObjects``: the target pulls
each over the usual object transfer path (``transfer.py``) — or keeps the copy it
has — as the object's primary copy. Then the owners' node managers are told
(``ObjectsMoved``), and each passes it on to its owner
(``CoreWorker.AddObjectLocation`` with ``moved_from``): from then on the owner reads
and frees the object at its new node. What finds no room, is not taken in time, or
whose owner is gone stays behind: rebuilt from lineage if needed, as when a node dies.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nbcluster.runtime import ids
from nbcluster.runtime.protocol import common_pb2, core_worker_pb2, gcs_pb2
from nbcluster.runtime.protocol import node_manager_pb2 as nm_pb2
from nbcluster.runtime.transport import methods
from nbcluster.runtime.transport.errors import ConnectionLost, RemoteError

if TYPE_CHECKING:
    from nbcluster.runtime.objects.store import ObjectStore

logger = logging.getLogger(__name__)

#: Objects a target pulls at once (the sender's object port sends four at a time).
PARALLEL_PULLS = 4


@dataclass(frozen=True)
class Held:
    """An object only this node holds, to hand off."""

    object_id: bytes
    size: int
    owner: common_pb2.Address


@dataclass(frozen=True)
class Room:
    """A node objects may go to, and its object store's room."""

    node_id: bytes
    free: int
    capacity: int


def plan_handoff(
    objects: Sequence[Held], rooms: Sequence[Room], copies: Mapping[bytes, Collection[bytes]]
) -> tuple[dict[bytes, list[Held]], list[Held]]:
    """Where each object goes, largest first: a node in ``rooms`` that holds a copy
    already (``copies``: object -> nodes), else its owner's node when that has room
    for it, else the node with the most free room if it fits there, else the largest
    store that can hold it at all (it spills older objects to make room). Returns the
    objects by target node, and those that fit nowhere."""
    free = {r.node_id: r.free for r in rooms}
    capacity = {r.node_id: r.capacity for r in rooms}
    out: dict[bytes, list[Held]] = {}
    left: list[Held] = []
    for obj in sorted(objects, key=lambda o: (-o.size, o.object_id)):
        target = next((n for n in sorted(copies.get(obj.object_id, ())) if n in free), None)
        if target is None:
            owner_node = obj.owner.node_id
            roomiest = max(free, key=lambda n: (free[n], n), default=None)
            largest = max(capacity, key=lambda n: (capacity[n], n), default=None)
            if owner_node in free and free[owner_node] >= obj.size:
                target = owner_node
            elif roomiest is not None and free[roomiest] >= obj.size:
                target = roomiest
            elif largest is not None and capacity[largest] >= obj.size:
                target = largest
            if target is not None:
                free[target] -= obj.size
        if target is None:
            left.append(obj)
        else:
            out.setdefault(target, []).append(obj)
    return out, left


class HandoffHandlers:
    """Mixed into NodeManager (which provides the attributes below): both sides of a
    handoff, and the owners' node's."""

    node_id: bytes
    store: "ObjectStore | None"
    draining: bool
    _cluster: list[gcs_pb2.NodeInfo]
    _clients: dict[bytes, Any]
    _pulls: dict[bytes, asyncio.Future]
    _copies: dict[bytes, set[str]]

    def peer(self, address: str) -> Any:  # pragma: no cover - provided by NodeManager
        """A channel to another node manager (``cluster_view.py``)."""
        raise NotImplementedError

    async def _pull(self, oid: bytes, node_id: bytes) -> None:  # pragma: no cover - provided by NodeManager
        raise NotImplementedError

    def _changed(self) -> None:  # pragma: no cover - provided by NodeManager
        raise NotImplementedError

    # -- the draining node ---------------------------------------------------------------
    async def hand_off(self, objects: Sequence[Held], timeout: float) -> set[bytes]:
        """Give ``objects`` to other nodes within ``timeout`` seconds; the ids handed
        off (their new nodes hold them and their owners know)."""
        targets = {
            n.node_id: n for n in self._cluster
            if n.node_id != self.node_id and n.address and n.object_address and not n.draining
        }
        rooms = [
            Room(n.node_id, max(0, n.object_store_capacity - n.object_store_used), n.object_store_capacity)
            for n in targets.values()
        ]
        by_address = {n.address: n.node_id for n in targets.values()}
        copies = {
            obj.object_id: {by_address[a] for a in self._copies.get(obj.object_id, ()) if a in by_address}
            for obj in objects
        }
        plan, left = plan_handoff(objects, rooms, copies)
        if left:
            logger.warning("no node has room for %d object(s) (%d bytes) of this draining node",
                           len(left), sum(o.size for o in left))
        done: set[bytes] = set()
        if not plan:
            return done
        try:
            async with asyncio.timeout(timeout):
                results = await asyncio.gather(
                    *(self._hand_to(targets[node_id], batch, timeout) for node_id, batch in plan.items()),
                    return_exceptions=True,
                )
        except TimeoutError:
            logger.warning("handing objects off ran out of time")
            return done
        for node_id, result in zip(plan, results):
            if isinstance(result, BaseException):
                logger.warning("handing %d object(s) to node=%s failed: %s", len(plan[node_id]), node_id.hex(), result)
            else:
                done |= result
        return done

    async def _hand_to(self, node: gcs_pb2.NodeInfo, batch: list[Held], timeout: float) -> set[bytes]:
        """One target takes ``batch``; its owners are told. The ids handed off."""
        request = nm_pb2.TakeObjectsRequest(
            from_node_id=self.node_id,
            objects=[nm_pb2.HandoffObject(object_id=o.object_id, size=o.size, owner=o.owner) for o in batch],
            timeout_s=max(0.1, timeout * 0.8),  # the rest for telling the owners
        )
        reply = await self.peer(node.address).call(methods.NodeManager.TakeObjects, request, timeout=timeout)
        taken = set(reply.taken)
        by_owner_node: dict[bytes, list[Held]] = {}
        for obj in batch:
            if obj.object_id in taken:
                by_owner_node.setdefault(obj.owner.node_id, []).append(obj)
        unknown: list[bytes] = []
        for owner_node, moved in by_owner_node.items():
            unknown += await self._tell_owners(owner_node, node.node_id, moved)
        if unknown:  # nobody will read or free them there
            self.peer(node.address).notify(methods.NodeManager.FreeObjects, nm_pb2.ObjectIds(object_ids=unknown))
        return taken - set(unknown)

    async def _tell_owners(self, owner_node: bytes, to_node: bytes, moved: list[Held]) -> list[bytes]:
        """The node manager of ``owner_node`` tells the owners their objects moved to
        ``to_node``; the ids it could not (their owners are gone, or it is)."""
        address = next((n.address for n in self._cluster if n.node_id == owner_node and n.address), "")
        if not address:
            return [o.object_id for o in moved]
        request = nm_pb2.ObjectsMovedRequest(
            from_node_id=self.node_id,
            to_node_id=to_node,
            objects=[nm_pb2.MovedObject(object_id=o.object_id, owner_worker_id=o.owner.worker_id) for o in moved],
        )
        try:
            reply = await self.peer(address).call(methods.NodeManager.ObjectsMoved, request, timeout=5.0)
        except (ConnectionLost, RemoteError, asyncio.TimeoutError, OSError) as exc:
            logger.warning("cannot tell node=%s of %d moved object(s): %s", owner_node.hex(), len(moved), exc)
            return [o.object_id for o in moved]
        return list(reply.unknown)

    # -- the node objects go to --------------------------------------------------------------
    async def TakeObjects(self, request: nm_pb2.TakeObjectsRequest, conn: Any) -> nm_pb2.TakeObjectsReply:
        """Keep the primary copies of objects a draining node hands off (module docstring)."""
        assert self.store is not None
        store = self.store
        if self.draining:
            return nm_pb2.TakeObjectsReply()  # leaving too: it keeps nothing
        taken: list[bytes] = []
        limit = asyncio.Semaphore(PARALLEL_PULLS)

        async def take(obj: nm_pb2.HandoffObject) -> None:
            oid = obj.object_id
            async with limit:
                if oid in self._pulls or oid not in store.entries:
                    await self._pull(oid, request.from_node_id)
                if store.promote(oid, obj.owner.worker_id, obj.owner.SerializeToString()):
                    taken.append(oid)

        try:
            async with asyncio.timeout(request.timeout_s or None):
                await asyncio.gather(*(take(o) for o in request.objects), return_exceptions=True)
        except TimeoutError:
            pass
        logger.info("took %d of %d object(s) from draining node=%s", len(taken), len(request.objects),
                    ids.short(request.from_node_id))
        if taken:
            self._changed()
        return nm_pb2.TakeObjectsReply(taken=taken)

    # -- the owners' node ---------------------------------------------------------------
    def ObjectsMoved(self, request: nm_pb2.ObjectsMovedRequest, conn: Any) -> nm_pb2.ObjectsMovedReply:
        """Tell the owners here that a draining node handed their objects off."""
        unknown = []
        for obj in request.objects:
            client = self._clients.get(obj.owner_worker_id)
            if client is None or client.conn.closed or client.kind == nm_pb2.CLIENT_KIND_GCS:
                unknown.append(obj.object_id)
                continue
            client.conn.notify(
                methods.CoreWorker.AddObjectLocation,
                core_worker_pb2.ObjectLocationsRequest(
                    object_id=obj.object_id, node_id=request.to_node_id, moved_from=request.from_node_id
                ),
            )
        return nm_pb2.ObjectsMovedReply(unknown=unknown)
