"""Renamed notebooks without a Jupyter server: where a rename moves a path, the path a
driver's job gets (in its old form), and :class:`RenameFollower` against a real cluster
whose drivers say they are kernels — fed by a real ``jupyter_events`` bus and a session
manager of its own."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jupyter_server
import pytest
from jupyter_events import EventLogger

from nbcluster import state
from nbcluster.cluster_utils import Cluster
from nbcluster.runtime import read_token_file
from nbcluster.server_ext.renames import CONTENTS_SCHEMA, Moved, RenameFollower, moved_path, new_notebook_path

from ..conftest import FAST_CONFIG
from .conftest import until


def test_where_a_rename_moves_a_path() -> None:
    assert moved_path("a.ipynb", "a.ipynb", "b.ipynb") == "b.ipynb"
    assert moved_path("/dir/a.ipynb", "dir", "new/dir2/") == "new/dir2/a.ipynb"  # a directory, slashes aside
    assert moved_path("dir2/a.ipynb", "dir", "x") is None  # a prefix of a name is not a parent
    assert moved_path("a.ipynb", "", "b.ipynb") is None


def test_the_path_a_drivers_job_gets_keeps_its_form() -> None:
    root = "/home/u/work"
    renamed = Moved("dir", "done/dir", {"k2": "moved/by/session.ipynb"})
    # Jupyter gave the kernel an absolute path under the root: it stays absolute.
    assert new_notebook_path({"notebook_path": f"{root}/dir/a.ipynb"}, renamed, root) == f"{root}/done/dir/a.ipynb"
    assert new_notebook_path({"notebook_path": "dir/a.ipynb"}, renamed, root) == "done/dir/a.ipynb"
    # Its kernel's session moved: the session's path wins, whatever the old value said.
    assert new_notebook_path({"kernel_id": "k2", "notebook_path": f"{root}/x.ipynb"}, renamed, root) == \
        f"{root}/moved/by/session.ipynb"
    assert new_notebook_path({"kernel_id": "k2"}, renamed, root) == "moved/by/session.ipynb"
    # Not moved: another file, another root, no path at all.
    assert new_notebook_path({"notebook_path": f"{root}/other.ipynb"}, renamed, root) is None
    assert new_notebook_path({"notebook_path": "/elsewhere/dir/a.ipynb"}, renamed, root) is None
    assert new_notebook_path({"kernel_id": "k1"}, renamed, root) is None


DRIVER = """
import sys
import nbcluster
nbcluster.init(address=sys.argv[1])
print(nbcluster.get_runtime_context().get_job_id(), flush=True)
sys.stdin.readline()
nbcluster.shutdown()
"""


class Sessions:
    """The part of jupyter_server's session manager the follower uses."""

    def __init__(self, sessions: list[dict[str, Any]]) -> None:
        self.sessions = {s["id"]: s for s in sessions}

    async def list_sessions(self) -> list[dict[str, Any]]:
        return list(self.sessions.values())

    async def get_session(self, session_id: str) -> dict[str, Any]:
        return self.sessions[session_id]

    async def update_session(self, session_id: str, **kwargs: Any) -> None:
        self.sessions[session_id].update(kwargs)


class Manager:
    """The part of the ClusterManager the follower uses: a cluster it knows, one whose head is gone."""

    def __init__(self, address: str, token: str) -> None:
        self.clusters = {"here": (address, token), "gone": ("127.0.0.1:1", "token")}
        self.touched = 0

    def names(self) -> list[str]:
        return list(self.clusters)

    def connection(self, name: str) -> tuple[str, str, asyncio.Event]:
        return (*self.clusters[name], asyncio.Event())

    def touch(self) -> None:
        self.touched += 1


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "_system_config": FAST_CONFIG})
    try:
        yield c
    finally:
        c.shutdown()


