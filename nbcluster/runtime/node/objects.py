"""The node manager's object RPCs: creating, sealing, reading (pinning), freeing —
and moving objects between nodes.

A reader on this node asks for an object another node holds (it passes that node as
a hint); this node manager pulls it from the other's object port (``transfer.py``)
straight into its arena (only the sockets' buffers in flight), keeps it as a
*secondary* copy — dropped rather than spilled when room is needed — and pins it for
the reader. Concurrent readers of one object share one pull.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from nbcluster.exceptions import ObjectStoreFullError
from nbcluster.runtime import ids
from nbcluster.runtime.node import transfer
from nbcluster.runtime.protocol import common_pb2, node_manager_pb2 as nm_pb2
from nbcluster.runtime.transport import methods
from nbcluster.runtime.transport.errors import RemoteError

if TYPE_CHECKING:
    from nbcluster.runtime.objects.store import ObjectStore

logger = logging.getLogger(__name__)


class ObjectHandlers:
    """Mixed into NodeManager (which provides the attributes below)."""

    store: "ObjectStore | None"
    node_id: bytes
    config: Any
    _pulls: dict[bytes, asyncio.Future]
    #: Objects held here that other nodes pulled: their node managers, to tell on free.
    _copies: dict[bytes, set[str]]
    _token: str

    def _client(self, conn: Any) -> Any:  # pragma: no cover - provided by NodeManager
        raise NotImplementedError

    def peer(self, address: str) -> Any:  # pragma: no cover - provided by NodeManager
        """A channel to another node manager (``cluster_view.py``)."""
        raise NotImplementedError

    def node_object_address(self, node_id: bytes) -> str | None:  # pragma: no cover - provided by NodeManager
        """A node's object port (``cluster_view.py``)."""
        raise NotImplementedError

    async def know_of(self, node_id: bytes) -> None:  # pragma: no cover - provided by NodeManager
        """The view fetched again if it lacks ``node_id`` (``cluster_view.py``)."""
        raise NotImplementedError

    def _changed(self) -> None:  # pragma: no cover - provided by NodeManager
        raise NotImplementedError

    async def CreateObject(self, request: nm_pb2.CreateObjectRequest, conn: Any) -> nm_pb2.CreateObjectReply:
        """Allocate an object in the arena; its offset."""
        assert self.store is not None
        try:
            offset = await self.store.create(
                request.object_id, request.size, request.owner.worker_id,
                owner_address=request.owner.SerializeToString(),
            )
        except ObjectStoreFullError as exc:
            raise RemoteError(common_pb2.ERROR_CODE_OBJECT_STORE_FULL, str(exc)) from None
        self._changed()
        return nm_pb2.CreateObjectReply(offset=offset)

    def SealObjects(self, request: nm_pb2.ObjectIds, conn: Any) -> common_pb2.Empty:
        """Mark objects complete: readers may have them."""
        assert self.store is not None
        self.store.seal(request.object_ids)
        return common_pb2.Empty()

    async def GetObjects(self, request: nm_pb2.GetObjectsRequest, conn: Any) -> nm_pb2.GetObjectsReply:
        """Pin objects for the caller, pulling them from other nodes if needed."""
        assert self.store is not None
        client = self._client(conn)
        hints = list(request.node_hints)
        remote = [
            (oid, hint)
            for oid, hint in zip(request.object_ids, hints + [b""] * (len(request.object_ids) - len(hints)))
            if hint and hint != self.node_id and oid not in self.store.entries
        ]
        try:
            await asyncio.gather(*(self._pull(oid, hint) for oid, hint in remote))
            found = await self.store.get(request.object_ids, client.pins)
        except ObjectStoreFullError as exc:
            raise RemoteError(common_pb2.ERROR_CODE_OBJECT_STORE_FULL, str(exc)) from None
        return nm_pb2.GetObjectsReply(
            offsets=[f[0] if f else 0 for f in found],
            sizes=[f[1] if f else 0 for f in found],
            missing=[f is None for f in found],
        )

    async def _pull(self, oid: bytes, node_id: bytes) -> None:
        """Copy an object from another node into this one (one pull per object)."""
        pending = self._pulls.get(oid)
        if pending is None:
            pending = self._pulls[oid] = asyncio.get_running_loop().create_future()
            try:
                await self._copy_from(oid, node_id)
                pending.set_result(None)
            except Exception as exc:  # noqa: BLE001 - each reader sees the object missing
                logger.warning("pulling object=%s from node=%s failed: %s", oid.hex(), ids.short(node_id), exc)
                pending.set_result(None)
                if isinstance(exc, ObjectStoreFullError):
                    raise
            finally:
                if not pending.done():  # cancelled (a handoff out of time): the others look again
                    pending.set_result(None)
                self._pulls.pop(oid, None)
        else:
            await asyncio.shield(pending)

    async def _copy_from(self, oid: bytes, node_id: bytes) -> None:
        assert self.store is not None
        store = self.store
        await self.know_of(node_id)
        address = self.node_object_address(node_id)
        if address is None:
            raise LookupError(f"node {ids.short(node_id)} is not alive")
        request = nm_pb2.PullObjectRequest(object_id=oid, requester=getattr(self, "address", ""))
        created = False

        async def allocate(size: int) -> memoryview:
            nonlocal created
            offset = await store.create(oid, size, b"", secondary=True)
            created = True
            return store.view(offset, size)

        try:
            found = await transfer.pull(address, self._token, request, allocate)
        except BaseException:
            if created:
                store.free([oid])
            raise
        if not found:
            raise LookupError(f"node {ids.short(node_id)} does not have object {oid.hex()}")
        store.seal([oid])
        self._changed()

    async def serve_pull(self, request: nm_pb2.PullObjectRequest) -> tuple[int, int, Callable[[], None]] | None:
        """Pin an object another node pulls: (offset, size, release), or None."""
        assert self.store is not None
        store = self.store
        pins: dict[bytes, int] = {}
        (found,) = await store.get([request.object_id], pins)
        if found is None:
            return None
        if request.requester:
            self._copies.setdefault(request.object_id, set()).add(request.requester)
        loop = asyncio.get_running_loop()
        return found[0], found[1], lambda: loop.call_soon_threadsafe(store.release_all, pins)

    def ReleaseObjects(self, request: nm_pb2.ObjectIds, conn: Any) -> common_pb2.Empty:
        """Unpin objects the caller read."""
        assert self.store is not None
        self.store.release(request.object_ids, self._client(conn).pins)
        return common_pb2.Empty()

    def FreeObjects(self, request: nm_pb2.ObjectIds, conn: Any) -> common_pb2.Empty:
        """Delete objects (and the copies other nodes pulled)."""
        assert self.store is not None
        self.store.free(request.object_ids)
        # Copies other nodes pulled go with the original.
        by_node: dict[str, list[bytes]] = {}
        for oid in request.object_ids:
            for node in self._copies.pop(oid, ()):
                by_node.setdefault(node, []).append(oid)
        for node, oids in by_node.items():
            self.peer(node).notify(methods.NodeManager.FreeObjects, nm_pb2.ObjectIds(object_ids=oids))
        self._changed()
        return common_pb2.Empty()
