"""The GCS's task table: what owners reported of their tasks, the most recent kept,
and per-job counts by function and state, published as events at most once a
second per job (what progress bars and `nbcluster list tasks` read).

When the table is full, the task that ended longest ago goes first; a task still
pending or running goes only when none has ended (so a view of running work never
loses a task while it runs)."""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from nbcluster.runtime.protocol import gcs_pb2

if TYPE_CHECKING:
    from nbcluster.runtime.gcs.pubsub import EventLog

_TERMINAL = ("FINISHED", "FAILED", "CANCELLED")
#: Runs kept per task (a task retried more often keeps its newest).
_ATTEMPTS_KEPT = 8


class TaskTable:
    """The newest ``size`` tasks' records from task events, with per-job progress."""

    def __init__(self, size: int, events: "EventLog") -> None:
        self._size = size
        self._events = events
        self._records: collections.OrderedDict[bytes, gcs_pb2.TaskRecord] = collections.OrderedDict()
        #: The ended tasks of ``_records``, in the order they ended (evicted first).
        self._ended: collections.OrderedDict[bytes, None] = collections.OrderedDict()
        #: job -> function name -> state -> count (a task counted once, in its last state)
        self._counts: dict[bytes, dict[str, collections.Counter]] = {}
        self._dirty_jobs: set[bytes] = set()
        self._last_publish: dict[bytes, float] = {}
        self._timer: asyncio.TimerHandle | None = None
        self.total = 0
        self.dropped = 0

    def report(self, request: gcs_pb2.ReportTaskEventsRequest) -> None:
        """Apply a batch of task events."""
        self.dropped += request.dropped
        for event in request.events:
            record = self._records.get(event.task_id)
            if record is None:
                record = gcs_pb2.TaskRecord(
                    task_id=event.task_id,
                    job_id=event.job_id,
                    name=event.name,
                    actor_id=event.actor_id,
                    submit_time=event.time,
                    parent_task_id=event.parent_task_id,
                )
                self._records[event.task_id] = record
                self.total += 1
                if len(self._records) > self._size:
                    self._evict()
            else:
                self._records.move_to_end(event.task_id)
                self._count(record, -1)
            if event.state in _TERMINAL:
                self._ended[event.task_id] = None
                self._ended.move_to_end(event.task_id)
            else:  # a retry: running again
                self._ended.pop(event.task_id, None)
            record.state = event.state
            record.attempt = event.attempt
            if event.node_id:
                record.node_id = event.node_id
            if event.state == "RUNNING":
                record.start_time = event.time
            elif event.state in _TERMINAL:
                record.end_time = event.time
                record.error = event.error
            self._count(record, 1)
        for run in request.attempts:
            self._ran(run)
        self._publish()

    def _ran(self, run: gcs_pb2.TaskAttempt) -> None:
        """A run of a task on a worker ended: its worker, and the run for the timeline."""
        record = self._records.get(run.task_id)
        if record is None:
            return  # forgotten already
        record.worker_id, record.worker_pid = run.worker_id, run.worker_pid
        record.attempts.append(run)
        if len(record.attempts) > _ATTEMPTS_KEPT:
            del record.attempts[0]

    def _evict(self) -> None:
        """Drop the task that ended longest ago; the oldest one when none has ended."""
        if self._ended:
            task_id, _ = self._ended.popitem(last=False)
            del self._records[task_id]
        else:
            self._records.popitem(last=False)

    def job_finished(self, job_id: bytes, reason: str) -> None:
        """Tasks of an ended job that never reported an end did not finish."""
        now = time.time()
        for record in self._records.values():
            if record.job_id == job_id and record.state not in _TERMINAL:
                self._count(record, -1)
                record.state, record.end_time, record.error = "FAILED", now, reason
                self._count(record, 1)
                self._ended[record.task_id] = None
        self._publish()

    def _count(self, record: gcs_pb2.TaskRecord, delta: int) -> None:
        by_name = self._counts.setdefault(record.job_id, {})
        counter = by_name.setdefault(record.name, collections.Counter())
        counter[record.state] += delta
        self._dirty_jobs.add(record.job_id)

    def _publish(self) -> None:
        now = time.monotonic()
        self._timer = None
        for job_id in list(self._dirty_jobs):
            wait = 1.0 - (now - self._last_publish.get(job_id, 0.0))
            if wait > 0:  # published less than a second ago: again when that second is up
                if self._timer is None:
                    self._timer = asyncio.get_running_loop().call_later(wait, self._publish)
                continue
            self._dirty_jobs.discard(job_id)
            self._last_publish[job_id] = now
            counts = {
                name: {state: n for state, n in counter.items() if n}
                for name, counter in self._counts.get(job_id, {}).items()
            }
            finished = sum(c.get("FINISHED", 0) for c in counts.values())
            total = sum(sum(c.values()) for c in counts.values())
            self._events.publish(
                gcs_pb2.EVENT_KIND_TASK_COUNTERS,
                f"{finished} of {total} tasks finished",
                job_id=job_id,
                data={"by_function": counts, "finished": finished, "total": total, **self.progress(job_id)},
                source="tasks",
            )

    def progress(self, job_id: bytes) -> dict[str, int]:
        """A job's tasks: submitted (all known), running, finished, failed (or cancelled)."""
        totals: collections.Counter = collections.Counter()
        for counter in self._counts.get(job_id, {}).values():
            totals.update(counter)
        return {
            "submitted": sum(totals.values()),
            "running": totals["RUNNING"],
            "finished": totals["FINISHED"],
            "failed": totals["FAILED"] + totals["CANCELLED"],
        }

    def close(self) -> None:
        """Stop the pending progress events."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def list(self, job_id: bytes = b"", limit: int = 0, task_ids: Sequence[bytes] = ()) -> list[gcs_pb2.TaskRecord]:
        """Task records: those of ``task_ids``, else the newest ``limit`` (of ``job_id``)."""
        if task_ids:
            found = (self._records.get(t) for t in dict.fromkeys(task_ids))
            records = [r for r in found if r is not None and (not job_id or r.job_id == job_id)]
            return records[:limit] if limit else records
        records = [r for r in reversed(self._records.values()) if not job_id or r.job_id == job_id]
        return records[:limit] if limit else records
