"""Following an async stream from synchronous code: :class:`LogPump` runs it on a
thread of its own (``JobSubmissionClient.iter_job_logs``, the job widget's log).
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

__all__ = ["LogPump"]


class LogPump:
    """Runs an async iterator on a thread with its own event loop, handing its items
    over ``queue`` as ``("chunk", item)``, then ``("end", None)`` or ``("error", exc)``
    — or to ``sink(kind, item)`` on that thread when one is given. ``stop()`` cancels it
    and joins the thread; it may be called at any time, twice."""

    def __init__(
        self,
        source: Callable[[], AsyncIterator[str]],
        name: str,
        sink: Callable[[str, Any], None] | None = None,
    ) -> None:
        self.queue: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self._put = sink or (lambda kind, item: self.queue.put((kind, item)))
        self._source = source
        self._lock = threading.Lock()
        self._stopping = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        """Start the thread."""
        self._thread.start()

    @property
    def alive(self) -> bool:
        """Whether the thread still runs."""
        return self._thread.is_alive()

    def stop(self) -> None:
        """Cancel the iterator and wait for the thread to end."""
        with self._lock:
            self._stopping = True
            if self._loop is not None and self._task is not None:
                self._loop.call_soon_threadsafe(self._task.cancel)
        if self._thread.ident is not None and self._thread is not threading.current_thread():
            self._thread.join()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        try:
            with self._lock:
                if self._stopping:
                    return
                self._loop = loop
                self._task = loop.create_task(self._pump())
            try:
                loop.run_until_complete(self._task)
            except asyncio.CancelledError:
                pass
        finally:
            with self._lock:
                self._loop = None
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()

    async def _pump(self) -> None:
        source = self._source()
        try:
            async for item in source:
                self._put("chunk", item)
        except Exception as exc:  # handed to the consumer, which raises it
            self._put("error", exc)
        else:
            self._put("end", None)
        finally:
            await source.aclose()  # type: ignore[attr-defined]
