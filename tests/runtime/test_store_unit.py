"""The node's object store and its allocator, without processes: invariants under
concurrent creates, spills, restores, pins and frees."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest

from nbcluster.runtime.objects.allocator import PAGE, Allocator, round_up
from nbcluster.runtime.objects.store import ObjectState, ObjectStore


def oid(n: int) -> bytes:
    return n.to_bytes(20, "little")


@pytest.fixture
def make_store(tmp_path):
    stores = []
    shm = Path("/dev/shm")

    def make(pages: int, timeout: float = 1.0) -> ObjectStore:
        directory = shm / f"nbcluster-unit-{id(stores)}-{len(stores)}"
        spill = tmp_path / f"spill{len(stores)}"
        spill.mkdir()
        store = ObjectStore(directory, spill, pages * PAGE, timeout)
        stores.append(store)
        return store

    yield make
    for store in stores:
        store.close()


def check_invariants(store: ObjectStore) -> None:
    resident = [e for e in store.entries.values() if e.offset >= 0]
    assert store.used == sum(round_up(e.size) for e in resident)
    spans = sorted((e.offset, e.offset + round_up(e.size)) for e in resident)
    for (_, end), (start, _) in zip(spans, spans[1:]):
        assert end <= start, "two objects share arena memory"
    for entry in store.entries.values():
        spilled = store.spill_dir / entry.object_id.hex()
        assert spilled.exists() == (entry.state is ObjectState.SPILLED)


def test_allocator_matches_a_model():
    rng = random.Random(7)
    alloc = Allocator(256 * PAGE)
    live: dict[int, int] = {}
    for _ in range(3000):
        if live and rng.random() < 0.45:
            offset = rng.choice(list(live))
            alloc.free(offset, live.pop(offset))
        else:
            size = rng.randint(1, 20) * PAGE - rng.randint(0, PAGE - 1)
            offset = alloc.alloc(size)
            if offset is None:
                assert alloc.largest_free() < round_up(size)
                continue
            live[offset] = size
        spans = sorted((o, o + round_up(s)) for o, s in live.items())
        assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))
        assert alloc.free_bytes == alloc.capacity - sum(round_up(s) for s in live.values())
    for offset, size in live.items():
        alloc.free(offset, size)
    assert alloc.largest_free() == alloc.capacity  # fully coalesced


def test_concurrent_creates_that_must_spill(make_store):
    async def scenario() -> None:
        store = make_store(10)
        for i in range(10):
            await store.create(oid(i), PAGE, b"owner")
            store.seal([oid(i)])
        a, b = await asyncio.gather(
            store.create(oid(100), 3 * PAGE, b"owner"), store.create(oid(101), 3 * PAGE, b"owner")
        )
        assert a != b
        check_invariants(store)
        assert sum(e.state is ObjectState.SPILLED for e in store.entries.values()) == 6
        pins: dict[bytes, int] = {}
        store.seal([oid(100), oid(101)])
        store.free([oid(100), oid(101)])
        for i in range(10):  # every spilled object comes back whole
            (found,) = await store.get([oid(i)], pins)
            assert found is not None
            store.release([oid(i)], pins)
            check_invariants(store)

    asyncio.run(scenario())


def test_disconnect_releases_every_pin(make_store):
    async def scenario() -> None:
        store = make_store(4)
        await store.create(oid(1), PAGE, b"owner")
        store.seal([oid(1)])
        pins: dict[bytes, int] = {}
        await store.get([oid(1)], pins)
        await store.get([oid(1)], pins)
        store.free([oid(1)])
        assert oid(1) in store.entries  # freed while pinned: kept
        store.release_all(pins)
        assert oid(1) not in store.entries and store.used == 0

    asyncio.run(scenario())


def test_cancelled_restore_frees_its_block(make_store, monkeypatch):
    async def scenario() -> None:
        store = make_store(4, timeout=5.0)
        for i in (1, 2):
            await store.create(oid(i), 2 * PAGE, b"o")
            store.seal([oid(i)])
        await store.create(oid(3), 2 * PAGE, b"o")  # spills object 1
        store.seal([oid(3)])
        store.free([oid(3)])
        assert store.entries[oid(1)].state is ObjectState.SPILLED
        original = ObjectStore._copy_in

        def slow_copy(self, *args):
            import time

            time.sleep(0.3)
            return original(self, *args)

        monkeypatch.setattr(ObjectStore, "_copy_in", slow_copy)
        task = asyncio.create_task(store.get([oid(1)], {}))
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0.4)
        check_invariants(store)
        assert store.entries[oid(1)].state is ObjectState.SPILLED and store.entries[oid(1)].pins == 0

    asyncio.run(scenario())


def test_create_of_a_retried_objects_id_replaces_the_old_copy(make_store):
    async def scenario() -> None:
        store = make_store(8)
        first = await store.create(oid(1), PAGE, b"o")
        assert await store.create(oid(1), PAGE, b"o") == first  # a repeated create
        store.seal([oid(1)])
        await store.create(oid(1), 3 * PAGE, b"o")  # a retry that produced a larger value
        assert store.entries[oid(1)].size == 3 * PAGE
        check_invariants(store)

    asyncio.run(scenario())


def test_a_reader_ahead_of_the_seal_waits_for_it(make_store):
    async def scenario() -> None:
        store = make_store(4)
        offset = await store.create(oid(1), PAGE, b"writer")
        reader = asyncio.create_task(store.get([oid(1)], {}))
        await asyncio.sleep(0.05)
        assert not reader.done()  # not missing: the writer has not sealed yet
        store.seal([oid(1)])
        assert await reader == [(offset, PAGE)]

    asyncio.run(scenario())