def kernel_driver(cluster: Cluster, tmp_path: Path, notebook_path: str) -> tuple[subprocess.Popen, str, str]:
    """A driver that says it is a kernel (a connection file's name in its argv, Jupyter's
    JPY_SESSION_NAME): (process, its job id, its kernel id)."""
    kernel_id = str(uuid.uuid4())
    argv = [sys.executable, "-c", textwrap.dedent(DRIVER), cluster.address, "-f",
            str(tmp_path / f"kernel-{kernel_id}.json")]
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "JPY_SESSION_NAME": notebook_path})
    job_id = proc.stdout.readline().strip()  # type: ignore[union-attr]
    assert job_id, "the driver did not connect"
    return proc, job_id, kernel_id


async def test_the_follower_moves_drivers_jobs_after_renames_and_session_moves(
    cluster: Cluster, tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    root = str(tmp_path / "work")
    drivers = []
    try:
        # One kernel of this server's notebook session, one of a kernel the server does not know.
        drivers.append(mine := kernel_driver(cluster, tmp_path, f"{root}/a.ipynb"))
        drivers.append(other := kernel_driver(cluster, tmp_path, "dir/x.ipynb"))
        sessions = Sessions([{"id": "s1", "path": "a.ipynb", "type": "notebook", "kernel": {"id": mine[2]}}])
        bus = EventLogger()
        bus.register_event_schema(Path(jupyter_server.__file__).parent / "event_schemas/contents_service/v1.yaml")
        manager = Manager(cluster.address, read_token_file(str(cluster.token_file)))
        follower = RenameFollower(manager, event_logger=bus, session_manager=sessions, root_dir=root)
        await follower.start()

        def paths() -> dict[str, str]:
            jobs = {j.job_id: j.metadata.get("notebook_path", "") for j in state.list_jobs(address=cluster.address)}
            return {"mine": jobs[mine[1]], "other": jobs[other[1]]}

        async def after(changes: int) -> dict[str, str]:
            await until(lambda: follower.handled >= changes, message=f"{changes} changes handled")
            return paths()

        caplog.set_level(logging.INFO, logger="nbcluster.server_ext.renames")
        try:
            # The file renamed (as the contents service announces it), its session not yet moved.
            bus.emit(schema_id=CONTENTS_SCHEMA, data={"action": "rename", "source_path": "a.ipynb",
                                                      "path": "sub/b.ipynb"})
            assert await after(1) == {"mine": f"{root}/sub/b.ipynb", "other": "dir/x.ipynb"}
            assert manager.touched == 1  # a cluster the server knows: its list streams say so
            # The session moved (JupyterLab's PATCH after the rename; here on its own: "Save As").
            await sessions.update_session("s1", path="c.ipynb")
            assert await after(2) == {"mine": f"{root}/c.ipynb", "other": "dir/x.ipynb"}
            # A directory renamed: what lies under it moves, matched by its path alone.
            bus.emit(schema_id=CONTENTS_SCHEMA, data={"action": "rename", "source_path": "dir", "path": "dir2"})
            assert await after(3) == {"mine": f"{root}/c.ipynb", "other": "dir2/x.ipynb"}
            # Other files and other actions move nothing.
            bus.emit(schema_id=CONTENTS_SCHEMA, data={"action": "rename", "source_path": "t.py", "path": "u.py"})
            bus.emit(schema_id=CONTENTS_SCHEMA, data={"action": "save", "path": "c.ipynb"})
            assert await after(4) == {"mine": f"{root}/c.ipynb", "other": "dir2/x.ipynb"}
            assert manager.touched == 3
        finally:
            await follower.stop()
        # Stopped: the session manager is its own again, the bus has no listener of it.
        assert "update_session" not in vars(sessions)
        assert follower.handled == 4
        bus.emit(schema_id=CONTENTS_SCHEMA, data={"action": "rename", "source_path": "c.ipynb", "path": "d.ipynb"})
        await sessions.update_session("s1", path="d.ipynb")
        assert follower.handled == 4
        # The cluster whose head is gone: logged once, never in the way.
        gone = [r for r in caplog.records if "127.0.0.1:1" in r.getMessage()]
        assert len(gone) == 1 and gone[0].levelno == logging.WARNING, [r.getMessage() for r in gone]
    finally:
        for proc, _, _ in drivers:
            proc.stdin.close()  # type: ignore[union-attr]
            proc.wait(60)
            proc.stdout.close()  # type: ignore[union-attr]
