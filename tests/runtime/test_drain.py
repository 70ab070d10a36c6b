"""A worker node asked to stop (SIGTERM, what Kubernetes sends a deleted pod) drains:
it takes no new work, lets its running tasks finish, hands the objects only it holds
to another node, and leaves before its deadline; a task longer than the deadline is
killed and retried elsewhere; a second SIGTERM stops it at once."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

import nbcluster
from nbcluster.cluster_utils import Cluster, ClusterNode
from nbcluster.runtime import cli_view
from nbcluster.runtime.config import RuntimeConfig
from nbcluster.runtime.node.handoff import Held, Room, plan_handoff
from nbcluster.runtime.protocol import common_pb2, gcs_pb2
from nbcluster.runtime.state import NodeState
from nbcluster.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from ..conftest import wait_for
from .test_multinode import FAST_HEALTH

MIB = 2**20


@pytest.fixture
def drain_cluster() -> Iterator[Callable[[float], tuple[Cluster, ClusterNode]]]:
    """A head (1 CPU) and a worker node B (2 CPUs) whose drain timeout is given;
    this process connected."""
    started: list[Cluster] = []

    def start(drain_timeout_s: float) -> tuple[Cluster, ClusterNode]:
        config = {**FAST_HEALTH, "drain_timeout_s": drain_timeout_s}
        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "_system_config": config})
        started.append(cluster)
        b = cluster.add_node(num_cpus=2)
        nbcluster.init(address=cluster.address)
        return cluster, b

    try:
        yield start
    finally:
        nbcluster.shutdown()
        for cluster in started:
            cluster.shutdown()


def on(node: ClusterNode) -> NodeAffinitySchedulingStrategy:
    return NodeAffinitySchedulingStrategy(node.node_id, soft=True)


def record(folder: str, name: str) -> None:
    """A side effect per execution: one line, with the node it ran on."""
    with open(os.path.join(folder, name), "a") as f:
        f.write(nbcluster.get_runtime_context().get_node_id() + "\n")


def runs(folder: Path, name: str) -> list[str]:
    path = folder / name
    return path.read_text().split() if path.exists() else []


def draining(node: ClusterNode) -> str:
    """The node's drain reason once the state API shows it draining ("" until then)."""
    for n in nbcluster.state.list_nodes():
        if n.node_id == node.node_id and n.state == "ALIVE" and n.draining:
            return n.drain_reason or "?"
    return ""


def exit_time(node: ClusterNode, since: float, timeout: float) -> float:
    """Seconds from ``since`` until the node manager's process exited."""
    proc = node._handle.procs[-1]
    proc.wait(timeout)
    return time.monotonic() - since


@nbcluster.remote(num_cpus=0.5)
def where():
    return nbcluster.get_runtime_context().get_node_id()


