"""Actor lifetimes: detached actors across drivers, and resources held while an
actor lives."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
import time

import pytest

import nbcluster
from nbcluster.exceptions import GetTimeoutError

from ..conftest import ROOT, node_stats, run_python, wait_for


@nbcluster.remote
class Counter:
    def __init__(self) -> None:
        self.value = 0

    def add(self) -> int:
        self.value += 1
        return self.value

    def pid(self) -> int:
        return os.getpid()

    def slow_add(self, seconds: float, flag: str = "") -> int:
        if flag:
            open(flag, "w").close()
        time.sleep(seconds)
        self.value += 1
        return self.value


def state_of(handle) -> nbcluster.state.ActorState:
    return nbcluster.state.get_actor_state(handle._actor_id.hex())


def test_actor_resources(start_cluster, caplog):
    start_cluster(num_cpus=2)
    # Default actors need a CPU to be placed but hold none while they live (as Ray).
    light = [Counter.remote() for _ in range(4)]
    assert nbcluster.get([c.add.remote() for c in light]) == [1, 1, 1, 1]
    assert node_stats().available.amounts["CPU"] == 2
    heavy = [Counter.options(num_cpus=1).remote() for _ in range(2)]
    assert nbcluster.get([c.add.remote() for c in heavy]) == [1, 1]
    assert node_stats().available.amounts.get("CPU", 0) == 0
    third = Counter.options(num_cpus=1).remote()
    waiting = third.add.remote()
    with pytest.raises(GetTimeoutError):
        nbcluster.get(waiting, timeout=1.0)
    assert state_of(third).state == "PENDING"
    nbcluster.kill(heavy[0])
    assert nbcluster.get(waiting, timeout=30) == 1  # placed once a CPU came free
    with caplog.at_level(logging.WARNING, logger="nbcluster"):
        huge = Counter.options(num_cpus=4).remote()
        pending = huge.add.remote()
        with pytest.raises(GetTimeoutError):
            nbcluster.get(pending, timeout=1.5)
        wait_for(lambda: any("Actor Counter" in r.getMessage() and "CPU: 4" in r.getMessage() for r in caplog.records),
                 timeout=15, message="the infeasible actor's warning")
    assert state_of(huge).state == "PENDING"
    nbcluster.kill(huge)


HOST = """
    import sys, nbcluster
    nbcluster.init(num_cpus=2, namespace="hosting")
    print(nbcluster.get_runtime_context().get_job_id(), flush=True)
    sys.stdin.read()
"""

CREATOR = """
    import nbcluster
    nbcluster.init(address="auto", namespace="team")

    @nbcluster.remote
    class Ledger:
        def __init__(self):
            self.entries = []

        def add(self, item):
            self.entries.append(item)
            return len(self.entries)

        def read(self):
            return self.entries

    keeper = Ledger.options(name="ledger", lifetime="detached").remote()
    temporary = Ledger.options(name="scratch").remote()
    print("ADDED", nbcluster.get(keeper.add.remote("from driver A")), nbcluster.get(temporary.add.remote(1)))
"""


def test_detached_actor_outlives_its_driver():
    host = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(HOST)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=str(ROOT),
    )
    try:
        assert host.stdout.readline().strip()
        created = run_python(CREATOR)
        assert "ADDED 1 1" in created.stdout  # driver A has exited now
        nbcluster.init(address="auto", namespace="team")
        try:
            ledger = nbcluster.get_actor("ledger")
            assert nbcluster.get(ledger.add.remote("from driver B")) == 2
            assert nbcluster.get(ledger.read.remote()) == ["from driver A", "from driver B"]
            with pytest.raises(ValueError, match="Failed to look up"):
                nbcluster.get_actor("scratch")  # not detached: it ended with driver A
            states = {a.name: a for a in nbcluster.state.list_actors()}
            assert states["scratch"].state == "DEAD" and "owner" in states["scratch"].death_cause
            assert states["ledger"].detached and states["ledger"].state == "ALIVE"
            nbcluster.kill(ledger)
            assert nbcluster.state.get_actor_state(states["ledger"].actor_id).state == "DEAD"
        finally:
            nbcluster.shutdown()
    finally:
        host.stdin.close()
        host.wait(20)
        host.stdout.close()
        host.stderr.close()
