"""A process's mapping of its node's arena (client side of the object store).

The arena is mapped once, read-write, and kept: writers copy an object into the
block the node manager allocated; readers get read-only views. Each view is backed
by a small ctypes block over the arena whose lifetime is the view's — when the last
array or memoryview derived from it is gone, a finalizer releases the pin, and only
then may the store reuse the block.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import weakref
from collections.abc import Callable

from nbcluster.runtime.objects.serialization import SerializedObject


def _size_class(size: int) -> int:
    """Sizes rounded so few distinct ctypes array types exist (at most 1/8 slack)."""
    if size <= 4096:
        return 4096
    step = 1 << max(12, size.bit_length() - 4)
    return (size + step - 1) // step * step


class Arena:
    """This node's shared-memory arena, mapped into the process."""

    def __init__(self, path: str, size: int) -> None:
        fd = os.open(path, os.O_RDWR)
        try:
            self._map = mmap.mmap(fd, size, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ | mmap.PROT_WRITE)
        finally:
            os.close(fd)
        self.size = size
        self._view = memoryview(self._map)

    def write(self, offset: int, obj: SerializedObject) -> None:
        """Write a serialized object at ``offset``."""
        obj.write_into(self._view[offset : offset + obj.total_size])

    def write_at(self, offset: int, data: bytes | memoryview) -> None:
        """Write raw bytes at ``offset`` (a part of an object being stored in pieces)."""
        self._view[offset : offset + len(data)] = data

    def view(self, offset: int, size: int, on_release: Callable[[], None]) -> memoryview:
        """A read-only view of ``size`` bytes at ``offset``; ``on_release()`` runs once
        the view and everything made from it are gone."""
        span = min(_size_class(size), self.size - offset)
        block = (ctypes.c_char * span).from_buffer(self._map, offset)
        weakref.finalize(block, on_release)
        return memoryview(block).cast("B")[:size].toreadonly()

    def contains(self, address: int) -> bool:
        """``address`` lies inside the arena's mapping."""
        base = ctypes.addressof(ctypes.c_char.from_buffer(self._map))
        return base <= address < base + self.size
