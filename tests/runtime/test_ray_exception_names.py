"""Ray's exception names catch nbcluster's errors, so a Ray program's ``except``
clauses work unchanged under ``import nbcluster as ray``."""

from __future__ import annotations

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
