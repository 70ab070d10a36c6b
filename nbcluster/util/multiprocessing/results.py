"""What a :class:`~nbcluster.util.multiprocessing.Pool` hands back: ``AsyncResult``
(``apply_async``, ``map_async``, ``starmap_async``) and the iterators of ``imap`` and
``imap_unordered``, with ``multiprocessing.pool``'s semantics.

A call that raised in a pool actor comes back as a :class:`Failure`; it is raised in
the caller as the original exception, with the remote traceback as its ``__cause__``
(a :class:`RemoteTraceback`), as ``multiprocessing`` does.
"""

from __future__ import annotations

import itertools
import queue
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from multiprocessing import TimeoutError
from typing import Any

import cloudpickle

import nbcluster

__all__ = ["AsyncResult", "CallbackThread", "Failure", "IMapIterator", "RemoteTraceback"]


class RemoteTraceback(Exception):
    """The traceback of an exception raised in a pool actor (the ``__cause__`` of the
    exception the caller sees)."""

    def __init__(self, tb: str) -> None:
        super().__init__(tb)
        self.tb = tb

    def __str__(self) -> str:
        return self.tb


class Failure:
    """A call that raised in a pool actor: the exception and its formatted traceback."""

    __slots__ = ("error", "tb")

    def __init__(self, error: BaseException, tb: str) -> None:
        self.error = error
        self.tb = tb

    @classmethod
    def of(cls, exc: BaseException) -> "Failure":
        """The failure of ``exc`` (being handled now), able to travel back: an
        exception that cannot be pickled travels as a RuntimeError naming it."""
        tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        try:
            cloudpickle.dumps(exc)
        except Exception:  # noqa: BLE001 - whatever pickling raises
            exc = RuntimeError(f"{type(exc).__name__}: {exc} (the exception itself could not be pickled)")
        return cls(exc.with_traceback(None), f'\n"""\n{tb}"""')

    def exception(self) -> BaseException:
        """The exception to raise in the caller, with the remote traceback as cause."""
        self.error.__cause__ = RemoteTraceback(self.tb)
        return self.error

    def __getstate__(self) -> tuple[BaseException, str]:
        return self.error, self.tb

    def __setstate__(self, state: tuple[BaseException, str]) -> None:
        self.error, self.tb = state


