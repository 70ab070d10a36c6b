"""What a generator task returns to its caller (Ray's names and semantics).

- :class:`ObjectRefGenerator` (``num_returns="streaming"``, the default for a generator
  function or method): an iterator of ObjectRefs, one per value the task yields, each
  available as soon as it is yielded. ``next()`` blocks until the next one is there,
  ``async for`` / ``await gen.__anext__()`` wait without blocking a loop, and
  ``nbcluster.wait([gen, ...])`` counts a generator ready when ``next()`` would not
  block. When the task raises, the item at that point holds the error (the ones
  before it stay valid); when it fails otherwise (its worker died, it was
  cancelled), ``next()`` returns once more a ref holding that error
  (``completed()``), then stops.
- :class:`DynamicObjectRefGenerator` (``num_returns="dynamic"``): the value of the
  task's one return, the refs of everything it yielded.

The owner's bookkeeping is in ``generator_streams``; the worker's in ``generator_exec``.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from nbcluster.runtime.core.object_ref import ObjectRef

if TYPE_CHECKING:
    from nbcluster.runtime.core.generator_streams import Stream

__all__ = ["DynamicObjectRefGenerator", "ObjectRefGenerator"]


class DynamicObjectRefGenerator:
    """The refs a ``num_returns="dynamic"`` task yielded, in order: iterate it (once)."""

    def __init__(self, refs: Iterable[ObjectRef]) -> None:
        self._refs: collections.deque[ObjectRef] = collections.deque(refs)

    def __iter__(self) -> Iterator[ObjectRef]:
        while self._refs:
            yield self._refs.popleft()

    def __len__(self) -> int:
        return len(self._refs)

    def __repr__(self) -> str:
        return f"DynamicObjectRefGenerator({len(self._refs)} refs)"


class ObjectRefGenerator:
    """The refs a streaming generator task yields, as it yields them (Ray's
    ``ObjectRefGenerator``). Made by ``.remote()``; not thread-safe, not picklable."""

    def __init__(self, ref: ObjectRef, core: Any) -> None:
        # ``ref``: the task's completion object (see ``completed``).
        self._ref = ref
        self._core = core
        self._stream: Stream = core.generators.streams[ref._id[:16]]
        self._raised = False

    # -- iteration ------------------------------------------------------------------
    def __iter__(self) -> "ObjectRefGenerator":
        return self

    def __next__(self) -> ObjectRef:
        """The next item's ref, once the task has yielded it; StopIteration at the end."""
        if not self._stream.next_ready():
            self._core.wait_until(self._stream.next_ready, None)
        return self._take(StopIteration)

    def __aiter__(self) -> "ObjectRefGenerator":
        return self

    async def __anext__(self) -> ObjectRef:
        """``__next__`` without blocking the event loop; StopAsyncIteration at the end."""
        stream = self._stream
        while not stream.next_ready():
            await asyncio.wrap_future(self._core.generators.waiter(stream))
        return self._take(StopAsyncIteration)

    def _take(self, stop: type[Exception]) -> ObjectRef:
        stream = self._stream
        if stream.read < len(stream.items):
            return self._core.generators.take(stream)
        if not self._raised:
            entry = self._core.refs.get(self._ref._id)
            if entry is not None and entry.payload is not None and entry.payload.is_error:
                self._raised = True  # the task failed after its last item: say why, once
                return self._ref
        raise stop

    # -- state --------------------------------------------------------------------
    def completed(self) -> ObjectRef:
        """A ref ready when the task has finished: ``get`` returns None, or raises
        why the task failed (a crashed worker, a cancel)."""
        return self._ref

    def next_ready(self) -> bool:
        """``next()`` would return a ref at once (False once it would stop)."""
        stream = self._stream
        return stream.read < len(stream.items) or (stream.ended and not self.is_finished())

    def is_finished(self) -> bool:
        """The task has finished and every ref was taken: ``next()`` stops."""
        stream = self._stream
        if not stream.ended or stream.read < len(stream.items):
            return False
        entry = self._core.refs.get(self._ref._id)
        failed = entry is not None and entry.payload is not None and entry.payload.is_error
        return self._raised or not failed

    def _wait_ready(self) -> bool:
        """For ``wait``: ``next()`` would not block."""
        return self._stream.next_ready()

    # -- unsupported (as Ray) -------------------------------------------------------
    def send(self, value: Any) -> None:
        """Not supported (as Ray)."""
        raise NotImplementedError("`gen.send` is not supported.")

    def throw(self, *args: Any) -> None:
        """Not supported (as Ray)."""
        raise NotImplementedError("`gen.throw` is not supported.")

    def close(self) -> None:
        """Not supported (as Ray): cancel the task with ``nbcluster.cancel(gen)``."""
        raise NotImplementedError("`gen.close` is not supported; use nbcluster.cancel(gen).")

    def __reduce__(self) -> Any:
        raise TypeError(
            "An ObjectRefGenerator cannot be pickled: it cannot be returned from a task or passed "
            "to another task or actor (as Ray). Pass the item refs instead."
        )

    def __del__(self) -> None:
        core = getattr(self, "_core", None)
        stream = getattr(self, "_stream", None)
        if core is not None and stream is not None and not core.closed:
            try:
                core.generators.drop(stream)
            except Exception:  # noqa: BLE001 - interpreter shutdown
                pass

    def __repr__(self) -> str:
        return f"ObjectRefGenerator({self._ref._id[:16].hex()})"
