"""End to end: a real `jupyter server` process with the extension; a cluster made over
REST; a notebook kernel started over REST that connects to it by name (%cluster connect,
through the discovery file) and runs a task; the cluster lists that kernel as a driver;
deleting the cluster stops its processes. And a server restart re-attaches a cluster
that kept running, also one that was still starting when the server was killed."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any

import psutil
import pytest
from tornado.websocket import websocket_connect

from ..browser import JupyterProcess
from .conftest import gone, session_processes, until

pytestmark = pytest.mark.slow

#: Enable the extension whatever the install (an editable install has no data files).
EXTENSION_ARGS = ["--ServerApp.jpserver_extensions=nbcluster=True", "--NbclusterApp.num_cpus=2",
                  "--NbclusterApp.idle_timeout=2"]


def session_pids(server: JupyterProcess, name: str) -> list[psutil.Process]:
    """The processes a created cluster's session recorded, found through the
    discovery file the server wrote."""
    listed = json.loads((server.runtime_dir / "nbcluster-clusters.json").read_text())["clusters"]
    (entry,) = [c for c in listed if c["name"] == name]
    procs = session_processes(Path(entry["token_file"]).parent)
    assert procs
    return procs


class Kernel:
    """A kernel's channels over the server's websocket: execute code, collect output."""

    def __init__(self, server: JupyterProcess, kernel_id: str) -> None:
        self.server, self.kernel_id, self.ws = server, kernel_id, None
        self.session = uuid.uuid4().hex

    async def __aenter__(self) -> "Kernel":
        url = self.server.url(f"api/kernels/{self.kernel_id}/channels").replace("http://", "ws://")
        self.ws = await websocket_connect(url, connect_timeout=60)
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self.ws.close()

    async def execute(self, code: str, timeout: float = 120.0) -> tuple[dict, str]:
        """Run ``code``; (the execute_reply's content, everything it printed)."""
        msg_id = uuid.uuid4().hex
        await self.ws.write_message(json.dumps({
            "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": "test", "session": self.session,
                       "version": "5.3", "date": ""},
            "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
            "content": {"code": code, "silent": False, "store_history": True, "user_expressions": {},
                        "allow_stdin": False, "stop_on_error": True},
        }))
        output: list[str] = []

        async def until_idle() -> Any:
            reply = None
            idle = False
            while reply is None or not idle:
                raw = await self.ws.read_message()
                assert raw is not None, "the kernel's websocket closed"
                msg = json.loads(raw)
                if msg.get("parent_header", {}).get("msg_id") != msg_id:
                    continue
                kind = msg["header"]["msg_type"]
                if kind == "stream":
                    output.append(msg["content"]["text"])
                elif kind == "error":
                    output.append("\n".join(msg["content"]["traceback"]))
                elif kind in ("execute_result", "display_data"):
                    output.append(msg["content"]["data"].get("text/plain", ""))
                elif kind == "status" and msg["content"]["execution_state"] == "idle":
                    idle = True
                elif kind == "execute_reply":
                    reply = msg["content"]
            return reply

        reply = await asyncio.wait_for(until_idle(), timeout)  # (asyncio.timeout() needs Python 3.11)
        return reply, "".join(output)


