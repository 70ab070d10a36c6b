#!/usr/bin/env python3
"""Scale on one machine, beside Ray's published scalability envelope (Ray's
``release/benchmarks/README.md``: single node — 1,000,000+ tasks queued, 10,000+
object arguments to a task, 10,000+ objects in one ``get``; distributed — 250+
nodes, 10k+ actors on 64 machines of 64 cores).

    python benchmarks/scale.py                    # every case at its default size
    python benchmarks/scale.py --only queued,get --queued 200000
    python benchmarks/scale.py --json scale.json

Cases (each prints its figures and, where it applies, memory per unit):

queued   N no-op tasks submitted from one driver before any is waited for (default
         1,000,000): submission rate, the driver's RSS per queued task, and the drain
         rate (tasks finished per second once submitted) beside the drain rate of
         10,000 in the same run (the target: within 2x).
args     one task given 10,000 ObjectRef arguments (each a put value): seconds from
         submit to its result.
get      one ``get`` of 10,000 objects stored in shared memory (128 KiB each): seconds.
actors   N actors (``num_cpus=0``, default 1,000 — a process each, forked from the node's
         worker template: 1,000 take ~6.5 GiB) created and each called once: seconds, and
         the PSS per actor (the workers' PSS plus the template's, over N).
nodes    N node managers (``num_cpus=1`` each, default 200, started at once) registered
         with one head on loopback: seconds to register; seconds until a task placed on
         each node in turn (node affinity) has run everywhere (``settled_s``: every node's
         worker started, at its low priority) and the slowest of those first tasks; then,
         once the workers are quiet, a node manager's PSS, the latency of a second such
         round, the head's CPU share at idle (10 s), and how long until a node killed
         with SIGKILL is declared dead (health checks every 0.5 s, 4 misses).

Only nbcluster runs here: the envelope is Ray's published one (machines far larger than
this one), not a run of Ray.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import signal
import statistics
import sys
import time

import psutil

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(1, REPO_ROOT)
os.environ["PYTHONPATH"] = REPO_ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")

import nbcluster  # noqa: E402
from nbcluster.runtime.procutil import TEMPLATE_PROCESS_NAME, is_worker_process  # noqa: E402

CASES = ["queued", "args", "get", "actors", "nodes"]
ENVELOPE = {
    "queued": "1,000,000+ tasks queued on a single node",
    "args": "10,000+ object arguments to a single task",
    "get": "10,000+ plasma objects in a single ray.get",
    "actors": "10k+ actors in a cluster (64 nodes x 64 cores)",
    "nodes": "250+ nodes in a cluster (trivial task workload)",
}
pc = time.perf_counter


def log(msg: str) -> None:
    print(f"[scale] {msg}", file=sys.stderr, flush=True)


def rss() -> int:
    return psutil.Process().memory_info().rss


@nbcluster.remote
def noop() -> None:
    return None


@nbcluster.remote
def count(*refs_values: object) -> int:
    return len(refs_values)


def case_queued(n: int) -> dict:
    nbcluster.get([noop.remote() for _ in range(1000)])

    def drain(k: int) -> tuple[float, float, float]:
        gc.collect()
        before = rss()
        t = pc()
        refs = [noop.remote() for _ in range(k)]
        submit = pc() - t
        per_task = (rss() - before) / k
        t = pc()
        nbcluster.get(refs)
        return k / submit, k / (pc() - t), per_task

    small = drain(10_000)
    large = drain(n)
    return {"n": n, "submit_per_s": round(large[0]), "drain_per_s": round(large[1]),
            "drain_per_s_at_10k": round(small[1]), "drain_ratio": round(large[1] / small[1], 2),
            "driver_bytes_per_queued_task": round(large[2])}


def case_args(n: int) -> dict:
    refs = [nbcluster.put(i) for i in range(n)]
    t = pc()
    assert nbcluster.get(count.remote(*refs)) == n
    return {"n": n, "seconds": round(pc() - t, 3)}


def case_get(n: int) -> dict:
    payload = b"x" * (128 * 1024)  # above the inline threshold: in shared memory
    refs = [nbcluster.put(payload) for _ in range(n)]
    t = pc()
    values = nbcluster.get(refs)
    took = pc() - t
    assert len(values) == n and all(len(v) == len(payload) for v in values)
    return {"n": n, "object_bytes": len(payload), "seconds": round(took, 3)}


@nbcluster.remote(num_cpus=0)
class Cell:
    def __init__(self, i: int) -> None:
        self.i = i

    def value(self) -> int:
        return self.i


def case_actors(n: int) -> dict:
    t = pc()
    actors = [Cell.remote(i) for i in range(n)]
    assert nbcluster.get([a.value.remote() for a in actors]) == list(range(n))
    took = pc() - t
    pss, template_pss = [], 0
    for proc in psutil.Process().children(recursive=True):
        try:
            if is_worker_process(proc):
                pss.append(proc.memory_full_info().pss)
            elif proc.name() == TEMPLATE_PROCESS_NAME:  # what the workers forked from it share
                template_pss += proc.memory_full_info().pss
        except psutil.Error:
            pass
    del actors
    per_actor = (sum(pss) + template_pss) / len(pss) if pss else None
    return {"n": n, "seconds": round(took, 2), "worker_processes": len(pss),
            "pss_mib_per_actor": round(per_actor / 2**20, 1) if per_actor else None,
            "pss_mib_per_actor_median": round(statistics.median(pss) / 2**20, 1) if pss else None}


def quiet_workers(timeout: float = 600.0) -> None:
    """Until this process's workers (at their low priority) take under 5 % of a core."""
    def cpu(proc: psutil.Process) -> float:
        try:
            return proc.cpu_percent(None) if is_worker_process(proc) else 0.0
        except psutil.Error:
            return 0.0

    deadline = pc() + timeout
    while pc() < deadline:
        procs = psutil.Process().children(recursive=True)
        for proc in procs:
            cpu(proc)
        time.sleep(2.0)
        if sum(cpu(proc) for proc in procs) < 5.0:
            return
    log("workers still busy: measuring anyway")


