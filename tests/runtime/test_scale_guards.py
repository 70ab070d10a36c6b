"""Guards, at a fraction of the size, for the cases benchmarks/scale.py measures: many
queued tasks (bounded driver memory each; a get of all of them waits by arrivals, not
by rescanning the list per batch of results), a task with many ref arguments, a get of
many stored objects, many actors (a light process each), many node managers started
at once (work placed on each, a killed one declared dead)."""

from __future__ import annotations

import gc
import os
import signal
import time

import psutil

import nbcluster
from nbcluster.runtime.procutil import TEMPLATE_PROCESS_NAME, is_worker_process
from nbcluster.cluster_utils import Cluster
from nbcluster.runtime.core import worker_state
from nbcluster.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from ..conftest import wait_for


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


def test_forty_actors_created_and_called_each_a_light_process(start_cluster) -> None:
    start_cluster(num_cpus=2)

    @nbcluster.remote(num_cpus=0)
    class Cell:
        def __init__(self, i: int) -> None:
            self.i = i

        def value(self) -> int:
            return self.i

    actors = [Cell.remote(i) for i in range(40)]
    assert nbcluster.get([a.value.remote() for a in actors], timeout=180) == list(range(40))
    procs = psutil.Process().children(recursive=True)
    pss = [p.memory_full_info().pss for p in procs if is_worker_process(p)]
    template = sum(p.memory_full_info().pss for p in procs if p.name() == TEMPLATE_PROCESS_NAME)
    assert len(pss) >= 40
    # Forked from the worker template, each shares what it imported (~6.5 MiB each
    # here, its share of the template counted; a fresh interpreter each took ~20).
    per_actor = (sum(pss) + template) / len(pss)
    assert per_actor < 12 * 2**20, f"an actor takes {per_actor / 2**20:.1f} MiB PSS"


def test_fifty_node_managers_started_at_once_register_place_work_on_each_and_one_killed_is_declared_dead() -> None:
    # Started together, as the benchmark's 200: on two cores they starve the head and
    # each other for a while, which registration and the health checks must ride out.
    # The head is also stopped for 12 s while they register (as long as 200 starving
    # it): no node manager may give up, and no node be declared dead for it.
    health = {"health_check_initial_delay_s": 1.0, "worker_niceness": 15, "health_check_period_s": 0.5,
              "health_check_timeout_s": 0.5, "health_check_failure_threshold": 4}
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "_system_config": health})
    try:
        nodes = [cluster.add_node(wait=False, num_cpus=1) for _ in range(50)]
        gcs = psutil.Process(cluster.head_node._handle.procs[0].pid)
        wait_for(lambda: len(cluster._gcs_nodes()) > 10, timeout=120, message="nodes registering")
        gcs.suspend()
        try:
            time.sleep(12.0)
        finally:
            gcs.resume()
        cluster.wait_for_nodes(timeout=240)
        nbcluster.init(address=cluster.address)

        @nbcluster.remote
        def where() -> str:
            return nbcluster.get_runtime_context().get_node_id()

        placed = nbcluster.get([where.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n.node_id, soft=False))
                                .remote() for n in nodes], timeout=120)
        assert placed == [n.node_id for n in nodes]  # none was declared dead (it would have a new id)
        victim = nodes[-1]
        os.kill(victim.pid, signal.SIGKILL)
        killed = time.monotonic()
        wait_for(lambda: not any(x["NodeID"] == victim.node_id and x["Alive"] for x in nbcluster.nodes()),
                 timeout=60, interval=0.1, message="the killed node declared dead")
        assert time.monotonic() - killed < 30
    finally:
        if nbcluster.is_initialized():
            nbcluster.shutdown()
        cluster.shutdown()
