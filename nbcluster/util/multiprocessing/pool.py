"""``Pool``: ``multiprocessing.Pool`` on the cluster, its worker processes being actors
(as ``ray.util.multiprocessing.Pool``).

Work goes to the actors in chunks (a list of calls run one after the other in one
actor call), round robin; ``imap`` and ``imap_unordered`` keep one chunk per actor in
flight and read their input lazily. As Ray, the actors take ``num_cpus=0`` unless
``ray_remote_args`` says otherwise, and ``processes`` may not exceed the cluster's CPUs.
The function is put in the object store once per ``map``, not sent with every chunk.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import nbcluster
from nbcluster.actor import exit_actor
from nbcluster.runtime import envvars
from nbcluster.util.multiprocessing.results import AsyncResult, CallbackThread, Failure, IMapIterator

__all__ = ["Pool", "PoolActor"]


class PoolActor:
    """One worker process of a :class:`Pool`: runs the initializer once, then chunks
    of calls; a call that raises becomes a :class:`Failure` in the chunk's results."""

    def __init__(self, initializer: Callable[..., Any] | None = None, initargs: Iterable[Any] | None = None) -> None:
        if initializer is not None:
            initializer(*(initargs or ()))

    def ping(self) -> None:
        """Answers once the actor is up (its initializer has run)."""

    def run_batch(self, func: Callable[..., Any], batch: list[tuple[tuple, dict]]) -> list[Any]:
        """``func(*args, **kwargs)`` for each call of ``batch``, in order."""
        results = []
        for args, kwargs in batch:
            try:
                results.append(func(*args, **kwargs))
            except Exception as exc:  # noqa: BLE001 - the caller gets it, as from multiprocessing
                results.append(Failure.of(exc))
        return results

    def stop(self) -> None:
        """End this worker once the calls queued before this one have run."""
        exit_actor()


_POOL_ACTOR = nbcluster.remote(PoolActor)


def _start_cluster(processes: int | None, ray_address: str | None) -> None:
    """Connect when not connected yet (as Ray's Pool): to ``ray_address``, to the
    cluster named in the environment, or to a new embedded one with ``processes`` CPUs."""
    if nbcluster.is_initialized():
        return
    if ray_address is not None or os.environ.get(envvars.ADDRESS):
        nbcluster.init(address=ray_address)
    else:
        nbcluster.init(num_cpus=processes)


def _check_chunksize(chunksize: int) -> None:
    if isinstance(chunksize, bool) or not isinstance(chunksize, int) or chunksize < 1:
        raise ValueError(f"Chunksize must be 1+, not {chunksize!r}")


