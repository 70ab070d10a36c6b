"""Attaching clusters started elsewhere (a script's cluster_utils.Cluster, the CLI), their
live events as server-sent events (also when a head hangs), and their Jobs API through
the server."""

from __future__ import annotations

import asyncio
import json
import stat
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from nbcluster import state

from ..conftest import FAST_CONFIG
from .conftest import session_processes, until
from .test_handlers import call, discovery


@pytest.fixture
def script_cluster() -> Iterator[Any]:
    """A cluster a script started (no autoscaler): cluster_utils.Cluster, 1-CPU head."""
    from nbcluster.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "_system_config": FAST_CONFIG},
                      shutdown_at_exit=False)
    try:
        yield cluster
    finally:
        cluster.shutdown()


def token_file(cluster: Any) -> Path:
    return Path(cluster.head_node.session_dir) / "token"


async def test_attach_by_token_and_forget(jp_fetch: Any, jp_serverapp: Any, jp_runtime_dir: Path,
                                          script_cluster: Any) -> None:
    address, token = script_cluster.address, token_file(script_cluster).read_text().strip()
    code, answer = await call(jp_fetch, "POST", "attach", payload={"name": "ext", "address": address, "token": "wrong"})
    assert code == 400 and "refused the token" in answer["message"]

    code, cluster = await call(jp_fetch, "POST", "attach", payload={"name": "ext", "address": address, "token": token})
    assert code == 201, cluster
    assert cluster["origin"] == "attached" and cluster["status"] == "running" and cluster["address"] == address
    assert cluster["autoscaler"] is False and cluster["workers"] is None and cluster["nodes"]["alive"] == 1
    # The inline token went to a 0600 file in the runtime dir, which the discovery file names.
    (listed,) = discovery(jp_runtime_dir)["clusters"]
    assert listed["name"] == "ext" and listed["address"] == address
    kept = Path(listed["token_file"])
    assert kept.parent.parent == jp_runtime_dir and stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert kept.read_text() == token

    code, nodes = await call(jp_fetch, "GET", "clusters", "ext", "nodes")
    assert code == 200 and [n["is_head"] for n in nodes["nodes"]] == [True]
    code, autoscaler = await call(jp_fetch, "GET", "clusters", "ext", "autoscaler")
    assert (code, autoscaler) == (200, {"enabled": False})
    code, answer = await call(jp_fetch, "PATCH", "clusters", "ext", payload={"workers": 2})
    assert code == 409 and "no autoscaler" in answer["message"]

    # Forgetting it leaves it running.
    code, _ = await call(jp_fetch, "DELETE", "clusters", "ext")
    assert code == 204
    assert not kept.exists() and discovery(jp_runtime_dir) == {"clusters": []}
    assert [n.state for n in await asyncio.to_thread(state.list_nodes, address=address, token=token)] == ["ALIVE"]


async def test_clusters_on_this_machine_are_found_and_attached_by_address(jp_fetch: Any, jp_serverapp: Any,
                                                                          script_cluster: Any) -> None:
    """A cluster made in code (here a script's) shows up under `local`, and attaches by
    its address alone: the server reads the token from its session."""
    address = script_cluster.address
    code, found = await call(jp_fetch, "GET", "local")
    assert code == 200 and address in [c["address"] for c in found["clusters"]], found
    (mine,) = [c for c in found["clusters"] if c["address"] == address]
    assert mine["session_dir"] == script_cluster.head_node.session_dir and "token" not in json.dumps(found)

    code, answer = await call(jp_fetch, "POST", "attach", payload={"name": "far", "address": "192.0.2.1:6380"})
    assert code == 400 and "not a cluster running on this machine" in answer["message"]
    code, cluster = await call(jp_fetch, "POST", "attach", payload={"name": "mine", "address": address})
    assert code == 201 and cluster["status"] == "running" and cluster["nodes"]["alive"] == 1, cluster
    code, found = await call(jp_fetch, "GET", "local")
    assert address not in [c["address"] for c in found["clusters"]], "a known cluster is not offered again"
    code, _ = await call(jp_fetch, "DELETE", "clusters", "mine")
    assert code == 204


