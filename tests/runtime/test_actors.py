"""Actors on a shared cluster: ordering, concurrency, handles, names, cancellation,
introspection, output, bad input."""

from __future__ import annotations

import asyncio
import gc
import os
import threading
import time

import pytest

import nbcluster
from nbcluster.exceptions import ActorDiedError, TaskCancelledError

from ..conftest import run_python, wait_for

pytestmark = pytest.mark.usefixtures("cluster")


@nbcluster.remote
class Counter:
    def __init__(self, start: int = 0) -> None:
        self.value = start
        self.log: list[int] = []

    def add(self, amount: int = 1) -> int:
        self.value += amount
        self.log.append(amount)
        return self.value

    def history(self) -> list[int]:
        return self.log

    def pid(self) -> int:
        return os.getpid()

    def actor_id(self) -> str:
        return nbcluster.get_runtime_context().get_actor_id()

    @nbcluster.method(num_returns=2)
    def pair(self) -> tuple[int, int]:
        return self.value, -self.value

    def slow(self, seconds: float) -> float:
        time.sleep(seconds)
        return seconds


def actor_state(handle) -> str:
    found = nbcluster.state.get_actor_state(handle._actor_id.hex())
    return found.state if found else "UNKNOWN"


def test_calls_return_refs_and_keep_state():
    counter = Counter.remote(10)
    assert nbcluster.get(counter.add.remote()) == 11
    assert nbcluster.get([counter.add.remote(2) for _ in range(3)]) == [13, 15, 17]
    high, low = counter.pair.remote()
    assert nbcluster.get([high, low]) == [17, -17]
    assert counter.add.options(num_returns=0).remote() is None


def test_one_callers_calls_run_in_submission_order_one_at_a_time():
    @nbcluster.remote
    class Recorder:
        def __init__(self):
            self.events = []
            self.active = 0
            self.overlap = False

        def record(self, i, payload):
            self.active += 1
            self.overlap |= self.active > 1
            time.sleep(0.001 * (i % 3))
            self.events.append(i)
            self.active -= 1

        def result(self):
            return self.events, self.overlap

    recorder = Recorder.remote()
    ready_later = nbcluster.put(b"x" * 200_000)  # some calls carry a stored argument
    for i in range(100):
        recorder.record.remote(i, ready_later if i % 10 == 0 else None)
    events, overlap = nbcluster.get(recorder.result.remote())
    assert events == list(range(100)) and not overlap


def test_threaded_actor_runs_max_concurrency_calls_at_once():
    @nbcluster.remote(max_concurrency=4)
    class Pool:
        def __init__(self):
            self.lock = threading.Lock()
            self.active = 0
            self.peak = 0

        def work(self):
            with self.lock:
                self.active += 1
                self.peak = max(self.peak, self.active)
            time.sleep(0.3)
            with self.lock:
                self.active -= 1

        def peak_seen(self):
            return self.peak

    pool = Pool.remote()
    nbcluster.get([pool.work.remote() for _ in range(8)], timeout=30)
    assert nbcluster.get(pool.peak_seen.remote()) == 4


def test_async_actor_runs_coroutines_concurrently_and_awaits_refs():
    @nbcluster.remote
    def slow_square(x):
        time.sleep(0.05)
        return x * x

    @nbcluster.remote(max_concurrency=10)
    class Service:
        def __init__(self):
            self.active = 0
            self.peak = 0

        async def handle(self, x):
            self.active += 1
            self.peak = max(self.peak, self.active)
            await asyncio.sleep(0.2)
            self.active -= 1
            return await slow_square.remote(x)  # await a ref inside an async actor

        async def peak_seen(self):
            return self.peak

    service = Service.remote()
    assert nbcluster.get([service.handle.remote(i) for i in range(30)], timeout=60) == [i * i for i in range(30)]
    assert nbcluster.get(service.peak_seen.remote()) == 10  # ten at a time, not one


def test_await_ref_inside_an_async_task():
    @nbcluster.remote
    def inner():
        return 21

    @nbcluster.remote
    async def outer():
        return 2 * await inner.remote()

    assert nbcluster.get(outer.remote()) == 42