class Pool:
    """A pool of actor processes with ``multiprocessing.Pool``'s interface (Ray's
    ``ray.util.multiprocessing.Pool``).

    ``processes`` defaults to the cluster's CPUs; ``initializer(*initargs)`` runs in
    each actor when it starts; ``maxtasksperchild`` replaces an actor after that many
    chunks; ``ray_remote_args`` are the actors' options (``num_cpus``, ``resources``,
    ...); ``context`` is accepted and ignored. Use it as a context manager (``with
    Pool() as pool:``), which terminates it at the end, or ``close()`` and ``join()``.
    """

    def __init__(
        self,
        processes: int | None = None,
        initializer: Callable[..., Any] | None = None,
        initargs: Iterable[Any] | None = None,
        maxtasksperchild: int | None = None,
        context: Any = None,
        ray_address: str | None = None,
        ray_remote_args: dict[str, Any] | None = None,
    ) -> None:
        del context  # processes are the cluster's actors: there is no start method to choose
        _start_cluster(processes, ray_address)
        cpus = int(nbcluster.cluster_resources().get("CPU", 0))
        processes = cpus if processes is None else processes
        if processes <= 0:
            raise ValueError("Processes in the pool must be >0.")
        if processes > cpus:
            raise ValueError(
                f"Tried to start a pool with {processes} processes on a cluster with only {cpus} CPUs."
            )
        if maxtasksperchild is not None and maxtasksperchild <= 0:
            raise ValueError("maxtasksperchild must be a positive int or None")
        self._initializer = initializer
        self._initargs = tuple(initargs or ())
        self._maxtasksperchild = maxtasksperchild
        self._actor_class = _POOL_ACTOR.options(**{"num_cpus": 0, **(ray_remote_args or {})})
        self._closed = False
        self._next_index = 0
        self._stopping: list[Any] = []  # refs of stop() calls: ready once their actor has exited
        self._callbacks = CallbackThread()
        self._actors: list[list[Any]] = [self._new_actor() for _ in range(processes)]  # [handle, chunks run]
        nbcluster.get([actor.ping.remote() for actor, _ in self._actors])

    def _new_actor(self) -> list[Any]:
        return [self._actor_class.remote(self._initializer, self._initargs), 0]

    def _check_running(self) -> None:
        if self._closed:
            raise ValueError("Pool not running")

    def _run_batch(self, index: int, func: Any, batch: list[tuple[tuple, dict]]) -> Any:
        """Send ``batch`` to the actor at ``index``; replace the actor after it when it
        has run ``maxtasksperchild`` chunks."""
        entry = self._actors[index]
        ref = entry[0].run_batch.remote(func, batch)
        entry[1] += 1
        if self._maxtasksperchild is not None and entry[1] >= self._maxtasksperchild:
            self._stopping.append(entry[0].stop.remote())
            self._actors[index] = self._new_actor()
        return ref

    def _round_robin(self) -> int:
        index = self._next_index
        self._next_index = (index + 1) % len(self._actors)
        return index

    def _chunks(self, func: Any, calls: list[tuple[tuple, dict]], chunksize: int | None) -> list[Any]:
        if chunksize is None:  # multiprocessing's default: about four chunks per process
            chunksize, extra = divmod(len(calls), len(self._actors) * 4)
            chunksize = max(1, chunksize + bool(extra))
        _check_chunksize(chunksize)
        func_ref = nbcluster.put(func) if len(calls) > chunksize else func
        return [
            self._run_batch(self._round_robin(), func_ref, calls[start:start + chunksize])
            for start in range(0, len(calls), chunksize)
        ]

    def _map_async(self, func: Callable[..., Any], iterable: Iterable[Any], chunksize: int | None, star: bool,
                   callback: Callable[[Any], Any] | None, error_callback: Callable[[BaseException], Any] | None,
                   ) -> AsyncResult:
        self._check_running()
        calls = [(tuple(item) if star else (item,), {}) for item in iterable]
        refs = self._chunks(func, calls, chunksize)
        return AsyncResult(refs, callback=callback, error_callback=error_callback, callbacks=self._callbacks)

    def apply(self, func: Callable[..., Any], args: Iterable[Any] = (), kwds: dict[str, Any] | None = None) -> Any:
        """``func(*args, **kwds)`` on one of the actors; its result."""
        return self.apply_async(func, args, kwds).get()

    def apply_async(
        self,
        func: Callable[..., Any],
        args: Iterable[Any] = (),
        kwds: dict[str, Any] | None = None,
        callback: Callable[[Any], Any] | None = None,
        error_callback: Callable[[BaseException], Any] | None = None,
    ) -> AsyncResult:
        """``func(*args, **kwds)`` on one of the actors, at once; an AsyncResult.
        ``callback(result)`` or ``error_callback(exception)`` runs on a thread of the pool."""
        self._check_running()
        ref = self._run_batch(self._round_robin(), func, [(tuple(args or ()), dict(kwds or {}))])
        return AsyncResult([ref], single=True, callback=callback, error_callback=error_callback,
                           callbacks=self._callbacks)

    def map(self, func: Callable[[Any], Any], iterable: Iterable[Any], chunksize: int | None = None) -> list[Any]:
        """``[func(x) for x in iterable]``, computed by the actors; the first
        exception a call raised is raised here."""
        return self._map_async(func, iterable, chunksize, False, None, None).get()

    def map_async(
        self,
        func: Callable[[Any], Any],
        iterable: Iterable[Any],
        chunksize: int | None = None,
        callback: Callable[[Any], Any] | None = None,
        error_callback: Callable[[BaseException], Any] | None = None,
    ) -> AsyncResult:
        """:meth:`map` at once: an AsyncResult of the list; ``callback(list)`` or
        ``error_callback(exception)`` runs on a thread of the pool."""
        return self._map_async(func, iterable, chunksize, False, callback, error_callback)

    def starmap(self, func: Callable[..., Any], iterable: Iterable[Iterable[Any]], chunksize: int | None = None,
                ) -> list[Any]:
        """``[func(*args) for args in iterable]``, computed by the actors."""
        return self._map_async(func, iterable, chunksize, True, None, None).get()

    def starmap_async(
        self,
        func: Callable[..., Any],
        iterable: Iterable[Iterable[Any]],
        chunksize: int | None = None,
        callback: Callable[[Any], Any] | None = None,
        error_callback: Callable[[BaseException], Any] | None = None,
    ) -> AsyncResult:
        """:meth:`starmap` at once: an AsyncResult of the list."""
        return self._map_async(func, iterable, chunksize, True, callback, error_callback)

    def imap(self, func: Callable[[Any], Any], iterable: Iterable[Any], chunksize: int = 1) -> Iterator[Any]:
        """An iterator of ``func(x)`` for ``x`` in ``iterable``, in order, read lazily
        (``next(timeout)`` on it waits at most that long)."""
        return self._imap(func, iterable, chunksize, ordered=True)

    def imap_unordered(self, func: Callable[[Any], Any], iterable: Iterable[Any], chunksize: int = 1,
                       ) -> Iterator[Any]:
        """As :meth:`imap`, but results come as they finish."""
        return self._imap(func, iterable, chunksize, ordered=False)

    def _imap(self, func: Callable[[Any], Any], iterable: Iterable[Any], chunksize: int, ordered: bool,
              ) -> IMapIterator:
        self._check_running()
        _check_chunksize(chunksize)
        func_ref = nbcluster.put(func)
        calls = (((item,), {}) for item in iterable)
        return IMapIterator(lambda index, batch: self._run_batch(index, func_ref, batch), len(self._actors),
                            calls, chunksize, ordered)

    def close(self) -> None:
        """Take no more work; the actors exit once the work sent to them is done."""
        if not self._closed:
            self._closed = True
            self._stopping.extend(actor.stop.remote() for actor, _ in self._actors)

    def terminate(self) -> None:
        """Stop the actors now; work not done fails (ActorDiedError)."""
        self.close()
        for actor, _ in self._actors:
            nbcluster.kill(actor)
        self._callbacks.stop()

    def join(self) -> None:
        """Wait for the actors to exit (after :meth:`close` or :meth:`terminate`)."""
        if not self._closed:
            raise ValueError("Pool is still running")
        if self._stopping:
            nbcluster.wait(self._stopping, num_returns=len(self._stopping))
        self._stopping = []
        self._callbacks.stop()

    def __enter__(self) -> "Pool":
        self._check_running()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.terminate()

    def __reduce__(self) -> Any:
        raise TypeError("a Pool cannot be passed to tasks or actors: use it from the process that made it")