class CallbackThread:
    """Runs a pool's ``callback`` and ``error_callback`` functions, one at a time and
    in the order their results completed, on a thread of the pool's own (never on the
    runtime's thread); started on first use, stopped by :meth:`stop`."""

    def __init__(self) -> None:
        self._calls: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(self, call: Callable[[], None]) -> None:
        """Run ``call`` on the thread."""
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="pool-callbacks", daemon=True)
                self._thread.start()
        self._calls.put(call)

    def _run(self) -> None:
        while (call := self._calls.get()) is not None:
            call()

    def stop(self) -> None:
        """End the thread once the calls already submitted have run."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._calls.put(None)
            if thread is not threading.current_thread():
                thread.join()


class AsyncResult:
    """The result of ``apply_async``, ``map_async`` or ``starmap_async`` (as
    ``multiprocessing.pool.AsyncResult``): ``get(timeout)``, ``wait(timeout)``,
    ``ready()``, ``successful()``."""

    def __init__(
        self,
        refs: list[Any],
        *,
        single: bool = False,
        callback: Callable[[Any], Any] | None = None,
        error_callback: Callable[[BaseException], Any] | None = None,
        callbacks: CallbackThread | None = None,
    ) -> None:
        self._refs = refs  # keeps the chunks' objects alive until read
        self._single = single
        self._callback = callback
        self._error_callback = error_callback
        self._callbacks = callbacks
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._value: Any = None
        self._error: BaseException | None = None
        self._futures = [ref.future() for ref in refs]
        self._left = len(self._futures)
        if not self._futures:
            self._finish()
        for future in self._futures:
            future.add_done_callback(self._chunk_done)

    def _chunk_done(self, _future: Any) -> None:
        with self._lock:
            self._left -= 1
            last = self._left == 0
        if last:
            self._finish()

    def _finish(self) -> None:
        """All chunks are in (this may run on the runtime's thread: nothing here blocks)."""
        values: list[Any] = []
        for future in self._futures:
            try:
                batch = future.result()
            except BaseException as exc:  # noqa: BLE001 - e.g. the pool was terminated
                self._error = exc
                break
            failed = next((item for item in batch if isinstance(item, Failure)), None)
            if failed is not None:
                self._error = failed.exception()
                break
            values.extend(batch)
        if self._error is None:
            self._value = values[0] if self._single else values
        self._futures = []
        if self._callbacks is not None and (self._callback or self._error_callback):
            self._callbacks.submit(self._run_callback)
        else:
            self._done.set()

    def _run_callback(self) -> None:
        try:
            if self._error is None and self._callback is not None:
                self._callback(self._value)
            elif self._error is not None and self._error_callback is not None:
                self._error_callback(self._error)
        finally:
            self._done.set()

    def ready(self) -> bool:
        """Whether the call has completed."""
        return self._done.is_set()

    def successful(self) -> bool:
        """Whether the call completed without raising; ValueError if not ready."""
        if not self.ready():
            raise ValueError(f"{self!r} not ready")
        return self._error is None

    def wait(self, timeout: float | None = None) -> None:
        """Wait until the result is ready, at most ``timeout`` seconds."""
        self._done.wait(timeout)

    def get(self, timeout: float | None = None) -> Any:
        """The result when it arrives; ``multiprocessing.TimeoutError`` if not ready
        within ``timeout`` seconds; the call's exception if it raised."""
        if not self._done.wait(timeout):
            raise TimeoutError
        if self._error is not None:
            raise self._error
        return self._value


class IMapIterator:
    """The iterator of ``imap`` (``ordered``) and ``imap_unordered``: it keeps one
    chunk of the input in flight per actor, sending the next chunk to the actor that
    finished one, and reads the input lazily. ``next(timeout)`` raises
    ``multiprocessing.TimeoutError`` when no result comes in time; an item whose
    call raised raises that exception, and iteration can go on after it."""

    def __init__(
        self,
        run_chunk: Callable[[int, list[tuple]], Any],
        actors: int,
        items: Iterable[tuple],
        chunksize: int,
        ordered: bool,
    ) -> None:
        self._run_chunk = run_chunk
        self._source = iter(items)
        self._chunksize = chunksize
        self._ordered = ordered
        self._inflight: dict[Any, tuple[int, int]] = {}  # ref -> (chunk number, actor index)
        self._arrived: dict[int, list[Any]] = {}  # chunk number -> results (ordered)
        self._ready: deque[Any] = deque()
        self._chunks_sent = 0
        self._next_chunk = 0
        for actor in range(actors):
            self._send(actor)

    def _send(self, actor: int) -> None:
        batch = list(itertools.islice(self._source, self._chunksize))
        if batch:
            self._inflight[self._run_chunk(actor, batch)] = (self._chunks_sent, actor)
            self._chunks_sent += 1

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        return self.next()

    def next(self, timeout: float | None = None) -> Any:
        """The next result, waiting at most ``timeout`` seconds for it."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._ready:
            if self._ordered and self._next_chunk in self._arrived:
                self._ready.extend(self._arrived.pop(self._next_chunk))
                self._next_chunk += 1
                continue
            if not self._inflight:
                raise StopIteration
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready, _ = nbcluster.wait(list(self._inflight), num_returns=1, timeout=left)
            if not ready:
                raise TimeoutError
            number, actor = self._inflight.pop(ready[0])
            self._send(actor)
            results = nbcluster.get(ready[0])
            if self._ordered:
                self._arrived[number] = results
            else:
                self._ready.extend(results)
        item = self._ready.popleft()
        if isinstance(item, Failure):
            raise item.exception()
        return item
