"""Task state changes as their owner sees them, reported to the GCS in batches.

Recording (a state change, or a run of a task on a worker) is an append of a tuple
on the loop thread; the protobuf messages are built when the batch leaves, about once
a second (``task_events_interval_s``). The buffer is bounded: past it, events are
counted as dropped rather than kept.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from typing import Any, Protocol

from nbcluster.runtime.config import RuntimeConfig
from nbcluster.runtime.protocol import gcs_pb2
from nbcluster.runtime.transport import methods
from nbcluster.runtime.transport.errors import ConnectionLost, RemoteError

logger = logging.getLogger(__name__)

_LIMIT = 100_000


class _Host(Protocol):
    """What task events need of the core worker."""

    config: RuntimeConfig
    job_id: bytes

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task: ...

    async def gcs_connection(self) -> Any: ...


class TaskEvents:
    """The buffer of task state changes, flushed to the GCS."""

    def __init__(self, core: _Host) -> None:
        self.core = core
        self._events: list[tuple] = []
        self._attempts: list[tuple] = []
        self._dropped = 0
        self._task: asyncio.Task | None = None

    def record(self, task: Any, state: str, node_id: bytes = b"", error: str = "") -> None:
        """Record that ``task`` entered ``state`` (loop thread)."""
        if len(self._events) >= _LIMIT:
            self._dropped += 1
            return
        actor = task.actor
        actor_id = actor.actor_id if actor is not None and hasattr(actor, "actor_id") else b""
        self._events.append((task.task_id, task.fn.name, state, time.time(), node_id, task.attempt, error, actor_id, task.parent))
        if self._task is None and self.core.config.task_events_interval_s > 0:
            self._task = self.core.spawn(self._run())

    def ran(self, task: Any, duration: float, pid: int, worker: Any, failed: bool) -> None:
        """Record that ``task``'s current attempt ran ``duration`` seconds on ``worker`` (an
        ``Address``, pid ``pid``) and has just ended (loop thread)."""
        if len(self._attempts) >= _LIMIT:
            self._dropped += 1
            return
        end = time.time()
        self._attempts.append(
            (task.task_id, task.attempt, worker.node_id, worker.worker_id, pid, end - duration, end, failed)
        )

    async def _run(self) -> None:
        interval = self.core.config.task_events_interval_s
        while True:
            await asyncio.sleep(interval)
            await self.flush()

    async def flush(self, wait: bool = False) -> None:
        """Send what was recorded; ``wait``: until the GCS has it (at shutdown)."""
        if not self._events and not self._dropped and not self._attempts:
            return
        events, self._events = self._events, []
        dropped, self._dropped = self._dropped, 0
        job_id = self.core.job_id
        attempts, self._attempts = self._attempts, []
        request = gcs_pb2.ReportTaskEventsRequest(dropped=dropped)
        for task_id, attempt, node_id, worker_id, pid, start, end, failed in attempts:
            request.attempts.add(
                task_id=task_id, attempt=attempt, node_id=node_id, worker_id=worker_id,
                worker_pid=pid, start_time=start, end_time=end, failed=failed,
            )
        for task_id, name, state, when, node_id, attempt, error, actor_id, parent in events:
            request.events.add(
                task_id=task_id,
                job_id=job_id,
                name=name,
                state=state,
                time=when,
                node_id=node_id,
                attempt=attempt,
                error=error,
                actor_id=actor_id,
                parent_task_id=parent,
            )
        try:
            gcs = await self.core.gcs_connection()
            if wait:
                await gcs.call(methods.Gcs.ReportTaskEvents, request, timeout=1.0)
            else:
                gcs.notify(methods.Gcs.ReportTaskEvents, request)
        except (ConnectionLost, RemoteError, OSError, asyncio.TimeoutError) as exc:
            logger.debug("task events not reported: %s", exc)


def first_line(text: str) -> str:
    """The last non-empty line of an error text (at most 200 characters)."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return (lines[-1] if lines else "")[:200]
