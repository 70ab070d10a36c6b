"""``nbcluster.util.multiprocessing.Pool`` with real actors, as a drop-in for
``multiprocessing.Pool``: every method, chunking, order, errors raised from the
workers, ``AsyncResult``, timeouts, callbacks, initializers, close/join/terminate.

Calls that must stay unfinished wait on a gate (a ``nbcluster.util.queue.Queue``), so
no assertion depends on timing."""

from __future__ import annotations

import itertools
import multiprocessing
import os
import threading

import pytest

import nbcluster as ray
from nbcluster.util.multiprocessing import Pool, TimeoutError
from nbcluster.util.multiprocessing.results import RemoteTraceback
from nbcluster.util.queue import Queue

from ..conftest import wait_for

pytestmark = pytest.mark.usefixtures("cluster")

_greeting = "unset"


def square(x):
    return x * x


def fails_on_three(x):
    if x == 3:
        raise KeyError(f"no {x}")
    return x


class Unpicklable(Exception):
    def __reduce__(self):
        raise TypeError("not today")


def raises_unpicklable(x):
    raise Unpicklable("odd")


def held(gate, value):
    """``value`` once the test opens ``gate``."""
    gate.get(timeout=60)
    return value


def set_greeting(word, punctuation):
    global _greeting
    _greeting = word + punctuation


def greet(name):
    return f"{_greeting} {name}", os.getpid()


def pid(_):
    return os.getpid()


@pytest.fixture(scope="module")
def pool():
    with Pool(processes=2) as p:
        yield p


@pytest.fixture
def gate():
    q = Queue()
    yield q
    q.shutdown(force=True)


def test_map_starmap_apply(pool):
    assert pool.map(square, range(10)) == [x * x for x in range(10)]
    assert pool.map(square, range(7), chunksize=3) == [x * x for x in range(7)]
    assert pool.map(square, []) == [] and pool.map(square, (x for x in range(3))) == [0, 1, 4]
    with pytest.raises(ValueError, match="Chunksize"):
        pool.map(square, range(3), chunksize=0)
    assert pool.starmap(pow, [(2, 3), (3, 2), (10, 0)]) == [8, 9, 1]
    assert pool.starmap(divmod, zip(range(10, 14), itertools.repeat(3)), chunksize=1) == [(3, 1), (3, 2), (4, 0), (4, 1)]
    assert pool.apply(square, (7,)) == 49
    assert pool.apply(int, ("ff",), {"base": 16}) == 255
    assert len(set(pool.map(pid, range(8), chunksize=1))) == 2  # both processes took chunks


def test_errors_raise_the_original_exception_with_the_remote_traceback(pool):
    with pytest.raises(KeyError, match="no 3") as info:
        pool.map(fails_on_three, range(6))
    assert type(info.value) is KeyError  # the class itself, as multiprocessing raises it
    cause = info.value.__cause__
    assert isinstance(cause, RemoteTraceback) and "fails_on_three" in str(cause)
    with pytest.raises(KeyError):
        pool.apply(fails_on_three, (3,))
    with pytest.raises(KeyError):
        pool.starmap(fails_on_three, [(1,), (3,)])
    with pytest.raises(RuntimeError, match="Unpicklable: odd .*could not be pickled"):
        pool.apply(raises_unpicklable, (1,))
    assert pool.map(square, [2]) == [4]  # the processes are still there


def test_async_result_get_wait_ready_successful(pool, gate):
    result = pool.apply_async(held, (gate, "done"))
    assert not result.ready()
    with pytest.raises(ValueError, match="not ready"):
        result.successful()
    with pytest.raises(TimeoutError):
        result.get(timeout=0.1)
    assert TimeoutError is multiprocessing.TimeoutError
    result.wait(0.1)
    assert not result.ready()
    gate.put("open")
    result.wait(60)
    assert result.ready() and result.successful() and result.get(timeout=1) == "done"
    failed = pool.map_async(fails_on_three, range(5))
    failed.wait(60)
    assert failed.ready() and not failed.successful()
    with pytest.raises(KeyError):
        failed.get()
    assert pool.starmap_async(pow, [(2, 5)]).get(timeout=60) == [32]


