"""The public event stream (nbcluster.events): what views subscribe to."""

from __future__ import annotations

import asyncio
import threading

import pytest

import nbcluster
from nbcluster import events

from ..conftest import wait_for


def test_subscribers_get_events_as_they_happen_and_close_ends_the_stream(start_cluster):
    start_cluster(num_cpus=1)
    got: list[events.ClusterEvent] = []
    sub = events.subscribe(got.append, kinds=("TASK_COUNTERS", "JOB_STATE"), replay=True)
    f = nbcluster.remote(lambda: 1)
    assert nbcluster.get([f.remote() for _ in range(5)]) == [1] * 5
    wait_for(lambda: any(e.kind == "TASK_COUNTERS" and e.data.get("finished") == 5 for e in got), timeout=10,
             message="the task counters")
    assert got[0].kind == "JOB_STATE" and "RUNNING" in got[0].message  # replayed
    assert {e.kind for e in got} <= {"TASK_COUNTERS", "JOB_STATE"}
    assert [e.seq for e in got] == sorted(e.seq for e in got)
    sub.close()
    wait_for(lambda: not sub.active, timeout=5, message="the subscription to end")
    count = len(got)
    assert nbcluster.get(f.remote()) == 1
    threads = threading.active_count()
    nbcluster.shutdown()
    assert len(got) == count and threading.active_count() <= threads


def test_subscribe_returns_once_the_head_streams_also_over_a_slow_link(start_cluster, monkeypatch):
    start_cluster(num_cpus=1)
    stream_gcs = events.discovery.stream_gcs

    async def slow(*args):  # a link with 0.5 s of latency before the stream's first reply
        await asyncio.sleep(0.5)
        async for reply in stream_gcs(*args):
            yield reply

    monkeypatch.setattr(events.discovery, "stream_gcs", slow)
    got: list[events.ClusterEvent] = []
    sub = events.subscribe(got.append, kinds=("JOB_STATE",), replay=True)
    try:  # the replayed events have reached the callback: nothing after this line is missed
        assert got and got[0].kind == "JOB_STATE" and "RUNNING" in got[0].message
    finally:
        sub.close()


def test_unknown_kinds_are_refused(start_cluster):
    start_cluster(num_cpus=1)
    with pytest.raises(ValueError, match="unknown event kinds"):
        events.subscribe(print, kinds=("NODES",))


def test_on_end_says_when_the_head_goes_away_not_at_shutdown(start_cluster):
    from nbcluster.cluster_utils import Cluster

    from ..conftest import FAST_CONFIG

    start_cluster(num_cpus=1)
    ended: list[str] = []
    sub = events.subscribe(lambda e: None, on_end=ended.append)
    assert sub.active
    nbcluster.shutdown()  # the driver leaving is not the stream ending by itself
    assert ended == [] and not sub.active

    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "_system_config": FAST_CONFIG})
    try:
        nbcluster.init(address=c.address)
        closed: list[str] = []
        events.subscribe(lambda e: None, on_end=closed.append).close()
        sub = events.subscribe(lambda e: None, on_end=ended.append)
        c.shutdown()
        wait_for(lambda: ended and not sub.active, timeout=20, message="on_end called when the head went away")
        assert closed == []
    finally:
        nbcluster.shutdown()
        c.shutdown()