async def rest(server: JupyterProcess, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    return await asyncio.to_thread(server.request, method, path, body, 120.0)


async def test_notebook_kernel_drives_a_server_made_cluster() -> None:
    with JupyterProcess(extra_args=EXTENSION_ARGS) as server:
        code, cluster = await rest(server, "POST", "nbcluster/api/clusters", {"name": "e2e", "workers": 0})
        assert code == 201, (cluster, server.log())
        procs = session_pids(server, "e2e")
        (server.root_dir / "analysis").mkdir()
        code, session = await rest(server, "POST", "api/sessions", {
            "path": "analysis/work.ipynb", "type": "notebook", "name": "work.ipynb", "kernel": {"name": "python3"},
        })
        assert code == 201, session
        kernel_id = session["kernel"]["id"]
        try:
            async with Kernel(server, kernel_id) as kernel:
                reply, out = await kernel.execute("%load_ext nbcluster\n%cluster connect e2e")
                assert reply["status"] == "ok", out
                reply, out = await kernel.execute(
                    "import nbcluster\n"
                    "@nbcluster.remote\n"
                    "def square(x):\n"
                    "    return x * x\n"
                    "print('RESULT', nbcluster.get(square.remote(7)), nbcluster.get_runtime_context().get_job_id())\n"
                )
                assert reply["status"] == "ok", out
                assert "RESULT 49" in out

                async def driver() -> Any:
                    _, got = await rest(server, "GET", "nbcluster/api/clusters/e2e")
                    return got["drivers"]

                # Needs the kernel's driver to carry kernel_id/notebook_path job metadata.
                drivers = await until(driver, 60.0, "the kernel listed as a driver of e2e")
                assert [(d["kernel_id"], d["notebook_path"]) for d in drivers] == [(kernel_id, "analysis/work.ipynb")]

                code, _ = await rest(server, "DELETE", "nbcluster/api/clusters/e2e")
                assert code == 204
                assert gone(procs), [p.pid for p in procs]
                code, listed = await rest(server, "GET", "nbcluster/api/clusters")
                assert listed == {"clusters": []}
        finally:
            await rest(server, "DELETE", f"api/sessions/{session['id']}")
            for proc in procs:  # a failed assertion above must not leave the cluster running
                if not gone([proc]):
                    proc.kill()


async def test_server_restart_reattaches_a_cluster_that_kept_running() -> None:
    home = Path(tempfile.mkdtemp(prefix="nbc-jupyter-"))
    keep = [*EXTENSION_ARGS, "--NbclusterApp.stop_clusters_on_shutdown=False"]
    procs: list[psutil.Process] = []
    try:
        with JupyterProcess(home=home, extra_args=keep) as first:
            code, cluster = await rest(first, "POST", "nbcluster/api/clusters", {"name": "kept"})
            assert code == 201, cluster
            procs = session_pids(first, "kept")
        assert not gone(procs), "the cluster stopped with the server"
        with JupyterProcess(home=home, extra_args=EXTENSION_ARGS) as second:
            code, listed = await rest(second, "GET", "nbcluster/api/clusters")
            assert code == 200
            (again,) = listed["clusters"]
            assert (again["name"], again["address"], again["status"]) == ("kept", cluster["address"], "running")
            assert again["nodes"]["alive"] == 1
            code, _ = await rest(second, "DELETE", "nbcluster/api/clusters/kept")
            assert code == 204
            assert gone(procs)
    finally:
        for proc in procs:
            if not gone([proc]):
                proc.kill()
        shutil.rmtree(home, ignore_errors=True)


async def test_server_killed_while_a_cluster_starts_does_not_orphan_it() -> None:
    """The server is SIGKILLed once the registry lists the cluster as starting (its
    session known, its head maybe not serving yet): the next server re-attaches it once
    it serves, and DELETE stops it. (Should the helper have stopped it because the server
    died before taking it, nothing of it may be left running.)"""
    home = Path(tempfile.mkdtemp(prefix="nbc-jupyter-"))
    left: list[psutil.Process] = []  # the start's helper, and the cluster's processes
    try:
        first = JupyterProcess(home=home, extra_args=EXTENSION_ARGS).start()
        try:
            registry = first.runtime_dir / "nbcluster-server-clusters.json"

            async def starting() -> list[dict[str, Any]]:
                try:
                    listed = json.loads(registry.read_text())["clusters"]
                except (OSError, ValueError):
                    return []
                return [c for c in listed if c["name"] == "orphan" and c.get("starting")]

            posting = asyncio.ensure_future(rest(first, "POST", "nbcluster/api/clusters", {"name": "orphan"}))
            (record,) = await until(starting, 60.0, "the registry to list the cluster as starting")
            assert first.proc is not None
            left += psutil.Process(first.proc.pid).children(recursive=True)
            first.proc.kill()
            first.proc.wait(10)
            with contextlib.suppress(OSError):  # the POST gets no answer
                await posting
        finally:
            first.stop()
        session_dir = Path(record["session_dir"])
        if (session_dir / "processes.json").exists():
            left += session_processes(session_dir)

        with JupyterProcess(home=home, extra_args=EXTENSION_ARGS) as second:
            async def settled() -> tuple[list[dict[str, Any]]] | None:
                code, listed = await rest(second, "GET", "nbcluster/api/clusters")
                assert code == 200, listed
                clusters = listed["clusters"]  # [] too is settled: wrapped, as until() waits for a truthy value
                return (clusters,) if not clusters or clusters[0]["status"] != "starting" else None

            try:  # it settles within the start-up timeout (30 s) and a stop
                (clusters,) = await until(settled, 60.0, "the cluster left starting to be re-attached or dropped")
            except BaseException:
                print(second.log())
                raise
            if not clusters:  # the helper saw the server die before it took the cluster
                await until(lambda: gone(left), 60.0, "the helper and what it started to exit")
                return
            (cluster,) = clusters
            assert (cluster["name"], cluster["status"], cluster["origin"]) == ("orphan", "running", "created"), (
                cluster, second.log())
            assert cluster["address"]
            procs = session_processes(session_dir)
            left += procs
            listed = json.loads((second.runtime_dir / "nbcluster-clusters.json").read_text())["clusters"]
            assert [c["name"] for c in listed] == ["orphan"]
            code, _ = await rest(second, "DELETE", "nbcluster/api/clusters/orphan")
            assert code == 204
            assert gone(procs) and not session_dir.exists()
    finally:
        for proc in left:
            if not gone([proc]):
                proc.kill()
        shutil.rmtree(home, ignore_errors=True)
