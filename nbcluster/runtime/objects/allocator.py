"""Space in the arena: page-aligned blocks, best fit, neighbours coalesced on free.

Best fit (lowest offset among equals) keeps reusing the same low addresses, whose
pages every process on the node already has mapped and faulted in: writing and
reading there is several times faster than touching fresh memory.
"""

from __future__ import annotations

import bisect

PAGE = 4096


def round_up(size: int, align: int = PAGE) -> int:
    """``size`` rounded up to a multiple of ``align`` (at least ``align``)."""
    return max(align, (size + align - 1) // align * align)


class Allocator:
    """Best-fit allocation of page-aligned blocks in the arena, merging free neighbours."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity - capacity % PAGE
        self._starts: list[int] = [0]  # free blocks, sorted by offset
        self._sizes: dict[int, int] = {0: self.capacity}
        self.free_bytes = self.capacity

    def alloc(self, size: int) -> int | None:
        """Offset of a block of at least ``size`` bytes (rounded to pages), or None."""
        size = round_up(size)
        best = None
        best_size = 0
        for start in self._starts:
            block = self._sizes[start]
            if block >= size and (best is None or block < best_size):
                best, best_size = start, block
                if block == size:
                    break
        if best is None:
            return None
        index = bisect.bisect_left(self._starts, best)
        del self._starts[index]
        del self._sizes[best]
        if best_size > size:
            rest = best + size
            self._starts.insert(index, rest)
            self._sizes[rest] = best_size - size
        self.free_bytes -= size
        return best

    def free(self, offset: int, size: int) -> None:
        """Give back the block at ``offset``."""
        size = round_up(size)
        index = bisect.bisect_left(self._starts, offset)
        self.free_bytes += size
        # Merge with the following block.
        if index < len(self._starts) and offset + size == self._starts[index]:
            following = self._starts.pop(index)
            size += self._sizes.pop(following)
        # Merge with the preceding block.
        if index > 0:
            before = self._starts[index - 1]
            if before + self._sizes[before] == offset:
                self._sizes[before] += size
                return
        self._starts.insert(index, offset)
        self._sizes[offset] = size

    def largest_free(self) -> int:
        """The size of the largest free block."""
        return max(self._sizes.values(), default=0)
