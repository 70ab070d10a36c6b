"""The worker pool's hard cap: a node runs at most ``max_task_workers_per_cpu`` task
workers per CPU (at least 4) that are not blocked in ``get``; beyond it leases wait for a
worker instead of forking one, and nested gets never wait on it."""

from __future__ import annotations

import nbcluster

from .test_worker_pool import PeakWorkers


def test_the_hard_cap_queues_zero_cpu_tasks_and_never_blocks_nested_gets(start_cluster) -> None:
    import time

    start_cluster(num_cpus=1, _system_config={"max_task_workers_per_cpu": 2})

    @nbcluster.remote(num_cpus=0)
    def short(i: int) -> int:
        time.sleep(0.2)
        return i

    with PeakWorkers() as workers:
        assert nbcluster.get([short.remote(i) for i in range(24)], timeout=120) == list(range(24))
    assert workers.peak <= 5, f"{workers.peak} worker processes for 24 zero-CPU tasks under a cap of 4"

    @nbcluster.remote(num_cpus=0)
    def chain(n: int) -> int:  # gets with a timeout are not run inline: each level blocks a worker
        return 0 if n == 0 else 1 + nbcluster.get(chain.remote(n - 1), timeout=60)

    assert nbcluster.get(chain.remote(8), timeout=120) == 8  # blocked workers do not count
