"""A node's shared-memory object store (the node manager's side).

Each object is one file in the node's directory under ``/dev/shm``. Writers create
and fill the file themselves after :meth:`ObjectStore.create` has reserved room;
readers on the node map it read-only (zero copy). Because a mapping outlives the
file's name, deleting or spilling an object never pulls memory from under a reader.

Accounting: ``used`` counts the bytes of objects resident in shared memory. When a
new object does not fit, sealed objects that no process has mapped (unpinned) are
spilled to the session's ``spill/`` directory, least recently used first, and
restored on the next read. Pinned objects are never spilled. An object is deleted
when its owner frees it or its owner disconnects.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import os
import shutil
import time
from collections.abc import Iterable
from pathlib import Path

from nbcluster.exceptions import ObjectStoreFullError
from nbcluster.runtime import ids

logger = logging.getLogger(__name__)


class ObjectState(enum.Enum):
    CREATING = "CREATING"
    SEALED = "SEALED"
    SPILLED = "SPILLED"


class StoreEntry:
    __slots__ = ("object_id", "size", "owner", "state", "pins", "last_used")

    def __init__(self, object_id: bytes, size: int, owner: bytes) -> None:
        self.object_id = object_id
        self.size = size
        self.owner = owner  # the owner's worker id
        self.state = ObjectState.CREATING
        self.pins = 0
        self.last_used = time.monotonic()


class ObjectStore:
    def __init__(self, directory: Path, spill_dir: Path, capacity: int, full_timeout: float) -> None:
        self.dir = directory
        self.spill_dir = spill_dir
        self.capacity = capacity
        self.full_timeout = full_timeout
        self.used = 0
        self.entries: dict[bytes, StoreEntry] = {}
        self.spilled_total = 0
        self.restored_total = 0
        self._space_freed = asyncio.Event()
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)

    def path(self, object_id: bytes) -> Path:
        return self.dir / object_id.hex()

    def _spill_path(self, object_id: bytes) -> Path:
        return self.spill_dir / object_id.hex()

    # -- creating -----------------------------------------------------------------
    async def create(self, object_id: bytes, size: int, owner: bytes) -> None:
        """Reserve ``size`` bytes for a new object, spilling to make room; raise
        ObjectStoreFullError when room cannot be made in time."""
        if object_id in self.entries:
            return  # idempotent: a retried create
        if size > self.capacity:
            raise ObjectStoreFullError(
                f"object {ids.short(object_id)} needs {size / 2**20:.1f} MiB but the object store "
                f"holds {self.capacity / 2**20:.1f} MiB in all; start the cluster with a larger "
                "object_store_memory"
            )
        deadline = time.monotonic() + self.full_timeout
        while not await self._make_room(size):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                pinned = sum(e.size for e in self.entries.values() if e.pins and e.state is ObjectState.SEALED)
                raise ObjectStoreFullError(
                    f"the object store is full: {self.used / 2**20:.1f} of "
                    f"{self.capacity / 2**20:.1f} MiB used, {pinned / 2**20:.1f} MiB pinned by "
                    f"readers; cannot fit {size / 2**20:.1f} MiB. Release references (del refs and "
                    "arrays you got from them) or raise object_store_memory"
                )
            self._space_freed.clear()
            try:
                await asyncio.wait_for(self._space_freed.wait(), min(remaining, 0.5))
            except asyncio.TimeoutError:
                pass
        entry = StoreEntry(object_id, size, owner)
        self.entries[object_id] = entry
        self.used += size

    def seal(self, object_ids: Iterable[bytes]) -> None:
        for oid in object_ids:
            entry = self.entries.get(oid)
            if entry is not None and entry.state is ObjectState.CREATING:
                entry.state = ObjectState.SEALED

    async def _make_room(self, size: int) -> bool:
        if self.used + size <= self.capacity:
            return True
        candidates = sorted(
            (e for e in self.entries.values() if e.state is ObjectState.SEALED and e.pins == 0),
            key=lambda e: e.last_used,
        )
        need = self.used + size - self.capacity
        victims = []
        for entry in candidates:
            if need <= 0:
                break
            victims.append(entry)
            need -= entry.size
        if need > 0:
            return False
        for entry in victims:
            await self._spill(entry)
        return self.used + size <= self.capacity

    async def _spill(self, entry: StoreEntry) -> None:
        src, dst = self.path(entry.object_id), self._spill_path(entry.object_id)
        try:
            await asyncio.to_thread(shutil.copyfile, src, dst)
            if entry.pins or entry.object_id not in self.entries:
                dst.unlink(missing_ok=True)  # pinned or freed meanwhile: keep it in memory
                return
            src.unlink()
        except OSError:
            logger.exception("spilling object=%s failed", entry.object_id.hex())
            dst.unlink(missing_ok=True)
            return
        entry.state = ObjectState.SPILLED
        self.used -= entry.size
        self.spilled_total += 1
        logger.info("spilled object=%s size=%d", entry.object_id.hex(), entry.size)

    async def _restore(self, entry: StoreEntry) -> None:
        if not await self._make_room(entry.size):
            raise ObjectStoreFullError(
                f"cannot restore spilled object {ids.short(entry.object_id)}: the store is full of "
                "pinned objects"
            )
        if entry.state is not ObjectState.SPILLED:
            return  # restored by a concurrent reader
        self.used += entry.size
        entry.state = ObjectState.SEALED
        try:
            await asyncio.to_thread(shutil.copyfile, self._spill_path(entry.object_id), self.path(entry.object_id))
        except OSError:
            self.used -= entry.size
            entry.state = ObjectState.SPILLED
            raise
        self._spill_path(entry.object_id).unlink(missing_ok=True)
        self.restored_total += 1
        logger.info("restored object=%s size=%d", entry.object_id.hex(), entry.size)

    # -- reading ------------------------------------------------------------------
    async def get(self, object_ids: Iterable[bytes], pins: dict[bytes, int]) -> list[int | None]:
        """Sizes of the objects (None when absent), restored and pinned for a reader
        whose pin counts are ``pins``."""
        sizes: list[int | None] = []
        for oid in object_ids:
            entry = self.entries.get(oid)
            if entry is None or entry.state is ObjectState.CREATING:
                sizes.append(None)
                continue
            self._pin(entry, pins)
            if entry.state is ObjectState.SPILLED:
                try:
                    await self._restore(entry)
                except Exception:
                    self.release([oid], pins)
                    raise
            sizes.append(entry.size)
        return sizes

    def _pin(self, entry: StoreEntry, pins: dict[bytes, int]) -> None:
        entry.pins += 1
        entry.last_used = time.monotonic()
        pins[entry.object_id] = pins.get(entry.object_id, 0) + 1

    def pin(self, object_ids: Iterable[bytes], pins: dict[bytes, int]) -> None:
        for oid in object_ids:
            entry = self.entries.get(oid)
            if entry is not None:
                self._pin(entry, pins)

    def release(self, object_ids: Iterable[bytes], pins: dict[bytes, int]) -> None:
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
                    self._space_freed.set()

    # -- freeing ------------------------------------------------------------------
    def free(self, object_ids: Iterable[bytes]) -> None:
        for oid in object_ids:
            entry = self.entries.pop(oid, None)
            if entry is None:
                continue
            if entry.state is ObjectState.SPILLED:
                self._spill_path(oid).unlink(missing_ok=True)
            else:
                self.used -= entry.size
                try:
                    os.unlink(self.path(oid))
                except FileNotFoundError:
                    pass
        self._space_freed.set()

    def free_owner(self, owner: bytes) -> None:
        """Delete every object of an owner that has gone."""
        self.free([oid for oid, e in self.entries.items() if e.owner == owner])

    def num_pinned(self) -> int:
        return sum(1 for e in self.entries.values() if e.pins)

    def spilled_bytes(self) -> int:
        return sum(e.size for e in self.entries.values() if e.state is ObjectState.SPILLED)

    def close(self) -> None:
        """Delete every object and the directories (node shutdown)."""
        shutil.rmtree(self.dir, ignore_errors=True)
        for entry in self.entries.values():
            if entry.state is ObjectState.SPILLED:
                self._spill_path(entry.object_id).unlink(missing_ok=True)
        self.entries.clear()
        self.used = 0
