"""Runtime tunables: one frozen dataclass, read once, passed down.

Values come from the defaults below, then ``NBCLUSTER_CONFIG`` (a JSON object, how a
parent process hands its config to the processes it starts), then the variables that
set one value each (``NBCLUSTER_DRAIN_TIMEOUT_S``), then keyword overrides.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from dataclasses import dataclass
from typing import Any

from nbcluster.runtime import envvars


@functools.cache
def _pidfds_work() -> bool:
    """Whether this system has pidfds (what forked workers are signalled through)."""
    try:
        os.close(os.pidfd_open(os.getpid()))
    except (AttributeError, OSError):
        return False
    return True


@dataclass(frozen=True)
class RuntimeConfig:
    """The runtime's settings (sizes, timeouts, periods); every process of a cluster
    uses the head's (passed in the environment)."""

    #: Objects (and task arguments) whose serialized size is at most this travel
    #: inline in messages; larger ones go to the node's shared-memory store.
    inline_threshold: int = 100 * 1024
    #: A submitter keeps an idle leased worker this long for the next task of the
    #: same shape before returning it to the node manager.
    lease_linger_s: float = 0.05
    #: Lease requests a submitter keeps outstanding per resource shape.
    max_pending_lease_requests: int = 10
    #: Tasks pushed ahead to one worker when the function is known to be fast.
    max_tasks_in_flight_per_worker: int = 32
    #: A function whose mean run time is below this is pipelined to its workers.
    pipeline_below_s: float = 0.01
    #: Node managers report their load to the GCS at least this often.
    heartbeat_interval_s: float = 1.0
    #: GCS health checks of node managers (Ray's defaults).
    health_check_initial_delay_s: float = 5.0
    health_check_period_s: float = 3.0
    health_check_timeout_s: float = 10.0
    health_check_failure_threshold: int = 5
    #: Idle workers beyond the pool's base size exit after this long.
    idle_worker_timeout_s: float = 10.0
    #: A node runs at most this many task workers per CPU (at least 4) that are not
    #: blocked in ``get``: beyond it, leases wait for a worker instead of forking
    #: (zero-CPU tasks would otherwise start a process each). Actors do not count.
    max_task_workers_per_cpu: float = 4.0
    #: A worker that has not connected this long after its start is given up on (not
    #: counting, on Linux, time it spent waiting for a CPU).
    worker_start_timeout_s: float = 60.0
    #: Workers run at this nice value (Ray's ``worker_niceness``, 15 there), so that the
    #: GCS and node managers get the CPU first while workers are busy or starting —
    #: hundreds starting at once on few cores otherwise starve them past their timeouts
    #: (``benchmarks/scale.py`` sets 15). 0, the default, leaves them as they are: on a
    #: 2-core machine 15 cost CPU-bound tasks (W9) and 1 MB-argument tasks (W8) 15-20 %.
    worker_niceness: int = 0
    #: How a node starts its workers: "fork" them from a *worker template*, a process
    #: that has imported what a worker runs (a worker starts in milliseconds and shares
    #: the template's memory; Linux 5.3 or later, the default there), or "spawn" a fresh
    #: interpreter for each (a few hundred milliseconds and ~20 MiB more each).
    worker_start_method: str = "fork" if _pidfds_work() else "spawn"
    #: Events the GCS keeps for watchers that resume.
    event_retention: int = 10000
    #: Seconds to wait for room in a full object store before ObjectStoreFullError.
    object_store_full_timeout_s: float = 10.0
    #: How long processes wait for each other while starting.
    startup_timeout_s: float = 30.0
    #: A worker node's node manager retries an unreachable head this long, then exits.
    gcs_reconnect_timeout_s: float = 60.0
    #: Where the GCS keeps its tables when not in the session directory: a directory
    #: that outlives the head's session (a volume), so that a head started again with
    #: it takes the cluster back — nodes, actors, jobs (Kubernetes: the head's
    #: PersistentVolumeClaim). Made private (0700) if missing.
    gcs_storage_dir: str = ""
    #: Client mode: a client whose connection drops may come back within this long and
    #: find its session (its proxy keeps its objects meanwhile, as Ray Client's grace).
    client_reconnect_grace_s: float = 30.0
    #: Owners report task state changes to the GCS this often (0: never).
    task_events_interval_s: float = 1.0
    #: Task records the GCS keeps for listing (the most recent).
    task_table_size: int = 10000
    #: The autoscaler looks at the cluster at least this often (and on every change).
    autoscaler_interval_s: float = 1.0
    #: A launched node that has not registered after this long is terminated.
    autoscaler_node_start_timeout_s: float = 120.0
    #: Stopping a job: SIGTERM to its process group, SIGKILL after this long (Ray's 3 s).
    job_stop_grace_s: float = 3.0
    #: The memory monitor (Ray's): each node manager reads its memory this often and,
    #: above ``memory_usage_threshold``, kills a worker (0: never kill).
    memory_monitor_refresh_ms: int = 250
    #: The fraction of the node's memory (its cgroup's limit when it runs in one) above
    #: which the memory monitor kills the newest retriable task's worker (Ray's 0.95).
    memory_usage_threshold: float = 0.95
    #: Read ``memory.current``/``memory.max`` here instead of the node's own cgroup v2
    #: directory ("": the process's cgroup when it is limited, else the machine's memory).
    memory_monitor_cgroup_dir: str = ""
    #: Times a task killed by the memory monitor is retried (-1: always, Ray's default),
    #: apart from ``max_retries``; a task with ``max_retries=0`` is never retried.
    task_oom_retries: int = -1
    #: The first retry after an OOM kill waits this long, each next one twice as long
    #: (at most 60 s), as Ray's ``task_oom_retry_delay_base_ms``.
    task_oom_retry_delay_base_ms: int = 1000
    #: ``runtime_env`` ``pip``/``uv`` virtualenvs a node keeps (the most recently used);
    #: unused ones beyond it are removed when another is built, as are unused ones idle
    #: longer than ``runtime_env_idle_timeout_s``. One in use is never removed.
    runtime_env_cache_size: int = 10
    runtime_env_idle_timeout_s: float = 600.0
    #: A worker node asked to stop (SIGTERM: a deleted or evicted pod) drains for at most
    #: this long: it takes no new work, lets its running tasks finish and hands the
    #: objects only it holds to other nodes, then leaves; what is left at the deadline
    #: is killed (its tasks retried elsewhere) or rebuilt from lineage. It must fit in
    #: the time the node is given before SIGKILL (Kubernetes:
    #: ``terminationGracePeriodSeconds``, 30 s by default). 0: stop at once.
    #: ``NBCLUSTER_DRAIN_TIMEOUT_S`` sets it too.
    drain_timeout_s: float = 25.0

    def __post_init__(self) -> None:
        if self.worker_start_method not in ("fork", "spawn"):
            raise ValueError(f'worker_start_method must be "fork" or "spawn", got {self.worker_start_method!r}')
        if self.worker_start_method == "fork" and not _pidfds_work():
            raise ValueError(
                'worker_start_method="fork" needs pidfds (Linux 5.3 or later, allowed by any seccomp '
                'profile); use "spawn" on this system'
            )

    def to_env(self) -> str:
        """This config as the value of ``NBCLUSTER_CONFIG`` for a child process."""
        return json.dumps(dataclasses.asdict(self))

    def replace(self, **changes: Any) -> "RuntimeConfig":
        """A copy with ``changes``."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def load(cls, overrides: dict[str, Any] | None = None) -> "RuntimeConfig":
        """The settings from the environment (the head's), with ``overrides`` on top;
        ValueError or TypeError for unknown names or wrong values."""
        values: dict[str, Any] = {}
        raw = os.environ.get(envvars.CONFIG)
        if raw:
            values.update(json.loads(raw))
        drain = os.environ.get(envvars.DRAIN_TIMEOUT)
        if drain:
            try:
                values["drain_timeout_s"] = float(drain)
            except ValueError:
                raise ValueError(f"{envvars.DRAIN_TIMEOUT} must be a number of seconds, got {drain!r}") from None
        if overrides:
            values.update(overrides)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ValueError(
                f"unknown runtime config keys {unknown}; valid keys are {sorted(names)}"
            )
        return cls(**values)