def test_callbacks_run_before_get_returns(pool):
    seen = []
    done = pool.map_async(square, range(4), callback=seen.append, error_callback=lambda e: seen.append(("err", e)))
    assert done.get(timeout=60) == [0, 1, 4, 9] and seen == [[0, 1, 4, 9]]
    threads = []
    one = pool.apply_async(square, (5,), callback=lambda v: threads.append((v, threading.current_thread().name)))
    assert one.get(timeout=60) == 25 and threads == [(25, "pool-callbacks")]
    errors = []
    bad = pool.starmap_async(fails_on_three, [(1,), (3,)], callback=seen.append, error_callback=errors.append)
    bad.wait(60)
    assert len(errors) == 1 and isinstance(errors[0], KeyError) and len(seen) == 1


def test_imap_keeps_order_and_imap_unordered_does_not(pool, gate):
    assert list(pool.imap(square, range(7))) == [x * x for x in range(7)]
    assert list(pool.imap(square, range(7), chunksize=3)) == [x * x for x in range(7)]
    assert sorted(pool.imap_unordered(square, range(7), chunksize=2)) == sorted(x * x for x in range(7))
    args = [(gate, "held"), (None, "free")]
    unordered = pool.imap_unordered(_call_held, args)
    assert next(unordered) == "free"  # the held call is still running
    ordered = pool.imap(_call_held, args)
    with pytest.raises(TimeoutError):
        ordered.next(timeout=0.2)  # its first item is held
    gate.put("open")
    gate.put("open")
    assert list(unordered) == ["held"] and list(ordered) == ["held", "free"]


def _call_held(arg):
    gate, value = arg
    return value if gate is None else held(gate, value)


def test_imap_reads_its_input_lazily_and_raises_at_the_failed_item(pool):
    first = list(itertools.islice(pool.imap(square, itertools.count()), 5))  # an endless input
    assert first == [0, 1, 4, 9, 16]
    results = pool.imap(fails_on_three, range(5))
    assert [next(results) for _ in range(3)] == [0, 1, 2]
    with pytest.raises(KeyError):
        next(results)
    assert list(results) == [4]  # iteration goes on after an error, as multiprocessing


def test_initializer_runs_in_every_process():
    with Pool(processes=2, initializer=set_greeting, initargs=("hello", "!")) as p:
        out = p.map(greet, ["a", "b", "c", "d"], chunksize=1)
    assert [text for text, _ in out] == ["hello! a", "hello! b", "hello! c", "hello! d"]
    assert len({worker for _, worker in out}) == 2


def test_maxtasksperchild_replaces_processes():
    with Pool(processes=1, maxtasksperchild=1) as p:
        pids = p.map(pid, range(3), chunksize=1)
    assert len(set(pids)) == 3


def test_ray_remote_args_are_the_actors_options():
    with Pool(processes=1, ray_remote_args={"num_cpus": 1}) as p:  # the default holds no CPU
        wait_for(lambda: ray.available_resources().get("CPU") == 1, message="the pool's process holds a CPU")
        assert p.map(square, [3]) == [9]
    wait_for(lambda: ray.available_resources().get("CPU") == 2, message="the CPU returned")


def test_processes_must_fit_the_cluster():
    with pytest.raises(ValueError, match=">0"):
        Pool(processes=0)
    with pytest.raises(ValueError, match="only 2 CPUs"):
        Pool(processes=3)


def test_close_lets_work_finish_then_join_waits_for_the_processes(gate):
    p = Pool(processes=2)
    pending = p.apply_async(held, (gate, "finished"))
    with pytest.raises(ValueError, match="still running"):
        p.join()
    p.close()
    for call in (lambda: p.map(square, [1]), lambda: p.apply_async(square, (1,)), lambda: p.imap(square, [1])):
        with pytest.raises(ValueError, match="Pool not running"):
            call()
    gate.put("open")
    p.join()
    assert pending.get(timeout=1) == "finished"
    with pytest.raises(ValueError, match="Pool not running"):
        p.__enter__()


def test_terminate_stops_work_in_progress(gate):
    with Pool(processes=1) as p:
        pending = p.apply_async(held, (gate, "never"))
    with pytest.raises(ray.exceptions.RayActorError):
        pending.get(timeout=60)  # __exit__ terminated the pool
    assert not pending.successful()
    p.join()
