"""Ray's exception names catch nbcluster's errors, so a Ray program's ``except``
clauses work unchanged under ``import nbcluster as ray``."""

from __future__ import annotations

import os
import signal
import time

import pytest

import nbcluster as ray


def test_ray_programs_catch_errors_by_rays_names(start_cluster) -> None:
    start_cluster(num_cpus=2)

    @ray.remote(max_retries=0)
    def boom() -> None:
        raise ValueError("bad input 7")

    @ray.remote(max_restarts=0)
    class Counter:
        def ping(self) -> str:
            return "pong"

    caught = []
    try:
        ray.get(boom.remote())
    except ray.exceptions.RayTaskError as exc:  # the remote traceback, and still a ValueError
        caught.append(("task", isinstance(exc, ValueError), "bad input 7" in str(exc), "boom" in str(exc)))
    try:
        ray.get(boom.remote())
    except ray.exceptions.RayError as exc:  # the base catches it too
        caught.append(("base", type(exc).__name__))
    counter = Counter.remote()
    assert ray.get(counter.ping.remote()) == "pong"
    ray.kill(counter)
    try:
        ray.get(counter.ping.remote(), timeout=30)
    except ray.exceptions.RayActorError as exc:  # an ActorDiedError under Ray's broader name
        caught.append(("actor", isinstance(exc, ray.exceptions.ActorDiedError)))
    assert caught == [("task", True, True, True), ("base", caught[1][1]), ("actor", True)], caught
    assert ray.exceptions.RayError is ray.exceptions.NbclusterError
    assert ray.exceptions.RayTaskError is ray.exceptions.TaskError


#: Ray's exception names and the Ray class each must be a subclass of.
RAY_HIERARCHY = {
    "RayError": Exception,
    "RaySystemError": "RayError",
    "RayTaskError": "RayError",
    "RayActorError": "RayError",
    "ActorDiedError": "RayActorError",
    "ActorUnavailableError": "RayActorError",
    "GetTimeoutError": "RayError",
    "TaskCancelledError": "RayError",
    "TaskUnschedulableError": "RayError",
    "WorkerCrashedError": "RayError",
    "NodeDiedError": "RayError",
    "LocalRayletDiedError": "RayError",
    "ObjectLostError": "RayError",
    "OwnerDiedError": "ObjectLostError",
    "ObjectFreedError": "ObjectLostError",
    "ObjectFetchTimedOutError": "ObjectLostError",
    "ObjectReconstructionFailedError": "ObjectLostError",
    "ObjectStoreFullError": "RayError",
    "OutOfMemoryError": "RayError",
    "RuntimeEnvSetupError": "RayError",
    "PendingCallsLimitExceeded": "RayError",
    "CrossLanguageError": "RayError",
}


def test_rays_exception_names_exist_with_rays_hierarchy() -> None:
    exc = ray.exceptions
    for name, base in RAY_HIERARCHY.items():
        cls = getattr(exc, name)
        base_cls = base if isinstance(base, type) else getattr(exc, base)
        assert issubclass(cls, base_cls), (name, base)
        assert cls.__doc__ and name in exc.__all__, name
    assert issubclass(exc.GetTimeoutError, TimeoutError)  # except TimeoutError works, as in Ray
    assert exc.RaySystemError is exc.NbclusterSystemError


def test_the_runtime_raises_rays_classes(start_cluster) -> None:
    """Each situation that exists today, provoked with real processes, raises the class
    Ray raises there."""
    start_cluster(num_cpus=2)

    @ray.remote(max_retries=0)
    def crash() -> None:
        os._exit(3)

    @ray.remote
    def sleep_long() -> None:
        time.sleep(60)

    @ray.remote(max_retries=0)
    def make_and_report() -> tuple:
        return [ray.put("owned by a task")], os.getpid()

    with pytest.raises(ray.exceptions.WorkerCrashedError, match="crash"):
        ray.get(crash.remote(), timeout=60)
    slow = sleep_long.remote()
    with pytest.raises(ray.exceptions.GetTimeoutError) as timed_out:
        ray.get(slow, timeout=0.1)
    assert isinstance(timed_out.value, TimeoutError)
    ray.cancel(slow)
    with pytest.raises(ray.exceptions.TaskCancelledError):
        ray.get(slow, timeout=60)
    refs, owner_pid = ray.get(make_and_report.remote(), timeout=60)
    os.kill(owner_pid, signal.SIGKILL)
    with pytest.raises(ray.exceptions.OwnerDiedError) as lost:
        ray.get(refs[0], timeout=60)
    assert isinstance(lost.value, ray.exceptions.ObjectLostError)
