"""A head and node managers starved of CPU (hundreds of node managers starting at once on
a few cores, ``benchmarks/scale.py``): what keeps such a cluster up, each rule alone.
The health checks' verdicts, a node manager's registration and connection, the cluster
view sent as changes, the event fan-out, workers' priority."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from typing import Any

import pytest

import nbcluster
from nbcluster.cluster_utils import Cluster
from nbcluster.runtime.config import RuntimeConfig
from nbcluster.runtime.gcs import health
from nbcluster.runtime.gcs.nodes import VIEW_EPOCH, NodeService, _Node
from nbcluster.runtime.gcs.pubsub import EventLog
from nbcluster.runtime.node import gcs_link
from nbcluster.runtime.node.gcs_link import Fenced, GcsLink
from nbcluster.runtime.node.worker_pool import runqueue_wait
from nbcluster.runtime.procutil import lower_priority
from nbcluster.runtime.protocol import common_pb2, gcs_pb2
from nbcluster.runtime.states import NodeState
from nbcluster.runtime.transport import methods
from nbcluster.runtime.transport.errors import ConnectionLost, RemoteError

from ..conftest import FAST_CONFIG

HEALTH = RuntimeConfig().replace(
    heartbeat_interval_s=0.05, health_check_initial_delay_s=0.0, health_check_period_s=0.05,
    health_check_timeout_s=0.05, health_check_failure_threshold=3,
)


class FakeChannel:
    """Stands in for a node manager's gRPC channel: ``answer(node_id)`` decides each check."""

    answer: Any = None
    calls: list[bytes] = []

    def __init__(self, address: str, token: str) -> None:
        self.closed = False

    async def call(self, method: Any, request: Any, timeout: float | None = None) -> Any:
        FakeChannel.calls.append(request.node_id)
        return await FakeChannel.answer(request.node_id, timeout)

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def fake_channels(monkeypatch: pytest.MonkeyPatch) -> type[FakeChannel]:
    monkeypatch.setattr(health, "GrpcChannel", FakeChannel)
    FakeChannel.calls = []
    return FakeChannel


def run_checker(rows: dict[bytes, list[float]], seconds: float, on_tick: Any = None) -> list[bytes]:
    """Run a HealthChecker over ``rows`` (node id -> [started, heard]) for ``seconds``;
    the nodes it declared dead."""
    dead: list[bytes] = []

    def nodes() -> list[tuple[gcs_pb2.NodeInfo, float, float]]:
        return [(gcs_pb2.NodeInfo(node_id=nid, address=f"127.0.0.1:{i + 1}"), r[0], r[1])
                for i, (nid, r) in enumerate(rows.items()) if nid not in dead]

    async def main() -> None:
        checker = health.HealthChecker(HEALTH, "token", nodes, lambda nid, reason: dead.append(nid))
        checker.start()
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if on_tick is not None:
                on_tick()
            await asyncio.sleep(0.01)
        checker.stop()

    asyncio.run(main())
    return dead


def test_a_silent_node_is_declared_dead_one_that_keeps_reporting_is_only_slow(fake_channels) -> None:
    async def never(node_id: bytes, timeout: float) -> None:
        await asyncio.sleep(timeout)
        raise asyncio.TimeoutError("Deadline Exceeded")

    fake_channels.answer = never
    now = time.monotonic()
    rows = {b"silent": [now, now], b"reporting": [now, now]}

    def reporting() -> None:  # its load reports arrive, late enough that it is checked
        if time.monotonic() - rows[b"reporting"][1] > 0.08:
            rows[b"reporting"][1] = time.monotonic()

    dead = run_checker(rows, 1.5, reporting)
    assert dead == [b"silent"]
    assert fake_channels.calls.count(b"reporting") >= 3  # checked, failed, and not declared dead


def test_a_node_heard_from_within_the_period_is_not_checked(fake_channels) -> None:
    async def fine(node_id: bytes, timeout: float) -> None:
        return None

    fake_channels.answer = fine
    now = time.monotonic()
    rows = {b"quiet": [now, now], b"chatty": [now, now]}
    run_checker(rows, 0.5, lambda: rows[b"chatty"].__setitem__(1, time.monotonic()))
    assert fake_channels.calls.count(b"quiet") >= 3
    assert b"chatty" not in fake_channels.calls


def test_a_node_that_has_not_started_is_not_checked_yet(fake_channels) -> None:
    async def never(node_id: bytes, timeout: float) -> None:
        raise asyncio.TimeoutError("Deadline Exceeded")

    fake_channels.answer = never
    now = time.monotonic()
    dead = run_checker({b"starting": [now + 60.0, now]}, 0.4)  # no report yet: checked a startup timeout on
    assert dead == [] and fake_channels.calls == []


