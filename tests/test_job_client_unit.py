"""The jobs client (``nbcluster.job_submission``) and ``nbcluster job`` without a cluster.

The REST contract is exercised against a throwaway tornado app on 127.0.0.1 (port 0) in a
thread; the end-to-end tests against the real head live with the jobs server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nbcluster.exceptions import AuthenticationError, ClusterConnectionError, NbclusterSystemError
from nbcluster.job_submission import JobDetails, JobInfo, JobStatus, JobSubmissionClient, JobType

TOKEN = "good-token-0123456789abcdef"


# -- a throwaway jobs API -----------------------------------------------------------------
def _job(submission_id: str, status: str = "RUNNING", **extra: Any) -> dict[str, Any]:
    return {"type": "SUBMISSION", "job_id": "0a000000", "submission_id": submission_id, "status": status,
            "entrypoint": "python x.py", "message": "", "error_type": None, "start_time": 1_700_000_000_000,
            "end_time": None, "metadata": {}, "runtime_env": {}, "driver_exit_code": None,
            "driver_node_id": None, "driver_pid": None, "entrypoint_num_cpus": None,
            "entrypoint_num_gpus": None, "entrypoint_memory": None, "entrypoint_resources": None,
            "progress": {"submitted": 0, "running": 0, "finished": 0, "failed": 0, "actors": 0},
            "a_future_field": {"nested": True}, **extra}


class FakeJobsApi:
    """Just enough of the REST contract to check the client's side of it."""

    def __init__(self) -> None:
        self.jobs: dict[str, dict[str, Any]] = {}
        self.packages: dict[str, bytes] = {}
        self.requests: list[tuple[str, str, Any]] = []
        self.logs: dict[str, list[str]] = {}  # chunks the log tail sends
        self.hold_open: set[str] = set()  # tails that stay open after the chunks
        self.slow_stop: set[str] = set()  # jobs that take a moment to stop
        self.on_submit_status = "SUCCEEDED"  # the status a submitted job reports
        self.tails_closed = threading.Event()
        self.open_tails = 0
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._run, name="fake-jobs-api", daemon=True)
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None

    @property
    def address(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._thread.start()
        assert self._ready.wait(10)

    def stop(self) -> None:
        assert self._loop is not None and self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)
        assert not self._thread.is_alive()

    def _run(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        from tornado.httpserver import HTTPServer
        from tornado.netutil import bind_sockets

        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        sockets = bind_sockets(0, "127.0.0.1")
        self.port = sockets[0].getsockname()[1]
        server = HTTPServer(_app(self))
        server.add_sockets(sockets)
        self._ready.set()
        await self._stop.wait()
        server.stop()
        await asyncio.wait_for(server.close_all_connections(), 5)


def _app(api: FakeJobsApi) -> Any:
    from tornado import web, websocket

    class Auth:
        def check_token(self: Any) -> bool:
            header = self.request.headers.get("Authorization")
            if header != f"Bearer {TOKEN}":
                self.set_status(401)
                self.finish({"error": "missing token" if header is None else "wrong token"})
                return False
            return True

    class Handler(Auth, web.RequestHandler):
        def prepare(self) -> None:
            if self.check_token():
                body = self.request.body
                if self.request.headers.get("Content-Type") == "application/json":
                    body = json.loads(body)
                api.requests.append((self.request.method, self.request.path, body))

        def fail(self, status: int, message: str) -> None:
            self.set_status(status)
            self.finish({"error": message})

    class Version(Handler):
        def get(self) -> None:
            self.finish({"version": "1", "nbcluster_version": "0.1.0"})

    class Packages(Handler):
        def get(self, name: str) -> None:
            if name not in api.packages:
                return self.fail(404, f"no package {name}")
            self.set_header("Content-Type", "application/zip")
            self.finish(api.packages[name])

        def put(self, name: str) -> None:
            api.packages[name] = self.request.body
            self.finish({"uri": f"gcs://{name}"})

    class Jobs(Handler):
        def get(self) -> None:
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps(list(api.jobs.values())))

        def post(self) -> None:
            body = json.loads(self.request.body)
            sid = body["submission_id"] or f"nbcsubmit_{len(api.jobs)}"
            if sid in api.jobs:
                return self.fail(409, f"submission_id {sid!r} is taken; pick another")
            api.jobs[sid] = _job(sid, api.on_submit_status, entrypoint=body["entrypoint"],
                                 message="it broke" if api.on_submit_status == "FAILED" else "")
            self.finish({"job_id": sid, "submission_id": sid})

    class Job(Handler):
        def get(self, job_id: str) -> None:
            if job_id == "boom":
                return self.fail(500, "internal error")
            if job_id not in api.jobs:
                return self.fail(404, f"job {job_id} not found")
            self.finish(api.jobs[job_id])

        def delete(self, job_id: str) -> None:
            if api.jobs.get(job_id, {}).get("status") == "RUNNING":
                return self.fail(400, "the job is still running; stop it first")
            self.finish({"deleted": api.jobs.pop(job_id, None) is not None})

    class Stop(Handler):
        def post(self, job_id: str) -> None:
            job = api.jobs[job_id]
            running = job["status"] == "RUNNING"
            if job_id in api.slow_stop:  # ends a moment later
                asyncio.get_running_loop().call_later(0.8, job.__setitem__, "status", "STOPPED")
            else:
                job["status"] = "STOPPED"
            self.finish({"stopped": running})

    class Logs(Handler):
        def get(self, job_id: str) -> None:
            self.finish({"logs": "".join(api.logs.get(job_id, []))})

    class Tail(Auth, websocket.WebSocketHandler):
        def prepare(self) -> None:
            if self.check_token() and self.path_args[0] not in api.jobs and self.path_args[0] != "ghost2":
                self.set_status(404)
                self.finish({"error": f"job {self.path_args[0]} not found"})

        def open(self, job_id: str) -> None:  # type: ignore[override]
            api.open_tails += 1
            if job_id == "ghost2":  # the other way to say it: accept, then close with 4004
                return self.close(4004, "job ghost2 not found")
            for chunk in api.logs.get(job_id, []):
                self.write_message(chunk)
            if job_id not in api.hold_open:
                self.close()

        def on_close(self) -> None:
            api.open_tails -= 1
            api.tails_closed.set()

    return web.Application([
        (r"/api/version", Version),
        (r"/api/packages/gcs/([^/]+)", Packages),
        (r"/api/jobs/", Jobs),
        (r"/api/jobs/([^/]+)", Job),
        (r"/api/jobs/([^/]+)/stop", Stop),
        (r"/api/jobs/([^/]+)/logs", Logs),
        (r"/api/jobs/([^/]+)/logs/tail", Tail),
    ])


