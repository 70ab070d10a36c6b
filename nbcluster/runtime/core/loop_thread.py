"""A runtime's own asyncio loop, on a thread of its own (so it works inside a Jupyter
kernel, whose loop is already running, and in scripts), and the calls other threads
make into it. Shared by the core worker and the client-mode driver."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Coroutine
from typing import Any

logger = logging.getLogger(__name__)


class LoopThread:
    """The loop and its thread: ``start_loop``, ``run_sync``, ``call_soon``, ``spawn``,
    ``stop_loop``."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread: threading.Thread | None = None
        self._tasks: set[asyncio.Task] = set()

    def start_loop(self) -> None:
        """Start the loop thread; returns once the loop runs."""
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            self.loop.call_soon(ready.set)
            self.loop.run_forever()

        self._thread = threading.Thread(target=run, name="nbcluster-core", daemon=True)
        self._thread.start()
        ready.wait()

    def on_loop_thread(self) -> bool:
        """The caller runs on the loop's thread."""
        return threading.current_thread() is self._thread

    def run_sync(self, coro: Coroutine[Any, Any, Any], timeout: float | None = None) -> Any:
        """Run a coroutine on the loop from another thread and wait for it."""
        if self.on_loop_thread():
            coro.close()
            raise RuntimeError("run_sync called on the runtime's own loop thread")
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call_soon(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` on the loop thread (from any thread)."""
        self.loop.call_soon_threadsafe(fn, *args)

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task:
        """Start a coroutine owned by this runtime (cancelled at shutdown)."""
        task = self.loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("background task failed", exc_info=task.exception())

    async def cancel_spawned(self) -> None:
        """Cancel what ``spawn`` started and let it unwind (close what it opened)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=2.0)

    def stop_loop(self) -> None:
        """Stop the loop and its thread (after the runtime closed what it opened)."""
        if self._thread is None:
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5.0)
        if not self.loop.is_running():
            self.loop.close()
