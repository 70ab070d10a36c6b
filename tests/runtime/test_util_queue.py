"""``nbcluster.util.queue.Queue`` with real processes: blocking and non-blocking calls,
timeouts, ``Empty``/``Full``, batches, ``async`` use, a queue passed into tasks and
actors (producers and consumers), shutdown — as ``ray.util.queue``."""

from __future__ import annotations

import asyncio
import queue
import time

import pytest

import nbcluster as ray
from nbcluster.util.queue import Empty, Full, Queue

pytestmark = pytest.mark.usefixtures("cluster")


@pytest.fixture
def q():
    made = []

    def make(**kwargs):
        made.append(Queue(**kwargs))
        return made[-1]

    yield make
    for one in made:
        one.shutdown(force=True)


@ray.remote
def produce(q: Queue, items: list) -> int:
    for item in items:
        q.put(item, timeout=60)
    return len(items)


@ray.remote
class Consumer:
    def take(self, q: Queue, n: int) -> list:
        return [q.get(timeout=60) for _ in range(n)]


@ray.remote
def hand_back(q: Queue) -> Queue:
    q.put("from the task")
    return q


def test_fifo_and_sizes(q):
    q = q()
    assert q.empty() and not q.full() and q.size() == q.qsize() == len(q) == 0
    for item in ("a", {"b": 2}, [3]):
        q.put(item)
    assert q.qsize() == 3 and not q.empty() and not q.full()  # maxsize 0: never full
    assert [q.get(), q.get_nowait(), q.get(block=False)] == ["a", {"b": 2}, [3]]
    assert q.empty()


def test_full_and_empty_without_blocking(q):
    q = q(maxsize=2)
    q.put_nowait(1)
    q.put(2, block=False)
    assert q.full() and q.maxsize == 2
    with pytest.raises(Full):
        q.put_nowait(3)
    with pytest.raises(queue.Full):  # the standard library's class catches it too
        q.put(3, block=False)
    assert [q.get_nowait(), q.get_nowait()] == [1, 2]
    with pytest.raises(Empty):
        q.get_nowait()
    with pytest.raises(queue.Empty):
        q.get(block=False)


def test_timeouts(q):
    q = q(maxsize=1)
    start = time.monotonic()
    with pytest.raises(Empty):
        q.get(timeout=0.3)
    assert time.monotonic() - start >= 0.3
    q.put("x")
    start = time.monotonic()
    with pytest.raises(Full):
        q.put("y", timeout=0.3)
    assert time.monotonic() - start >= 0.3
    with pytest.raises(ValueError, match="non-negative"):
        q.get(timeout=-1)
    with pytest.raises(ValueError, match="non-negative"):
        q.put("y", timeout=-1)
    assert q.get(timeout=0) == "x" and q.empty()


def test_blocked_put_and_get_resume(q):
    q = q(maxsize=2)
    producer = produce.remote(q, list(range(6)))  # blocks whenever the queue is full
    got = []
    while len(got) < 6:
        assert q.qsize() <= 2
        got.append(q.get(timeout=60))
    assert got == list(range(6)) and ray.get(producer, timeout=60) == 6
    consumer = Consumer.remote()
    taken = consumer.take.remote(q, 2)  # waits in the actor for items
    q.put("late 1")
    q.put("late 2")
    assert ray.get(taken, timeout=60) == ["late 1", "late 2"]


def test_producers_and_consumers_share_one_queue(q):
    q = q(maxsize=3)
    producers = [produce.remote(q, [(p, i) for i in range(5)]) for p in range(2)]
    consumers = [Consumer.remote() for _ in range(2)]
    takes = [c.take.remote(q, 5) for c in consumers]
    assert ray.get(producers, timeout=60) == [5, 5]
    batches = ray.get(takes, timeout=60)
    assert sorted(item for batch in batches for item in batch) == [(p, i) for p in range(2) for i in range(5)]
    for batch in batches:  # each consumer sees each producer's items in the order they were put
        for p in range(2):
            mine = [i for (who, i) in batch if who == p]
            assert mine == sorted(mine)
    assert q.empty()


def test_a_queue_returned_from_a_task_is_the_same_queue(q):
    q = q()
    back = ray.get(hand_back.remote(q), timeout=60)
    assert back.actor == q.actor
    back.put("from the driver")
    assert [q.get(timeout=10), q.get(timeout=10)] == ["from the task", "from the driver"]


def test_batches_are_all_or_nothing(q):
    q = q(maxsize=3)
    q.put_nowait_batch([1, 2])
    with pytest.raises(Full, match="Cannot add 2 items"):
        q.put_nowait_batch([3, 4])
    assert q.qsize() == 2
    q.put_nowait_batch(iter([3]))
    with pytest.raises(Empty, match="Cannot get 4 items"):
        q.get_nowait_batch(4)
    assert q.get_nowait_batch(2) == [1, 2] and q.get_nowait_batch(0) == [] and q.qsize() == 1
    with pytest.raises(TypeError):
        q.put_nowait_batch(5)
    with pytest.raises(TypeError):
        q.get_nowait_batch("2")
    with pytest.raises(ValueError):
        q.get_nowait_batch(-1)


def test_async_put_and_get(q):
    q = q(maxsize=1)

    async def main():
        await q.put_async("a")
        with pytest.raises(Full):
            await q.put_async("b", block=False)
        with pytest.raises(Full):
            await q.put_async("b", timeout=0.2)
        waiter = asyncio.ensure_future(q.put_async("b", timeout=60))  # waits for room
        first = await q.get_async()
        await waiter
        second = await q.get_async(timeout=10)
        with pytest.raises(Empty):
            await q.get_async(block=False)
        with pytest.raises(Empty):
            await q.get_async(timeout=0.2)
        return first, second

    assert asyncio.run(main()) == ("a", "b")


def test_named_queue_actor_and_shutdown(q):
    named = q(actor_options={"name": "util-queue-test"})
    named.put(1)
    found = ray.get_actor("util-queue-test")
    assert found == named.actor and ray.get(found.qsize.remote()) == 1
    named.shutdown()
    with pytest.raises(RuntimeError, match="shut down"):
        named.put(2)
    named.shutdown()  # a second shutdown does nothing
    with pytest.raises(ray.exceptions.RayActorError):
        ray.get(found.qsize.remote(), timeout=30)
    forced = q()
    handle = forced.actor
    waiting = handle.get.remote(None)  # a get blocked in the queue fails when it goes
    forced.shutdown(force=True)
    with pytest.raises(ray.exceptions.ActorDiedError):
        ray.get(waiting, timeout=30)
