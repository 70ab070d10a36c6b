"""Shared fixtures: real clusters on this machine, and a leak check around every test.

Every test runs under ``no_leaks``: when it ends, no process it started may remain
(processes of a module's shared cluster excepted while that cluster lives), and no
shared-memory store may remain that no live cluster owns. Session directories go to a
temporary root that must be empty when the run ends.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

ROOT = Path(__file__).resolve().parent.parent

#: Runtime settings for tests: fast heartbeats and short idle times.
FAST_CONFIG: dict[str, Any] = {
    "heartbeat_interval_s": 0.2,
    "idle_worker_timeout_s": 2.0,
    "object_store_full_timeout_s": 3.0,
}

_TEMP_ROOT = Path()
_SHM_ROOT = Path()


def pytest_configure(config: pytest.Config) -> None:
    """A temp root (session dirs) and an object-store root of this run's own: the leak
    checks then see only this run's, not those of other clusters on the machine. Made
    here, not at import: workers that import a test module (for a function defined in
    it) import this file too, and must not make directories."""
    global _TEMP_ROOT, _SHM_ROOT
    _TEMP_ROOT = Path(tempfile.mkdtemp(prefix="nbc-test-"))
    os.environ["NBCLUSTER_TEMP_DIR"] = str(_TEMP_ROOT)
    _SHM_ROOT = Path(tempfile.mkdtemp(prefix="nbc-test-", dir="/dev/shm"))
    os.environ["NBCLUSTER_SHM_DIR"] = str(_SHM_ROOT)
    os.environ.pop("NBCLUSTER_TOKEN", None)
    os.environ.pop("NBCLUSTER_KEEP_SESSION", None)


def shm_stores() -> set[str]:
    from nbcluster.runtime.session import shm_root

    return {p.name for p in shm_root().glob("nbcluster-*")}


def descendants() -> dict[int, psutil.Process]:
    out = {}
    for proc in psutil.Process().children(recursive=True):
        try:
            if proc.status() != psutil.STATUS_ZOMBIE:
                out[proc.pid] = proc
        except psutil.NoSuchProcess:
            pass
    return out


def _cluster_allowances() -> tuple[set[int], set[str]]:
    """Processes and stores of the clusters (and nodes) this test process runs."""
    from nbcluster.runtime.launcher import live_clusters
    from nbcluster.runtime.session import store_dir

    pids: set[int] = set()
    stores: set[str] = set()
    from .cli_tools import LIVE

    for machine in LIVE:  # nodes `nbcluster start` runs for a module's tests
        stores |= machine.stores()
    for cluster in live_clusters():
        stores.add(store_dir(cluster.node_id).name)
        for proc in cluster.procs:
            try:
                root = psutil.Process(proc.pid)
                pids.add(root.pid)
                pids.update(p.pid for p in root.children(recursive=True))
            except psutil.NoSuchProcess:
                pass
    return pids, stores


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02, message: str = "") -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {message or predicate}\n{diagnostics()}")
        time.sleep(interval)


def diagnostics() -> str:
    """The driver's view of the cluster, for failure messages."""
    from nbcluster.runtime.core import worker_state

    core = worker_state.current
    if core is None or core.closed:
        return "(nbcluster not initialized)"
    lines = []
    for key, shape in core.submitter._shapes.items():
        lines.append(
            f"shape {key}: queued={len(shape.queue)} requests={sorted(shape.requests)} "
            f"leases={[(lw.lease_id, len(lw.inflight)) for lw in shape.workers]}"
        )
    try:
        stats = node_stats()
        lines.append(f"node: available={dict(stats.available.amounts)} pending_leases={stats.pending_leases}")
        lines.extend(f"  worker pid={w.pid} {w.state} lease={w.lease_id}" for w in stats.workers)
    except Exception as exc:  # noqa: BLE001
        lines.append(f"node stats unavailable: {exc}")
    return "\n".join(lines)


