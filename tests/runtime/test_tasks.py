"""Remote tasks on a shared embedded cluster: results, options, errors, retries,
cancellation, waiting, nested tasks."""

from __future__ import annotations

import os
import signal
import time

import pytest

import nbcluster
from nbcluster.exceptions import (
    GetTimeoutError,
    TaskCancelledError,
    TaskError,
    WorkerCrashedError,
)

from ..conftest import wait_for

pytestmark = pytest.mark.usefixtures("cluster")


@nbcluster.remote
def add(a, b=0):
    return a + b


@nbcluster.remote
def sleep_then(seconds, value=None):
    time.sleep(seconds)
    return value


@nbcluster.remote
def identity(value):
    return value


def test_remote_returns_ref_and_get_returns_value():
    ref = add.remote(1, b=2)
    assert isinstance(ref, nbcluster.ObjectRef)
    assert nbcluster.get(ref) == 3
    assert nbcluster.get([add.remote(i, i) for i in range(20)]) == [2 * i for i in range(20)]


def test_object_refs_are_hashable_and_picklable():
    import pickle

    ref = add.remote(1)
    same = pickle.loads(pickle.dumps(ref))
    assert same == ref and hash(same) == hash(ref) and len({ref, same}) == 1
    assert nbcluster.get(same) == 1
    assert repr(ref) == f"ObjectRef({ref.hex()})"


def test_top_level_refs_are_resolved_nested_refs_are_passed():
    @nbcluster.remote
    def inspect(x, nested):
        return type(x).__name__, type(nested[0]).__name__, nbcluster.get(nested[0])

    ref = add.remote(5)
    assert nbcluster.get(inspect.remote(ref, [ref])) == ("int", "ObjectRef", 5)


def test_refs_returned_inside_results_stay_usable():
    @nbcluster.remote
    def make():
        return [nbcluster.put("inner value")]

    (inner,) = nbcluster.get(make.remote())
    assert isinstance(inner, nbcluster.ObjectRef)
    assert nbcluster.get(inner) == "inner value"


def test_options_and_num_returns():
    @nbcluster.remote(num_returns=3)
    def three():
        return 1, 2, 3

    a, b, c = three.remote()
    assert nbcluster.get([a, b, c]) == [1, 2, 3]
    x, y = identity.options(num_returns=2).remote((7, 8))
    assert nbcluster.get(y) == 8
    assert add.options(num_returns=0).remote(1) is None


def test_wrong_number_of_returns_is_a_clear_error():
    @nbcluster.remote(num_returns=2)
    def one():
        return 1

    first, _ = one.remote()
    with pytest.raises(ValueError, match="num_returns=2"):
        nbcluster.get(first)


def test_task_error_is_instance_of_original_with_remote_traceback():
    @nbcluster.remote
    def fail(x):
        raise KeyError(f"missing {x}")

    with pytest.raises(KeyError) as info:
        nbcluster.get(fail.remote("k"))
    err = info.value
    assert isinstance(err, TaskError)
    message = str(err)
    assert "Traceback" in message and "missing k" in message and "fail" in message
    assert __file__ in message  # the user's file, not "<dynamic-code>"
    assert isinstance(err.cause, KeyError)


def test_unpicklable_exception_still_reports():
    @nbcluster.remote
    def fail():
        import threading

        class Odd(Exception):
            def __init__(self):
                super().__init__("odd")
                self.lock = threading.Lock()

        raise Odd()

    with pytest.raises(TaskError, match="odd"):
        nbcluster.get(fail.remote())


def test_error_propagates_to_dependent_task():
    @nbcluster.remote
    def fail():
        raise ZeroDivisionError("upstream")

    with pytest.raises(ZeroDivisionError, match="upstream"):
        nbcluster.get(add.remote(fail.remote(), 1))


