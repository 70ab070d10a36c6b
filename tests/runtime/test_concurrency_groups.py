"""Actor concurrency groups (Ray's ``concurrency_groups``): each group runs its calls
concurrently up to its own limit, beside the other groups, in threaded and in async
actors; a call's group comes from ``.options``, else its method, else the default."""

from __future__ import annotations

import asyncio
import threading

import pytest

import nbcluster

from ..conftest import wait_for

pytestmark = pytest.mark.usefixtures("cluster")


@nbcluster.remote(concurrency_groups={"io": 2, "compute": 3})
class Threaded:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.active = {"io": 0, "compute": 0}
        self.peak = {"io": 0, "compute": 0}
        self.together = threading.Barrier(5)  # 2 io calls and 3 compute calls at once
        self.gate = threading.Event()

    def _run(self, group: str, mode: str) -> str:
        with self.lock:
            self.active[group] += 1
            self.peak[group] = max(self.peak[group], self.active[group])
        try:
            if mode == "barrier":
                self.together.wait(timeout=30)
            elif mode == "gate":
                assert self.gate.wait(timeout=30)
        finally:
            with self.lock:
                self.active[group] -= 1
        return threading.current_thread().name

    @nbcluster.method(concurrency_group="io")
    def io(self, mode: str = "") -> str:
        return self._run("io", mode)

    @nbcluster.method(concurrency_group="compute")
    def compute(self, mode: str = "") -> str:
        return self._run("compute", mode)

    def plain(self, mode: str = "") -> str:  # the default group, unless the caller picks one
        return self._run("compute", mode)

    def state(self) -> tuple[dict, dict]:
        return dict(self.active), dict(self.peak)

    def open(self) -> None:
        self.gate.set()


def test_threaded_groups_run_concurrently_up_to_their_limits():
    actor = Threaded.remote()
    # 2 io + 3 compute calls meet at one barrier: each group runs its limit at once,
    # beside the other (one compute call is a default-group method sent to "compute")
    refs = [actor.io.remote("barrier") for _ in range(2)]
    refs += [actor.compute.remote("barrier") for _ in range(2)]
    refs.append(actor.plain.options(concurrency_group="compute").remote("barrier"))
    names = nbcluster.get(refs, timeout=60)
    assert all(n.startswith("actor-io") for n in names[:2]) and all(n.startswith("actor-compute") for n in names[2:])
    # a third io call waits for a thread of its group while the default group still serves
    held = [actor.io.remote("gate") for _ in range(3)]
    wait_for(lambda: nbcluster.get(actor.state.remote())[0]["io"] == 2, message="two io calls running")
    ready, _ = nbcluster.wait(held, num_returns=3, timeout=0.5)
    assert not ready and nbcluster.get(actor.state.remote())[0]["io"] == 2
    nbcluster.get(actor.open.remote())
    nbcluster.get(held, timeout=60)
    assert nbcluster.get(actor.state.remote())[1] == {"io": 2, "compute": 3}


def test_unknown_groups_are_refused():
    actor = Threaded.remote()
    with pytest.raises(ValueError, match="no concurrency group 'nope'"):
        nbcluster.get(actor.plain.options(concurrency_group="nope").remote(), timeout=30)

    class Wrong:
        @nbcluster.method(concurrency_group="missing")
        def f(self) -> None:
            pass

    with pytest.raises(ValueError, match="missing"):
        nbcluster.remote(concurrency_groups={"io": 1})(Wrong).remote()
    with pytest.raises(ValueError, match=">= 1"):
        nbcluster.remote(concurrency_groups={"io": 0})(Wrong)


@nbcluster.remote(concurrency_groups={"io": 2, "compute": 1}, max_concurrency=4)
class Async:
    def __init__(self) -> None:
        self.active = {"io": 0, "compute": 0, "": 0}
        self.peak = {"io": 0, "compute": 0, "": 0}
        self.gate = asyncio.Event()

    async def _run(self, group: str) -> None:
        self.active[group] += 1
        self.peak[group] = max(self.peak[group], self.active[group])
        try:
            await asyncio.wait_for(self.gate.wait(), 30)
        finally:
            self.active[group] -= 1

    @nbcluster.method(concurrency_group="io")
    async def io(self) -> None:
        await self._run("io")

    @nbcluster.method(concurrency_group="compute")
    async def compute(self) -> None:
        await self._run("compute")

    async def default(self) -> None:
        await self._run("")

    async def state(self) -> tuple[dict, dict]:  # needs a default-group slot
        return dict(self.active), dict(self.peak)

    async def open(self) -> None:
        self.gate.set()


def test_async_groups_are_semaphores_on_the_loop():
    actor = Async.remote()
    held = [actor.io.remote() for _ in range(4)] + [actor.compute.remote() for _ in range(3)]
    held += [actor.default.remote() for _ in range(2)]
    expected = {"io": 2, "compute": 1, "": 2}
    wait_for(lambda: nbcluster.get(actor.state.remote())[0] == expected, message="each group at its limit")
    ready, _ = nbcluster.wait(held, timeout=0.5)
    assert not ready and nbcluster.get(actor.state.remote())[0] == expected  # the rest wait in their groups
    nbcluster.get(actor.open.remote())
    nbcluster.get(held, timeout=60)
    assert nbcluster.get(actor.state.remote())[1] == expected
