"""``Queue``: a first-in, first-out queue shared by tasks and actors, held by an actor
(as ``ray.util.queue``).

The queue's items live in one async actor; every ``Queue`` object that refers to it
(the one made by ``Queue()``, and its copies passed into tasks and actors or returned
from them) reaches the same actor, which lives while any copy does. Blocking calls wait
in the actor, so a waiting ``get`` costs no polling. ``Empty`` and ``Full`` are the
standard library's ``queue.Empty`` and ``queue.Full`` too.
"""

from __future__ import annotations

import asyncio
import queue as _stdlib_queue
from collections.abc import Iterable
from typing import Any

import nbcluster
from nbcluster.actor import exit_actor

__all__ = ["Empty", "Full", "Queue"]


class Empty(_stdlib_queue.Empty):
    """``get`` found no item (non-blocking), or none came within its timeout."""


class Full(_stdlib_queue.Full):
    """``put`` found no room (non-blocking), or none was made within its timeout."""


def _check_timeout(timeout: float | None) -> None:
    if timeout is not None and timeout < 0:
        raise ValueError("'timeout' must be a non-negative number")


class Queue:
    """A queue shared by the driver, tasks and actors (Ray's ``Queue``).

    ``maxsize`` bounds it (0: no bound); ``actor_options`` are the queue actor's
    ``options()`` (e.g. ``name``, ``num_cpus``, ``lifetime``)::

        q = Queue(maxsize=100)
        producer.remote(q)          # q.put(item) inside the task
        item = q.get(timeout=5)     # queue.Empty (and Empty) after 5 s
    """

    def __init__(self, maxsize: int = 0, actor_options: dict[str, Any] | None = None) -> None:
        self.maxsize = maxsize
        self.actor: Any = _QUEUE_ACTOR.options(**(actor_options or {})).remote(maxsize)

    def _handle(self) -> Any:
        if self.actor is None:
            raise RuntimeError("this Queue was shut down")
        return self.actor

    def __len__(self) -> int:
        return self.size()

    def size(self) -> int:
        """The number of items in the queue."""
        return nbcluster.get(self._handle().qsize.remote())

    def qsize(self) -> int:
        """The number of items in the queue (as :meth:`size`)."""
        return self.size()

    def empty(self) -> bool:
        """Whether the queue holds no item."""
        return nbcluster.get(self._handle().empty.remote())

    def full(self) -> bool:
        """Whether the queue holds ``maxsize`` items."""
        return nbcluster.get(self._handle().full.remote())

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        """Add ``item``. When the queue is full: wait for room (``block``), at most
        ``timeout`` seconds, then raise :class:`Full`; raise it at once if not ``block``."""
        if not nbcluster.get(self._put_ref(item, block, timeout)):
            raise Full

    async def put_async(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        """:meth:`put` for ``async`` code: waits without blocking the event loop."""
        if not await self._put_ref(item, block, timeout):
            raise Full

    def _put_ref(self, item: Any, block: bool, timeout: float | None) -> Any:
        if not block:
            return self._handle().put_nowait.remote(item)
        _check_timeout(timeout)
        return self._handle().put.remote(item, timeout)

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        """Remove and return the oldest item. When the queue is empty: wait for one
        (``block``), at most ``timeout`` seconds, then raise :class:`Empty`; raise it at
        once if not ``block``."""
        found, item = nbcluster.get(self._get_ref(block, timeout))
        if not found:
            raise Empty
        return item

    async def get_async(self, block: bool = True, timeout: float | None = None) -> Any:
        """:meth:`get` for ``async`` code: waits without blocking the event loop."""
        found, item = await self._get_ref(block, timeout)
        if not found:
            raise Empty
        return item

    def _get_ref(self, block: bool, timeout: float | None) -> Any:
        if not block:
            return self._handle().get_nowait.remote()
        _check_timeout(timeout)
        return self._handle().get.remote(timeout)

    def put_nowait(self, item: Any) -> None:
        """``put(item, block=False)``."""
        return self.put(item, block=False)

    def get_nowait(self) -> Any:
        """``get(block=False)``."""
        return self.get(block=False)

    def put_nowait_batch(self, items: Iterable[Any]) -> None:
        """Add all of ``items`` at once, or none: :class:`Full` if they do not fit."""
        if not isinstance(items, Iterable):
            raise TypeError("Argument 'items' must be an Iterable")
        items = list(items)
        room = nbcluster.get(self._handle().put_nowait_batch.remote(items))
        if room is not None:
            raise Full(f"Cannot add {len(items)} items to queue of size {self.maxsize - room} "
                       f"and maxsize {self.maxsize}.")

    def get_nowait_batch(self, num_items: int) -> list[Any]:
        """Remove and return the ``num_items`` oldest items at once, or none:
        :class:`Empty` if the queue holds fewer."""
        if isinstance(num_items, bool) or not isinstance(num_items, int):
            raise TypeError("Argument 'num_items' must be an int")
        if num_items < 0:
            raise ValueError("'num_items' must be nonnegative")
        found, items = nbcluster.get(self._handle().get_nowait_batch.remote(num_items))
        if not found:
            raise Empty(f"Cannot get {num_items} items from queue of size {items}.")
        return items

    def shutdown(self, force: bool = False, grace_period_s: int = 5) -> None:
        """End the queue's actor: at once (``force``), or by asking it to exit and
        killing it if it has not after ``grace_period_s`` seconds. Calls waiting in
        the queue fail with ActorDiedError; this object can no longer be used."""
        actor, self.actor = self.actor, None
        if actor is None:
            return
        if not force:
            done, _ = nbcluster.wait([actor.exit.remote()], timeout=grace_period_s)
            if done:
                return
        nbcluster.kill(actor, no_restart=True)


class QueueActor:
    """The actor that holds a :class:`Queue`'s items (an async actor: blocked ``get``
    and ``put`` calls wait on its event loop without holding up the others)."""

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self.queue: asyncio.Queue = asyncio.Queue(maxsize)

    async def qsize(self) -> int:
        """The number of items."""
        return self.queue.qsize()

    async def empty(self) -> bool:
        """Whether there is no item."""
        return self.queue.empty()

    async def full(self) -> bool:
        """Whether there is no room."""
        return self.queue.full()

    async def put(self, item: Any, timeout: float | None) -> bool:
        """Add ``item``, waiting at most ``timeout`` seconds for room; False if none came."""
        if not self.queue.full():  # timeout=0 too: wait_for(..., 0) would not even try
            self.queue.put_nowait(item)
            return True
        try:
            await asyncio.wait_for(self.queue.put(item), timeout)
        except asyncio.TimeoutError:
            return False
        return True

    async def get(self, timeout: float | None) -> tuple[bool, Any]:
        """(True, the oldest item), waiting at most ``timeout`` seconds for one; (False, None)."""
        if not self.queue.empty():
            return True, self.queue.get_nowait()
        try:
            return True, await asyncio.wait_for(self.queue.get(), timeout)
        except asyncio.TimeoutError:
            return False, None

    async def put_nowait(self, item: Any) -> bool:
        """Add ``item`` if there is room; False if not."""
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            return False
        return True

    async def get_nowait(self) -> tuple[bool, Any]:
        """(True, the oldest item), or (False, None) when there is none."""
        try:
            return True, self.queue.get_nowait()
        except asyncio.QueueEmpty:
            return False, None

    async def put_nowait_batch(self, items: list[Any]) -> int | None:
        """Add all ``items`` if they fit (None), else none (the room there was)."""
        if self.maxsize > 0 and len(items) + self.queue.qsize() > self.maxsize:
            return self.maxsize - self.queue.qsize()
        for item in items:
            self.queue.put_nowait(item)
        return None

    async def get_nowait_batch(self, num_items: int) -> tuple[bool, Any]:
        """(True, the ``num_items`` oldest items) if there are that many, else
        (False, the number there is)."""
        if num_items > self.queue.qsize():
            return False, self.queue.qsize()
        return True, [self.queue.get_nowait() for _ in range(num_items)]

    async def exit(self) -> None:
        """End this actor (``Queue.shutdown``)."""
        exit_actor()


_QUEUE_ACTOR = nbcluster.remote(QueueActor)