def test_retry_after_worker_exit():
    marker = f"/tmp/nbc-retry-{os.getpid()}-{time.time_ns()}"

    @nbcluster.remote(max_retries=2)
    def exit_once(path):
        if not os.path.exists(path):
            open(path, "w").close()
            os._exit(1)
        return "second attempt"

    try:
        assert nbcluster.get(exit_once.remote(marker), timeout=60) == "second attempt"
    finally:
        os.unlink(marker)


def test_no_retries_left_raises_worker_crashed():
    @nbcluster.remote(max_retries=1)
    def always_exit():
        os._exit(3)

    with pytest.raises(WorkerCrashedError, match="always_exit"):
        nbcluster.get(always_exit.remote(), timeout=60)


def test_retry_after_kill_from_outside(tmp_path):
    started = tmp_path / "started"

    @nbcluster.remote(max_retries=1)
    def long_task(path):
        if not os.path.exists(path):
            with open(path, "w") as f:
                f.write(str(os.getpid()))
            time.sleep(60)
        return os.getpid()

    ref = long_task.remote(str(started))
    victim = int(wait_for(lambda: started.exists() and started.read_text(), message="the task to start"))
    os.kill(victim, signal.SIGKILL)
    assert nbcluster.get(ref, timeout=60) != victim


def test_retry_exceptions(tmp_path):
    attempts = tmp_path / "attempts"

    @nbcluster.remote(retry_exceptions=True, max_retries=3)
    def flaky(path):
        with open(path, "a") as f:
            f.write("x")
        if len(open(path).read()) < 3:
            raise ConnectionError("transient")
        return "ok"

    assert nbcluster.get(flaky.remote(str(attempts)), timeout=60) == "ok"
    assert attempts.read_text() == "xxx"


def test_retry_exceptions_list_only_retries_those_classes(tmp_path):
    attempts = tmp_path / "attempts"

    @nbcluster.remote(retry_exceptions=[ConnectionError], max_retries=3)
    def wrong_kind(path):
        with open(path, "a") as f:
            f.write("x")
        raise ValueError("not retried")

    with pytest.raises(ValueError, match="not retried"):
        nbcluster.get(wrong_kind.remote(str(attempts)), timeout=60)
    assert attempts.read_text() == "x"

    @nbcluster.remote(max_retries=3)
    def app_error(path):
        with open(path, "a") as f:
            f.write("y")
        raise ConnectionError("app errors are not retried by default")

    with pytest.raises(ConnectionError):
        nbcluster.get(app_error.remote(str(attempts)), timeout=60)
    assert attempts.read_text() == "xy"


def test_get_timeout():
    ref = sleep_then.remote(5)
    start = time.monotonic()
    with pytest.raises(GetTimeoutError):
        nbcluster.get(ref, timeout=0.2)
    assert time.monotonic() - start < 3
    with pytest.raises(TimeoutError):  # a GetTimeoutError is a TimeoutError
        nbcluster.get(ref, timeout=0)
    nbcluster.cancel(ref, force=True)


def test_wait_returns_ready_first_in_input_order():
    slow = sleep_then.remote(2, "slow")
    fast = [add.remote(i) for i in range(3)]
    refs = [slow, *fast]
    ready, not_ready = nbcluster.wait(refs, num_returns=3, timeout=30)
    assert ready == fast and not_ready == [slow]
    ready, not_ready = nbcluster.wait(refs, num_returns=4, timeout=0.01)
    assert slow in not_ready and len(ready) + len(not_ready) == 4
    nbcluster.cancel(slow, force=True)


def test_cancel_queued_task():
    blockers = [sleep_then.remote(3) for _ in range(2)]  # occupy both CPUs
    queued = add.remote(1)
    nbcluster.cancel(queued)
    with pytest.raises(TaskCancelledError):
        nbcluster.get(queued, timeout=10)
    for ref in blockers:
        nbcluster.cancel(ref, force=True)