def test_a_timeout_the_head_noticed_late_is_not_counted(fake_channels) -> None:
    async def starved(node_id: bytes, timeout: float) -> None:
        time.sleep(timeout + 0.3)  # the head's loop does not run: it sees the deadline pass late
        raise asyncio.TimeoutError("Deadline Exceeded")

    fake_channels.answer = starved
    now = time.monotonic()
    assert run_checker({b"node": [now, now]}, 2.0) == []
    assert len(fake_channels.calls) >= 3
    assert health.noticed_late(2.0, 0.5) and not health.noticed_late(0.55, 0.5)
    assert not health.noticed_late(12.0, 10.0) and health.noticed_late(16.0, 10.0)


def test_a_refused_connection_counts_even_when_the_head_is_slow(fake_channels) -> None:
    async def refused(node_id: bytes, timeout: float) -> None:
        time.sleep(timeout + 0.3)
        raise ConnectionLost("failed to connect to all addresses; Connection refused")

    fake_channels.answer = refused
    now = time.monotonic()
    assert run_checker({b"gone": [now, now]}, 2.5) == [b"gone"]


def a_link() -> GcsLink:
    return GcsLink("unix-abstract:nowhere", "token", RuntimeConfig(), lambda: gcs_pb2.NodeInfo(), lambda nodes: None)


class FakeConn:
    """A GCS connection whose calls follow a script: each entry an exception to raise or
    a reply to return."""

    def __init__(self, script: list[Any]) -> None:
        self.script = script
        self.closed = False
        self.requests: list[tuple[str, Any]] = []

    async def call(self, method: Any, request: Any, timeout: float | None = None) -> Any:
        self.requests.append((method.name, request))
        step = self.script.pop(0)
        if isinstance(step, BaseException):
            raise step
        return step

    def close(self) -> None:
        self.closed = True


def test_registration_is_asked_again_when_the_head_answers_late() -> None:
    link = a_link()
    conn = link._conn = FakeConn([
        asyncio.TimeoutError(), gcs_pb2.RegisterNodeReply(nodes=[gcs_pb2.NodeInfo(node_id=b"n")]),
        asyncio.TimeoutError(), gcs_pb2.RegisterNodeReply(nodes=[gcs_pb2.NodeInfo(node_id=b"n")]),
        gcs_pb2.GetClusterInfoReply(session_dir="s"),
    ])
    assert [n.node_id for n in asyncio.run(link.register())] == [b"n"]
    registrations = [r for name, r in conn.requests if name == "RegisterNode"]
    assert len(registrations) == 3 and len({r.node_secret for r in registrations}) == 1  # a retry, not a new node
    assert link._conn is conn and not conn.closed  # two timeouts: the connection stays


def test_declared_dead_while_registering_is_fenced() -> None:
    link = a_link()
    link._conn = FakeConn([asyncio.TimeoutError(), RemoteError(common_pb2.ERROR_CODE_ALREADY_EXISTS, "declared dead")])
    with pytest.raises(Fenced):
        asyncio.run(link.register())


def test_a_connection_is_dropped_after_timeouts_in_a_row_or_one_loss() -> None:
    async def main() -> None:
        link = a_link()
        conn = link._conn = FakeConn([asyncio.TimeoutError()] * gcs_link.TIMEOUTS_BEFORE_REDIAL)
        for _ in range(gcs_link.TIMEOUTS_BEFORE_REDIAL):
            assert link._conn is conn and not conn.closed
            with pytest.raises(asyncio.TimeoutError):
                await link.call(methods.Gcs.GetAllNodes, gcs_pb2.GetAllNodesRequest())
        assert link._conn is None and conn.closed
        conn = link._conn = FakeConn([ConnectionLost("reset")])
        with pytest.raises(ConnectionLost):
            await link.call(methods.Gcs.GetAllNodes, gcs_pb2.GetAllNodesRequest())
        assert link._conn is None and conn.closed

    asyncio.run(main())


def test_a_watcher_queues_only_the_kinds_it_asked_for() -> None:
    async def main() -> list[int]:
        log = EventLog(100)
        watch = log.watch(gcs_pb2.WatchRequest(kinds=[gcs_pb2.EVENT_KIND_NODE_DEAD]))
        first = asyncio.ensure_future(watch.__anext__())
        await asyncio.sleep(0)
        for _ in range(50):  # load reports: not queued for this watcher
            log.publish(gcs_pb2.EVENT_KIND_NODE_STATE, "", data={"x": 1}, source="node")
        (queue,) = log._watchers
        assert queue.qsize() == 0
        log.publish(gcs_pb2.EVENT_KIND_NODE_DEAD, "Node x is dead")
        event = await asyncio.wait_for(first, 5)
        await watch.aclose()
        return [event.kind]

    assert asyncio.run(main()) == [gcs_pb2.EVENT_KIND_NODE_DEAD]