def test_handles_travel_to_tasks_and_actors_and_back():
    counter = Counter.remote()

    @nbcluster.remote
    def bump(handle, times):
        return nbcluster.get([handle.add.remote() for _ in range(times)])[-1]

    @nbcluster.remote
    def make_counter():
        return Counter.remote(100)

    @nbcluster.remote
    class Forwarder:
        def __init__(self, target):
            self.target = target

        def forward(self):
            return nbcluster.get(self.target.add.remote(10))

    assert nbcluster.get(bump.remote(counter, 3)) == 3
    forwarder = Forwarder.remote(counter)
    assert nbcluster.get(forwarder.forward.remote()) == 13
    assert nbcluster.get(counter.add.remote(0)) == 13  # every copy reached the same actor
    made = nbcluster.get(make_counter.remote())
    assert nbcluster.get(made.add.remote()) == 101


def test_actor_lives_while_a_handle_does(tmp_path):
    release = tmp_path / "release"

    @nbcluster.remote
    def hold(handle, flag):
        while not os.path.exists(flag):
            time.sleep(0.02)
        return nbcluster.get(handle.add.remote(5))

    counter = Counter.remote()
    actor_hex = counter._actor_id.hex()
    nbcluster.get(counter.add.remote())
    result = hold.remote(counter, str(release))
    del counter
    gc.collect()
    time.sleep(0.5)  # a premature end would show by now
    assert nbcluster.state.get_actor_state(actor_hex).state == "ALIVE"
    release.touch()
    assert nbcluster.get(result) == 6
    del result
    gc.collect()

    def gone():
        state = nbcluster.state.get_actor_state(actor_hex)
        return state.state == "DEAD" and "out of scope" in state.death_cause

    wait_for(gone, message="the actor to end once no handle remains")


def test_names_and_namespaces():
    first = Counter.options(name="shared-counter").remote()
    nbcluster.get(first.add.remote(7))
    found = nbcluster.get_actor("shared-counter")
    assert found == first and nbcluster.get(found.add.remote()) == 8
    with pytest.raises(ValueError, match="already exists"):
        Counter.options(name="shared-counter").remote()
    again = Counter.options(name="shared-counter", get_if_exists=True).remote()
    assert again == first
    with pytest.raises(ValueError, match="Failed to look up actor"):
        nbcluster.get_actor("no-such-actor")
    elsewhere = Counter.options(name="shared-counter", namespace="other").remote(100)
    assert elsewhere != first
    assert nbcluster.get(nbcluster.get_actor("shared-counter", namespace="other").add.remote()) == 101
    nbcluster.kill(first)
    wait_for(lambda: actor_state(first) == "DEAD", message="the named actor to die")
    replacement = Counter.options(name="shared-counter").remote()  # the name is free again
    assert nbcluster.get(replacement.add.remote()) == 1
    nbcluster.kill(elsewhere)
    nbcluster.kill(replacement)


def test_kill_and_its_error():
    counter = Counter.remote()
    nbcluster.get(counter.add.remote())
    nbcluster.kill(counter)
    with pytest.raises(ActorDiedError, match="killed with nbcluster.kill"):
        nbcluster.get(counter.add.remote(), timeout=20)
    state = nbcluster.state.get_actor_state(counter._actor_id.hex())
    assert state.state == "DEAD" and "kill" in state.death_cause


def test_constructor_error_kills_the_actor_with_its_traceback():
    @nbcluster.remote
    class Broken:
        def __init__(self):
            raise RuntimeError("bad configuration value")

        def work(self):
            return 1

    broken = Broken.remote()
    with pytest.raises(ActorDiedError) as info:
        nbcluster.get(broken.work.remote(), timeout=30)
    message = str(info.value)
    assert "constructor raised" in message and "bad configuration value" in message and "Traceback" in message


