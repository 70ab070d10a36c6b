"""Workers forked from the node's worker template (``worker_start_method="fork"``, the
default on Linux) and spawned ones (``"spawn"``): both run tasks and actors, forked
ones share the template's memory, and a template that dies is replaced without
losing the workers it forked."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import psutil
import pytest

import nbcluster
from nbcluster.runtime.config import RuntimeConfig
from nbcluster.runtime.node.worker_template import UNKNOWN_EXIT, ForkedProcess, WorkerTemplate
from nbcluster.runtime.procutil import TEMPLATE_PROCESS_NAME, WORKER_PROCESS_NAME

from ..conftest import FAST_CONFIG, wait_for


@nbcluster.remote
def about() -> dict:
    import random

    me = psutil.Process()
    return {
        "pid": os.getpid(),
        "parent": me.ppid(),
        "parent_name": psutil.Process(me.ppid()).name(),
        "name": me.name(),
        "grpc": "grpc" in sys.modules,
        "random": random.random(),
        "session": os.getsid(0),
    }


def _templates() -> list[psutil.Process]:
    """The worker templates under this process (a worker just forked is named as its
    template until it renames itself: not counted)."""
    named = {p.pid: p for p in psutil.Process().children(recursive=True) if p.name() == TEMPLATE_PROCESS_NAME}
    return [p for p in named.values() if p.ppid() not in named]


def test_workers_are_forked_from_the_template_and_share_its_memory(start_cluster) -> None:
    start_cluster(num_cpus=2, _system_config=FAST_CONFIG)

    @nbcluster.remote
    class Cell:
        def about(self) -> dict:
            return nbcluster.get(about.remote())  # nested: a task worker too

        def pid(self) -> int:
            return os.getpid()

    cells = [Cell.remote() for _ in range(4)]
    pids = nbcluster.get([c.pid.remote() for c in cells], timeout=60)
    infos = nbcluster.get([about.remote() for _ in range(4)], timeout=60)
    (template,) = _templates()
    for info in infos:
        assert info["parent"] == template.pid and info["parent_name"] == TEMPLATE_PROCESS_NAME
        assert info["name"] == WORKER_PROCESS_NAME
        assert info["session"] == info["pid"]  # its own session, as a spawned worker
        assert not info["grpc"]
    assert len({info["random"] for info in infos}) == len(infos)  # each reseeded after the fork
    for pid in pids:
        assert psutil.Process(pid).ppid() == template.pid
    # What it imported is shared: an actor's own memory is a fraction of a fresh
    # interpreter's (~21 MiB when spawned, measured).
    uss = sorted(psutil.Process(pid).memory_full_info().uss for pid in pids)
    assert uss[len(uss) // 2] < 12 * 2**20, f"an actor's own memory is {uss[len(uss) // 2] / 2**20:.1f} MiB"


def test_a_template_that_dies_is_replaced_and_its_workers_live_on(start_cluster) -> None:
    start_cluster(num_cpus=1, _system_config=FAST_CONFIG)

    @nbcluster.remote
    class Keeper:
        def pid(self) -> int:
            return os.getpid()

    keeper = Keeper.remote()
    kept = nbcluster.get(keeper.pid.remote(), timeout=60)
    (template,) = _templates()
    template.kill()
    template.wait(10)
    assert nbcluster.get(keeper.pid.remote(), timeout=60) == kept  # forked before: still there

    # The next worker comes from a new template.
    others = [Keeper.remote() for _ in range(2)]
    pids = nbcluster.get([k.pid.remote() for k in others], timeout=60)
    wait_for(lambda: len(_templates()) == 1, timeout=30, message="a new worker template")
    (new,) = _templates()
    assert new.pid != template.pid
    assert all(psutil.Process(pid).ppid() == new.pid for pid in pids)

    # A worker of the old template that dies is noticed (no parent reports it): an
    # actor in it is restarted.
    os.kill(kept, signal.SIGKILL)
    with pytest.raises(nbcluster.exceptions.RayActorError):
        nbcluster.get(keeper.pid.remote(), timeout=60)


def test_spawned_workers_still_run_everything(start_cluster) -> None:
    start_cluster(num_cpus=1, _system_config={**FAST_CONFIG, "worker_start_method": "spawn"})
    info = nbcluster.get(about.remote(), timeout=60)
    assert info["name"] == WORKER_PROCESS_NAME
    assert info["parent_name"] != TEMPLATE_PROCESS_NAME
    assert _templates() == []


def test_an_unknown_start_method_is_refused_with_the_choices() -> None:
    with pytest.raises(ValueError, match='worker_start_method must be "fork" or "spawn"'):
        RuntimeConfig.load({"worker_start_method": "forkserver"})


def test_a_handle_whose_template_is_gone_sees_its_exit_past_fd_1023(tmp_path) -> None:
    # A node with 1,000 actors holds pidfds numbered past 1023 (select() cannot take
    # them); once the template is gone, the handle alone tells whether it exited.
    sleeper = subprocess.Popen(["sleep", "60"])
    padding = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    try:
        gone = WorkerTemplate([], log_dir=tmp_path, env={}, credential="-", niceness=0)  # not running
        handle = ForkedProcess(gone, "ab" * 16)
        handle._forked(sleeper.pid)
        assert handle._pidfd is not None and handle._pidfd > 1023
        assert handle.poll() is None  # still running
        handle.kill()
        sleeper.wait(10)
        assert handle.poll() == UNKNOWN_EXIT  # its code went to the gone template
        handle.kill()  # exited: nothing is sent, nothing raised
    finally:
        for fd in padding:
            os.close(fd)
        sleeper.kill()
        sleeper.wait()