class ViewOnly(NodeService):
    """The node table's view logic alone."""

    def __init__(self) -> None:
        self._nodes = {}

    def _launchable(self) -> list[common_pb2.ResourceSet]:
        return []

    def join(self, name: bytes) -> _Node:
        node = self._nodes[name] = _Node(gcs_pb2.NodeInfo(node_id=name, state=gcs_pb2.NODE_STATE_ALIVE), b"")
        self._view_changed(node)
        return node


def report(gcs: ViewOnly, link: GcsLink) -> tuple[gcs_pb2.ReportNodeStateReply, list[bytes]]:
    reply = gcs._view_reply(gcs_pb2.ReportNodeStateRequest(view_epoch=link._view_epoch,
                                                           view_version=link._view_version))
    return reply, [n.node_id for n in link._apply_view(reply)]


def test_the_cluster_view_travels_as_changes_since_the_version_a_node_holds() -> None:
    gcs, link = ViewOnly(), a_link()
    a, b = gcs.join(b"a"), gcs.join(b"b")
    reply, view = report(gcs, link)
    assert not reply.view_delta and view == [b"a", b"b"] and reply.view_epoch == VIEW_EPOCH
    reply, view = report(gcs, link)  # nothing changed: nothing sent
    assert reply.view_delta and list(reply.nodes) == [] and view == [b"a", b"b"]
    b.info.available.amounts["CPU"] = 1.0
    gcs._view_changed(b)
    gcs.join(b"c")
    reply, view = report(gcs, link)
    assert [n.node_id for n in reply.nodes] == [b"b", b"c"] and view == [b"a", b"b", b"c"]
    assert link._view[b"b"].available.amounts["CPU"] == 1.0
    a.machine.transition(NodeState.DEAD)
    a.info.state = gcs_pb2.NODE_STATE_DEAD
    gcs._view_changed(a)
    reply, view = report(gcs, link)
    assert [n.node_id for n in reply.nodes] == [b"a"] and view == [b"b", b"c"]
    link._view_epoch += 1  # a view of another head (one that restarted): the whole view
    reply, view = report(gcs, link)
    assert not reply.view_delta and view == [b"b", b"c"]


def test_lowering_a_process_priority_reaches_its_autogroup() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"], start_new_session=True)
    try:
        lower_priority(proc.pid, 15)
        assert os.getpriority(os.PRIO_PROCESS, proc.pid) == 15
        if os.path.exists(f"/proc/{proc.pid}/autogroup"):
            with open(f"/proc/{proc.pid}/autogroup") as f:
                assert f.read().split()[-1] == "15"
        lower_priority(proc.pid, 5)  # never raises a priority
        assert os.getpriority(os.PRIO_PROCESS, proc.pid) == 15
    finally:
        proc.kill()
        proc.wait()
    assert runqueue_wait(proc.pid) == 0.0
    assert runqueue_wait(os.getpid()) >= 0.0


def test_workers_run_at_the_configured_niceness(start_cluster) -> None:
    start_cluster(num_cpus=1, _system_config={"worker_niceness": 15})

    @nbcluster.remote
    def niceness() -> int:
        return os.nice(0)

    assert nbcluster.get(niceness.remote(), timeout=60) == max(15, os.nice(0))


def test_an_actor_on_a_node_that_just_joined_is_called_at_once() -> None:
    # The driver's node manager learns of a join with its next report (every 5 s here);
    # an actor placed on the new node in the meantime must be reachable, not "on a node
    # that is not alive" (the tour's Counter died so, one run in four under load).
    slow_view = {**FAST_CONFIG, "heartbeat_interval_s": 5.0}
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "_system_config": slow_view})
    try:
        nbcluster.init(address=c.address)
        c.wait_for_nodes()
        node = c.add_node(num_cpus=1, resources={"fresh": 1})
        c.wait_for_nodes()

        @nbcluster.remote(resources={"fresh": 1})
        class Here:
            def node(self) -> str:
                return nbcluster.get_runtime_context().get_node_id()

        assert nbcluster.get(Here.remote().node.remote(), timeout=60) == node.node_id
    finally:
        nbcluster.shutdown()
        c.shutdown()
