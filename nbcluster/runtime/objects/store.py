"""A node's shared-memory object store (the node manager's side).

All objects of a node live in one *arena*: a file of ``capacity`` bytes in the
node's directory under ``/dev/shm/nbcluster-<uid>/`` (made private to the user by
:func:`~nbcluster.runtime.session.store_dir`). Every process on the node maps the
arena once and keeps the mapping, so memory that held an earlier object is already
mapped and faulted in when the next object reuses it — writes and reads run at memory speed,
as with Ray's plasma store. Writers fill the block the store allocated for them;
readers get read-only views into it.

A reader pins an object (``get``) before it reads and releases the pin when its last
view is gone. A block is reused only when its object is freed *and* unpinned; an
object whose owner frees it while views exist stays until they are gone.

When a new object does not fit, sealed objects that no one has pinned are spilled to
the session's ``spill/`` directory, least recently used first, and restored on the
next read. Pinned objects are never spilled.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import errno
import logging
import mmap
import os
import time
from collections.abc import Iterable
from pathlib import Path

from nbcluster.exceptions import ObjectStoreFullError
from nbcluster.runtime import ids
from nbcluster.runtime.objects.allocator import Allocator, round_up
from nbcluster.runtime.session import drop_store_dir

logger = logging.getLogger(__name__)

ARENA_NAME = "arena"


class ObjectState(enum.Enum):
    """A stored object's state: being written, sealed, spilled to disk, or moving."""

    CREATING = "CREATING"
    SEALED = "SEALED"
    SPILLING = "SPILLING"
    SPILLED = "SPILLED"
    RESTORING = "RESTORING"


class StoreEntry:
    """One object in the node's store."""

    __slots__ = (
        "object_id",
        "size",
        "offset",
        "owner",
        "state",
        "pins",
        "freed",
        "last_used",
        "restored",
        "sealed",
        "secondary",
        "owner_address",
    )

    def __init__(self, object_id: bytes, size: int, offset: int, owner: bytes, owner_address: bytes = b"") -> None:
        self.object_id = object_id
        self.size = size
        self.offset = offset
        self.owner = owner  # the owner's worker id
        #: The owner's serialized Address: where a draining node says the object moved.
        self.owner_address = owner_address
        self.state = ObjectState.CREATING
        self.pins = 0
        self.freed = False  # the owner let go; deleted when the last pin goes
        self.last_used = time.monotonic()
        self.restored: asyncio.Event | None = None
        self.sealed: asyncio.Event | None = None  # made when a reader must wait for the writer
        self.secondary = False  # a copy pulled from another node: dropped, not spilled, for room

    @property
    def resident(self) -> bool:
        """The object's bytes are in the arena."""
        return self.state in (ObjectState.CREATING, ObjectState.SEALED, ObjectState.SPILLING, ObjectState.RESTORING)


