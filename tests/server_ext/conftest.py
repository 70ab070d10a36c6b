"""Fixtures for the server extension's tests: pytest-jupyter's server (in this process,
on this test's loop) with the extension enabled, and a check that every cluster a test
made is stopped when it ends (they are detached: their sessions, not this process,
own them)."""

from __future__ import annotations

import asyncio
import inspect
import json
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from pytest_jupyter.jupyter_server import *  # noqa: F401,F403 - pytest-jupyter's fixtures and hooks, here only
from traitlets.config import Config

from ..conftest import FAST_CONFIG


@pytest.fixture
def jp_server_config() -> Config:
    return Config({
        "ServerApp": {"jpserver_extensions": {"nbcluster": True}},
        # Small, fast clusters: 1-CPU head and workers, idle workers go after 2 s.
        "NbclusterApp": {"num_cpus": 1.0, "worker_cpus": 1.0, "idle_timeout": 2.0, "system_config": FAST_CONFIG},
    })


def running_sessions() -> list[Path]:
    """Session directories of this run with processes `nbcluster start` (or the
    server) recorded that still run."""
    from nbcluster.runtime.cli import session_running
    from nbcluster.runtime.session import sessions

    return [s.dir for s in sessions() if session_running(s.dir)]


@pytest.fixture(autouse=True)
def no_cluster_left() -> Iterator[None]:
    """Fail a test that leaves a cluster running, and stop what it left. (This runs
    before pytest-jupyter's ``jp_server_cleanup`` stops the server, so a test must delete
    its clusters itself; after a failed test this reports what its cleanup missed.)"""
    before = set(running_sessions())
    yield
    from nbcluster.server_ext.local import stop

    left = [p for p in running_sessions() if p not in before]
    for path in left:
        stop(str(path), 2.0)
    assert not left, f"the test left clusters running: {left}"


def session_processes(session_dir: str | Path) -> list[psutil.Process]:
    """The live processes a created cluster's session recorded (head and node)."""
    info = json.loads((Path(session_dir) / "processes.json").read_text())
    out = []
    for entry in info["procs"]:
        try:
            out.append(psutil.Process(entry["pid"]))
        except psutil.NoSuchProcess:
            pass
    return out


def gone(procs: list[psutil.Process]) -> bool:
    """Whether every one of ``procs`` has exited (a zombie counts as gone)."""
    def dead(proc: psutil.Process) -> bool:
        try:
            return not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    return all(dead(p) for p in procs)


async def until(predicate: Callable[[], Awaitable[Any] | Any], timeout: float = 60.0, message: str = "") -> Any:
    """Poll ``predicate`` (async, or a plain function) until it returns something
    truthy; fail after ``timeout`` (the loop keeps serving meanwhile)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {message or predicate}")
        await asyncio.sleep(0.1)


def body(response: Any) -> Any:
    return json.loads(response.body.decode()) if response.body else None
