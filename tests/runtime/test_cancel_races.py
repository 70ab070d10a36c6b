"""Cancellation at awkward moments and idle-worker retirement never strand work or
lose objects."""

from __future__ import annotations

import os
import time

import psutil
import pytest

import nbcluster
from nbcluster.exceptions import TaskCancelledError

from ..conftest import node_stats, wait_for


def _slow_load(value, mark):
    if mark:
        open(mark, "w").close()
    time.sleep(5.0)
    return value


class SlowToUnpickle:
    """An argument whose unpickling, in the worker, takes 5 s (and first creates the
    file ``mark``, when given)."""

    def __init__(self, value, mark=""):
        self.value = value
        self.mark = mark

    def __reduce__(self):
        return (_slow_load, (self.value, self.mark))


@nbcluster.remote
def identity(x):
    return x


@nbcluster.remote
def flagged_sleep(flag, seconds):
    if flag:
        open(flag, "w").close()
    time.sleep(seconds)


@nbcluster.remote
def slow(seconds):
    time.sleep(seconds)
    return seconds


def test_cancelling_a_task_that_waits_for_arguments_spares_the_others(start_cluster):
    start_cluster(num_cpus=2)
    upstream = slow.remote(1.0)
    cancelled = identity.remote(upstream)
    kept = identity.remote(upstream)
    nbcluster.cancel(cancelled)
    with pytest.raises(TaskCancelledError):
        nbcluster.get(cancelled, timeout=10)
    assert nbcluster.get(kept, timeout=20) == 1.0


def test_cancel_while_the_worker_loads_arguments(start_cluster, tmp_path):
    start_cluster(num_cpus=1)
    assert nbcluster.get(identity.remote("warm")) == "warm"
    loading = tmp_path / "loading"
    ref = identity.remote(SlowToUnpickle(1, str(loading)))
    wait_for(loading.exists, timeout=30, message="the worker unpickling the argument")
    nbcluster.cancel(ref)
    with pytest.raises(TaskCancelledError):
        nbcluster.get(ref, timeout=20)
    assert nbcluster.get(identity.remote("next"), timeout=20) == "next"  # the CPU came back


def test_cancelled_first_task_does_not_take_the_function_definition(start_cluster, tmp_path):
    start_cluster(num_cpus=1)

    @nbcluster.remote
    def fresh(i):
        return i

    @nbcluster.remote(max_retries=0)
    def block():
        time.sleep(60)

    # Both functions learned fast (so pipelined), on a worker that then dies: the
    # next worker's connection has seen neither definition.
    nbcluster.get([flagged_sleep.remote("", 0) for _ in range(20)] + [fresh.remote(i) for i in range(20)])
    blocker = block.remote()
    wait_for(lambda: node_stats().available.amounts.get("CPU", 1) == 0, message="the blocker to run")
    nbcluster.cancel(blocker, force=True)
    with pytest.raises(TaskCancelledError):
        nbcluster.get(blocker, timeout=20)
    flag = tmp_path / "running"
    refs = [flagged_sleep.remote(str(flag), 1.5)] + [fresh.remote(i) for i in range(6)]
    wait_for(flag.exists, message="the first task to run (the rest pushed behind it)")
    nbcluster.cancel(refs[1])  # queued in the worker, and the one carrying fresh's definition
    with pytest.raises(TaskCancelledError):
        nbcluster.get(refs[1], timeout=20)
    assert nbcluster.get(refs[2:], timeout=30) == list(range(1, 6))


def test_idle_worker_that_owns_objects_is_not_retired(start_cluster):
    start_cluster(num_cpus=1, _system_config={"idle_worker_timeout_s": 0.5})

    @nbcluster.remote
    def inner():
        return [nbcluster.put(b"owned by the inner worker")], os.getpid()

    @nbcluster.remote
    def outer():  # with a timeout, so inner runs in a worker of its own (not inline, here)
        return nbcluster.get(inner.remote(), timeout=30), os.getpid()

    (refs, inner_pid), outer_pid = nbcluster.get(outer.remote(), timeout=30)
    assert inner_pid != outer_pid

    def retired(pid: int) -> bool:
        try:
            return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    # The outer worker owns nothing any more: it is retired once idle...
    wait_for(lambda: retired(outer_pid), timeout=20, message="the idle outer worker to be retired")
    # ...while the inner one, owner of an object the driver holds, declines.
    assert not retired(inner_pid)
    assert nbcluster.get(refs[0], timeout=10) == b"owned by the inner worker"


def test_cancelling_a_pending_infeasible_task_withdraws_its_demand(start_cluster):
    """The autoscaler sees no demand for a task that was cancelled while it waited for a
    node that could run it (it would otherwise start that node for nothing)."""
    start_cluster(num_cpus=1)

    @nbcluster.remote(num_cpus=8)
    def big():
        return 1

    ref = big.remote()
    wait_for(lambda: any(n.pending_demand for n in nbcluster.state.list_nodes()),
             message="the infeasible task never showed as demand")
    nbcluster.cancel(ref)
    with pytest.raises(TaskCancelledError):
        nbcluster.get(ref, timeout=10)
    wait_for(lambda: not any(n.pending_demand for n in nbcluster.state.list_nodes()), timeout=5,
             message="the cancelled task's demand stayed")
    assert nbcluster.get(identity.remote(7), timeout=30) == 7
