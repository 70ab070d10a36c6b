"""Guards for the sizes benchmarks/ measures: many queued tasks from one driver work,
cost bounded memory each, and a get of all of them waits by arrivals (one callback per
object), not by rescanning the whole list per batch of results."""

from __future__ import annotations

import gc

import psutil

import nbcluster
from nbcluster.runtime.core import worker_state


class CountingEntries(dict):
    """The reference table's entries, counting lookups (behaviour unchanged)."""

    lookups = 0

    def get(self, key, default=None):  # type: ignore[override]
        CountingEntries.lookups += 1
        return super().get(key, default)


def test_twenty_thousand_queued_tasks_drain_with_bounded_driver_memory_and_work(start_cluster) -> None:
    start_cluster(num_cpus=2)

    @nbcluster.remote
    def noop() -> None:
        return None

    nbcluster.get([noop.remote() for _ in range(500)])
    gc.collect()
    before = psutil.Process().memory_info().rss
    refs = [noop.remote() for _ in range(20_000)]
    per_task = (psutil.Process().memory_info().rss - before) / len(refs)
    refs_table = worker_state.current.refs
    refs_table.entries = CountingEntries(refs_table.entries)
    assert nbcluster.get(refs, timeout=300) == [None] * len(refs)
    assert per_task < 8 * 1024, f"{per_task:.0f} bytes of driver memory per queued task"
    # Each object is looked up a few times (submitted, finished, read), not once per
    # batch of results while the get waits (which made draining quadratic).
    assert CountingEntries.lookups < 20 * len(refs), f"{CountingEntries.lookups} lookups for {len(refs)} refs"


def test_a_task_with_two_thousand_ref_arguments_and_a_get_of_two_thousand_stored_objects(start_cluster) -> None:
    start_cluster(num_cpus=2)

    @nbcluster.remote
    def total(*values: int) -> int:
        return sum(values)

    refs = [nbcluster.put(i) for i in range(2000)]
    assert nbcluster.get(total.remote(*refs), timeout=120) == sum(range(2000))
    payload = b"y" * (128 * 1024)  # above the inline threshold: each in shared memory
    stored = [nbcluster.put(payload) for _ in range(2000)]
    values = nbcluster.get(stored, timeout=120)
    assert len(values) == 2000 and all(v == payload for v in values)