def test_exit_actor_ends_it_cleanly():
    @nbcluster.remote(max_restarts=3)
    class Quitter:
        def work(self):
            return "working"

        def quit(self):
            nbcluster.actor.exit_actor()

    quitter = Quitter.remote()
    assert nbcluster.get(quitter.work.remote()) == "working"
    with pytest.raises(ActorDiedError, match="exit_actor"):
        nbcluster.get(quitter.quit.remote(), timeout=20)
    state = nbcluster.state.get_actor_state(quitter._actor_id.hex())
    assert state.state == "DEAD" and state.num_restarts == 0  # not restarted
    with pytest.raises(TypeError, match="inside an actor"):
        nbcluster.actor.exit_actor()


def test_cancel_a_queued_actor_call(tmp_path):
    counter = Counter.remote()
    busy = counter.slow.remote(1.0)
    queued = counter.add.remote(5)
    nbcluster.cancel(queued)
    with pytest.raises(TaskCancelledError):
        nbcluster.get(queued, timeout=10)
    assert nbcluster.get(busy, timeout=10) == 1.0
    assert nbcluster.get(counter.history.remote()) == []  # the cancelled call never ran
    with pytest.raises(ValueError, match="force=True"):
        nbcluster.cancel(counter.add.remote(), force=True)


def test_introspection():
    counter = Counter.remote()
    pid = nbcluster.get(counter.pid.remote())
    assert nbcluster.get(counter.actor_id.remote()) == counter._actor_id.hex()
    assert nbcluster.get_runtime_context().get_actor_id() is None
    state = nbcluster.state.get_actor_state(counter._actor_id.hex())
    assert state.state == "ALIVE" and state.class_name == "Counter" and state.pid == pid
    assert state.node_id == nbcluster.get_runtime_context().get_node_id()
    assert state.to_json()["class_name"] == "Counter"
    assert nbcluster.state.ActorState.from_json(state.to_json()) == state
    assert any(a.actor_id == counter._actor_id.hex() for a in nbcluster.state.list_actors(state="ALIVE"))
    with pytest.raises(ValueError, match="state must be one of"):
        nbcluster.state.list_actors(state="RUNNING")


def test_actor_output_reaches_the_driver_prefixed_with_its_class():
    proc = run_python(
        """
        import os
        import nbcluster
        nbcluster.init(num_cpus=1)

        @nbcluster.remote
        class Talker:
            def __init__(self):
                print("constructed")

            def say(self, text):
                print(text)
                return os.getpid()

        talker = Talker.remote()
        pid = nbcluster.get(talker.say.remote("hello from an actor"))
        print("PID", pid, flush=True)
        nbcluster.shutdown()
        """
    )
    pid = proc.stdout.split("PID ")[1].split()[0]
    assert f"(Talker pid={pid}) hello from an actor" in proc.stdout
    assert f"(Talker pid={pid}) constructed" in proc.stdout


class TestBadInput:
    def test_calling_a_method_directly(self):
        counter = Counter.remote()
        with pytest.raises(TypeError, match=r"add\.remote\(\.\.\.\)"):
            counter.add(1)

    def test_instantiating_the_class_directly(self):
        with pytest.raises(TypeError, match=r"Counter\.remote\(\.\.\.\)"):
            Counter()

    def test_a_method_that_does_not_exist(self):
        counter = Counter.remote()
        with pytest.raises(AttributeError, match="'Counter' actor has no method 'subtract'"):
            counter.subtract.remote()

    def test_unpicklable_constructor_arguments(self):
        with pytest.raises(TypeError, match=r"argument 0 of .*Counter\(\).*_thread\.lock"):
            Counter.remote(threading.Lock())

    def test_invalid_actor_options(self):
        with pytest.raises(ValueError, match="unknown option.*'max_restart'"):
            Counter.options(max_restart=1)
        with pytest.raises(ValueError, match="lifetime"):
            Counter.options(lifetime="forever")
        with pytest.raises(ValueError, match="needs a name"):
            Counter.options(get_if_exists=True)
        with pytest.raises(ValueError, match="max_concurrency must be >= 1"):
            Counter.options(max_concurrency=0)
        with pytest.raises(TypeError, match="kill\\(\\) takes an actor handle"):
            nbcluster.kill("counter")

    def test_the_cluster_still_works(self):
        assert nbcluster.get(Counter.remote(1).add.remote()) == 2
