"""The manager without a server: a restarted server re-attaches clusters that kept
running and drops the dead ones, and settles those the last server left starting (it
was killed while they started); the install-time config enables the extension."""

from __future__ import annotations

import asyncio
import json
import stat
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

import psutil
import pytest

from nbcluster.server_ext import local

try:
    import tomllib  # novermin (tomli before 3.11)
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib
from nbcluster.server_ext.manager import ClusterManager
from nbcluster.server_ext.models import ClusterConflict, ClusterRecord, ClusterSpec
from nbcluster.server_ext.registry import Registry

from ..conftest import FAST_CONFIG, ROOT
from .conftest import gone, session_processes, until


async def test_restart_reattaches_running_clusters_and_drops_dead_ones(tmp_path: Path) -> None:
    runtime = tmp_path / "runtime"
    first = ClusterManager(runtime, defaults=ClusterSpec(num_cpus=1.0, workers=0), system_config=FAST_CONFIG)
    first.load()
    cluster = await first.create({"name": "keep"})
    registry = Registry(runtime)
    # A cluster that died while no server ran, and an attached one that is gone.
    dead = [ClusterRecord("dead", "127.0.0.1:1", str(tmp_path / "t"), "created", session_dir=str(tmp_path / "s")),
            ClusterRecord("gone", "127.0.0.1:9", str(tmp_path / "t"), "attached")]
    (tmp_path / "t").write_text("token")
    await first.shutdown(stop_created=False)  # the server stops, configured to keep its clusters
    registry.save(registry.load() + dead)
    assert stat.S_IMODE(registry.records_path.stat().st_mode) == 0o600

    second = ClusterManager(runtime, system_config=FAST_CONFIG)
    second.load()
    procs = session_processes(Path(record_named(registry, "keep").session_dir))
    try:
        assert second.names() == ["keep"]
        again = await second.get("keep")
        assert again["status"] == "running" and again["address"] == cluster["address"]
        assert again["origin"] == "created" and again["nodes"]["alive"] == 1
        listed = json.loads(registry.discovery_path.read_text())["clusters"]
        assert [c["name"] for c in listed] == ["keep"]
    finally:
        await second.shutdown()
    assert procs and gone(procs)
    assert json.loads(registry.discovery_path.read_text()) == {"clusters": []}


def record_named(registry: Registry, name: str) -> ClusterRecord:
    (record,) = [r for r in registry.load() if r.name == name]
    return record


async def test_a_cluster_that_dies_is_unreachable_and_leaves_the_discovery_file(tmp_path: Path) -> None:
    """Its processes die on their own: the model says unreachable, kernels no longer
    find it, its nodes answer 409 at once (no GCS timeout), DELETE tidies it up."""
    manager = ClusterManager(tmp_path / "runtime", defaults=ClusterSpec(num_cpus=1.0, workers=0),
                             system_config=FAST_CONFIG)
    manager.load()
    try:
        await manager.create({"name": "doomed"})
        record = record_named(manager.registry, "doomed")
        procs = session_processes(record.session_dir)
        victims = procs + [c for p in procs for c in p.children(recursive=True)]
        for proc in victims:  # the cluster this test made crashes
            proc.kill()
        psutil.wait_procs(victims, timeout=30.0)

        got = await manager.get("doomed")
        assert got["status"] == "unreachable" and got["nodes"] == {"alive": 0, "total": 0}
        assert json.loads(manager.registry.discovery_path.read_text()) == {"clusters": []}
        assert [r.name for r in manager.registry.load()] == ["doomed"]  # still listed for the page
        started = time.monotonic()
        with pytest.raises(ClusterConflict, match="doomed is unreachable: its processes are gone; DELETE"):
            await manager.nodes("doomed")
        with pytest.raises(ClusterConflict, match="unreachable"):
            await manager.scale("doomed", {"workers": 1})
        assert time.monotonic() - started < 10.0
        await manager.delete("doomed")
        assert manager.names() == [] and not Path(record.session_dir).exists()
    finally:
        await manager.shutdown()


def test_installed_config_enables_the_extension() -> None:
    """The wheel ships etc/jupyter/jupyter_server_config.d/nbcluster.json, which enables
    the extension point that the package root names."""
    import nbcluster

    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    shared = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["shared-data"]
    (source,) = [src for src, dest in shared.items() if dest.startswith("etc/jupyter/jupyter_server_config.d/")]
    assert shared[source] == "etc/jupyter/jupyter_server_config.d/nbcluster.json"
    config = json.loads((ROOT / source).read_text())
    assert config == {"ServerApp": {"jpserver_extensions": {"nbcluster": True}}}
    (point,) = nbcluster._jupyter_server_extension_points()
    assert point["app"].name == "nbcluster"


