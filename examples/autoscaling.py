"""Autoscaling on one machine: an embedded cluster whose head runs no tasks, and an
autoscaler that adds 1-CPU node managers for the work and removes them when idle.

    python examples/autoscaling.py
"""

import time

import nbcluster
from nbcluster.state import get_autoscaler_state, list_nodes

CONFIG = {
    "cluster_name": "example",
    "max_workers": 2,
    "upscaling_speed": 2,
    "idle_timeout_minutes": 0.05,  # 3 s, to see the scale-down quickly
    "head_node_type": "head",
    "available_node_types": {
        "head": {"resources": {"CPU": 0}},
        "cpu_worker": {"resources": {"CPU": 1}, "min_workers": 0, "max_workers": 2},
    },
}


@nbcluster.remote
def work(i: int) -> str:
    time.sleep(1)
    return nbcluster.get_runtime_context().get_node_id()[:8]


def workers() -> int:
    return sum(1 for n in list_nodes() if n.state == "ALIVE" and not n.is_head)


if __name__ == "__main__":
    nbcluster.init(autoscaling_config=CONFIG)  # the driver prints "(autoscaler +Ns) ..." lines
    nodes = nbcluster.get([work.remote(i) for i in range(4)])
    print(f"4 tasks ran on {len(set(nodes))} added nodes: {sorted(set(nodes))}")
    deadline = time.monotonic() + 60
    while workers() and time.monotonic() < deadline:
        time.sleep(0.2)
    print(f"worker nodes left after the idle timeout: {workers()}")
    for event in get_autoscaler_state().events:
        print("decision:", event.message)
    nbcluster.shutdown()
