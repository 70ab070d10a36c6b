"""The memory monitor: a node over its memory usage threshold kills the newest
retriable work's worker, the caller gets OutOfMemoryError naming the node, the task
and the usage (or the task is retried), and the node and its other work go on.

The monitor's input is faked (``memory_monitor_cgroup_dir``: a directory holding
``memory.max``/``memory.current`` that tasks and the test write) in most tests; the
killing is real. The last test uses real memory: a task allocates until it is killed.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import psutil
import pytest

import nbcluster
from nbcluster.exceptions import ActorDiedError, OutOfMemoryError
from nbcluster.runtime.node.memory_monitor import Candidate, MemoryUsage, choose, read_usage

from ..conftest import wait_for

LIMIT = 1_000_000


def set_usage(directory: str, used: int) -> None:
    """What the fake cgroup says is in use (written whole, then renamed into place)."""
    tmp = Path(directory) / ".memory.current.tmp"
    tmp.write_text(f"{used}\n")
    os.replace(tmp, Path(directory) / "memory.current")


@pytest.fixture
def fake_cgroup(tmp_path, start_cluster):
    (tmp_path / "memory.max").write_text(f"{LIMIT}\n")
    set_usage(str(tmp_path), 100_000)

    def start(refresh_ms: int = 50, **kwargs):
        config = {"memory_monitor_cgroup_dir": str(tmp_path), "memory_monitor_refresh_ms": refresh_ms,
                  "memory_usage_threshold": 0.5, "task_oom_retry_delay_base_ms": 100}
        return start_cluster(num_cpus=2, _system_config=config, **kwargs)

    start.dir = str(tmp_path)
    return start


@nbcluster.remote
def hog(directory: str, marker: str = "") -> int:
    """Use 'memory' (the fake cgroup's) until killed; after a kill (``marker`` left
    behind), give it back and finish."""
    if marker and os.path.exists(marker):
        set_usage(directory, 100_000)
        return os.getpid()
    if marker:
        Path(marker).write_text(str(os.getpid()))
    set_usage(directory, 900_000)
    time.sleep(120)
    return -1


@nbcluster.remote
def ping() -> str:
    return "pong"


@nbcluster.remote
def wait_file(path: str) -> int:
    Path(path + ".started").write_text(str(os.getpid()))
    while not os.path.exists(path):
        time.sleep(0.02)
    return os.getpid()


def test_usage_over_the_threshold_kills_the_task_and_the_caller_gets_out_of_memory_error(fake_cgroup):
    fake_cgroup()
    node_id = nbcluster.get_runtime_context().get_node_id()
    start = time.monotonic()
    with pytest.raises(OutOfMemoryError) as info:
        nbcluster.get(hog.options(max_retries=0).remote(fake_cgroup.dir), timeout=30)
    took = time.monotonic() - start
    message = str(info.value)
    assert "hog" in message and node_id in message, message
    assert "(0.9000)" in message and "threshold of 0.5" in message, message
    assert "max_retries=0" in message, message
    print(f"\nOOM kill: submit -> OutOfMemoryError in {took:.2f}s (refresh 50 ms)")
    # The node and its other work survive.
    set_usage(fake_cgroup.dir, 100_000)
    assert nbcluster.get(ping.remote(), timeout=30) == "pong"
    tasks = wait_for(lambda: [t for t in nbcluster.state.list_tasks() if t.name.endswith("hog") and t.state == "FAILED"],
                     timeout=10)
    assert "ran low on memory" in tasks[0].error, tasks[0]


def test_a_killed_task_with_retries_runs_again_and_an_actor_is_spared(fake_cgroup, tmp_path):
    fake_cgroup(refresh_ms=300)

    @nbcluster.remote(max_restarts=0)
    class Keeper:
        def pid(self):
            return os.getpid()

    keeper = Keeper.remote()
    keeper_pid = nbcluster.get(keeper.pid.remote(), timeout=30)
    other = str(tmp_path / "other")
    waiting = wait_file.remote(other)  # retriable, older: the owner keeps it
    wait_for(lambda: os.path.exists(other + ".started"), timeout=30)
    marker = str(tmp_path / "killed-once")
    start = time.monotonic()
    ref = hog.remote(fake_cgroup.dir, marker)  # retriable, newest: killed, then retried
    # The fake usage goes when the killed process does (as real memory would).
    first = int(wait_for(lambda: os.path.exists(marker) and Path(marker).read_text(), timeout=30))
    wait_for(lambda: not psutil.pid_exists(first) or psutil.Process(first).status() == psutil.STATUS_ZOMBIE,
             timeout=30, interval=0.005)
    set_usage(fake_cgroup.dir, 100_000)
    second = nbcluster.get(ref, timeout=30)
    print(f"\nOOM kill and retry: submit -> result of the second attempt in {time.monotonic() - start:.2f}s")
    assert second != first
    Path(other).touch()
    assert nbcluster.get(waiting, timeout=30) > 0
    assert nbcluster.get(keeper.pid.remote(), timeout=30) == keeper_pid


def test_an_actor_is_killed_when_nothing_else_is_left(fake_cgroup):
    fake_cgroup()

    @nbcluster.remote
    class Hog:
        def grow(self, directory):
            set_usage(directory, 950_000)

    def died():
        try:
            nbcluster.get(actor.grow.remote(fake_cgroup.dir), timeout=30)
        except ActorDiedError as exc:
            return exc
        return None

    actor = Hog.remote()
    error = wait_for(died, timeout=30)
    set_usage(fake_cgroup.dir, 100_000)
    assert "ran low on memory" in str(error) and "(0.9500)" in str(error), error
    assert nbcluster.get(ping.remote(), timeout=30) == "pong"


# -- the policy, without processes ------------------------------------------------------

def _c(name: str, owner: str, retriable: bool, granted: float) -> Candidate:
    return Candidate(name.encode(), 0, owner.encode(), retriable, granted, name)


def test_the_policy_prefers_retriable_work_of_the_busiest_owner_newest_first():
    actor = _c("actor", "gcs", False, 9.0)
    a1, a2, b1 = _c("a1", "a", True, 1.0), _c("a2", "a", True, 2.0), _c("b1", "b", True, 5.0)
    assert choose([actor, a1, a2, b1]) == (a2, True)  # a has two: its newest, retried
    assert choose([actor, b1]) == (b1, False)  # b's last work here: not retried
    assert choose([actor, _c("n", "a", False, 1.0)]) == (actor, False)  # non-retriable: newest
    assert choose([]) is None


def test_read_usage_reads_a_cgroup_directory_and_falls_back_to_the_machine(tmp_path):
    (tmp_path / "memory.max").write_text("1000\n")
    (tmp_path / "memory.current").write_text("700\n")
    (tmp_path / "memory.stat").write_text("anon 500\ninactive_file 100\n")
    assert read_usage(str(tmp_path)) == MemoryUsage(600, 1000, f"cgroup {tmp_path}")
    machine = read_usage(str(tmp_path / "missing"))
    assert machine.source == "machine" and 0 < machine.fraction < 1


# -- real memory ------------------------------------------------------------------------

@nbcluster.remote
def allocate_until_killed(step_mib: int, cap_mib: int, progress: str) -> int:
    """Really allocate (numpy arrays, every page touched), ``step_mib`` at a time, until
    the node kills this worker; -1 when ``cap_mib`` is reached first."""
    import numpy as np

    held = []
    while len(held) * step_mib < cap_mib:
        held.append(np.ones(step_mib * 1024 * 1024 // 8))
        Path(progress).write_text(str(len(held) * step_mib))
        time.sleep(0.02)
    time.sleep(30)
    return -1


def test_a_task_that_really_allocates_past_the_threshold_is_killed(start_cluster, tmp_path):
    """No fake: the node reads its real memory (its cgroup's or the machine's); the
    threshold is today's usage plus 512 MiB, and a task allocates until it is killed."""
    before = read_usage("")
    margin = 512 * 1024 * 1024
    threshold = round((before.used + margin) / before.total, 4)
    start_cluster(num_cpus=2, _system_config={"memory_usage_threshold": threshold,
                                              "memory_monitor_refresh_ms": 100})
    node_id = nbcluster.get_runtime_context().get_node_id()

    @nbcluster.remote(max_restarts=0)
    class Bystander:
        def pid(self):
            return os.getpid()

    bystander = Bystander.remote()
    bystander_pid = nbcluster.get(bystander.pid.remote(), timeout=30)
    other = str(tmp_path / "other")
    waiting = wait_file.options(max_retries=0).remote(other)  # older than the allocator
    wait_for(lambda: os.path.exists(other + ".started"), timeout=30)
    progress = tmp_path / "allocated"
    start = time.monotonic()
    ref = allocate_until_killed.options(max_retries=0).remote(64, 8 * 1024, str(progress))
    with pytest.raises(OutOfMemoryError) as info:
        nbcluster.get(ref, timeout=120)
    took = time.monotonic() - start
    message = str(info.value)
    assert "allocate_until_killed" in message and node_id in message, message
    assert f"threshold of {threshold}" in message, message
    usage_at_kill = float(message.split("GiB (")[1].split(")")[0])
    assert usage_at_kill >= threshold, message  # the monitor kills above it; shown to 4 places
    allocated = int(progress.read_text())
    assert allocated >= 64  # it got going before the kill
    print(f"\nreal OOM kill: threshold {threshold} ({before.describe()} in use before, + 512 MiB), "
          f"usage at the kill {usage_at_kill}, the task had allocated {allocated} MiB, "
          f"submit -> OutOfMemoryError in {took:.2f}s")
    # The node and its other work survive.
    assert nbcluster.get(ping.remote(), timeout=30) == "pong"
    Path(other).touch()
    assert nbcluster.get(waiting, timeout=30) > 0
    assert nbcluster.get(bystander.pid.remote(), timeout=30) == bystander_pid