def test_sigterm_lets_tasks_finish_and_hands_objects_off(drain_cluster, tmp_path):
    cluster, b = drain_cluster(10.0)
    folder = str(tmp_path)

    @nbcluster.remote(max_retries=3, scheduling_strategy=on(b))
    def make(seed):
        record(folder, "make")
        return np.random.default_rng(seed).random(MIB)  # 8 MiB: stored on B only

    @nbcluster.remote(max_retries=3, scheduling_strategy=on(b))
    def long_task(seed):
        record(folder, "long")
        time.sleep(3)
        return np.random.default_rng(seed).random(MIB)

    made = make.remote(1)
    # fetch_local=False: the value stays on B (a copy here would survive B anyway).
    nbcluster.wait([made], timeout=60, fetch_local=False)
    assert runs(tmp_path, "make") == [b.node_id]
    running = long_task.remote(2)
    wait_for(lambda: runs(tmp_path, "long"), timeout=60, message="the long task to start on B")
    assert runs(tmp_path, "long") == [b.node_id]

    signalled = time.monotonic()
    os.kill(b.pid, signal.SIGTERM)
    reason = wait_for(lambda: draining(b), timeout=5, message="B shown draining")
    assert "SIGTERM" in reason
    alive = {n["NodeID"] for n in nbcluster.nodes() if n["Alive"]}
    assert b.node_id in alive  # draining is alive: it still runs its task and serves its objects
    # New work goes elsewhere, SPREAD or not, while B still runs its task.
    placed = nbcluster.get([where.options(scheduling_strategy="SPREAD").remote() for _ in range(6)]
                           + [where.remote() for _ in range(2)], timeout=60)
    assert b.node_id not in placed

    nbcluster.wait([running], timeout=60, fetch_local=False)
    took = exit_time(b, signalled, timeout=30)
    assert took < 10.0, f"B left {took:.1f} s after SIGTERM, past its drain timeout"
    wait_for(lambda: b.node_id not in {n["NodeID"] for n in nbcluster.nodes() if n["Alive"]}, timeout=30,
             message="B gone from the node table")

    # Both objects are read from the node they were handed to: nothing ran again.
    assert np.array_equal(nbcluster.get(made, timeout=60), np.random.default_rng(1).random(MIB))
    assert np.array_equal(nbcluster.get(running, timeout=60), np.random.default_rng(2).random(MIB))
    assert runs(tmp_path, "make") == [b.node_id]
    assert runs(tmp_path, "long") == [b.node_id]
    death = next(n for n in nbcluster.state.list_nodes() if n.node_id == b.node_id).death_reason
    assert "SIGTERM" in death and "2 object(s) handed off" in death and "0 left" in death, death
    cluster.remove_node(b)


def test_tasks_queued_for_a_draining_nodes_leases_go_elsewhere(drain_cluster, tmp_path):
    cluster, b = drain_cluster(10.0)
    head = cluster.head_node
    folder = str(tmp_path)

    @nbcluster.remote(num_cpus=1)
    def task(name, seconds):
        record(folder, name)
        time.sleep(seconds)

    # The head's one CPU busy, B's two leased; a third task of the same shape waits.
    blocker = task.options(scheduling_strategy=on(head)).remote("blocker", 4)
    wait_for(lambda: runs(tmp_path, "blocker"), timeout=60, message="the head busy")
    same = task.options(scheduling_strategy=on(b))
    first = [same.remote("first", 2.5) for _ in range(2)]
    wait_for(lambda: len(runs(tmp_path, "first")) == 2, timeout=60, message="two tasks running on B")
    queued = same.remote("queued", 0)
    os.kill(b.pid, signal.SIGTERM)
    nbcluster.get([blocker, *first, queued], timeout=60)
    # When B's tasks ended, its workers' leases were not used for the queued task.
    assert runs(tmp_path, "first") == [b.node_id] * 2
    assert runs(tmp_path, "queued") == [head.node_id]
    exit_time(b, time.monotonic(), timeout=30)
    cluster.remove_node(b)


@nbcluster.remote(max_retries=2)
def slow_the_first_time(folder):
    record(folder, "slow")
    if len(runs(Path(folder), "slow")) == 1:
        time.sleep(60)
    return nbcluster.get_runtime_context().get_node_id()


def start_slow(b: ClusterNode, folder: Path) -> nbcluster.ObjectRef:
    """A task on B that takes a minute (and no time when it runs again), once it started."""
    ref = slow_the_first_time.options(scheduling_strategy=on(b)).remote(str(folder))
    wait_for(lambda: runs(folder, "slow"), timeout=60, message="the task to start on B")
    return ref


def test_a_task_longer_than_the_drain_is_killed_and_retried_elsewhere(drain_cluster, tmp_path):
    cluster, b = drain_cluster(2.0)
    ref = start_slow(b, tmp_path)
    signalled = time.monotonic()
    os.kill(b.pid, signal.SIGTERM)
    took = exit_time(b, signalled, timeout=30)
    # At the deadline (not at once, not when the task would have ended).
    assert 1.9 < took < 15.0, f"B left {took:.1f} s after SIGTERM (drain timeout 2 s)"
    assert nbcluster.get(ref, timeout=60) != b.node_id
    first, second = runs(tmp_path, "slow")
    assert first == b.node_id and second != b.node_id
    cluster.remove_node(b)


