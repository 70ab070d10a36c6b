"""Ray semantics that need two nodes: ``cluster_utils.Cluster.add_node`` with Ray's node
arguments, a node with 120 custom resources, ``wait(fetch_local=...)``."""

from __future__ import annotations

import logging
import socket

import numpy as np
import pytest

import nbcluster
from nbcluster.cluster_utils import Cluster

from ..conftest import FAST_CONFIG, node_stats

CUSTOM = {f"custom_{i}": 2.0 for i in range(120)}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def nodes():  # type: ignore[no-untyped-def]
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "_system_config": FAST_CONFIG})
    try:
        yield cluster
    finally:
        nbcluster.shutdown()
        cluster.shutdown()


def test_add_node_takes_rays_node_arguments(nodes: Cluster, caplog: pytest.LogCaptureFixture) -> None:
    port, object_port = _free_port(), _free_port()
    with caplog.at_level(logging.WARNING, logger="nbcluster.cluster_utils"):
        worker = nodes.add_node(
            num_cpus=1, resources={**CUSTOM, "other": 1}, node_manager_port=port, object_manager_port=object_port,
            dashboard_port=8265, min_worker_port=10002, max_worker_port=19999,
        )
    assert "ignoring Ray node arguments that do not apply here: dashboard_port, max_worker_port, min_worker_port" \
        in caplog.text
    with pytest.raises(ValueError, match="unknown node arguments \\['num_cpu'\\]"):
        nodes.add_node(num_cpu=1)
    nbcluster.init(address=nodes.address)
    (info,) = [n for n in nbcluster.state.list_nodes() if n.node_id == worker.node_id]
    assert info.address.endswith(f":{port}") and info.object_address.endswith(f":{object_port}")


def test_a_node_with_120_custom_resources_schedules_by_each(nodes: Cluster) -> None:
    worker = nodes.worker_nodes[0].node_id
    total = nbcluster.cluster_resources()
    assert all(total[name] == 2.0 for name in CUSTOM)

    @nbcluster.remote(num_cpus=0)
    def where() -> str:
        return nbcluster.get_runtime_context().get_node_id()

    some = [where.options(resources={f"custom_{i}": 1, f"custom_{119 - i}": 1}).remote() for i in range(0, 120, 7)]
    everything = where.options(resources={name: 2.0 for name in CUSTOM}).remote()
    assert set(nbcluster.get(some + [everything], timeout=60)) == {worker}
    assert nbcluster.get(where.options(resources={"custom_119": 2}).remote(), timeout=30) == worker
    ready, _ = nbcluster.wait([where.options(resources={"custom_5": 3}).remote()], timeout=1)
    assert ready == []  # more of one than the node has: waits (infeasible), as Ray


def test_wait_fetch_local(nodes: Cluster) -> None:
    @nbcluster.remote(resources={"other": 1})
    def big(seed: int) -> np.ndarray:
        return np.full(400_000, seed, dtype=np.float64)  # 3.2 MB: stays in the worker node's store

    def here(ref: nbcluster.ObjectRef) -> bool:
        return any(o.object_id == ref.binary() for o in node_stats(include_objects=True).objects)

    far = big.remote(1)
    ready, _ = nbcluster.wait([far], fetch_local=False, timeout=60)
    assert ready == [far] and not here(far)  # ready where it is, nothing pulled
    ready, _ = nbcluster.wait([far], timeout=60)  # fetch_local=True, Ray's default
    assert ready == [far] and here(far)
    assert nbcluster.get(far)[0] == 1
    other = big.remote(2)
    nbcluster.wait([other], fetch_local=False, timeout=60)
    ready, _ = nbcluster.wait([other], fetch_local=True, timeout=60)
    assert ready == [other] and here(other)
