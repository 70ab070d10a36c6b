"""The hot path (docs/architecture.md): no per-task hop through the head, leased workers
reused for queued tasks of one shape, batched messages; and a blocked task gives its
CPU back so nested tasks cannot deadlock a 1-CPU cluster."""

from __future__ import annotations

import time

import nbcluster
from nbcluster.runtime.core import worker_state
from nbcluster.runtime.protocol import gcs_pb2
from nbcluster.runtime.transport import methods

from ..conftest import node_stats


@nbcluster.remote
def noop(i):
    return i


def gcs_calls() -> dict[str, int]:
    core = worker_state.current
    reply = core.run_sync(core.gcs.call(methods.Gcs.GetClusterInfo, gcs_pb2.GetClusterInfoRequest()))
    return dict(reply.calls_served)


def test_tasks_do_not_touch_the_head_and_reuse_leases(start_cluster):
    start_cluster(num_cpus=2)
    assert nbcluster.get([noop.remote(i) for i in range(100)]) == list(range(100))  # warm
    core = worker_state.current
    results_index = methods.CoreWorker.ReportTaskResults.index
    before_gcs = gcs_calls()
    before_leases = node_stats().leases_granted
    before_results = core.dispatcher.served[results_index]
    n = 2000
    start = time.monotonic()
    assert nbcluster.get([noop.remote(i) for i in range(n)]) == list(range(n))
    elapsed = time.monotonic() - start
    after_gcs = gcs_calls()
    changed = {
        name: after_gcs[name] - before_gcs.get(name, 0)
        for name in after_gcs
        if after_gcs[name] != before_gcs.get(name, 0) and name not in ("ReportNodeState", "GetClusterInfo")
    }
    reports = changed.pop("ReportTaskEvents", 0)  # task states, batched about once a second
    assert reports <= elapsed + 3 and changed == {}, f"tasks reached the head: {changed}, {reports} reports"
    leases = node_stats().leases_granted - before_leases
    assert leases <= 12, f"{leases} leases for {n} tasks of one shape"
    messages = core.dispatcher.served[results_index] - before_results
    assert messages < n / 2, f"{messages} result messages for {n} tasks: results are not batched"


def test_nested_tasks_three_deep_on_one_cpu(start_cluster):
    start_cluster(num_cpus=1)

    @nbcluster.remote
    def depth(n):
        if n == 0:
            return "bottom"
        return [n, nbcluster.get(depth.remote(n - 1))]

    assert nbcluster.get(depth.remote(3), timeout=60) == [3, [2, [1, "bottom"]]]

    @nbcluster.remote
    def fan_out(n):
        return sum(nbcluster.get([noop.remote(i) for i in range(n)]))

    assert nbcluster.get([fan_out.remote(5) for _ in range(3)], timeout=60) == [10, 10, 10]


def test_an_idle_cluster_is_quiet(start_cluster):
    """At idle a node reports once per heartbeat, not on every cluster-view reply
    (a report -> view -> report loop would make it ~10 per second)."""
    import time

    start_cluster(num_cpus=2, _system_config={"heartbeat_interval_s": 0.5})
    assert nbcluster.get(noop.remote(1)) == 1
    time.sleep(1.0)  # let the task's load changes be reported
    before = gcs_calls().get("ReportNodeState", 0)
    time.sleep(3.0)  # the idle period measured
    reports = gcs_calls().get("ReportNodeState", 0) - before
    assert reports <= 3.0 / 0.5 + 2, f"{reports} node reports in 3 s of idle with a 0.5 s heartbeat"


def test_a_synchronous_call_wakes_the_loop_once(start_cluster):
    """``get(f.remote())`` and ``get(actor.m.remote())`` hand work to the runtime's loop
    thread for the submission and the release of the dropped ref (often coalesced),
    nothing more: the get of a few refs sets nothing up there."""
    start_cluster(num_cpus=2)

    @nbcluster.remote
    class Echo:
        def echo(self, i):
            return i

    actor = Echo.remote()
    assert nbcluster.get([noop.remote(0), actor.echo.remote(0)]) == [0, 0]  # warm
    loop = worker_state.current.loop
    calls = [0]
    original = loop.call_soon_threadsafe

    def counted(*args, **kwargs):
        calls[0] += 1
        return original(*args, **kwargs)

    n = 200
    loop.call_soon_threadsafe = counted
    try:
        for i in range(n):
            assert nbcluster.get(noop.remote(i)) == i
            assert nbcluster.get(actor.echo.remote(i)) == i
    finally:
        del loop.call_soon_threadsafe
    assert calls[0] <= 2 * (2 * n), f"{calls[0]} hand-offs to the loop for {2 * n} synchronous calls"