@pytest.fixture(autouse=True)
def no_leaks() -> Iterator[None]:
    before = set(descendants())
    stores_before = shm_stores()
    yield
    deadline = time.monotonic() + 10.0
    while True:
        allowed_pids, allowed_stores = _cluster_allowances()
        extra = {pid: p for pid, p in descendants().items() if pid not in before and pid not in allowed_pids}
        stores = shm_stores() - stores_before - allowed_stores
        if not extra and not stores:
            return
        if time.monotonic() > deadline:
            described = []
            for proc in extra.values():
                try:
                    described.append(f"{proc.pid}: {' '.join(proc.cmdline())[:120]}")
                    proc.kill()
                except psutil.NoSuchProcess:
                    pass
            pytest.fail(f"the test leaked processes {described} / shared-memory stores {sorted(stores)}")
        time.sleep(0.05)


@pytest.hookimpl(trylast=True)  # after the module fixtures' teardown, which still needs the root
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    leftovers = [p.name for p in _TEMP_ROOT.glob("session_*")] + [p.name for p in _SHM_ROOT.iterdir()]
    shutil.rmtree(_TEMP_ROOT, ignore_errors=True)
    shutil.rmtree(_SHM_ROOT, ignore_errors=True)
    if leftovers and exitstatus == 0:
        session.exitstatus = 1
        print(f"\nsession directories or object stores left behind: {leftovers}", file=sys.stderr)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    """One embedded 2-CPU cluster shared by the tests of a module."""
    import nbcluster

    assert not nbcluster.is_initialized(), "a previous test left nbcluster initialized"
    info = nbcluster.init(num_cpus=2, _system_config=FAST_CONFIG)
    try:
        yield info
    finally:
        nbcluster.shutdown()


@contextlib.contextmanager
def two_nodes(**head_args: Any) -> Iterator[Any]:
    """A head (1 CPU) serving other machines, and a worker node (1 CPU, resource
    ``other``) joined to it (``cluster_utils.Cluster``); not connected."""
    from nbcluster.cluster_utils import Cluster

    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "_system_config": FAST_CONFIG, **head_args})
    try:
        c.add_node(num_cpus=1, resources={"other": 1})
        c.wait_for_nodes()
        yield c
    finally:
        c.shutdown()


@pytest.fixture(scope="module")
def head_and_worker() -> Iterator[Any]:
    """:func:`two_nodes`, for a module."""
    with two_nodes() as c:
        yield c


@pytest.fixture
def start_cluster() -> Iterator[Callable[..., Any]]:
    """Start an embedded cluster with the given init() arguments; stopped after the test."""
    import nbcluster

    def start(**kwargs: Any) -> Any:
        assert not nbcluster.is_initialized(), "nbcluster is already initialized in this process"
        config = {**FAST_CONFIG, **kwargs.pop("_system_config", {})}
        return nbcluster.init(_system_config=config, **kwargs)

    try:
        yield start
    finally:
        nbcluster.shutdown()


def run_python(code: str, *, timeout: float = 60.0, env: dict[str, str] | None = None, cwd: Path | None = None,
               check: bool = True) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter (a separate driver) and return its output."""
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
        cwd=str(cwd or ROOT),
    )
    if check and proc.returncode != 0:
        pytest.fail(f"driver exited with {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


def restart_gcs(cluster: Any) -> subprocess.Popen:
    """Kill the GCS of ``cluster`` (a ``cluster_utils.Cluster``) with SIGKILL and start it
    again with the same command and environment, as a supervisor would (not tied to this
    process, keeping its session when it stops): the new process, for the caller to stop."""
    gcs = psutil.Process(cluster.head_node._handle.procs[0].pid)
    argv, env = gcs.cmdline(), gcs.environ()
    i = argv.index("--lifeline-fd")
    del argv[i:i + 2]
    argv = [a for a in argv if a != "--remove-session-on-exit"]
    gcs.kill()
    gcs.wait(10)
    return subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)


def node_stats(include_objects: bool = False) -> Any:
    """The local node manager's statistics (store usage, workers, leases)."""
    from nbcluster.runtime.core import worker_state
    from nbcluster.runtime.protocol import node_manager_pb2 as nm_pb2
    from nbcluster.runtime.transport import methods

    core = worker_state.current
    return core.run_sync(core.nm.call(methods.NodeManager.GetNodeStats, nm_pb2.GetNodeStatsRequest(include_objects=include_objects)))