async def test_attach_cli_cluster_by_token_file(jp_fetch: Any, jp_serverapp: Any, tmp_path: Path) -> None:
    """A cluster `nbcluster up` started, with the autoscaler: attached by token file,
    scaled through the server."""
    from ..cli_tools import Machine

    config = tmp_path / "cluster.yaml"
    config.write_text(
        "cluster_name: clitest\nmax_workers: 1\nidle_timeout_minutes: 0.05\n"
        "available_node_types:\n  worker: {resources: {CPU: 1}, min_workers: 0, max_workers: 1}\n"
    )
    machine = Machine("cli")
    try:
        out = machine.run("up", str(config), "--port", "0", "--system-config", json.dumps(FAST_CONFIG)).stdout
        address = out.split("head node at ", 1)[1].split(" ", 1)[0]
        token_path = out.split("token file:", 1)[1].split()[0]
        code, cluster = await call(jp_fetch, "POST", "attach",
                                   payload={"name": "cli", "address": address, "token_file": token_path})
        assert code == 201, cluster
        assert cluster["autoscaler"] is True and cluster["workers"]["node_type"] == "worker"
        code, scaled = await call(jp_fetch, "PATCH", "clusters", "cli", payload={"workers": 1})
        assert code == 200 and scaled["workers"]["min"] == 1

        async def one_worker() -> bool:
            _, got = await call(jp_fetch, "GET", "clusters", "cli")
            return got["nodes"]["alive"] == 2

        await until(one_worker, 90.0, "the CLI cluster's worker node")
        code, _ = await call(jp_fetch, "DELETE", "clusters", "cli")
        assert code == 204
    finally:
        machine.close()


async def _sse(jp_fetch: Any, name: str, chunks: list[str], *path: str, **params: str) -> Any:
    """A cluster's stream (``events``, or ``path`` under it such as a job's log tail)."""

    def received(chunk: bytes) -> None:
        chunks.append(chunk.decode())

    return await jp_fetch("nbcluster", "api", "clusters", name, *(path or ("events",)), params=params,
                          streaming_callback=received, request_timeout=120)


def _events_of(chunks: list[str], kind: str) -> list[Any]:
    return [data for k, data in _events(chunks) if k == kind]


def _events(chunks: list[str]) -> list[tuple[str, Any]]:
    out = []
    for block in "".join(chunks).split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines() if not line.startswith(":") and ": " in line)
        if "event" in lines:
            out.append((lines["event"], json.loads(lines["data"])))
    return out


async def test_events_stream(jp_fetch: Any, jp_serverapp: Any, script_cluster: Any) -> None:
    address, token = script_cluster.address, token_file(script_cluster).read_text().strip()
    code, _ = await call(jp_fetch, "POST", "attach", payload={"name": "live", "address": address, "token": token})
    assert code == 201
    chunks: list[str] = []
    stream = asyncio.ensure_future(_sse(jp_fetch, "live", chunks, replay="1"))
    try:
        async def seen(kind: str) -> Any:
            return [data for k, data in _events(chunks) if k == kind]

        (snapshot,) = await until(lambda: seen("snapshot"), 60.0, "the snapshot")
        assert snapshot["name"] == "live" and snapshot["nodes"]["alive"] == 1
        # Replayed: the head's own node joining.
        added = await until(lambda: seen("NODE_ADDED"), 60.0, "a replayed NODE_ADDED")
        assert added[0]["kind"] == "NODE_ADDED" and set(added[0]) >= {"seq", "time", "message", "node_id", "data"}
        # Live: a node joins.
        node = await asyncio.to_thread(script_cluster.add_node, num_cpus=1)
        await until(lambda: _has_node(chunks, node.node_id), 60.0, "NODE_ADDED of the new node")
        # Deleting the cluster ends the stream with `deleted`.
        code, _ = await call(jp_fetch, "DELETE", "clusters", "live")
        assert code == 204
        response = await asyncio.wait_for(stream, 60.0)
        assert response.code == 200 and response.headers["Content-Type"].startswith("text/event-stream")
        assert _events(chunks)[-1] == ("deleted", {"name": "live"})
    finally:
        stream.cancel()


async def test_list_stream_follows_clusters_added_and_removed(jp_fetch: Any, jp_serverapp: Any,
                                                             script_cluster: Any) -> None:
    """``events``: the list now, then again when a cluster is attached and deleted."""
    chunks: list[str] = []

    def received(chunk: bytes) -> None:
        chunks.append(chunk.decode())

    stream = asyncio.ensure_future(jp_fetch("nbcluster", "api", "events", streaming_callback=received,
                                            request_timeout=120))
    try:
        def lists_were(*expected: list[str]) -> Callable[[], Awaitable[bool]]:
            async def check() -> bool:
                return [[c["name"] for c in d["clusters"]] for k, d in _events(chunks) if k == "clusters"] == [
                    *expected]
            return check

        await until(lists_were([]), 60.0, "the empty list first")
        code, _ = await call(jp_fetch, "POST", "attach", payload={"name": "seen", "address": script_cluster.address})
        assert code == 201
        await until(lists_were([], ["seen"]), 60.0, "the list with the attached cluster")
        code, _ = await call(jp_fetch, "DELETE", "clusters", "seen")
        assert code == 204
        await until(lists_were([], ["seen"], []), 60.0, "the list without it")
    finally:
        stream.cancel()


