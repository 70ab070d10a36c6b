"""How many worker processes nested work costs: a parent blocked in ``get`` lends its
CPU to the work it waits for (its children's leases go first), so fan-out does not
turn into one process per parent."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import psutil
import pytest

import nbcluster
from nbcluster.runtime.procutil import is_worker_process

from ..conftest import FAST_CONFIG, wait_for


@pytest.fixture(scope="module")
def two_cpus() -> Iterator[None]:
    nbcluster.init(num_cpus=2, _system_config=FAST_CONFIG)
    try:
        yield
    finally:
        nbcluster.shutdown()


#: The pool's soft limit on the 2-CPU node of these tests: idle workers above it exit
#: after ``idle_worker_timeout_s`` (2 s in FAST_CONFIG).
SOFT_LIMIT = 2


class PeakWorkers:
    """The most worker processes of this driver's cluster seen at once, sampled on a
    thread while the block runs; it starts once the workers an earlier test left idle
    above the soft limit have exited, so they are not counted against this one."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _count(self) -> int:
        return sum(1 for proc in psutil.Process().children(recursive=True) if is_worker_process(proc))

    def _sample(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, self._count())

    def __enter__(self) -> "PeakWorkers":
        wait_for(lambda: self._count() <= SOFT_LIMIT, timeout=20,
                 message=f"idle workers above the soft limit ({SOFT_LIMIT}) to exit")
        self.peak = self._count()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


def test_fan_out_of_blocked_parents_reuses_a_few_workers(two_cpus: None) -> None:
    @nbcluster.remote
    def child(i: int) -> int:
        return i * i

    @nbcluster.remote
    def parent(k: int) -> int:
        return sum(nbcluster.get([child.remote(k * 10 + i) for i in range(10)]))

    with PeakWorkers() as workers:
        results = nbcluster.get([parent.remote(k) for k in range(40)], timeout=120)
    assert results == [sum((k * 10 + i) ** 2 for i in range(10)) for k in range(40)]
    # 2 CPUs: two parents and the children they wait for, not one process per parent.
    assert workers.peak <= 8, f"{workers.peak} worker processes for 40 parents on 2 CPUs"


def test_a_deep_chain_of_nested_gets_runs_in_a_few_processes(two_cpus: None) -> None:
    @nbcluster.remote
    def depth(n: int) -> int:
        return 0 if n == 0 else 1 + nbcluster.get(depth.remote(n - 1))

    with PeakWorkers() as workers:
        assert nbcluster.get(depth.remote(50), timeout=120) == 50
    assert workers.peak <= 6, f"{workers.peak} worker processes for a chain 50 deep on 2 CPUs"


def test_a_blocked_parent_runs_its_queued_child_itself_unless_it_set_a_timeout(two_cpus: None) -> None:
    import os

    @nbcluster.remote(num_cpus=0.37)  # a shape of its own: no lease another test left lingers for it
    def pid() -> int:
        return os.getpid()

    @nbcluster.remote
    def parent(timeout: float | None) -> tuple[int, int]:
        return os.getpid(), nbcluster.get(pid.remote(), timeout=timeout)

    mine, childs = nbcluster.get(parent.remote(None), timeout=60)
    assert mine == childs  # run inline: no worker needed for it
    mine, childs = nbcluster.get(parent.remote(60.0), timeout=60)
    assert mine != childs  # a get with a timeout waits for a worker (inline could overrun it)


def test_cancelling_a_parent_cancels_the_child_it_runs_inline(two_cpus: None, tmp_path) -> None:
    import time

    started = tmp_path / "started"

    @nbcluster.remote
    def slow(path: str) -> int:
        open(path, "w").close()
        time.sleep(60)
        return 1

    @nbcluster.remote
    def parent(path: str) -> int:
        return nbcluster.get(slow.remote(path))

    ref = parent.remote(str(started))
    deadline = time.monotonic() + 30
    while not started.exists():
        assert time.monotonic() < deadline, "the child never started"
        time.sleep(0.02)
    cancelled_at = time.monotonic()
    nbcluster.cancel(ref)
    with pytest.raises(nbcluster.exceptions.TaskCancelledError):
        nbcluster.get(ref, timeout=30)
    assert time.monotonic() - cancelled_at < 10

    @nbcluster.remote
    def after() -> str:
        return "the worker is usable"

    assert nbcluster.get(after.remote(), timeout=30) == "the worker is usable"

