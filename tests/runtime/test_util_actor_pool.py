"""``nbcluster.util.ActorPool`` with real actors: ordering, the queue of submissions,
timeouts, errors and dead actors, as ``ray.util.ActorPool``.

Calls that must stay unfinished wait on a gate (a ``nbcluster.util.queue.Queue`` the
test puts into), so no assertion depends on timing."""

from __future__ import annotations

import os

import pytest

import nbcluster as ray
from nbcluster.util import ActorPool
from nbcluster.util.queue import Queue

pytestmark = pytest.mark.usefixtures("cluster")


@ray.remote
class Worker:
    def double(self, v: int) -> int:
        return 2 * v

    def held(self, gate: Queue, v: int) -> int:
        """``v`` once the test opens ``gate``."""
        gate.get(timeout=60)
        return v

    def fail(self, v: int) -> int:
        raise ValueError(f"bad value {v}")

    def die(self, v: int) -> int:
        os._exit(1)


def double(actor, v):
    return actor.double.remote(v)


@pytest.fixture(scope="module")
def workers():
    return [Worker.remote(), Worker.remote()]


@pytest.fixture
def gate():
    q = Queue()
    yield q
    q.shutdown(force=True)


def test_map_keeps_input_order_even_when_later_calls_finish_first(workers, gate):
    pool = ActorPool(workers)
    refs = []

    def call(actor, v):  # the first value is held until the test opens the gate
        refs.append(actor.held.remote(gate, v) if v == 0 else actor.double.remote(v))
        return refs[-1]

    results = pool.map(call, range(6))
    assert ray.wait(refs[1:2], timeout=60)[0] == refs[1:2]  # the second call is done...
    assert ray.wait(refs[:1], timeout=0)[0] == []  # ...before the first
    gate.put("open")
    assert list(results) == [0, 2, 4, 6, 8, 10]


def test_map_unordered_yields_what_finished_first(workers, gate):
    pool = ActorPool(workers)
    results = pool.map_unordered(lambda a, v: a.held.remote(gate, v) if v == 0 else a.double.remote(v), [0, 1, 2])
    assert next(results) == 2  # value 0 is held, so 1 (doubled) comes first, then 2
    assert next(results) == 4
    gate.put("open")
    assert list(results) == [0]


def test_ray_util_names():
    assert ray.util.ActorPool is ActorPool  # `ray.util.ActorPool` after `import nbcluster as ray`
    assert ray.util.scheduling_strategies.NodeAffinitySchedulingStrategy


def test_submit_queues_until_an_actor_is_free(workers):
    pool = ActorPool(workers[:1])
    assert pool.has_free() and not pool.has_next()
    for v in (1, 2, 3):
        pool.submit(double, v)
    assert not pool.has_free() and pool.pop_idle() is None and pool.has_next()
    assert [pool.get_next(), pool.get_next(), pool.get_next()] == [2, 4, 6]
    assert not pool.has_next() and pool.has_free()
    with pytest.raises(StopIteration):
        pool.get_next()
    with pytest.raises(StopIteration):
        pool.get_next_unordered()
    pool.submit(double, 100)
    pool.submit(lambda a, v: a.fail.remote(v), 0)
    assert list(pool.map(double, [1, 2])) == [2, 4]  # what was not taken is dropped, errors too
    pool.submit(double, 100)
    assert sorted(pool.map_unordered(double, [1, 2])) == [2, 4]


def test_pop_idle_and_push(workers):
    pool = ActorPool(workers[:1])
    popped = pool.pop_idle()
    assert popped == workers[0] and pool.pop_idle() is None and not pool.has_free()
    pool.submit(double, 5)  # no actor: it waits for one
    assert not pool.has_next()
    pool.push(popped)  # the waiting submission takes it
    assert pool.has_next() and pool.get_next() == 10
    with pytest.raises(ValueError, match="already belongs"):
        pool.push(popped)
    pool.submit(double, 1)
    with pytest.raises(ValueError, match="already belongs"):
        pool.push(popped)  # busy counts too
    assert pool.get_next() == 2
    pool.push(workers[1])
    assert sorted(pool.map_unordered(double, [1, 2, 3, 4])) == [2, 4, 6, 8]


def test_get_next_timeout_keeps_or_drops_the_call(workers, gate):
    pool = ActorPool(workers[:1])
    pool.submit(lambda a, v: a.held.remote(gate, v), 7)
    with pytest.raises(TimeoutError, match="Timed out"):
        pool.get_next(timeout=0.1)
    assert pool.has_next()  # still pending
    with pytest.raises(ray.exceptions.GetTimeoutError, match="has been ignored"):
        pool.get_next(timeout=0.1, ignore_if_timedout=True)
    assert not pool.has_next() and pool.has_free()  # dropped; the actor is back
    pool.submit(double, 4)  # queues behind the held call on the actor
    gate.put("open")
    assert pool.get_next(timeout=60) == 8


def test_get_next_unordered_timeout(workers, gate):
    pool = ActorPool(workers)
    pool.submit(lambda a, v: a.held.remote(gate, v), 1)
    pool.submit(lambda a, v: a.held.remote(gate, v), 2)
    with pytest.raises(TimeoutError):
        pool.get_next_unordered(timeout=0.1)
    gate.put("open")
    first = pool.get_next_unordered(timeout=60)
    with pytest.raises(ray.exceptions.GetTimeoutError, match="has been ignored"):
        pool.get_next_unordered(timeout=0.1, ignore_if_timedout=True)
    assert not pool.has_next() and first in (1, 2)
    gate.put("open")  # lets the dropped call end


def test_get_next_after_get_next_unordered_is_refused(workers, gate):
    pool = ActorPool(workers)
    pool.submit(lambda a, v: a.held.remote(gate, v), 1)
    pool.submit(double, 2)
    assert pool.get_next_unordered(timeout=60) == 4  # the second call, out of order
    with pytest.raises(ValueError, match="get_next_unordered"):
        pool.get_next()
    gate.put("open")
    assert pool.get_next_unordered(timeout=60) == 1


def test_errors_reach_the_caller_and_the_actor_stays(workers):
    pool = ActorPool(workers[:1])
    pool.submit(lambda a, v: a.fail.remote(v), 3)
    pool.submit(double, 3)
    with pytest.raises(ValueError, match="bad value 3"):
        pool.get_next()
    assert pool.get_next() == 6 and pool.has_free()


def test_a_dead_actor_leaves_the_pool():
    doomed, spare = Worker.remote(), Worker.remote()
    pool = ActorPool([spare, doomed])  # submit takes the last idle actor first
    pool.submit(lambda a, v: a.die.remote(v), 0)
    pool.submit(double, 1)
    pool.submit(double, 2)  # waits for an actor
    with pytest.raises(ray.exceptions.RayActorError):
        pool.get_next(timeout=60)
    assert [pool.get_next(timeout=60), pool.get_next(timeout=60)] == [2, 4]
    assert pool.pop_idle() == spare and pool.pop_idle() is None  # the dead one is gone
