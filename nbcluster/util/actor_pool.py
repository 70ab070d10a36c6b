"""``ActorPool``: spread work over a fixed set of actors (as ``ray.util.ActorPool``).

Each actor runs one submitted call at a time from the pool's point of view: ``submit``
hands a value to an idle actor, or queues it until one is returned by ``get_next`` /
``get_next_unordered``. Results come back in submission order (``get_next``, ``map``)
or as they finish (``get_next_unordered``, ``map_unordered``). Built on the public API
only (``nbcluster.wait`` and ``nbcluster.get``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import nbcluster
from nbcluster.exceptions import ActorDiedError, GetTimeoutError

__all__ = ["ActorPool"]

_TIMED_OUT = "Timed out waiting for result"


def _refs(future: Any) -> list[Any]:
    """The ObjectRefs a call returned (one, or a list for ``num_returns > 1``)."""
    return list(future) if isinstance(future, (list, tuple)) else [future]


def _key(future: Any) -> Any:
    return tuple(future) if isinstance(future, list) else future


class ActorPool:
    """A fixed pool of actors to run calls on (Ray's ``ActorPool``).

    ``fn(actor, value)`` must call a method of ``actor`` and return its ObjectRef (or
    list of refs); the actor counts as busy until the result is taken::

        pool = ActorPool([Doubler.remote(), Doubler.remote()])
        list(pool.map(lambda a, v: a.double.remote(v), [1, 2, 3]))   # [2, 4, 6]
    """

    def __init__(self, actors: Iterable[Any]) -> None:
        self._idle_actors: list[Any] = list(actors)
        self._future_to_actor: dict[Any, tuple[int, Any]] = {}  # future key -> (index, actor)
        self._index_to_future: dict[int, Any] = {}
        self._next_task_index = 0
        self._next_return_index = 0
        self._pending_submits: deque[tuple[Callable[[Any, Any], Any], Any]] = deque()

    def map(self, fn: Callable[[Any, Any], Any], values: Iterable[Any]) -> Iterator[Any]:
        """Apply ``fn`` over ``values`` on the actors; an iterator of the results in
        the order of ``values``. Results not yet taken from earlier submissions are
        dropped first."""
        return self._map(fn, values, self.get_next)

    def map_unordered(self, fn: Callable[[Any, Any], Any], values: Iterable[Any]) -> Iterator[Any]:
        """As :meth:`map`, but results come as they finish."""
        return self._map(fn, values, self.get_next_unordered)

    def _map(self, fn: Callable[[Any, Any], Any], values: Iterable[Any], take: Callable[..., Any]) -> Iterator[Any]:
        self._drop_pending(take)
        for value in values:
            self.submit(fn, value)

        def results() -> Iterator[Any]:
            while self.has_next():
                yield take()

        return results()

    def _drop_pending(self, take: Callable[..., Any]) -> None:
        """Drop the results of earlier submissions (also their errors)."""
        while self.has_next():
            try:
                take(timeout=0, ignore_if_timedout=True)
            except Exception:  # noqa: BLE001 - a dropped result's error is dropped too
                pass

    def submit(self, fn: Callable[[Any, Any], Any], value: Any) -> None:
        """Run ``fn(actor, value)`` on an idle actor, or queue it until one is free;
        take the result with :meth:`get_next` or :meth:`get_next_unordered`."""
        if not self._idle_actors:
            self._pending_submits.append((fn, value))
            return
        actor = self._idle_actors.pop()
        future = fn(actor, value)
        self._future_to_actor[_key(future)] = (self._next_task_index, actor)
        self._index_to_future[self._next_task_index] = future
        self._next_task_index += 1

    def has_next(self) -> bool:
        """Whether a submitted call's result has not been taken yet."""
        return bool(self._future_to_actor)

    def get_next(self, timeout: float | None = None, ignore_if_timedout: bool = False) -> Any:
        """The next result in submission order, waiting up to ``timeout`` seconds.

        TimeoutError (a ``GetTimeoutError``) when it is not ready in time; with
        ``ignore_if_timedout=True`` that call's result is dropped, so the next call
        moves on to the following one. StopIteration when nothing is pending."""
        if not self.has_next():
            raise StopIteration("No more results to get")
        if self._next_return_index >= self._next_task_index:
            raise ValueError("It is not allowed to call get_next() after get_next_unordered().")
        future = self._index_to_future[self._next_return_index]
        if timeout is not None:
            refs = _refs(future)
            ready, _ = nbcluster.wait(refs, num_returns=len(refs), timeout=timeout)
            if len(ready) < len(refs) and not ignore_if_timedout:
                raise GetTimeoutError(_TIMED_OUT)
            if len(ready) < len(refs):
                self._forget(future)
                raise GetTimeoutError(f"{_TIMED_OUT}. The task {future} has been ignored.")
        return self._take(future)

    def get_next_unordered(self, timeout: float | None = None, ignore_if_timedout: bool = False) -> Any:
        """Any finished result, waiting up to ``timeout`` seconds for one.

        TimeoutError (a ``GetTimeoutError``) when none finishes in time; with
        ``ignore_if_timedout=True`` the oldest pending call's result is dropped.
        StopIteration when nothing is pending."""
        if not self.has_next():
            raise StopIteration("No more results to get")
        by_ref = {ref: key for key in self._future_to_actor for ref in _refs(key)}
        ready, _ = nbcluster.wait(list(by_ref), num_returns=1, timeout=timeout)
        if not ready:
            if ignore_if_timedout:
                oldest = self._index_to_future[min(self._index_to_future)]
                self._forget(oldest)
                raise GetTimeoutError(f"{_TIMED_OUT}. The task {oldest} has been ignored.")
            raise GetTimeoutError(_TIMED_OUT)
        key = by_ref[ready[0]]
        future = self._index_to_future[self._future_to_actor[key][0]]
        return self._take(future)

    def _untrack(self, future: Any) -> Any:
        """Stop tracking ``future``; returns the actor that runs it."""
        index, actor = self._future_to_actor.pop(_key(future))
        del self._index_to_future[index]
        self._next_return_index = max(self._next_return_index, index + 1)
        return actor

    def _forget(self, future: Any) -> None:
        """Drop ``future``'s result; its actor goes back to the pool at once (as Ray:
        its next call queues behind this one on the actor)."""
        self._return_actor(self._untrack(future))

    def _take(self, future: Any) -> Any:
        """The value of ``future``; its actor goes back to the pool unless it died."""
        actor = self._untrack(future)
        alive = True
        try:
            return nbcluster.get(future)
        except ActorDiedError:
            alive = False  # a dead actor would take every later call and fail it
            raise
        finally:
            self._return_actor(actor, alive)

    def _return_actor(self, actor: Any, alive: bool = True) -> None:
        if alive:
            self._idle_actors.append(actor)
        if self._pending_submits and self._idle_actors:
            self.submit(*self._pending_submits.popleft())

    def has_free(self) -> bool:
        """Whether an actor is idle and no submission is waiting for one."""
        return bool(self._idle_actors) and not self._pending_submits

    def pop_idle(self) -> Any:
        """Take an idle actor out of the pool (None when none is free)."""
        return self._idle_actors.pop() if self.has_free() else None

    def push(self, actor: Any) -> None:
        """Add ``actor`` to the pool as idle (it then takes a queued submission, if
        any). ValueError if it is in the pool already."""
        busy = [a for _, a in self._future_to_actor.values()]
        if actor in self._idle_actors or actor in busy:
            raise ValueError("Actor already belongs to current ActorPool")
        self._return_actor(actor)
