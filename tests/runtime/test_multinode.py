"""Several node managers on loopback (nbcluster.cluster_utils): placement by custom
resource, SPREAD and node affinity, objects moving between nodes, actors on other
nodes, and the cluster's view of it all."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
import time

import numpy as np
import pytest

import nbcluster
from nbcluster.cluster_utils import Cluster
from nbcluster.exceptions import TaskUnschedulableError
from nbcluster.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from ..conftest import FAST_CONFIG, wait_for

FAST_HEALTH = {
    **FAST_CONFIG,
    "health_check_initial_delay_s": 0.5,
    "health_check_period_s": 0.3,
    "health_check_timeout_s": 0.5,
    "health_check_failure_threshold": 3,
}


@pytest.fixture(scope="module")
def three_nodes():
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "_system_config": FAST_HEALTH})
    a = cluster.add_node(num_cpus=2, resources={"site_a": 1})
    b = cluster.add_node(num_cpus=2, resources={"site_b": 1})
    nbcluster.init(address=cluster.address)
    try:
        yield cluster, a, b
    finally:
        nbcluster.shutdown()
        cluster.shutdown()


@nbcluster.remote(num_cpus=0.5)
def node_of(_=None):
    return nbcluster.get_runtime_context().get_node_id()


def test_every_node_is_in_the_table(three_nodes):
    cluster, a, b = three_nodes
    alive = {n["NodeID"] for n in nbcluster.nodes() if n["Alive"]}
    assert alive == {cluster.head_node.node_id, a.node_id, b.node_id}
    total = nbcluster.cluster_resources()
    assert total["CPU"] == 5 and total["site_a"] == 1 and total["site_b"] == 1


def test_custom_resources_place_work_on_their_node(three_nodes):
    _, a, b = three_nodes
    on_a = node_of.options(resources={"site_a": 0.1}).remote()
    on_b = node_of.options(resources={"site_b": 0.1}).remote()
    assert nbcluster.get([on_a, on_b], timeout=60) == [a.node_id, b.node_id]


def test_object_made_on_one_node_is_read_on_another(three_nodes):
    _, a, b = three_nodes

    @nbcluster.remote(resources={"site_a": 0.1})
    def make():
        data = np.random.default_rng(7).integers(0, 255, size=30_000_000, dtype=np.uint8)
        return data, hashlib.sha256(data.tobytes()).hexdigest()

    @nbcluster.remote(resources={"site_b": 0.1})
    def check(data):
        return hashlib.sha256(data.tobytes()).hexdigest(), nbcluster.get_runtime_context().get_node_id()

    data_ref, digest_ref = make.options(num_returns=2).remote()
    digest = nbcluster.get(digest_ref, timeout=60)
    seen, where = nbcluster.get(check.remote(data_ref), timeout=60)
    assert where == b.node_id and seen == digest
    local = nbcluster.get(data_ref, timeout=60)  # and in the driver, on the head node
    assert hashlib.sha256(local.tobytes()).hexdigest() == digest


def test_spread_uses_every_node(three_nodes):
    cluster, a, b = three_nodes

    @nbcluster.remote(num_cpus=0.5, scheduling_strategy="SPREAD")
    def spot(i):
        time.sleep(0.2)
        return nbcluster.get_runtime_context().get_node_id()

    seen = set(nbcluster.get([spot.remote(i) for i in range(9)], timeout=60))
    assert seen == {cluster.head_node.node_id, a.node_id, b.node_id}


def test_node_affinity(three_nodes):
    _, a, b = three_nodes
    hard = node_of.options(scheduling_strategy=NodeAffinitySchedulingStrategy(b.node_id, soft=False))
    assert nbcluster.get([hard.remote(i) for i in range(3)], timeout=60) == [b.node_id] * 3
    gone = os.urandom(16).hex()
    with pytest.raises(TaskUnschedulableError, match="not alive"):
        nbcluster.get(node_of.options(scheduling_strategy=NodeAffinitySchedulingStrategy(gone)).remote(), timeout=60)
    soft = node_of.options(scheduling_strategy=NodeAffinitySchedulingStrategy(gone, soft=True))
    assert nbcluster.get(soft.remote(), timeout=60)  # ran somewhere
    with pytest.raises(ValueError, match="32 hex digits"):
        NodeAffinitySchedulingStrategy("abcd")


def test_locality_prefers_the_node_holding_the_arguments(three_nodes):
    _, a, _ = three_nodes

    @nbcluster.remote(resources={"site_a": 0.1})
    def big():
        return np.ones(5_000_000)

    refs = [big.remote() for _ in range(3)]
    nbcluster.wait(refs, num_returns=3, timeout=60)
    # With room everywhere, each task goes where its 40 MB argument is.
    wait_for(lambda: nbcluster.available_resources().get("CPU") == 5, message="all CPUs free")
    assert nbcluster.get([node_of.remote(r) for r in refs], timeout=60) == [a.node_id] * 3


def test_actor_on_another_node(three_nodes):
    _, _, b = three_nodes

    @nbcluster.remote(resources={"site_b": 0.1})
    class Counter:
        def __init__(self):
            self.value = 0

        def add(self):
            self.value += 1
            return self.value, nbcluster.get_runtime_context().get_node_id()

    counter = Counter.remote()
    assert nbcluster.get([counter.add.remote() for _ in range(3)], timeout=60) == [(i, b.node_id) for i in (1, 2, 3)]

    @nbcluster.remote(resources={"site_a": 0.1})
    def call_from_a(handle):
        return nbcluster.get(handle.add.remote())

    assert nbcluster.get(call_from_a.remote(counter), timeout=60) == (4, b.node_id)


def test_objects_are_freed_on_every_node(three_nodes):
    @nbcluster.remote(resources={"site_a": 0.1})
    def make():
        return np.ones(2_000_000)

    @nbcluster.remote(resources={"site_b": 0.1})
    def use(x):
        return float(x.sum())

    def used() -> dict[str, int]:
        return {n["NodeID"]: n["ObjectStoreUsed"] for n in nbcluster.nodes() if n["Alive"]}

    wait_for(lambda: sum(used().values()) == 0, timeout=20, message="empty stores to start with")
    ref = make.remote()
    assert nbcluster.get(use.remote(ref), timeout=60) == 2_000_000.0
    assert nbcluster.get(ref, timeout=60).sum() == 2_000_000.0
    wait_for(lambda: sum(1 for v in used().values() if v) >= 2, timeout=20, message="copies on two nodes")
    del ref
    wait_for(lambda: sum(used().values()) == 0, timeout=20, message="the original and its copies freed")


def test_object_port_refuses_bad_requests_and_keeps_serving(three_nodes):
    """Another node's object port: a wrong token, a malformed header or an unknown
    object gets nothing; pulls of the cluster go on."""
    import socket
    import struct

    from nbcluster.runtime.protocol import node_manager_pb2 as nm_pb2

    _, a, _ = three_nodes
    node = next(n for n in nbcluster.state.list_nodes() if n.node_id == a.node_id)
    host, port = node.object_address.rsplit(":", 1)
    token = (Path(a.session_dir) / "token").read_text().strip().encode()

    def ask(header: bytes, body: bytes = b"") -> bytes:
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(header + body)
            chunks = []
            try:
                while chunk := sock.recv(65536):
                    chunks.append(chunk)
            except ConnectionResetError:  # closed with our request unread: nothing was sent either
                pass
            return b"".join(chunks)

    request = nm_pb2.PullObjectRequest(object_id=b"\x07" * 20).SerializeToString()
    assert ask(struct.pack("<HI", 5, len(request)), b"wrong" + request) == b""  # bad token: closed, nothing sent
    assert ask(struct.pack("<HI", 60000, 1)) == b""  # malformed header
    assert ask(struct.pack("<HI", len(token), len(request)), token + request) == struct.pack("<q", -1)  # not here

    @nbcluster.remote(resources={"site_a": 0.1})
    def make():
        return np.arange(3_000_000)

    assert int(nbcluster.get(make.remote(), timeout=60).sum()) == 3_000_000 * 2_999_999 // 2