def case_nodes(n: int) -> dict:
    from nbcluster.cluster_utils import Cluster
    from nbcluster.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    health = {"health_check_initial_delay_s": 1.0, "worker_niceness": 15, "health_check_period_s": 0.5,
              "health_check_timeout_s": 0.5, "health_check_failure_threshold": 4}
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "_system_config": health})
    try:
        t = pc()
        nodes = [cluster.add_node(wait=False, num_cpus=1) for _ in range(n)]
        cluster.wait_for_nodes(timeout=60 + 2 * n)
        register = pc() - t
        nbcluster.init(address=cluster.address)

        def affinity_round() -> list[float]:
            latencies = []
            for node in nodes:
                strategy = NodeAffinitySchedulingStrategy(node.node_id, soft=False)
                t = pc()
                nbcluster.get(noop.options(scheduling_strategy=strategy).remote())
                latencies.append(pc() - t)
            return latencies

        t = pc()
        first = affinity_round()  # each node's first task (its worker may still be starting)
        settled = register + pc() - t
        quiet_workers()  # the workers a node starts to keep one idle are up (or retired)
        nm_pss = statistics.median(psutil.Process(node.pid).memory_full_info().pss for node in nodes)
        latencies = affinity_round()
        gcs = psutil.Process(cluster.head_node._handle.procs[0].pid)
        gcs.cpu_percent(None)
        time.sleep(10.0)
        idle_cpu = gcs.cpu_percent(None)
        victim = nodes[-1]
        os.kill(victim.pid, signal.SIGKILL)
        killed = pc()
        while any(x["NodeID"] == victim.node_id and x["Alive"] for x in nbcluster.nodes()):
            if pc() - killed > 120:
                raise RuntimeError("the killed node was never declared dead")
            time.sleep(0.05)
        detected = pc() - killed
        nbcluster.shutdown()
        return {"n": n, "register_s": round(register, 1), "settled_s": round(settled, 1),
                "first_task_ms_max": round(max(first) * 1000), "pss_mib_per_node_manager": round(nm_pss / 2**20, 1),
                "gcs_idle_cpu_percent": round(idle_cpu, 1),
                "affinity_task_ms_median": round(statistics.median(latencies) * 1000, 1),
                "affinity_task_ms_max": round(max(latencies) * 1000, 1), "failure_detection_s": round(detected, 2),
                "health_config": health}
    finally:
        if nbcluster.is_initialized():
            nbcluster.shutdown()
        cluster.shutdown()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="", help=f"comma-separated cases of {CASES}")
    ap.add_argument("--queued", type=int, default=1_000_000)
    ap.add_argument("--args", type=int, default=10_000)
    ap.add_argument("--get", type=int, default=10_000)
    ap.add_argument("--actors", type=int, default=1000)
    ap.add_argument("--nodes", type=int, default=200)
    ap.add_argument("--json", dest="json_out")
    opts = ap.parse_args()
    selected = [c for c in CASES if not opts.only or c in opts.only.split(",")]
    results: dict = {}
    in_cluster = [c for c in selected if c != "nodes"]
    if in_cluster:
        nbcluster.init(num_cpus=2)
        try:
            for case in in_cluster:
                log(f"{case} ...")
                results[case] = globals()[f"case_{case}"](getattr(opts, case))
                log(f"{case}: {results[case]}")
        finally:
            nbcluster.shutdown()
    if "nodes" in selected:
        log("nodes ...")
        results["nodes"] = case_nodes(opts.nodes)
        log(f"nodes: {results['nodes']}")
    print()
    for case, figures in results.items():
        text = ", ".join(f"{k}={v}" for k, v in figures.items() if k != "health_config")
        print(f"{case:7} nbcluster here: {text}\n{'':7} Ray's envelope: {ENVELOPE[case]}")
    if opts.json_out:
        with open(opts.json_out, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