@pytest.fixture
def api() -> Iterator[FakeJobsApi]:
    server = FakeJobsApi()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def client(api: FakeJobsApi) -> JobSubmissionClient:
    return JobSubmissionClient(api.address, TOKEN, timeout=10)


@pytest.fixture
def no_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No jobs address or token in the environment, and an empty temp root."""
    monkeypatch.delenv("NBCLUSTER_JOBS_ADDRESS", raising=False)
    monkeypatch.delenv("NBCLUSTER_TOKEN", raising=False)
    root = tmp_path / "root"
    root.mkdir()
    monkeypatch.setenv("NBCLUSTER_TEMP_DIR", str(root))
    return root


def _fake_head_session(root: Path, jobs_address: str | None, token: str = "session-token") -> Path:
    """A session directory as a live head leaves it (head_pid: this process)."""
    path = root / "session_2030-01-01_00-00-00_000000_1"
    path.mkdir()
    (path / "token").write_text(token)
    info = {"gcs_address": "127.0.0.1:6380", "local_endpoint": "unix-abstract:x", "head_pid": os.getpid(),
            "session_dir": str(path)}
    if jobs_address is not None:
        info["jobs_address"] = jobs_address
    (path / "address.json").write_text(json.dumps(info))
    (root / "session_latest").symlink_to(path.name)
    return path


def _log_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("nbcluster-job-logs")]


# -- the schema -----------------------------------------------------------------------------
def test_job_status_is_terminal():
    assert [s for s in JobStatus if s.is_terminal()] == [JobStatus.STOPPED, JobStatus.SUCCEEDED, JobStatus.FAILED]
    assert not JobStatus.PENDING.is_terminal() and not JobStatus.RUNNING.is_terminal()
    assert JobStatus("RUNNING") is JobStatus.RUNNING and JobStatus.RUNNING == "RUNNING"
    assert f"{JobStatus.FAILED}" == "FAILED"


def test_job_details_from_json_ignores_unknown_keys_and_round_trips():
    data = _job("sub-1", "FAILED", driver_exit_code=3, progress={"submitted": 4, "failed": 1, "new": 9})
    info = JobDetails.from_json(data)
    assert info.status is JobStatus.FAILED and info.type is JobType.SUBMISSION
    assert info.submission_id == "sub-1" and info.driver_exit_code == 3 and info.start_time == 1_700_000_000_000
    assert info.progress.submitted == 4 and info.progress.failed == 1 and info.progress.running == 0
    assert not hasattr(info, "a_future_field")
    out = info.to_json()
    assert out["status"] == "FAILED" and out["type"] == "SUBMISSION" and "a_future_field" not in out
    assert out["progress"] == {"submitted": 4, "running": 0, "finished": 0, "failed": 1, "actors": 0}
    assert JobDetails.from_json(json.loads(json.dumps(out))) == info
    assert JobInfo is JobDetails


def test_job_details_from_json_rejects_a_record_without_status():
    data = _job("sub-1")
    del data["status"]
    with pytest.raises(ValueError, match="not a valid job record"):
        JobDetails.from_json(data)
    with pytest.raises(ValueError, match="not a valid job record"):
        JobDetails.from_json(_job("sub-1", "EXPLODED"))


# -- runtime_env validation (before anything reaches the network) --------------------------
# The client points at a closed port: validating after connecting would fail differently.
def _offline_client() -> JobSubmissionClient:
    return JobSubmissionClient("127.0.0.1:1", token="t")


@pytest.mark.parametrize("key", ["image_uri", "conda", "container", "working-dir"])
def test_unsupported_runtime_env_key_names_it_and_the_supported_ones(key: str):
    with pytest.raises(ValueError) as info:
        _offline_client().submit_job(entrypoint="python x.py", runtime_env={"env_vars": {}, key: ["x"]})
    message = str(info.value)
    assert repr(key) in message
    assert "working_dir" in message and "py_modules" in message and "env_vars" in message


def test_runtime_env_values_are_checked(tmp_path: Path):
    client = _offline_client()
    with pytest.raises(ValueError, match="not a directory"):
        client.submit_job(entrypoint="x", runtime_env={"working_dir": str(tmp_path / "missing")})
    with pytest.raises(TypeError, match="env_vars must be a dict of str to str"):
        client.submit_job(entrypoint="x", runtime_env={"env_vars": {"A": 1}})
    with pytest.raises(TypeError, match="py_modules must be a list"):
        client.submit_job(entrypoint="x", runtime_env={"py_modules": str(tmp_path)})
    (tmp_path / "data.txt").write_text("x")
    with pytest.raises(ValueError, match="not a package directory or a .py file"):
        client.submit_job(entrypoint="x", runtime_env={"py_modules": [str(tmp_path / "data.txt")]})
    with pytest.raises(ValueError, match="not a package URI"):
        client.submit_job(entrypoint="x", runtime_env={"working_dir": "gcs://not-a-package.zip"})
    with pytest.raises(ValueError, match="not supported"):
        client.submit_job(entrypoint="x", runtime_env={"working_dir": "s3://bucket/dir.zip"})
    with pytest.raises(ValueError, match="entrypoint"):
        client.submit_job(entrypoint="  ")


# -- finding the jobs API and the token ------------------------------------------------------
@pytest.mark.parametrize(("given", "base"), [
    ("127.0.0.1:8000", "http://127.0.0.1:8000"),
    ("http://example.org:9000/", "http://example.org:9000"),
    ("example.org", "http://example.org:8265"),
    ("https://example.org:443/proxy/8265", "https://example.org:443/proxy/8265"),
    ("[::1]:8000", "http://[::1]:8000"),
])
def test_address_forms(given: str, base: str):
    assert JobSubmissionClient(given, token="t").address == base


@pytest.mark.parametrize("bad", ["ftp://host:1", "host:notaport", "http://user:pw@host:1", "http://:80"])
def test_bad_addresses_are_refused(bad: str):
    with pytest.raises(ValueError, match="address|credentials"):
        JobSubmissionClient(bad, token="t")


def test_no_cluster_and_no_address_is_a_clear_error(no_env: Path):
    with pytest.raises(ClusterConnectionError) as info:
        JobSubmissionClient()
    assert "No running nbcluster cluster" in str(info.value) and "NBCLUSTER_JOBS_ADDRESS" in str(info.value)


def test_a_cluster_without_jobs_address_serves_no_jobs_api(no_env: Path):
    _fake_head_session(no_env, jobs_address=None)
    with pytest.raises(ClusterConnectionError, match="serves no jobs API"):
        JobSubmissionClient()


def test_local_cluster_gives_address_and_token(no_env: Path, api: FakeJobsApi):
    _fake_head_session(no_env, f"127.0.0.1:{api.port}", token=TOKEN)
    client = JobSubmissionClient()
    assert client.address == api.address
    assert client.get_version() == "1"  # the session's token was accepted
    # An explicit address that points at the local cluster (another loopback name) uses it too.
    assert JobSubmissionClient(f"localhost:{api.port}").get_version() == "1"


def test_the_local_token_is_not_sent_elsewhere(no_env: Path):
    _fake_head_session(no_env, "127.0.0.1:8265")
    with pytest.raises(AuthenticationError) as info:
        JobSubmissionClient("10.1.2.3:8265")
    assert "--token-file" in str(info.value) and "NBCLUSTER_TOKEN" in str(info.value)
    with pytest.raises(AuthenticationError):
        JobSubmissionClient("127.0.0.1:8266")


def test_environment_gives_address_and_token(no_env: Path, monkeypatch: pytest.MonkeyPatch, api: FakeJobsApi):
    monkeypatch.setenv("NBCLUSTER_JOBS_ADDRESS", f"127.0.0.1:{api.port}")
    monkeypatch.setenv("NBCLUSTER_TOKEN", TOKEN)
    assert JobSubmissionClient().get_version() == "1"
    monkeypatch.setenv("NBCLUSTER_TOKEN", "wrong-token")
    assert JobSubmissionClient(token=TOKEN).get_version() == "1"  # the argument wins


def test_the_token_appears_in_no_message(api: FakeJobsApi):
    secret = "s3cret-wrong-token"
    client = JobSubmissionClient(api.address, secret)
    with pytest.raises(AuthenticationError) as info:
        client.list_jobs()
    assert secret not in str(info.value) and secret not in repr(client)
    with pytest.raises(ValueError) as bad:
        JobSubmissionClient(api.address, "line\nbreak-secret")
    assert "break-secret" not in str(bad.value)


# -- HTTP error mapping ----------------------------------------------------------------------
def test_missing_and_wrong_token_raise_authentication_error(api: FakeJobsApi):
    with pytest.raises(AuthenticationError, match="401: wrong token"):
        JobSubmissionClient(api.address, "wrong").get_job_info("x")
    import urllib.request  # without any Authorization header: the server's 401

    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(api.address + "/api/version", timeout=10)
    assert info.value.code == 401
    info.value.close()


def test_duplicate_submission_id_is_a_value_error_with_the_servers_message(client: JobSubmissionClient):
    assert client.submit_job(entrypoint="echo hi", submission_id="dup") == "dup"
    with pytest.raises(ValueError, match="submission_id 'dup' is taken; pick another"):
        client.submit_job(entrypoint="echo hi", submission_id="dup")


def test_unknown_job_unfinished_delete_and_server_error(client: JobSubmissionClient, api: FakeJobsApi):
    with pytest.raises(ValueError, match="no job 'nope'"):
        client.get_job_status("nope")
    api.jobs["live"] = _job("live", "RUNNING")
    with pytest.raises(ValueError, match="still running; stop it first"):
        client.delete_job("live")
    with pytest.raises(NbclusterSystemError, match="500"):
        client.get_job_info("boom")


def test_connection_refused_names_the_url():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = JobSubmissionClient(f"127.0.0.1:{port}", "t", timeout=5)
    with pytest.raises(ClusterConnectionError, match=f"http://127.0.0.1:{port}"):
        client.list_jobs()
    with pytest.raises(ClusterConnectionError, match=f"127.0.0.1:{port}"):
        list(client.iter_job_logs("x"))


# -- the REST calls --------------------------------------------------------------------------
def test_job_calls(client: JobSubmissionClient, api: FakeJobsApi):
    job = client.submit_job(entrypoint="python x.py", metadata={"owner": "me"}, entrypoint_num_cpus=0.5,
                            entrypoint_resources={"accel": 1})
    method, path, body = api.requests[-1]
    assert (method, path) == ("POST", "/api/jobs/")
    assert body == {"entrypoint": "python x.py", "submission_id": None, "runtime_env": None,
                    "metadata": {"owner": "me"}, "entrypoint_num_cpus": 0.5, "entrypoint_num_gpus": None,
                    "entrypoint_memory": None, "entrypoint_resources": {"accel": 1}}
    assert client.get_job_status(job) is JobStatus.SUCCEEDED
    assert [j.submission_id for j in client.list_jobs()] == [job]
    api.logs[job] = ["one\n", "two\n"]
    assert client.get_job_logs(job) == "one\ntwo\n"
    api.jobs[job]["status"] = "RUNNING"
    assert client.stop_job(job) is True and client.stop_job(job) is False
    assert client.wait_until_finished(job, timeout=5) is JobStatus.STOPPED
    assert client.delete_job(job) is True
    with pytest.raises(ValueError, match="no job"):
        client.get_job_info(job)


def test_wait_until_finished_times_out(client: JobSubmissionClient, api: FakeJobsApi):
    api.jobs["slow"] = _job("slow", "RUNNING")
    started = time.monotonic()
    with pytest.raises(TimeoutError, match="still RUNNING"):
        client.wait_until_finished("slow", timeout=0.5, poll=0.1)
    assert time.monotonic() - started < 3


def test_packages_are_uploaded_once_and_replaced_by_uris(client: JobSubmissionClient, api: FakeJobsApi,
                                                         tmp_path: Path):
    work = tmp_path / "work"
    work.mkdir()
    (work / "main.py").write_text("print('hi')\n")
    pkg = tmp_path / "mypkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("X = 1\n")
    (tmp_path / "single.py").write_text("Y = 2\n")
    stored = "gcs://_nbcluster_pkg_" + "0" * 32 + ".zip"
    env = {"working_dir": str(work), "py_modules": [str(pkg), tmp_path / "single.py", stored],
           "env_vars": {"A": "1"}}
    client.submit_job(entrypoint="python main.py", runtime_env=env)
    body = api.requests[-1][2]
    working_dir, modules = body["runtime_env"]["working_dir"], body["runtime_env"]["py_modules"]
    assert working_dir.startswith("gcs://_nbcluster_pkg_") and modules[2] == stored
    assert len({working_dir, modules[0], modules[1]}) == 3 and body["runtime_env"]["env_vars"] == {"A": "1"}
    assert sorted(api.packages) == sorted(u.removeprefix("gcs://") for u in (working_dir, *modules[:2]))
    assert env["working_dir"] == str(work)  # the caller's dict is left alone
    import io
    import zipfile

    names = zipfile.ZipFile(io.BytesIO(api.packages[modules[0].removeprefix("gcs://")])).namelist()
    assert "mypkg/__init__.py" in names  # py_modules keep their directory name
    puts = [r for r in api.requests if r[0] == "PUT"]
    assert len(puts) == 3
    client.submit_job(entrypoint="python main.py", runtime_env=env)  # the same content again
    assert len([r for r in api.requests if r[0] == "PUT"]) == 3
    assert api.requests[-1][2]["runtime_env"] == body["runtime_env"]


# -- following logs --------------------------------------------------------------------------
def test_tail_job_logs_yields_every_chunk_until_the_server_closes(client: JobSubmissionClient, api: FakeJobsApi):
    api.jobs["j"] = _job("j")
    api.logs["j"] = ["a\n", "b", "c\n"]

    async def tail() -> list[str]:
        return [chunk async for chunk in client.tail_job_logs("j")]

    assert asyncio.run(tail()) == ["a\n", "b", "c\n"]


def test_iter_job_logs_in_a_running_event_loop_leaves_no_thread(client: JobSubmissionClient, api: FakeJobsApi):
    api.jobs["j"] = _job("j")
    api.logs["j"] = [f"line {i}\n" for i in range(50)]

    async def cell() -> list[str]:  # as a Jupyter cell runs: sync code inside a running loop
        return list(client.iter_job_logs("j"))

    assert "".join(asyncio.run(cell())) == "".join(f"line {i}\n" for i in range(50))
    assert _log_threads() == []


def test_closing_iter_job_logs_early_stops_its_thread_and_socket(client: JobSubmissionClient, api: FakeJobsApi):
    api.jobs["j"] = _job("j")
    api.logs["j"] = ["first\n"]
    api.hold_open.add("j")  # the job runs on: the server never closes
    logs = client.iter_job_logs("j")
    assert next(logs) == "first\n"
    assert len(_log_threads()) == 1
    logs.close()
    assert _log_threads() == []
    assert api.tails_closed.wait(5) and api.open_tails == 0  # the server saw the socket close
    api.tails_closed.clear()
    for chunk in client.iter_job_logs("j"):  # break out of a for loop
        assert chunk == "first\n"
        break
    assert _log_threads() == []
    assert api.tails_closed.wait(5)


def test_iter_job_logs_timeout(client: JobSubmissionClient, api: FakeJobsApi):
    api.jobs["j"] = _job("j")
    api.hold_open.add("j")
    started = time.monotonic()
    with pytest.raises(TimeoutError, match="did not end within"):
        list(client.iter_job_logs("j", timeout=0.5))
    assert time.monotonic() - started < 5
    assert _log_threads() == []


def test_iter_job_logs_errors(client: JobSubmissionClient, api: FakeJobsApi):
    with pytest.raises(ValueError, match="no job 'ghost'"):
        list(client.iter_job_logs("ghost"))
    with pytest.raises(ValueError, match="no job 'ghost2': job ghost2 not found"):
        list(client.iter_job_logs("ghost2"))
    api.jobs["j"] = _job("j")
    with pytest.raises(AuthenticationError, match="401"):
        list(JobSubmissionClient(api.address, "wrong").iter_job_logs("j"))
    assert _log_threads() == []


# -- the CLI ---------------------------------------------------------------------------------
def _cli(argv: list[str]) -> int:
    """The job commands as the main CLI runs them."""
    from nbcluster.runtime.cli_jobs import add_job_commands

    parser = argparse.ArgumentParser(prog="nbcluster")
    add_job_commands(parser.add_subparsers(dest="command"))
    opts = parser.parse_args(argv)
    return int(opts.func(opts))


@pytest.fixture
def token_file(tmp_path: Path) -> str:
    path = tmp_path / "token"
    path.write_text(TOKEN + "\n")
    return str(path)


def test_cli_submit_follows_logs_and_reports(api: FakeJobsApi, token_file: str, capsys: pytest.CaptureFixture[str]):
    api.logs["s1"] = ["hello ", "world"]
    target = ["--address", api.address, "--token-file", token_file]
    code = _cli(["job", "submit", *target, "--submission-id", "s1", "--", "python", "-c", "print('a b')"])
    out = capsys.readouterr().out
    assert code == 0
    assert api.jobs["s1"]["entrypoint"] == shlex.join(["python", "-c", "print('a b')"])
    assert "Job 's1' submitted successfully" in out and "hello world\nJob 's1' succeeded" in out
    api.on_submit_status = "FAILED"
    assert _cli(["job", "submit", *target, "--submission-id", "s2", "--", "false"]) == 1
    out = capsys.readouterr().out
    assert "Job 's2' failed" in out and "Status message: it broke" in out


def test_cli_submit_options(api: FakeJobsApi, token_file: str, tmp_path: Path,
                            capsys: pytest.CaptureFixture[str]):
    target = ["--address", api.address, "--token-file", token_file]
    env = json.dumps({"env_vars": {"A": "1"}, "working_dir": "gcs://_nbcluster_pkg_" + "1" * 32 + ".zip"})
    code = _cli(["job", "submit", *target, "--no-wait", "--runtime-env-json", env, "--working-dir", str(tmp_path),
                 "--entrypoint-num-cpus", "2", "--entrypoint-memory", "1000", "--metadata-json", '{"a": "b"}',
                 "--", "echo", "hi"])
    assert code == 0
    body = api.requests[-1][2]
    assert body["runtime_env"]["env_vars"] == {"A": "1"}
    assert body["runtime_env"]["working_dir"].startswith("gcs://_nbcluster_pkg_")
    assert body["runtime_env"]["working_dir"] != "gcs://_nbcluster_pkg_" + "1" * 32 + ".zip"  # the flag won
    assert body["entrypoint_num_cpus"] == 2.0 and body["entrypoint_memory"] == 1000
    assert body["metadata"] == {"a": "b"} and body["entrypoint"] == "echo hi"
    out = capsys.readouterr().out
    assert f"nbcluster job stop nbcsubmit_0 --address {api.address} --token-file {token_file}" in out
    assert "Tailing" not in out
    with pytest.raises(ValueError, match="after --"):
        _cli(["job", "submit", *target, "--"])
    with pytest.raises(ValueError, match="--metadata-json must be a JSON object"):
        _cli(["job", "submit", *target, "--metadata-json", "[1]", "--", "x"])


def test_cli_ctrl_c_while_following_leaves_the_job_running(api: FakeJobsApi, token_file: str,
                                                            monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]):
    def interrupted(self: Any, job_id: str, **kwargs: Any) -> Iterator[str]:
        yield "partial\n"
        raise KeyboardInterrupt

    monkeypatch.setattr(JobSubmissionClient, "iter_job_logs", interrupted)
    code = _cli(["job", "submit", "--address", api.address, "--token-file", token_file, "--submission-id", "k",
                 "--", "sleep", "100"])
    assert code == 130
    assert "nbcluster job stop k" in capsys.readouterr().err
    assert not [r for r in api.requests if r[1].endswith("/stop")]


def test_cli_status_logs_stop_delete_list(api: FakeJobsApi, token_file: str, capsys: pytest.CaptureFixture[str]):
    target = ["--address", api.address, "--token-file", token_file]
    api.jobs["r"] = _job("r", "RUNNING", message="Job is running.", entrypoint="python " + "x" * 100)
    api.logs["r"] = ["out 1\n", "out 2\n"]
    assert _cli(["job", "status", "r", *target]) == 0
    assert "Status for job 'r': RUNNING\nStatus message: Job is running." in capsys.readouterr().out
    assert _cli(["job", "logs", "r", *target]) == 0
    assert capsys.readouterr().out == "out 1\nout 2\n"
    assert _cli(["job", "logs", "-f", "r", *target]) == 0
    assert capsys.readouterr().out == "out 1\nout 2\n"
    assert _cli(["job", "list", *target]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["ID", "TYPE", "STATUS", "ENTRYPOINT", "START", "END"]
    assert lines[1].split()[:3] == ["r", "SUBMISSION", "RUNNING"] and "…" in lines[1] and "x" * 60 not in lines[1]
    assert _cli(["job", "list", "--format", "json", *target]) == 0
    assert json.loads(capsys.readouterr().out)[0]["submission_id"] == "r"
    assert _cli(["job", "stop", "r", *target]) == 0
    assert "Job 'r' was stopped" in capsys.readouterr().out
    assert _cli(["job", "stop", "r", *target]) == 0
    assert "already ended: STOPPED" in capsys.readouterr().out
    assert _cli(["job", "delete", "r", *target]) == 0
    assert "Job 'r' deleted successfully" in capsys.readouterr().out
    assert _cli(["job", "list", *target]) == 0
    assert capsys.readouterr().out.strip() == "(no jobs)"
    api.jobs["slow"] = _job("slow", "RUNNING")
    api.slow_stop.add("slow")
    assert _cli(["job", "stop", "slow", *target]) == 0
    out = capsys.readouterr().out
    assert "Job has not exited yet. Status: RUNNING" in out and out.rstrip().endswith("Job 'slow' was stopped")
    api.jobs["slow"]["status"] = "RUNNING"
    assert _cli(["job", "stop", "slow", "--no-wait", *target]) == 0
    assert "Waiting" not in capsys.readouterr().out and api.jobs["slow"]["status"] == "RUNNING"
    with pytest.raises(ValueError, match="cannot read --token-file"):
        _cli(["job", "list", "--address", api.address, "--token-file", token_file + ".missing"])