async def _has_node(chunks: list[str], node_id: str) -> bool:
    return any(k == "NODE_ADDED" and d["node_id"] == node_id for k, d in _events(chunks))


async def test_client_leaving_closes_its_stream(jp_fetch: Any, jp_serverapp: Any, jp_http_port: int,
                                                jp_base_url: str, jp_auth_header: dict, script_cluster: Any) -> None:
    """A client that goes away ends its handler and closes its GCS Watch stream."""
    from nbcluster.server_ext.events_handler import EventsHandler

    address, token = script_cluster.address, token_file(script_cluster).read_text().strip()
    code, _ = await call(jp_fetch, "POST", "attach", payload={"name": "w", "address": address, "token": token})
    assert code == 201
    reader, writer = await asyncio.open_connection("127.0.0.1", jp_http_port)
    path = f"{jp_base_url}nbcluster/api/clusters/w/events"
    writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {jp_auth_header['Authorization']}"
                 "\r\n\r\n".encode())
    await writer.drain()
    received = b""
    while b"event: snapshot" not in received:
        received += await asyncio.wait_for(reader.read(65536), 60.0)
    assert received.startswith(b"HTTP/1.1 200")
    assert len(EventsHandler.streams) == 1
    writer.close()  # the client leaves
    await writer.wait_closed()

    async def ended() -> bool:
        return not EventsHandler.streams

    await until(ended, 30.0, "the handler to end its stream")
    code, _ = await call(jp_fetch, "DELETE", "clusters", "w")
    assert code == 204


async def test_jobs_proxy(jp_fetch: Any, jp_serverapp: Any, script_cluster: Any, tmp_path: Path) -> None:
    address, token = script_cluster.address, token_file(script_cluster).read_text().strip()
    code, _ = await call(jp_fetch, "POST", "attach", payload={"name": "jobs", "address": address, "token": token})
    assert code == 201
    try:
        code, jobs = await call(jp_fetch, "GET", "clusters", "jobs", "jobs", "")
        assert code == 200 and isinstance(jobs, list)
        code, submitted = await call(jp_fetch, "POST", "clusters", "jobs", "jobs", "",
                                     payload={"entrypoint": "echo proxied-hello", "submission_id": "via-proxy"})
        assert code == 200, submitted
        assert submitted["submission_id"] == "via-proxy"

        async def finished() -> Any:
            _, job = await call(jp_fetch, "GET", "clusters", "jobs", "jobs", "via-proxy")
            return job if job["status"] in ("SUCCEEDED", "FAILED", "STOPPED") else None

        job = await until(finished, 90.0, "the job to finish")
        assert job["status"] == "SUCCEEDED"
        code, logs = await call(jp_fetch, "GET", "clusters", "jobs", "jobs", "via-proxy", "logs")
        assert code == 200 and "proxied-hello" in logs["logs"]

        # The head's websocket log tail, as server-sent events: lines as they come, then the end.
        go = tmp_path / "go"  # the job prints its second line once the test has seen the first
        script = tmp_path / "two_lines.py"
        script.write_text("import os, time\nprint('first', flush=True)\nend = time.monotonic() + 60\n"
                          f"while not os.path.exists({str(go)!r}) and time.monotonic() < end:\n    time.sleep(0.05)\n"
                          "print('second')\n")
        code, _ = await call(jp_fetch, "POST", "clusters", "jobs", "jobs", "", payload={
            "submission_id": "tailed", "entrypoint": f"python {script}"})
        assert code == 200
        chunks: list[str] = []
        tail = asyncio.ensure_future(_sse(jp_fetch, "jobs", chunks, "jobs", "tailed", "logs", "tail"))
        try:
            def text() -> str:
                return "".join(d["text"] for k, d in _events(chunks) if k == "log")

            async def first_only() -> bool:
                return "first" in text() and "second" not in text()

            await until(first_only, 60.0, "the first line while the job still runs")
            go.touch()
            response = await asyncio.wait_for(tail, 60.0)
            assert response.headers["Content-Type"].startswith("text/event-stream")
            assert "second" in text() and _events(chunks)[-1] == ("end", {"code": 1000, "reason": "the job ended"})
        finally:
            tail.cancel()
        unknown: list[str] = []
        await asyncio.wait_for(_sse(jp_fetch, "jobs", unknown, "jobs", "no-such-job", "logs", "tail"), 60.0)
        (end,) = [d for k, d in _events(unknown) if k == "end"]
        assert end["code"] == 4004 and "no-such-job" in end["reason"], end
        code, answer = await call(jp_fetch, "GET", "clusters", "jobs", "jobs", "no-such-job")
        assert code == 404  # the head's answer, passed through
        code, answer = await call(jp_fetch, "DELETE", "clusters", "jobs", "jobs", "via-proxy")
        assert code == 200, answer
        # The path stays under the head's /api/jobs/: no odd characters, no . or .. (also encoded).
        for path in (("a%20b",), ("x", "%2e%2e", "%2e%2e", "version"), ("%2E%2E%2Fversion",), (".", "x")):
            code, answer = await call(jp_fetch, "GET", "clusters", "jobs", "jobs", *path)
            assert code == 400 and "Jobs API path" in answer["message"], (path, code, answer)
    finally:
        code, _ = await call(jp_fetch, "DELETE", "clusters", "jobs")
        assert code == 204