class ObjectStore:
    """A node's object store: the arena, its objects, their pins, spilling and restoring."""

    def __init__(self, directory: Path, spill_dir: Path, capacity: int, full_timeout: float) -> None:
        self.dir = directory
        self.spill_dir = spill_dir
        self.full_timeout = full_timeout
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.arena_path = directory / ARENA_NAME
        self._alloc = Allocator(capacity)
        self.capacity = self._alloc.capacity
        self._fd = os.open(self.arena_path, os.O_CREAT | os.O_RDWR | os.O_EXCL, 0o600)
        os.ftruncate(self._fd, self.capacity)
        self.entries: dict[bytes, StoreEntry] = {}
        self._map: mmap.mmap | None = None
        self.spilled_total = 0
        self.restored_total = 0
        self._space_freed = asyncio.Event()
        self._spilling = asyncio.Lock()

    @property
    def used(self) -> int:
        """Bytes of the arena held by objects (rounded to pages)."""
        return self.capacity - self._alloc.free_bytes

    def pinned_count(self) -> int:
        """Objects being read (or sent to another node) right now."""
        return sum(1 for entry in self.entries.values() if entry.pins)

    def promote(self, object_id: bytes, owner: bytes, owner_address: bytes) -> bool:
        """Make the copy of ``object_id`` held here its primary copy, for ``owner``
        (another node handed it off); False when it is not here, complete."""
        entry = self.entries.get(object_id)
        if entry is None or entry.freed or entry.state is ObjectState.CREATING:
            return False
        entry.secondary = False
        entry.owner, entry.owner_address = owner, owner_address
        return True

    def primary_count(self) -> int:
        """Objects whose only copy may be here (not pulled copies), not yet freed by
        their owners: in memory or spilled to this node's disk."""
        return sum(1 for entry in self.entries.values() if not entry.secondary and not entry.freed)

    def _spill_path(self, object_id: bytes) -> Path:
        return self.spill_dir / object_id.hex()

    # -- creating -----------------------------------------------------------------
    async def create(
        self, object_id: bytes, size: int, owner: bytes, secondary: bool = False, owner_address: bytes = b""
    ) -> int:
        """Allocate a block for a new object (spilling to make room); return its
        offset. Raises ObjectStoreFullError when room cannot be made in time."""
        entry = self.entries.get(object_id)
        if entry is not None:
            if entry.state is ObjectState.CREATING and entry.size == size:
                return entry.offset  # idempotent: a repeated create
            if entry.pins:
                raise ObjectStoreFullError(f"object {ids.short(object_id)} exists and is being read")
            self._delete(entry)  # an earlier attempt's copy (a retried task): replace it
        if round_up(size) > self.capacity:
            raise ObjectStoreFullError(
                f"object {ids.short(object_id)} needs {size / 2**20:.1f} MiB but the object store "
                f"holds {self.capacity / 2**20:.1f} MiB in all; start the cluster with a larger "
                "object_store_memory"
            )
        offset = await self._allocate(size, f"fit {size / 2**20:.1f} MiB")
        entry = StoreEntry(object_id, size, offset, owner, owner_address)
        entry.secondary = secondary
        self.entries[object_id] = entry
        return offset

    @property
    def fd(self) -> int:
        """The arena file (objects are sent to other nodes from it with sendfile)."""
        return self._fd

    def view(self, offset: int, size: int) -> memoryview:
        """Writable memory of the arena: where a pulled object's bytes land."""
        if self._map is None:
            self._map = mmap.mmap(self._fd, self.capacity)
        return memoryview(self._map)[offset : offset + size]

    async def _allocate(self, size: int, what: str) -> int:
        deadline = time.monotonic() + self.full_timeout
        while True:
            offset = self._alloc.alloc(size)
            if offset is not None:
                return offset
            if await self._spill_some(size):
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                pinned = sum(round_up(e.size) for e in self.entries.values() if e.pins and e.resident)
                raise ObjectStoreFullError(
                    f"the object store is full: {self.used / 2**20:.1f} of "
                    f"{self.capacity / 2**20:.1f} MiB used, {pinned / 2**20:.1f} MiB pinned by "
                    f"readers; cannot {what}. Release references (del refs and arrays you got "
                    "from them) or raise object_store_memory"
                )
            self._space_freed.clear()
            try:
                await asyncio.wait_for(self._space_freed.wait(), min(remaining, 0.5))
            except asyncio.TimeoutError:
                pass

    def seal(self, object_ids: Iterable[bytes]) -> None:
        """Writers finished these objects: readers may map them."""
        for oid in object_ids:
            entry = self.entries.get(oid)
            if entry is not None and entry.state is ObjectState.CREATING:
                entry.state = ObjectState.SEALED
                if entry.sealed is not None:
                    entry.sealed.set()

    # -- spilling -----------------------------------------------------------------
    @staticmethod
    def _spillable(entry: StoreEntry) -> bool:
        return entry.state is ObjectState.SEALED and entry.pins == 0 and not entry.freed

    async def _spill_some(self, size: int) -> bool:
        """Spill unpinned sealed objects, oldest first, until a block of ``size``
        could fit; False if nothing could be spilled. One spiller at a time, and each
        candidate is checked again when its turn comes (the loop yields)."""
        need = round_up(size)
        async with self._spilling:
            if self._alloc.largest_free() >= need:
                return True  # another spiller made room meanwhile
            candidates = sorted(
                (e for e in self.entries.values() if self._spillable(e)),
                key=lambda e: (not e.secondary, e.last_used),  # copies go first
            )
            spilled = False
            for entry in candidates:
                if self._alloc.largest_free() >= need:
                    break
                if self.entries.get(entry.object_id) is entry and self._spillable(entry):
                    if entry.secondary:  # another node has it: no need to keep a copy
                        self._delete(entry)
                        spilled = True
                    else:
                        spilled = await self._spill(entry) or spilled
            return spilled

    async def _spill(self, entry: StoreEntry) -> bool:
        entry.state = ObjectState.SPILLING
        dst = self._spill_path(entry.object_id)
        try:
            await asyncio.to_thread(self._copy_out, entry.offset, entry.size, dst)
        except OSError:
            logger.exception("spilling object=%s failed", entry.object_id.hex())
            dst.unlink(missing_ok=True)
            entry.state = ObjectState.SEALED
            return False
        if entry.pins or entry.freed or entry.object_id not in self.entries:
            # Pinned or freed while being copied: keep (or drop) it in memory instead.
            dst.unlink(missing_ok=True)
            entry.state = ObjectState.SEALED
            if entry.freed and not entry.pins:
                self._delete(entry)
            return False
        self._alloc.free(entry.offset, entry.size)
        entry.offset = -1
        entry.state = ObjectState.SPILLED
        self.spilled_total += 1
        logger.info("spilled object=%s size=%d", entry.object_id.hex(), entry.size)
        return True

    def _copy_out(self, offset: int, size: int, dst: Path) -> None:
        out = os.open(dst, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
        try:
            _copy(self._fd, offset, out, 0, size)
        finally:
            os.close(out)

    def _copy_in(self, src: Path, offset: int, size: int) -> None:
        fd = os.open(src, os.O_RDONLY)
        try:
            _copy(fd, 0, self._fd, offset, size)
        finally:
            os.close(fd)

    async def _restore(self, entry: StoreEntry) -> None:
        entry.state = ObjectState.RESTORING
        entry.restored = asyncio.Event()
        try:
            offset = await self._allocate(entry.size, f"restore spilled object {ids.short(entry.object_id)}")
            try:
                await asyncio.to_thread(self._copy_in, self._spill_path(entry.object_id), offset, entry.size)
            except BaseException:
                self._alloc.free(offset, entry.size)
                raise
        except BaseException:
            entry.state = ObjectState.SPILLED
            raise
        finally:
            entry.restored.set()
        entry.offset = offset
        entry.state = ObjectState.SEALED
        self._spill_path(entry.object_id).unlink(missing_ok=True)
        self.restored_total += 1
        logger.info("restored object=%s size=%d", entry.object_id.hex(), entry.size)

    # -- reading ------------------------------------------------------------------
    async def get(self, object_ids: Iterable[bytes], pins: dict[bytes, int]) -> list[tuple[int, int] | None]:
        """(offset, size) of each object, restored if spilled and pinned for the
        reader whose pin counts are ``pins``; None for objects not here."""
        out: list[tuple[int, int] | None] = []
        pinned: list[bytes] = []
        try:
            for oid in object_ids:
                entry = self.entries.get(oid)
                if entry is not None and entry.state is ObjectState.CREATING:
                    # The writer's seal travels on its own connection and may come
                    # after a reader that learned of the object from the writer.
                    entry = await self._wait_sealed(entry)
                if entry is None or entry.freed:
                    out.append(None)
                    continue
                self._pin(entry, pins)
                pinned.append(oid)
                while entry.state is not ObjectState.SEALED and entry.state is not ObjectState.SPILLING:
                    if entry.state is ObjectState.SPILLED:
                        await self._restore(entry)
                    elif entry.state is ObjectState.RESTORING and entry.restored is not None:
                        await entry.restored.wait()
                out.append((entry.offset, entry.size))
        except BaseException:
            self.release(pinned, pins)  # the request failed: none of its pins stand
            raise
        return out

    async def _wait_sealed(self, entry: StoreEntry) -> StoreEntry | None:
        if entry.sealed is None:
            entry.sealed = asyncio.Event()
        try:
            await asyncio.wait_for(entry.sealed.wait(), self.full_timeout)
        except asyncio.TimeoutError:
            logger.warning("object=%s was never sealed by its writer", entry.object_id.hex())
            return None
        return entry if self.entries.get(entry.object_id) is entry else None

    def _pin(self, entry: StoreEntry, pins: dict[bytes, int]) -> None:
        entry.pins += 1
        entry.last_used = time.monotonic()
        pins[entry.object_id] = pins.get(entry.object_id, 0) + 1

    def release(self, object_ids: Iterable[bytes], pins: dict[bytes, int]) -> None:
        """A client drops one pin on each object; an object freed and unpinned is deleted."""
        for oid in object_ids:
            count = pins.get(oid, 0)
            if not count:
                continue
            if count == 1:
                del pins[oid]
            else:
                pins[oid] = count - 1
            entry = self.entries.get(oid)
            if entry is not None and entry.pins > 0:
                entry.pins -= 1
                if entry.pins == 0:
                    if entry.freed:
                        self._delete(entry)
                    self._space_freed.set()

    def release_all(self, pins: dict[bytes, int]) -> None:
        """Drop every pin a client holds (it disconnected)."""
        for oid, count in list(pins.items()):
            self.release([oid] * count, pins)

    # -- freeing ------------------------------------------------------------------
    def free(self, object_ids: Iterable[bytes]) -> None:
        """Owners let go of these objects: deleted now, or when their last pin goes."""
        for oid in object_ids:
            entry = self.entries.get(oid)
            if entry is None:
                continue
            entry.freed = True
            if entry.pins == 0 and entry.state is not ObjectState.SPILLING and entry.state is not ObjectState.RESTORING:
                self._delete(entry)
        self._space_freed.set()

    def _delete(self, entry: StoreEntry) -> None:
        self.entries.pop(entry.object_id, None)
        if entry.state is ObjectState.SPILLED:
            self._spill_path(entry.object_id).unlink(missing_ok=True)
        elif entry.offset >= 0:
            self._alloc.free(entry.offset, entry.size)
            entry.offset = -1

    def free_owner(self, owner: bytes) -> None:
        """Delete every object of an owner that has gone."""
        self.free([oid for oid, e in self.entries.items() if e.owner == owner])

    # -- introspection --------------------------------------------------------------
    def num_pinned(self) -> int:
        """How many objects are pinned."""
        return sum(1 for e in self.entries.values() if e.pins)

    def spilled_bytes(self) -> int:
        """Bytes of objects spilled to disk."""
        return sum(e.size for e in self.entries.values() if e.state is ObjectState.SPILLED)

    def close(self) -> None:
        """Delete every object, the arena and the directory (node shutdown)."""
        for entry in self.entries.values():
            if entry.state is ObjectState.SPILLED:
                self._spill_path(entry.object_id).unlink(missing_ok=True)
        self.entries.clear()
        if self._map is not None:
            with contextlib.suppress(BufferError):  # a transfer still holds a view: let it go with the process
                self._map.close()
        os.close(self._fd)
        drop_store_dir(self.dir)


def _copy(src: int, src_offset: int, dst: int, dst_offset: int, size: int) -> None:
    """Copy between files in the kernel (the spill directory is usually on another
    filesystem than /dev/shm, where copy_file_range refuses: sendfile then)."""
    done = 0
    try:
        while done < size:
            n = os.copy_file_range(src, dst, size - done, src_offset + done, dst_offset + done)
            if n == 0:
                raise OSError("short copy")
            done += n
        return
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
            raise
    os.lseek(dst, dst_offset + done, os.SEEK_SET)
    while done < size:
        n = os.sendfile(dst, src, src_offset + done, size - done)
        if n == 0:
            raise OSError("short copy")
        done += n