def test_cancel_running_task_interrupts_it(tmp_path):
    flag = tmp_path / "running"

    @nbcluster.remote
    def spin(path):
        open(path, "w").close()
        time.sleep(60)

    ref = spin.remote(str(flag))
    wait_for(flag.exists, message="the task to start")
    start = time.monotonic()
    nbcluster.cancel(ref)
    with pytest.raises(TaskCancelledError):
        nbcluster.get(ref, timeout=20)
    assert time.monotonic() - start < 10


def test_force_cancel_kills_the_worker(tmp_path):
    flag = tmp_path / "pid"

    @nbcluster.remote
    def stubborn(path):
        with open(path, "w") as f:
            f.write(str(os.getpid()))
        while True:
            try:
                time.sleep(60)
            except KeyboardInterrupt:
                pass

    ref = stubborn.remote(str(flag))
    worker = int(wait_for(lambda: flag.exists() and flag.read_text(), message="the task to start"))
    nbcluster.cancel(ref, force=True)
    with pytest.raises(TaskCancelledError):
        nbcluster.get(ref, timeout=20)
    import psutil

    def exited():
        try:
            return psutil.Process(worker).status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    wait_for(exited, message="the worker to exit")


def test_nested_tasks_three_deep_on_one_task_slot():
    @nbcluster.remote(num_cpus=2)  # each level needs the whole cluster
    def depth(n):
        if n == 0:
            return 0
        return 1 + nbcluster.get(depth.remote(n - 1))

    assert nbcluster.get(depth.remote(4), timeout=60) == 4


def test_runtime_context_in_driver_and_task():
    ctx = nbcluster.get_runtime_context()
    assert ctx.get_task_id() is None and ctx.get_job_id() and ctx.get_node_id()

    @nbcluster.remote
    def where():
        c = nbcluster.get_runtime_context()
        return c.get_job_id(), c.get_node_id(), c.get_task_id(), c.get_worker_id()

    ref = where.remote()
    job, node, task, worker = nbcluster.get(ref)
    assert job == ctx.get_job_id() and node == ctx.get_node_id()
    assert task == ref.task_id() and worker != ctx.get_worker_id()


def test_cluster_resources_and_nodes():
    total = nbcluster.cluster_resources()
    assert total["CPU"] == 2
    (node,) = nbcluster.nodes()
    assert node["Alive"] and node["Resources"]["CPU"] == 2 and node["NodeID"] == nbcluster.get_runtime_context().get_node_id()
    wait_for(lambda: nbcluster.available_resources().get("CPU") == 2, message="both CPUs to be free")
    ref = sleep_then.remote(3)
    wait_for(lambda: nbcluster.available_resources().get("CPU", 0) == 1, message="a CPU in use")
    nbcluster.cancel(ref, force=True)


@pytest.mark.parametrize("recursive", [True, False])
def test_cancel_recursive_reaches_child_tasks(tmp_path, recursive):
    started = tmp_path / "child-started"
    finished = tmp_path / "child-finished"
    interrupted = tmp_path / "child-interrupted"

    @nbcluster.remote(num_cpus=0)
    def child(folder, seconds):
        open(f"{folder}/child-started", "w").close()
        try:
            time.sleep(seconds)
        except KeyboardInterrupt:
            open(f"{folder}/child-interrupted", "w").close()
            raise
        open(f"{folder}/child-finished", "w").close()

    @nbcluster.remote(num_cpus=0)
    def parent(folder, seconds):
        nbcluster.get(child.remote(folder, seconds))

    # Long enough for the cancel to reach the child through its parent on a slow machine.
    ref = parent.remote(str(tmp_path), 30 if recursive else 2)
    wait_for(started.exists, message="the child to start")
    nbcluster.cancel(ref, recursive=recursive)
    with pytest.raises(TaskCancelledError):
        nbcluster.get(ref, timeout=20)
    if recursive:
        wait_for(interrupted.exists, message="the child to be cancelled with its parent")
        assert not finished.exists()
    else:
        wait_for(finished.exists, message="the child to run to its end")
        assert not interrupted.exists()
