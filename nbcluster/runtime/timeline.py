"""``nbcluster.timeline()``: the task runs the head keeps, as a Chrome trace (Ray's
``ray.timeline()``).

The result is the Trace Event Format's JSON array form, which chrome://tracing,
Perfetto (ui.perfetto.dev) and speedscope open: one complete event (``"ph": "X"``) per
run of a task on a worker, with the node as the process (``pid``, named by metadata
events) and the worker's process id as the thread (``tid``). Times are in
microseconds since the epoch. Only runs that ended are drawn, as far back as the head's
task table reaches (``task_table_size``); a run's start is its end less the time its
worker measured, both on the submitter's clock.
"""

from __future__ import annotations

import json
import os
from typing import Any

from nbcluster.runtime.state import NodeState, TaskState, list_nodes, list_tasks

__all__ = ["timeline", "trace_events"]


def trace_events(tasks: list[TaskState], nodes: list[NodeState]) -> list[dict[str, Any]]:
    """The trace of the runs of ``tasks``, their nodes named from ``nodes`` (pure)."""
    ips = {n.node_id: n.node_ip for n in nodes}
    node_pids: dict[str, int] = {}
    threads: set[tuple[int, int]] = set()
    events: list[dict[str, Any]] = []
    for task in sorted(tasks, key=lambda t: t.submit_time):
        for run in task.attempts:
            pid = node_pids.setdefault(run["node_id"], len(node_pids) + 1)
            tid = run["worker_pid"]
            threads.add((pid, tid))
            events.append({
                "cat": "task::" + task.name,
                "name": task.name,
                "pid": pid,
                "tid": tid,
                "ts": run["start_time"] * 1e6,
                "dur": max(run["end_time"] - run["start_time"], 0.0) * 1e6,
                "ph": "X",
                "cname": "terrible" if run["failed"] else "generic_work",
                "args": {
                    "task_id": task.task_id,
                    "job_id": task.job_id,
                    "attempt_number": run["attempt"],
                    "actor_id": task.actor_id or None,
                    "worker_id": run["worker_id"],
                    "node_id": run["node_id"],
                    "failed": run["failed"],
                },
            })
    meta: list[dict[str, Any]] = []
    for node_id, pid in node_pids.items():
        name = f"Node {ips.get(node_id, '?')} ({node_id[:12]})"
        meta.append({"name": "process_name", "ph": "M", "pid": pid, "tid": 0, "args": {"name": name}})
    for pid, tid in sorted(threads):
        meta.append({"name": "thread_name", "ph": "M", "pid": pid, "tid": tid, "args": {"name": f"worker {tid}"}})
    return meta + events


def timeline(filename: str | os.PathLike[str] | None = None) -> list[dict[str, Any]] | None:
    """The cluster's task runs as Chrome-trace events: written to ``filename`` as JSON
    (open it in chrome://tracing or ui.perfetto.dev) and None returned, or returned as
    a list when no file is named (as Ray)."""
    events = trace_events(list_tasks(), list_nodes())
    if filename is None:
        return events
    with open(filename, "w", encoding="utf-8") as out:
        json.dump(events, out)
    return None