def hide_address(session_dir: str) -> Callable[[], None]:
    """Make a running cluster look as if its head did not serve yet (its session has no
    address file); returns what undoes that."""
    written = Path(session_dir) / "address.json"
    hidden = written.with_name("address.hidden")
    written.rename(hidden)
    return lambda: hidden.rename(written)


async def left_starting(runtime: Path, name: str) -> ClusterRecord:
    """A cluster as a server killed while it started leaves it: running, saved as
    starting (no address yet), its head not serving yet. Checks that the manager saved
    it as starting, with its session, while it started."""
    first = ClusterManager(runtime, defaults=ClusterSpec(num_cpus=1.0, workers=0), system_config=FAST_CONFIG)
    first.load()
    saves: list[list[ClusterRecord]] = []
    save = first.registry.save

    def recorded(records: Iterable[ClusterRecord], discoverable: Iterable[str] | None = None) -> None:
        saves.append(list(records))
        save(saves[-1], discoverable)

    first.registry.save = recorded  # type: ignore[method-assign]
    await first.create({"name": name})
    await first.shutdown(stop_created=False)
    (record,) = first.registry.load()
    assert not record.starting
    assert [[(r.name, r.starting, r.session_dir) for r in s] for s in saves] == [
        [(name, True, record.session_dir)], [(name, False, record.session_dir)]]
    left = replace(record, address="", jobs_address="", starting=True)
    first.registry.save([left])
    return left


async def test_a_cluster_left_starting_is_reattached_once_it_serves(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    runtime = tmp_path / "runtime"
    left = await left_starting(runtime, "late")
    procs = session_processes(left.session_dir)
    show = hide_address(left.session_dir)
    looks = 0
    serving = local.serving

    def counted(session_dir: str) -> Any:
        nonlocal looks
        looks += 1
        return serving(session_dir)

    monkeypatch.setattr(local, "serving", counted)
    second = ClusterManager(runtime, system_config=FAST_CONFIG)
    second.load()
    try:
        assert second.names() == ["late"] and (await second.get("late"))["status"] == "starting"
        assert json.loads(second.registry.discovery_path.read_text()) == {"clusters": []}
        resumed = asyncio.ensure_future(second.resume())
        try:
            await until(lambda: looks >= 3, 60.0, "resume() to look for the address three times")
            assert not resumed.done() and (await second.get("late"))["status"] == "starting"
            show()
            await asyncio.wait_for(asyncio.shield(resumed), 60.0)
        finally:
            resumed.cancel()
        got = await second.get("late")
        assert got["status"] == "running" and got["address"] and got["nodes"]["alive"] == 1, got
        (record,) = second.registry.load()
        assert not record.starting and record.address == got["address"]
        assert [c["name"] for c in json.loads(second.registry.discovery_path.read_text())["clusters"]] == ["late"]
    finally:
        await second.shutdown()
    assert gone(procs) and not Path(left.session_dir).exists()


async def test_a_cluster_left_starting_that_does_not_serve_is_stopped(tmp_path: Path) -> None:
    runtime = tmp_path / "runtime"
    left = await left_starting(runtime, "stuck")
    procs = session_processes(left.session_dir)
    hide_address(left.session_dir)
    second = ClusterManager(runtime, system_config={**FAST_CONFIG, "startup_timeout_s": 1.0})
    second.load()
    try:
        assert second.names() == ["stuck"]
        await asyncio.wait_for(second.resume(), 60.0)
        assert second.names() == [] and second.registry.load() == []
        assert gone(procs) and not Path(left.session_dir).exists()
    finally:
        await second.shutdown()


async def test_a_cluster_left_starting_whose_processes_died_is_dropped(tmp_path: Path) -> None:
    runtime = tmp_path / "runtime"
    left = await left_starting(runtime, "died")
    procs = session_processes(left.session_dir)
    victims = procs + [c for p in procs for c in p.children(recursive=True)]
    for proc in victims:
        proc.kill()
    psutil.wait_procs(victims, timeout=30.0)
    second = ClusterManager(runtime, system_config=FAST_CONFIG)
    second.load()
    try:
        assert second.names() == [] and second.registry.load() == []
        assert not Path(left.session_dir).exists()
    finally:
        await second.shutdown()