def test_a_second_sigterm_stops_at_once(drain_cluster, tmp_path):
    cluster, b = drain_cluster(20.0)
    ref = start_slow(b, tmp_path)
    os.kill(b.pid, signal.SIGTERM)
    wait_for(lambda: draining(b), timeout=5, message="B shown draining")
    again = time.monotonic()
    os.kill(b.pid, signal.SIGTERM)
    took = exit_time(b, again, timeout=30)
    assert took < 8.0, f"B left {took:.1f} s after the second SIGTERM (drain timeout 20 s)"
    assert nbcluster.get(ref, timeout=60) != b.node_id
    cluster.remove_node(b)


def test_the_drain_timeout_has_a_variable_of_its_own(monkeypatch):
    monkeypatch.setenv("NBCLUSTER_DRAIN_TIMEOUT_S", "7.5")
    assert RuntimeConfig.load().drain_timeout_s == 7.5
    assert RuntimeConfig.load({"drain_timeout_s": 3}).drain_timeout_s == 3  # keyword overrides win
    monkeypatch.setenv("NBCLUSTER_DRAIN_TIMEOUT_S", "soon")
    with pytest.raises(ValueError, match="NBCLUSTER_DRAIN_TIMEOUT_S must be a number of seconds"):
        RuntimeConfig.load()


def test_status_shows_a_draining_node_and_why():
    info = gcs_pb2.NodeInfo(node_id=b"\x01" * 16, state=gcs_pb2.NODE_STATE_ALIVE, address="10.0.0.2:6381",
                            draining=True, drain_reason=gcs_pb2.DRAIN_REASON_SHUTDOWN,
                            drain_message="it was asked to stop (SIGTERM)", drain_deadline=1000.0 + 20)
    node = NodeState.from_info(info)
    assert node.state == "ALIVE" and node.draining and node.drain_reason == "it was asked to stop (SIGTERM)"
    headers, rows = cli_view.node_rows([node])
    assert rows[0][headers.index("STATE")] == "DRAINING"
    assert cli_view.in_state([node], "draining") == [node] and cli_view.in_state([node], "ALIVE") == []
    text = cli_view.status_text("here", [node], now=1000.0)
    assert f"{node.node_id[:12]} is draining: it was asked to stop (SIGTERM); leaving within 20 s" in text


# -- where objects go: a pure function ------------------------------------------------------
def held(name: str, size: int, owner_node: bytes = b"owner") -> Held:
    return Held(name.encode(), size, common_pb2.Address(node_id=owner_node, worker_id=b"w"))


def test_plan_prefers_a_copy_then_the_owner_then_the_roomiest_node():
    rooms = [Room(b"owner", 100, 1000), Room(b"roomy", 500, 1000), Room(b"small", 10, 20), Room(b"large", 0, 2000)]
    plan, left = plan_handoff(
        [held("copied", 50), held("owned", 80), held("big", 300), held("huge", 900), held("never", 5000)],
        rooms,
        {b"copied": {b"small", b"elsewhere"}},
    )
    assert [o.object_id for o in plan[b"small"]] == [b"copied"]  # a node with a copy: no transfer
    assert [o.object_id for o in plan[b"owner"]] == [b"owned"]  # its owner's node has room
    assert [o.object_id for o in plan[b"roomy"]] == [b"big"]  # not the owner's: the most free room
    # huge fits no node's free room: the largest store takes it (spilling to make room);
    # never fits no store at all.
    assert [o.object_id for o in plan[b"large"]] == [b"huge"]
    assert [o.object_id for o in left] == [b"never"]


def test_plan_with_nowhere_to_go_leaves_everything():
    plan, left = plan_handoff([held("a", 1)], [], {})
    assert plan == {} and [o.object_id for o in left] == [b"a"]
