"""Generator tasks (Ray's ``num_returns="streaming"`` and ``"dynamic"``) on a shared
cluster: items reach the caller while the task runs, iteration in every form, wait,
errors at an item, backpressure, actor and async actor generators, cancel, worker
death, large items in the store."""

from __future__ import annotations

import asyncio
import os
import pickle

import numpy as np
import pytest

import nbcluster
from nbcluster.exceptions import RayTaskError, TaskCancelledError, WorkerCrashedError
from nbcluster.util.queue import Queue

from ..conftest import wait_for

pytestmark = pytest.mark.usefixtures("cluster")


@nbcluster.remote
def gated(n, gate):
    """Yields 0..n-1, each after the test opens the gate once (the first at once)."""
    for i in range(n):
        if i:
            gate.get(timeout=60)
        yield i


@nbcluster.remote
def count(n):
    for i in range(n):
        yield i


def test_items_arrive_before_the_task_ends():
    gate = Queue()
    gen = gated.remote(3, gate)
    assert isinstance(gen, nbcluster.ObjectRefGenerator)
    for i in range(3):
        ref = next(gen)
        assert nbcluster.get(ref, timeout=30) == i
        if i < 2:  # the task waits for the gate: it has not ended
            ready, _ = nbcluster.wait([gen.completed()], timeout=0)
            assert not ready
            gate.put(None)
    with pytest.raises(StopIteration):
        next(gen)
    assert nbcluster.get(gen.completed(), timeout=30) is None


def test_for_next_list_and_defaults():
    assert [nbcluster.get(r) for r in count.remote(4)] == [0, 1, 2, 3]
    gen = count.options(num_returns="streaming").remote(2)
    assert nbcluster.get(next(gen)) == 0
    assert nbcluster.get(next(gen)) == 1
    assert next(gen, "end") == "end"
    assert list(count.remote(0)) == []
    assert gen.is_finished()


def test_async_for_and_anext():
    async def consume():
        gen = count.remote(3)
        first = await (await gen.__anext__())
        rest = [await ref async for ref in gen]
        with pytest.raises(StopAsyncIteration):
            await gen.__anext__()
        return [first, *rest]

    assert asyncio.run(consume()) == [0, 1, 2]


def test_wait_counts_a_generator_ready_when_next_would_not_block():
    gate = Queue()
    gen = gated.remote(2, gate)
    ready, _ = nbcluster.wait([gen], timeout=30)
    assert ready == [gen]
    assert nbcluster.get(next(gen)) == 0
    plain = nbcluster.put("x")
    ready, not_ready = nbcluster.wait([gen, plain], num_returns=2, timeout=0.2)
    assert ready == [plain] and not_ready == [gen]  # item 1 waits for the gate
    gate.put(None)
    ready, _ = nbcluster.wait([gen, plain], num_returns=2, timeout=30)
    assert ready == [gen, plain] and gen.next_ready()
    assert nbcluster.get(next(gen)) == 1
    ready, _ = nbcluster.wait([gen], timeout=30)  # the end: next() stops at once
    assert ready == [gen]
    assert next(gen, None) is None


def test_an_exception_is_raised_at_its_item():
    @nbcluster.remote
    def fails_at(k):
        for i in range(5):
            if i == k:
                raise ValueError(f"bad item {i}")
            yield i

    refs = list(fails_at.remote(2))
    assert len(refs) == 3
    assert nbcluster.get(refs[:2]) == [0, 1]
    with pytest.raises(ValueError, match="bad item 2") as info:
        nbcluster.get(refs[2])
    assert isinstance(info.value, RayTaskError)
    # the task's own completion is not an error (the error was the item), as Ray
    gen = fails_at.remote(0)
    with pytest.raises(ValueError):
        nbcluster.get(next(gen))
    assert next(gen, None) is None
    assert nbcluster.get(gen.completed()) is None


def test_backpressure_pauses_the_generator(tmp_path):
    record = tmp_path / "started"

    @nbcluster.remote(_generator_backpressure_num_objects=2)
    def producer(path, n):
        for i in range(n):
            with open(path, "a") as f:
                f.write(f"{i}\n")  # the task records how far it got
            yield i

    def started() -> int:
        return record.read_text().count("\n") - 1 if record.exists() else -1

    gen = producer.remote(str(record), 8)
    wait_for(lambda: gen._stream.read + 2 <= len(gen._stream.items), message="two unconsumed items")
    ready, _ = nbcluster.wait([gen.completed()], timeout=1.0)  # time to run ahead, if it did
    assert not ready and started() == 1
    for consumed in range(1, 9):
        assert nbcluster.get(next(gen)) == consumed - 1
        assert started() <= consumed + 1  # never more than 2 items ahead of the consumer
    assert next(gen, None) is None

    # the same generator without backpressure runs to its end unconsumed
    free = producer.options(_generator_backpressure_num_objects=-1).remote(str(tmp_path / "free"), 8)
    assert nbcluster.get(free.completed(), timeout=30) is None
    assert (tmp_path / "free").read_text().split() == [str(i) for i in range(8)]


def test_generator_options_are_checked():
    with pytest.raises(ValueError, match="streaming"):
        count.options(num_returns="lots")
    with pytest.raises(ValueError, match="-1"):
        count.options(_generator_backpressure_num_objects=0)
    gen = count.remote(1)
    with pytest.raises(TypeError, match="next"):
        nbcluster.get(gen)
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(gen)
    with pytest.raises(NotImplementedError):
        gen.send(None)
    assert nbcluster.get(next(gen)) == 0


