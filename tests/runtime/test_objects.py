"""Objects: inline and shared-memory values, zero-copy reads, reference counting
across processes, the store's bound and spilling."""

from __future__ import annotations

import gc
import os
import time

import numpy as np
import pytest

import nbcluster
from nbcluster.exceptions import OwnerDiedError
from nbcluster.runtime.core import worker_state

from ..conftest import node_stats, wait_for

MiB = 1 << 20


def rss_anon() -> int:
    """This process's private anonymous memory (a copy of a value lands here)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no RssAnon in /proc/self/status")


def mapped_file_of(address: int) -> str | None:
    with open("/proc/self/maps") as f:
        for line in f:
            parts = line.split()
            start, end = (int(x, 16) for x in parts[0].split("-"))
            if start <= address < end:
                return parts[5] if len(parts) > 5 else None
    return None


def owned_entries() -> int:
    return len(worker_state.current.refs.entries)


@nbcluster.remote
def total(arr):
    return float(arr.sum())


@nbcluster.remote
def megabyte(i):
    return np.full(MiB // 8, i, dtype=np.float64)


class TestSharedCluster:
    @pytest.fixture(autouse=True)
    def _cluster(self, cluster):
        pass

    def test_put_get_values(self):
        values = [None, 1, "text", b"bytes", {"a": [1, 2.5]}, np.arange(10), (1, "two")]
        for value in values:
            got = nbcluster.get(nbcluster.put(value))
            if isinstance(value, np.ndarray):
                assert (got == value).all()
            else:
                assert got == value

    def test_small_arrays_come_back_writable_large_ones_read_only(self):
        small = nbcluster.get(nbcluster.put(np.zeros(10)))
        small[0] = 1  # an inline value is the getter's own copy
        large = nbcluster.get(nbcluster.put(np.zeros(MiB)))
        assert not large.flags.writeable
        with pytest.raises(ValueError, match="read-only"):
            large[0] = 1

    def test_get_of_200mb_array_is_zero_copy(self):
        arr = np.random.default_rng(0).random(25_000_000)  # 200 MB
        ref = nbcluster.put(arr)
        expected = float(arr.sum())
        del arr
        gc.collect()
        anon_before = rss_anon()
        start = time.perf_counter()
        got = nbcluster.get(ref)
        elapsed = time.perf_counter() - start
        assert float(got.sum()) == expected  # every page read
        grown = rss_anon() - anon_before
        # The array is a view into the node's shared-memory arena, not a copy.
        path = mapped_file_of(got.ctypes.data)
        assert path is not None and "/nbcluster-" in path and path.endswith("/arena")
        assert not got.flags.writeable
        assert grown < 20 * MiB, f"get copied: private memory grew by {grown / MiB:.0f} MiB"
        print(f"get of 200 MB took {elapsed * 1e3:.1f} ms")  # the mapping above is the proof, not the time

    def test_task_reads_large_argument_from_shared_memory(self):
        arr = np.arange(2_000_000, dtype=np.float64)
        assert nbcluster.get(total.remote(nbcluster.put(arr))) == float(arr.sum())
        assert nbcluster.get(total.remote(arr)) == float(arr.sum())  # by value: stored for the task

    def test_many_tasks_with_large_arguments_by_value(self):
        # Each call stores its argument; the worker may ask for it before the
        # driver's seal reaches the node manager.
        arr = np.ones(MiB // 8)
        for _ in range(3):
            assert nbcluster.get([total.remote(arr) for _ in range(100)]) == [float(MiB // 8)] * 100

    def test_put_del_loop_leaves_usage_flat(self):
        gc.collect()
        wait_for(lambda: node_stats().num_objects == 0, message="an empty store")
        base = owned_entries()
        for i in range(10_000):
            ref = nbcluster.put(i)
            del ref
        for i in range(100):
            ref = nbcluster.put(np.full(MiB // 8, i, dtype=np.float64))
            del ref
        wait_for(lambda: owned_entries() <= base, message="the driver's table back to its size")
        wait_for(lambda: node_stats().num_objects == 0 and node_stats().store_used == 0,
                 message="the store empty again")

    def test_tasks_returning_1mb_leave_usage_flat(self):
        wait_for(lambda: node_stats().num_objects == 0, message="an empty store")
        base = owned_entries()
        peak = 0
        for start in range(0, 1000, 100):
            refs = [megabyte.remote(i) for i in range(start, start + 100)]
            values = nbcluster.get(refs)
            assert values[-1][0] == start + 99
            peak = max(peak, node_stats().store_used)
            del refs, values
        assert peak >= 100 * MiB
        wait_for(lambda: node_stats().store_used == 0 and node_stats().num_objects == 0,
                 message="the store empty after 1,000 results")
        wait_for(lambda: owned_entries() <= base, message="the driver's table back to its size")

    def test_task_argument_keeps_object_alive_after_driver_drops_it(self):
        @nbcluster.remote(max_retries=0)
        def hold_and_report(refs, hold_seconds):
            import nbcluster as nb

            held = list(refs)
            time.sleep(hold_seconds)
            return float(nb.get(held[0]).sum())

        big = nbcluster.put(np.ones(MiB))  # 8 MB: in shared memory
        count = node_stats().num_objects
        result = hold_and_report.remote([big], 1.0)
        del big  # the task's argument still holds it
        gc.collect()
        assert nbcluster.get(result) == float(MiB)
        wait_for(lambda: node_stats().num_objects == count - 1, message="the object freed after the task")

    def test_ref_kept_by_a_worker_after_its_task_keeps_object_alive(self, tmp_path):
        release = tmp_path / "release"

        @nbcluster.remote
        def keep_in_background(refs, flag):
            import threading

            held = list(refs)

            def hold():
                while not os.path.exists(flag):
                    time.sleep(0.02)
                held.clear()  # the last reference in this worker goes

            threading.Thread(target=hold, daemon=True).start()
            return "returned while still holding"

        wait_for(lambda: node_stats().num_objects == 0, message="an empty store")
        big = nbcluster.put(np.ones(MiB))
        assert nbcluster.get(keep_in_background.remote([big], str(release))) == "returned while still holding"
        del big
        gc.collect()
        time.sleep(0.5)  # give a premature free the chance to happen
        assert node_stats().num_objects == 1, "freed while a worker still borrowed it"
        release.touch()
        wait_for(lambda: node_stats().num_objects == 0, message="the object freed once the worker let go")

    def test_refs_nested_in_put_live_as_long_as_the_container(self):
        wait_for(lambda: node_stats().num_objects == 0, message="an empty store")
        inner = nbcluster.put(np.ones(MiB))
        outer = nbcluster.put({"inner": inner})
        del inner
        gc.collect()
        time.sleep(0.3)
        assert node_stats().num_objects == 1
        assert float(nbcluster.get(nbcluster.get(outer)["inner"]).sum()) == float(MiB)
        del outer
        gc.collect()
        wait_for(lambda: node_stats().num_objects == 0, message="inner freed with its container")

    def test_object_owned_by_a_task_that_returned_it(self):
        @nbcluster.remote
        def make():
            return [nbcluster.put(np.ones(MiB))]

        wait_for(lambda: node_stats().num_objects == 0, message="an empty store")
        (inner,) = nbcluster.get(make.remote())
        time.sleep(0.3)
        assert float(nbcluster.get(inner).sum()) == float(MiB)
        del inner
        gc.collect()
        wait_for(lambda: node_stats().num_objects == 0, message="freed once the driver let go")

    def test_owner_death_makes_borrowed_object_lost(self):
        @nbcluster.remote(max_retries=0)
        def make_and_report():
            return [nbcluster.put(np.ones(MiB))], os.getpid()

        refs, owner_pid = nbcluster.get(make_and_report.remote())
        os.kill(owner_pid, 9)
        with pytest.raises(OwnerDiedError, match="owner"):
            nbcluster.get(refs[0], timeout=30)

    def test_put_of_a_ref_is_refused(self):
        ref = nbcluster.put(1)
        with pytest.raises(TypeError, match="put\\(\\) of an ObjectRef"):
            nbcluster.put(ref)
