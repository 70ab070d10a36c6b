"""Actor failures on a shared cluster: restarts after kill -9, retried calls, kill,
owner death."""

from __future__ import annotations

import os
import signal

import psutil
import pytest

import nbcluster
from nbcluster.exceptions import ActorDiedError

from ..conftest import wait_for
from .test_actor_lifetimes import Counter, state_of


def exited(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.fixture(scope="module")
def shared(cluster):
    return cluster


@pytest.mark.usefixtures("shared")
class TestFailures:
    def test_killed_process_without_restarts(self):
        counter = Counter.remote()
        pid = nbcluster.get(counter.pid.remote())
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(ActorDiedError, match="died unexpectedly"):
            nbcluster.get(counter.add.remote(), timeout=30)
        assert state_of(counter).state == "DEAD"

    def test_killed_process_restarts_with_fresh_state(self):
        counter = Counter.options(max_restarts=1).remote()
        assert nbcluster.get([counter.add.remote() for _ in range(3)]) == [1, 2, 3]
        first = nbcluster.get(counter.pid.remote())
        os.kill(first, signal.SIGKILL)
        wait_for(lambda: state_of(counter).num_restarts == 1 and state_of(counter).state == "ALIVE",
                 timeout=30, message="the actor to restart")
        assert nbcluster.get(counter.add.remote(), timeout=30) == 1  # __init__ ran again: state lost
        second = nbcluster.get(counter.pid.remote())
        assert second != first
        os.kill(second, signal.SIGKILL)
        with pytest.raises(ActorDiedError, match=r"after 1 restart\(s\)"):
            nbcluster.get(counter.add.remote(), timeout=30)
        assert state_of(counter).state == "DEAD"

    def test_calls_in_flight_are_retried_with_max_task_retries(self, tmp_path):
        counter = Counter.options(max_restarts=1, max_task_retries=1).remote()
        pid = nbcluster.get(counter.pid.remote())
        flag = tmp_path / "running"
        ref = counter.slow_add.remote(1.0, str(flag))
        wait_for(flag.exists, message="the call to start")
        os.kill(pid, signal.SIGKILL)
        assert nbcluster.get(ref, timeout=60) == 1  # ran again on the restarted actor

    def test_calls_in_flight_fail_without_task_retries(self, tmp_path):
        counter = Counter.options(max_restarts=1).remote()
        pid = nbcluster.get(counter.pid.remote())
        flag = tmp_path / "running"
        ref = counter.slow_add.remote(5.0, str(flag))
        wait_for(flag.exists, message="the call to start")
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(ActorDiedError, match="while running this call"):
            nbcluster.get(ref, timeout=30)
        assert nbcluster.get(counter.add.remote(), timeout=30) == 1  # the actor itself restarted

    def test_kill_with_restart(self):
        counter = Counter.options(max_restarts=2).remote()
        first = nbcluster.get(counter.pid.remote())
        nbcluster.kill(counter, no_restart=False)
        wait_for(lambda: state_of(counter).state == "ALIVE" and state_of(counter).num_restarts == 1,
                 timeout=30, message="the killed actor to restart")
        assert nbcluster.get(counter.pid.remote(), timeout=30) != first

    def test_owner_death_ends_the_actor(self):
        @nbcluster.remote(max_retries=0)
        def make():
            return Counter.remote(), os.getpid()

        handle, owner_pid = nbcluster.get(make.remote())
        actor_pid = nbcluster.get(handle.pid.remote())
        os.kill(owner_pid, signal.SIGKILL)
        wait_for(lambda: state_of(handle).state == "DEAD", timeout=30, message="the actor to end with its owner")
        assert "owner" in state_of(handle).death_cause
        with pytest.raises(ActorDiedError, match="owner"):
            nbcluster.get(handle.add.remote(), timeout=30)
        wait_for(lambda: exited(actor_pid), message="the actor's process to exit")