async def test_a_hung_head_ends_the_stream_as_unreachable(jp_fetch: Any, jp_serverapp: Any, jp_runtime_dir: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """A head that hangs (SIGSTOP) keeps its connections open, so the stream would go on
    sending keepalives: the check after a keepalive finds that it does not answer, the
    stream ends with `unreachable` and the cluster says so; it is running again once the
    head goes on (SIGCONT)."""
    from nbcluster.server_ext.events_handler import EventsHandler
    from nbcluster.server_ext.jobs_proxy import JobLogTailHandler

    (app,) = jp_serverapp.extension_manager.extension_apps["nbcluster"]
    for handler in (EventsHandler, JobLogTailHandler):
        monkeypatch.setattr(handler, "keepalive_s", 0.5)
    monkeypatch.setattr(app.manager, "ping_timeout_s", 3.0)
    code, cluster = await call(jp_fetch, "POST", "clusters", payload={"name": "hung", "workers": 0})
    assert code == 201, cluster
    (listed,) = discovery(jp_runtime_dir)["clusters"]
    (head,) = [p for p in session_processes(Path(listed["token_file"]).parent)
               if "nbcluster.runtime.gcs" in p.cmdline()]
    code, _ = await call(jp_fetch, "POST", "clusters", "hung", "jobs", "", payload={
        "submission_id": "sleeper", "entrypoint": "python -c \"import time; print('up', flush=True); time.sleep(120)\""})
    assert code == 200
    chunks: list[str] = []
    tail: list[str] = []
    stream = asyncio.ensure_future(_sse(jp_fetch, "hung", chunks))
    tailing = asyncio.ensure_future(_sse(jp_fetch, "hung", tail, "jobs", "sleeper", "logs", "tail"))
    try:
        await until(lambda: _events_of(chunks, "snapshot"), 60.0, "the snapshot")
        await until(lambda: ": keepalive" in "".join(chunks), 30.0, "a keepalive (with its check)")
        await until(lambda: "up" in "".join(d["text"] for d in _events_of(tail, "log")), 60.0, "the job's first line")
        head.suspend()
        try:
            (event,) = await until(lambda: _events_of(chunks, "unreachable"), 30.0, "`unreachable` after the head hung")
            assert event["name"] == "hung" and "did not answer within 3 s" in event["message"], event
            response = await asyncio.wait_for(stream, 30.0)
            assert response.code == 200 and _events(chunks)[-1][0] == "unreachable"
            # The job's log tail (a websocket on the head, open but silent) ends the same way.
            (event,) = await until(lambda: _events_of(tail, "unreachable"), 30.0, "`unreachable` on the log tail")
            assert "did not answer within 3 s" in event["message"], event
            response = await asyncio.wait_for(tailing, 30.0)
            assert response.code == 200 and _events(tail)[-1][0] == "unreachable"
            assert discovery(jp_runtime_dir) == {"clusters": []}  # kernels no longer find it
            code, got = await call(jp_fetch, "GET", "clusters", "hung")
            assert code == 200 and got["status"] == "unreachable", got
        finally:
            head.resume()

        async def running() -> bool:
            _, got = await call(jp_fetch, "GET", "clusters", "hung")
            return got["status"] == "running"

        await until(running, 60.0, "the cluster to be running again")
        assert [c["name"] for c in discovery(jp_runtime_dir)["clusters"]] == ["hung"]
    finally:
        stream.cancel()
        tailing.cancel()
        code, _ = await call(jp_fetch, "DELETE", "clusters", "hung")
        assert code == 204
