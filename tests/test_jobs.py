"""Submitted jobs end to end: the Jobs REST API on a real head, supervisors and
entrypoints as real processes, a worker node for the job's tasks."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import subprocess
import textwrap
import threading
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from typing import Any

import psutil
import pytest

from nbcluster.cluster_utils import Cluster
from nbcluster.runtime.runtime_env import packages

from .conftest import FAST_CONFIG, restart_gcs, wait_for

TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")


class Api:
    """The REST API as any HTTP client sees it."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster

    @property
    def address(self) -> str:
        return self.cluster.head_node._handle.session.read_address()["jobs_address"]

    @property
    def token(self) -> str:
        return self.cluster.head_node._handle.token

    def call(self, method: str, path: str, body: Any = None, token: str | None = "", raw: bytes | None = None,
             headers: dict[str, str] | None = None) -> tuple[int, Any]:
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        head = dict(headers or {})
        if token is not None:
            head["Authorization"] = f"Bearer {token or self.token}"
        request = urllib.request.Request(f"http://{self.address}{path}", data=data, method=method, headers=head)
        try:
            with urllib.request.urlopen(request, timeout=30) as reply:
                return reply.status, json.loads(reply.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    def upload(self, directory: Path, include_parent: bool = False) -> str:
        data = packages.zip_directory(directory, include_parent=include_parent)
        uri = packages.package_uri(data)
        status, reply = self.call("PUT", f"/api/packages/gcs/{uri.split('://')[1]}", raw=data)
        assert status == 200, reply
        return uri

    def submit(self, **body: Any) -> str:
        status, reply = self.call("POST", "/api/jobs/", body)
        assert status == 200, reply
        return reply["submission_id"]

    def job(self, job_id: str) -> dict:
        status, reply = self.call("GET", f"/api/jobs/{job_id}")
        assert status == 200, reply
        return reply

    def wait_done(self, job_id: str, timeout: float = 90) -> dict:
        return wait_for(lambda: (j := self.job(job_id))["status"] in TERMINAL and j, timeout=timeout,
                        interval=0.1, message=f"job {job_id} to end")

    def logs(self, job_id: str) -> str:
        return self.call("GET", f"/api/jobs/{job_id}/logs")[1]["logs"]


@pytest.fixture(scope="module")
def cluster(head_and_worker: Cluster) -> Cluster:
    return head_and_worker


@pytest.fixture
def api(cluster: Cluster) -> Api:
    return Api(cluster)


def marked(marker: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        if any(marker in part for part in proc.info["cmdline"] or ()):
            found.append(proc)
    return found


def test_a_working_dir_job_runs_tasks_on_another_node(api: Api, tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / "helper.py").write_text("def triple(x):\n    return 3 * x\n")
    (work / "main.py").write_text(textwrap.dedent("""
        import os
        import nbcluster
        nbcluster.init()

        @nbcluster.remote(resources={"other": 1})
        def remote_triple(x):
            import helper  # from the working_dir, on the other node
            return helper.triple(x), nbcluster.get_runtime_context().get_node_id(), os.path.basename(os.getcwd())

        results = nbcluster.get([remote_triple.remote(i) for i in range(4)])
        print("TRIPLES", [r[0] for r in results])
        print("NODES", sorted({r[1] for r in results}))
        print("CWD", sorted({r[2] for r in results}))
        print("DRIVER", nbcluster.get_runtime_context().get_node_id())
    """))
    uri = api.upload(work)
    job_id = api.submit(entrypoint="python main.py", runtime_env={"working_dir": uri, "env_vars": {"X": "1"}})
    job = api.wait_done(job_id)
    logs = api.logs(job_id)
    assert job["status"] == "SUCCEEDED", logs
    assert job["driver_exit_code"] == 0 and job["type"] == "SUBMISSION"
    assert "TRIPLES [0, 3, 6, 9]" in logs
    other = next(n for n in api.cluster.list_all_nodes if n is not api.cluster.head_node).node_id
    nodes = json.loads(logs.split("NODES ")[1].splitlines()[0].replace("'", '"'))
    driver = logs.split("DRIVER ")[1].split()[0]
    assert len(nodes) == 1 and nodes[0] != driver, logs  # the tasks ran on the worker node
    assert nodes[0] == other
    assert f"CWD ['{uri.split('://')[1].removesuffix('.zip')}']" in logs
    assert job["progress"]["finished"] == 4 and job["progress"]["submitted"] == 4


def test_a_failing_entrypoint_ends_failed_with_its_exit_code(api: Api) -> None:
    job_id = api.submit(entrypoint="echo before && exit 3")
    job = api.wait_done(job_id)
    assert job["status"] == "FAILED" and job["driver_exit_code"] == 3
    assert "exited with code 3" in job["message"]
    assert api.logs(job_id) == "before\n"


def test_stop_ends_the_whole_process_group(api: Api) -> None:
    marker = f"nbc-stop-{os.getpid()}-{time.monotonic_ns()}"
    entry = f"sleep 300 & python -c 'import time; time.sleep(300)' {marker}; wait"
    job_id = api.submit(entrypoint=f"{entry} # {marker}")
    wait_for(lambda: api.job(job_id)["status"] == "RUNNING", timeout=30)
    wait_for(lambda: len(marked(marker)) >= 2, timeout=30, message="the entrypoint's processes")
    assert api.call("POST", f"/api/jobs/{job_id}/stop")[1] == {"stopped": True}
    job = api.wait_done(job_id, timeout=30)
    assert job["status"] == "STOPPED"
    wait_for(lambda: not marked(marker), timeout=10, message="every process of the stopped job gone")
    assert api.call("POST", f"/api/jobs/{job_id}/stop")[1] == {"stopped": False}
    assert api.call("DELETE", f"/api/jobs/{job_id}")[1] == {"deleted": True}
    assert api.call("GET", f"/api/jobs/{job_id}")[0] == 404


def test_tail_streams_lines_while_the_job_runs(api: Api) -> None:
    from tornado.httpclient import HTTPRequest
    from tornado.websocket import websocket_connect

    job_id = api.submit(entrypoint="for i in 1 2 3 4 5 6; do echo line $i; sleep 1; done")
    got: list[tuple[float, str]] = []

    async def tail() -> None:
        request = HTTPRequest(f"ws://{api.address}/api/jobs/{job_id}/logs/tail",
                              headers={"Authorization": f"Bearer {api.token}"})
        ws = await websocket_connect(request)
        try:
            while (chunk := await ws.read_message()) is not None:
                got.append((time.time(), chunk))
        finally:
            ws.close()

    thread = threading.Thread(target=lambda: asyncio.run(tail()))
    thread.start()
    thread.join(timeout=60)
    assert not thread.is_alive()
    job = api.job(job_id)
    text = "".join(chunk for _, chunk in got)
    assert text == "".join(f"line {i}\n" for i in range(1, 7))
    assert job["status"] == "SUCCEEDED"
    first_line_at = next(t for t, chunk in got if "line 1" in chunk)
    assert first_line_at < job["end_time"] / 1000 - 0.5  # streamed while it ran, not at the end


def test_every_route_refuses_without_the_token(api: Api, tmp_path: Path) -> None:
    before_jobs = api.call("GET", "/api/jobs/")[1]
    data = packages.zip_directory(_tree(tmp_path))
    name = packages.package_uri(data).split("://")[1]
    routes = [
        ("GET", "/api/version", None), ("GET", "/api/jobs/", None),
        ("POST", "/api/jobs/", json.dumps({"entrypoint": "touch /tmp/nbc-should-not-exist"}).encode()),
        ("GET", f"/api/packages/gcs/{name}", None), ("PUT", f"/api/packages/gcs/{name}", data),
        ("GET", "/api/jobs/x", None), ("DELETE", "/api/jobs/x", None), ("POST", "/api/jobs/x/stop", b""),
        ("GET", "/api/jobs/x/logs", None), ("GET", "/api/jobs/x/logs/tail", None),
    ]
    for method, path, raw in routes:
        status, reply = api.call(method, path, token=None, raw=raw)
        assert status == 401 and "token" in reply["error"], (method, path, status, reply)
        status, reply = api.call(method, path, token="not-the-token", raw=raw)
        assert status == 401 and "not this cluster's" in reply["error"], (method, path, status, reply)
    assert api.call("GET", "/api/jobs/")[1] == before_jobs  # no job row
    assert api.call("GET", f"/api/packages/gcs/{name}")[0] == 404  # no package
    assert not Path("/tmp/nbc-should-not-exist").exists()
    cross = api.call("POST", "/api/jobs/", {"entrypoint": "true"}, headers={"Origin": "http://evil.example"})
    assert cross[0] == 403 and api.call("GET", "/api/jobs/")[1] == before_jobs


def _tree(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    root.mkdir(exist_ok=True)
    (root / "a.py").write_text("A = 1\n")
    return root


def _zip(entries: list[tuple[str, bytes, int]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, content, mode in entries:
            info = zipfile.ZipInfo(name)
            info.create_system = 3
            info.external_attr = mode << 16
            zf.writestr(info, content)
    return buffer.getvalue()


def test_unsafe_zips_are_refused_and_nothing_is_written(api: Api, cluster: Cluster) -> None:
    session = Path(cluster.head_node.session_dir)
    before = {p for p in session.parent.rglob("*")}
    import stat

    for data in (
        _zip([("ok.py", b"", 0o100644), ("../evil.py", b"x", 0o100644)]),
        _zip([("link", b"/etc/passwd", stat.S_IFLNK | 0o777)]),
        _zip([("/abs.py", b"x", 0o100644)]),
        b"not a zip at all",
    ):
        name = packages.package_uri(data).split("://")[1]
        status, reply = api.call("PUT", f"/api/packages/gcs/{name}", raw=data)
        assert status == 400, reply
        assert api.call("GET", f"/api/packages/gcs/{name}")[0] == 404
    after = {p for p in session.parent.rglob("*") if "logs" not in p.parts}
    assert {p for p in after - before if "logs" not in p.parts} == set()
    # A package under another name than its content's is refused too.
    good = _zip([("a.py", b"x", 0o100644)])
    status, _ = api.call("PUT", f"/api/packages/gcs/{packages.PREFIX}{'0' * 32}.zip", raw=good)
    assert status == 400
    status, reply = api.call("POST", "/api/jobs/", {"entrypoint": "true", "runtime_env": {"conda": "x"}})
    assert status == 400 and "conda" in reply["error"]
    status, reply = api.call("POST", "/api/jobs/", {"entrypoint": "true", "runtime_env": {"working_dir": "/tmp"}})
    assert status == 400 and "working_dir" in reply["error"]


def test_a_submission_id_makes_one_job(api: Api) -> None:
    sid = f"once-{time.monotonic_ns()}"
    assert api.submit(entrypoint="true", submission_id=sid) == sid
    status, reply = api.call("POST", "/api/jobs/", {"entrypoint": "true", "submission_id": sid})
    assert status == 409 and sid in reply["error"]
    assert [j["submission_id"] for j in api.call("GET", "/api/jobs/")[1]].count(sid) == 1
    api.wait_done(sid)


def test_job_records_and_logs_survive_a_head_restart() -> None:
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "_system_config": FAST_CONFIG})
    restarted: subprocess.Popen | None = None
    marker = f"nbc-restart-{os.getpid()}-{time.monotonic_ns()}"
    try:
        api = Api(cluster)
        done = api.submit(entrypoint="echo finished before the restart")
        assert api.wait_done(done)["status"] == "SUCCEEDED"
        running = api.submit(entrypoint=f"echo started; python -c 'import time; time.sleep(300)' {marker}")
        wait_for(lambda: "started" in api.logs(running) and marked(marker), timeout=30)
        restarted = restart_gcs(cluster)
        # The restarted head serves the same tables from the session's SQLite and logs.
        old = api.address
        wait_for(lambda: api.address != old, timeout=30, message="the restarted head's address")
        wait_for(lambda: _answers(api), timeout=30, message="the restarted head to answer")
        assert api.job(done)["status"] == "SUCCEEDED"
        assert api.logs(done) == "finished before the restart\n"
        job = api.job(running)
        assert job["status"] == "FAILED" and "head restarted" in job["message"]
        assert "started" in api.logs(running)
        # The supervisor lost its head: it ended the entrypoint.
        wait_for(lambda: not marked(marker), timeout=30, message="the old job's processes gone")
    finally:
        if restarted is not None:
            restarted.terminate()
            restarted.wait(15)
        cluster.shutdown()


def _answers(api: Api) -> bool:
    try:
        return api.call("GET", "/api/version")[0] == 200
    except OSError:
        return False


def test_stopping_a_pending_job_ends_it(api: Api) -> None:
    job_id = api.submit(entrypoint="echo never", entrypoint_resources={"nowhere": 1})
    job = wait_for(lambda: (j := api.job(job_id))["message"] and j, timeout=10, message="the pending job's reason")
    assert job["status"] == "PENDING" and "no node has these resources" in job["message"]
    assert api.call("POST", f"/api/jobs/{job_id}/stop")[1] == {"stopped": True}
    job = api.job(job_id)
    assert job["status"] == "STOPPED" and "before it started" in job["message"]
    assert api.logs(job_id) == ""


def test_the_python_client_ships_py_modules_and_follows_logs_inside_a_loop(api: Api, tmp_path: Path) -> None:
    from nbcluster.job_submission import JobStatus, JobSubmissionClient

    lib = tmp_path / "mylib"
    lib.mkdir()
    (lib / "__init__.py").write_text("def greet(who):\n    return f'hello {who}'\n")
    work = tmp_path / "work"
    work.mkdir()
    (work / "main.py").write_text(textwrap.dedent("""
        import nbcluster
        nbcluster.init()

        @nbcluster.remote(resources={"other": 1})
        def greet(who):
            import mylib  # shipped as a py_module, imported on the other node
            return mylib.greet(who)

        print(nbcluster.get(greet.remote("cluster")))
    """))
    client = JobSubmissionClient(f"http://{api.address}", token=api.token)
    job = client.submit_job(entrypoint="python main.py", runtime_env={"working_dir": str(work), "py_modules": [str(lib)]})

    async def follow() -> str:  # a running event loop, as in a notebook cell
        return "".join(client.iter_job_logs(job, timeout=90))

    assert asyncio.run(follow()) == "hello cluster\n"
    assert client.get_job_status(job) is JobStatus.SUCCEEDED
    info = client.get_job_info(job)
    assert info.runtime_env["py_modules"][0].startswith("gcs://") and info.progress.finished == 1


def test_a_driver_ships_its_working_dir_with_init(tmp_path: Path) -> None:
    from .conftest import run_python

    work = tmp_path / "shipped"
    work.mkdir()
    (work / "shipped_helper.py").write_text("VALUE = 41\n")
    proc = run_python(f"""
        import os
        import nbcluster
        nbcluster.init(num_cpus=1, runtime_env={{"working_dir": {str(work)!r}}})

        @nbcluster.remote
        def read():
            import shipped_helper
            return shipped_helper.VALUE + 1, os.path.basename(os.getcwd())

        print("RESULT", nbcluster.get(read.remote()))
        nbcluster.shutdown()
    """, cwd=tmp_path.parent)
    assert "RESULT (42, '_nbcluster_pkg_" in proc.stdout
    bad = run_python("""
        import nbcluster
        nbcluster.init(num_cpus=1, runtime_env={"working_dir": "/does/not/exist"})
    """, check=False)
    assert bad.returncode != 0 and "runtime_env working_dir '/does/not/exist' is not a directory" in bad.stderr


def test_env_vars_reach_the_jobs_tasks_and_bad_numbers_are_refused(api: Api) -> None:
    script = ("import os, nbcluster; nbcluster.init(); "
              "f = nbcluster.remote(lambda: os.environ.get('MYVAR')); "
              "print('driver', os.environ.get('MYVAR'), 'task', nbcluster.get(f.remote()))")
    job_id = api.submit(entrypoint=f'python -c "{script}"', runtime_env={"env_vars": {"MYVAR": "hello"}})
    assert api.wait_done(job_id)["status"] == "SUCCEEDED", api.logs(job_id)
    assert api.logs(job_id) == "driver hello task hello\n"
    for bad in ({"entrypoint_num_cpus": float("nan")}, {"entrypoint_memory": float("inf")},
                {"entrypoint_resources": {"x": -1}}):
        status, reply = api.call("POST", "/api/jobs/", raw=json.dumps({"entrypoint": "true", **bad}).encode())
        assert status == 400, (bad, reply)


def test_a_killed_supervisor_fails_its_job_and_ends_the_entrypoint(api: Api) -> None:
    marker = f"nbc-orphan-{os.getpid()}-{time.monotonic_ns()}"
    job_id = api.submit(entrypoint=f"python -c 'import time; time.sleep(300)' {marker}")
    wait_for(lambda: marked(marker), timeout=30, message="the entrypoint running")
    # RUNNING is reported once the supervisor has recorded the entrypoint's process group
    # (its pid file): the node manager ends that group when the supervisor dies.
    wait_for(lambda: api.job(job_id)["status"] == "RUNNING", timeout=30, message="the job reported running")
    supervisor = next(p for p in psutil.process_iter(["cmdline"])
                      if "nbcluster.runtime.jobs.supervisor" in " ".join(p.info["cmdline"] or ())
                      and job_id in " ".join(p.info["cmdline"] or ()))
    supervisor.send_signal(signal.SIGKILL)
    job = api.wait_done(job_id, timeout=30)
    assert job["status"] == "FAILED" and "supervisor exited" in job["message"]
    wait_for(lambda: not marked(marker), timeout=10, message="the orphaned entrypoint ended")


def test_a_process_leaving_the_group_does_not_keep_the_job_running(api: Api) -> None:
    marker = f"nbc-setsid-{os.getpid()}-{time.monotonic_ns()}"
    # The escaped process keeps the job's output pipe open.
    job_id = api.submit(
        entrypoint=f"setsid python -c 'import time; time.sleep(30)' {marker} & sleep 1; echo started"
    )
    job = api.wait_done(job_id, timeout=15)
    assert job["status"] == "SUCCEEDED" and api.logs(job_id) == "started\n"
    escaped = wait_for(lambda: marked(marker), timeout=10, message="the escaped process")
    for proc in escaped:  # it left the job on purpose; end it here
        proc.kill()
    wait_for(lambda: not marked(marker), timeout=10, message="the escaped process gone")