@nbcluster.remote
class Streamer:
    def __init__(self) -> None:
        self.calls = 0

    def numbers(self, n):
        for i in range(n):
            yield i * 10

    @nbcluster.method(num_returns="dynamic")
    def batch(self, n):
        for i in range(n):
            yield i

    def gated(self, gate, n):
        for i in range(n):
            if i:
                gate.get(timeout=60)
            yield i


@nbcluster.remote
class AsyncStreamer:
    async def numbers(self, n):
        for i in range(n):
            await asyncio.sleep(0)
            yield i * 100

    async def gated(self, gate, n):
        for i in range(n):
            if i:
                await gate.get_async(timeout=60)
            yield i


def test_actor_method_generators():
    actor = Streamer.remote()
    assert [nbcluster.get(r) for r in actor.numbers.remote(3)] == [0, 10, 20]
    batch = nbcluster.get(actor.batch.remote(3))
    assert isinstance(batch, nbcluster.DynamicObjectRefGenerator)
    assert nbcluster.get(list(batch)) == [0, 1, 2]
    handle = nbcluster.get(nbcluster.put([actor]))[0]  # a handle made from the actor's record
    assert [nbcluster.get(r) for r in handle.numbers.remote(2)] == [0, 10]


def test_async_actor_generator_streams_while_running():
    actor = AsyncStreamer.remote()
    assert [nbcluster.get(r) for r in actor.numbers.remote(3)] == [0, 100, 200]
    gate = Queue()
    gen = actor.gated.remote(gate, 2)

    async def consume():
        first = await (await gen.__anext__())
        done, _ = await asyncio.wait([asyncio.ensure_future(_aget(gen.completed()))], timeout=0.2)
        assert not done  # the method waits for the gate
        gate.put(None)
        return [first] + [await ref async for ref in gen]

    assert asyncio.run(consume()) == [0, 1]


async def _aget(ref):
    return await ref


def test_cancel_mid_stream():
    gate = Queue()
    gen = gated.remote(3, gate)
    first = next(gen)
    assert nbcluster.get(first, timeout=30) == 0
    nbcluster.cancel(gen)
    last = next(gen)
    with pytest.raises(TaskCancelledError):
        nbcluster.get(last, timeout=30)
    assert next(gen, None) is None
    assert nbcluster.get(first) == 0  # the items before stay valid


def test_cancel_actor_generators():
    # an async actor's generator is cancelled at its await
    actor = AsyncStreamer.remote()
    gate = Queue()
    gen = actor.gated.remote(gate, 3)
    assert nbcluster.get(next(gen), timeout=30) == 0
    nbcluster.cancel(gen)
    with pytest.raises(TaskCancelledError):
        nbcluster.get(next(gen), timeout=30)
    assert next(gen, None) is None
    # a synchronous actor's generator is not resumed once cancelled
    sync_actor = Streamer.remote()
    gate2 = Queue()
    gen = sync_actor.gated.remote(gate2, 5)
    assert nbcluster.get(next(gen), timeout=30) == 0
    nbcluster.cancel(gen)
    gate2.put(None)  # lets the running step end: it yields 1, then stops
    values = []
    with pytest.raises(TaskCancelledError):
        for ref in gen:
            values.append(nbcluster.get(ref, timeout=30))
    assert values in ([], [1])
    assert nbcluster.get(sync_actor.numbers.remote(1).completed(), timeout=30) is None  # the actor lives on


def test_worker_death_mid_stream(tmp_path):
    @nbcluster.remote(max_retries=0)
    def dies(gate):
        yield 0
        gate.get(timeout=60)
        os._exit(1)

    gate = Queue()
    gen = dies.remote(gate)
    first = next(gen)
    assert nbcluster.get(first, timeout=30) == 0
    gate.put(None)
    with pytest.raises(WorkerCrashedError):
        nbcluster.get(next(gen), timeout=30)
    assert next(gen, None) is None
    assert nbcluster.get(first) == 0


def test_retried_generator_resumes_without_repeating_items(tmp_path):
    marker = tmp_path / "died-once"

    @nbcluster.remote(max_retries=1)
    def flaky(path, n):
        for i in range(n):
            yield i
            if i == 2 and not os.path.exists(path):
                open(path, "w").close()
                os._exit(1)  # the first attempt dies after 3 items; the retry runs again

    assert [nbcluster.get(r, timeout=30) for r in flaky.remote(str(marker), 5)] == [0, 1, 2, 3, 4]
    assert marker.exists()


def test_large_items_live_in_the_store():
    @nbcluster.remote
    def arrays(n):
        for i in range(n):
            yield np.full(64 * 1024, i, dtype=np.float32)  # 256 KiB each

    refs = list(arrays.remote(3))
    values = nbcluster.get(refs)
    assert [v[0] for v in values] == [0, 1, 2] and all(v.nbytes == 256 * 1024 for v in values)
    from nbcluster.runtime.core import worker_state

    entries = worker_state.current.refs.entries
    assert all(entries[r._id].payload.node_id for r in refs)  # in the node's store, not inline


def test_dynamic_returns_one_ref_of_refs():
    @nbcluster.remote(num_returns="dynamic")
    def split(n):
        for i in range(n):
            yield np.full(40_000, i, dtype=np.float64)  # 320 KiB: stored

    ref = split.remote(3)
    assert isinstance(ref, nbcluster.ObjectRef)
    dynamic = nbcluster.get(ref)
    assert isinstance(dynamic, nbcluster.DynamicObjectRefGenerator) and len(dynamic) == 3
    assert [a[0] for a in nbcluster.get(list(dynamic))] == [0, 1, 2]

    @nbcluster.remote(num_returns="dynamic")
    def broken():
        yield 1
        raise KeyError("dynamic failure")

    with pytest.raises(KeyError):
        nbcluster.get(broken.remote())
