"""Actor edge cases: placement never reuses a task worker, BaseExceptions in methods,
crashes and kills during the constructor, concurrent creation, constructor args
that are still being computed, order with not-yet-ready arguments."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time

import pytest

import nbcluster
from nbcluster.exceptions import ActorDiedError, TaskCancelledError, TaskError

from ..conftest import wait_for
from .test_actor_failures import exited
from .test_actor_lifetimes import Counter, state_of

pytestmark = pytest.mark.usefixtures("cluster")


def test_an_actor_never_lands_on_a_worker_that_ran_tasks():
    @nbcluster.remote
    def make():
        return Counter.remote(), os.getpid()

    first, owner_pid = nbcluster.get(make.remote())
    nbcluster.get(first.add.remote())
    second = Counter.remote()
    assert nbcluster.get(second.pid.remote()) != owner_pid
    nbcluster.kill(second)
    assert nbcluster.get(first.add.remote()) == 2  # its owner (a task worker) lives on
    assert state_of(first).state == "ALIVE"


def test_base_exceptions_in_methods():
    @nbcluster.remote
    class Edgy:
        def interrupt(self):
            raise KeyboardInterrupt("from the method")

        def leave(self):
            raise SystemExit(3)

        def ok(self):
            return "fine"

    @nbcluster.remote
    class AsyncEdgy:
        async def interrupt(self):
            raise KeyboardInterrupt("async")

        async def ok(self):
            return "fine"

    edgy = Edgy.remote()
    with pytest.raises(TaskError, match="KeyboardInterrupt"):
        nbcluster.get(edgy.interrupt.remote(), timeout=20)
    assert nbcluster.get(edgy.ok.remote()) == "fine"  # still serving
    with pytest.raises(ActorDiedError, match="exit"):  # sys.exit() ends an actor, as exit_actor()
        nbcluster.get(edgy.leave.remote(), timeout=20)
    async_edgy = AsyncEdgy.remote()
    with pytest.raises(TaskError, match="KeyboardInterrupt"):
        nbcluster.get(async_edgy.interrupt.remote(), timeout=20)
    assert nbcluster.get(async_edgy.ok.remote(), timeout=20) == "fine"


@nbcluster.remote(max_restarts=2)
class SlowStart:
    def __init__(self, flag, crash_first):
        if not os.path.exists(flag):
            with open(flag, "w") as f:
                f.write(str(os.getpid()))
            time.sleep(30 if crash_first else 60)

    def ping(self):
        return os.getpid()


def test_crash_during_the_constructor_counts_as_a_restart(tmp_path):
    flag = tmp_path / "pid"
    actor = SlowStart.remote(str(flag), True)
    first = int(wait_for(lambda: flag.exists() and flag.read_text(), message="the constructor to start"))
    os.kill(first, signal.SIGKILL)
    assert nbcluster.get(actor.ping.remote(), timeout=60) != first
    assert state_of(actor).num_restarts == 1 and state_of(actor).state == "ALIVE"


def test_kill_during_the_constructor_ends_it_promptly(tmp_path):
    flag = tmp_path / "pid"
    actor = SlowStart.remote(str(flag), False)
    pid = int(wait_for(lambda: flag.exists() and flag.read_text(), message="the constructor to start"))
    start = time.monotonic()
    nbcluster.kill(actor)
    assert time.monotonic() - start < 8
    assert state_of(actor).state == "DEAD"
    wait_for(lambda: exited(pid), message="the constructor's process to be killed")
    with pytest.raises(ActorDiedError, match="kill"):
        nbcluster.get(actor.ping.remote(), timeout=20)


def test_many_actors_created_at_once():
    handles: list = []
    lock = threading.Lock()

    def make() -> None:
        handle = Counter.remote()
        with lock:
            handles.append(handle)

    threads = [threading.Thread(target=make) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert nbcluster.get([h.add.remote() for h in handles], timeout=60) == [1] * 8


def test_constructor_argument_still_being_computed():
    @nbcluster.remote
    def slow_value():
        time.sleep(5.0)
        return 41

    @nbcluster.remote
    class Holder:
        def __init__(self, value):
            self.value = value

        def get(self):
            return self.value + 1

    start = time.monotonic()
    holder = Holder.remote(slow_value.remote())
    assert time.monotonic() - start < 4  # returned before the argument was ready (5 s)
    assert nbcluster.get(holder.get.remote(), timeout=30) == 42


def test_one_callers_order_holds_with_arguments_not_yet_ready():
    @nbcluster.remote
    def later(value, delay):
        time.sleep(delay)
        return value

    @nbcluster.remote
    class Log:
        def __init__(self):
            self.items = []

        def append(self, item):
            self.items.append(item)

        def read(self):
            return self.items

    log = Log.remote()
    for i in range(10):
        # Earlier calls get the slower arguments: readiness order is the reverse.
        log.append.remote(later.remote(i, 0.05 * (10 - i)) if i % 2 == 0 else i)
    assert nbcluster.get(log.read.remote(), timeout=30) == list(range(10))


def test_cancel_a_running_async_call_for_sure(tmp_path):
    started = tmp_path / "started"

    @nbcluster.remote
    class Waiter:
        async def wait_long(self, flag):
            open(flag, "w").close()
            await asyncio.sleep(60)

        async def ping(self):
            return "pong"

    waiter = Waiter.remote()
    ref = waiter.wait_long.remote(str(started))
    wait_for(started.exists, message="the coroutine to start")
    nbcluster.cancel(ref)
    with pytest.raises(TaskCancelledError):
        nbcluster.get(ref, timeout=10)
    assert nbcluster.get(waiter.ping.remote()) == "pong"


def test_a_handle_kept_by_a_worker_keeps_the_actor(tmp_path):
    release = tmp_path / "release"

    @nbcluster.remote
    def keep_in_background(handles, flag):
        held = list(handles)

        def hold():
            while not os.path.exists(flag):
                time.sleep(0.02)
            held.clear()

        threading.Thread(target=hold, daemon=True).start()
        return "returned while holding"

    counter = Counter.remote()
    actor_hex = counter._actor_id.hex()
    assert nbcluster.get(keep_in_background.remote([counter], str(release))) == "returned while holding"
    del counter
    import gc

    gc.collect()
    time.sleep(0.5)  # give a premature end the chance to happen
    assert nbcluster.state.get_actor_state(actor_hex).state == "ALIVE"
    release.touch()
    wait_for(lambda: nbcluster.state.get_actor_state(actor_hex).state == "DEAD",
             message="the actor to end once the worker let go of its handle")
