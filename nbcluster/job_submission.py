"""Submit jobs to a cluster and follow them over its REST API (as ``ray.job_submission``).

::

    from nbcluster.job_submission import JobSubmissionClient

    client = JobSubmissionClient()                 # the newest cluster on this machine
    job = client.submit_job(entrypoint="python train.py", runtime_env={"working_dir": "."})
    for chunk in client.iter_job_logs(job):        # also inside a Jupyter cell
        print(chunk, end="")
    print(client.get_job_status(job))              # SUCCEEDED

The client speaks HTTP with ``urllib`` (so it works inside a running event loop) and
follows logs over a websocket with tornado, imported only when logs are tailed. Local
``working_dir`` and ``py_modules`` are zipped and uploaded once, as content-addressed
``gcs://`` packages. The token is sent in the ``Authorization`` header only; it is never
printed, logged or put in an error message. Finding the API and mapping its errors is
:mod:`nbcluster.job_api`; the thread behind ``iter_job_logs`` is :mod:`nbcluster.log_pump`.
"""

from __future__ import annotations

import asyncio
import enum
import http.client
import json
import os
import queue
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from nbcluster.exceptions import (
    ClusterConnectionError,
    NbclusterSystemError,
)
from nbcluster.job_api import (
    DEFAULT_PORT,
    NoRedirect,
    check_close,
    check_token,
    drain,
    http_error,
    jobs_url,
    local_jobs_api,
    local_token_for,
    no_token_error,
    server_message,
    ssl_context,
)
from nbcluster.log_pump import LogPump
from nbcluster.runtime import envvars
from nbcluster.runtime.credentials import given_token
from nbcluster.runtime.runtime_env import SUPPORTED_KEYS, RuntimeEnv
from nbcluster.runtime.runtime_env.packages import parse_uri
from nbcluster.runtime.states import JobStatus

__all__ = [
    "DEFAULT_PORT",
    "SUPPORTED_RUNTIME_ENV_KEYS",
    "JobDetails",
    "JobInfo",
    "JobProgress",
    "JobStatus",
    "JobSubmissionClient",
    "JobType",
    "LogPump",
    "ssl_context",
]

SUPPORTED_RUNTIME_ENV_KEYS = SUPPORTED_KEYS
_MAX_LOG_MESSAGE = 64 * 1024 * 1024


# -- the schema -------------------------------------------------------------------------
class JobType(str, enum.Enum):
    """A job submitted through this API, or a driver that connected on its own."""

    SUBMISSION = "SUBMISSION"
    DRIVER = "DRIVER"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class JobProgress:
    """How far a job's tasks and actors have got."""

    submitted: int = 0
    running: int = 0
    finished: int = 0
    failed: int = 0
    actors: int = 0

    def to_json(self) -> dict[str, int]:
        """The counts as a JSON object."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> "JobProgress":
        """The counts of a JSON object (missing ones are 0)."""
        data = data or {}
        return cls(**{f.name: int(data.get(f.name) or 0) for f in fields(cls)})


@dataclass(frozen=True, kw_only=True)
class JobDetails:
    """One job, as the REST API and ``nbcluster job list --format json`` show it.

    Times are milliseconds since the epoch (as Ray). ``submission_id`` is the id jobs
    submitted through the API are addressed by; ``job_id`` is the cluster's job id.
    """

    type: JobType
    job_id: str | None
    submission_id: str | None = None
    status: JobStatus
    entrypoint: str
    message: str | None = None
    error_type: str | None = None
    start_time: int | None = None
    end_time: int | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    runtime_env: dict[str, Any] = field(default_factory=dict)
    driver_exit_code: int | None = None
    driver_node_id: str | None = None
    driver_pid: int | None = None
    entrypoint_num_cpus: float | None = None
    entrypoint_num_gpus: float | None = None
    entrypoint_memory: int | None = None
    entrypoint_resources: dict[str, float] | None = None
    progress: JobProgress = field(default_factory=JobProgress)

    def to_json(self) -> dict[str, Any]:
        """The record as the REST API sends it (enums as their names)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["type"] = self.type.value
        out["status"] = self.status.value
        out["progress"] = self.progress.to_json()
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "JobDetails":
        """Build from the REST API's JSON; unknown keys (a newer server) are ignored."""
        if not isinstance(data, Mapping):
            raise ValueError(f"a job record must be a JSON object, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known}
        try:
            kwargs["type"] = JobType(kwargs.get("type") or JobType.SUBMISSION)
            kwargs["status"] = JobStatus(kwargs["status"])
            kwargs["progress"] = JobProgress.from_json(kwargs.get("progress"))
            kwargs["metadata"] = dict(kwargs.get("metadata") or {})
            kwargs["runtime_env"] = dict(kwargs.get("runtime_env") or {})
            return cls(**kwargs)
        except (KeyError, TypeError, ValueError) as exc:
            # Not the record itself: its env_vars may hold secrets.
            raise ValueError(f"not a valid job record ({exc!r})") from exc


#: Ray's older name.
JobInfo = JobDetails


# -- the client -------------------------------------------------------------------------
class JobSubmissionClient:
    """Submit jobs to a cluster and follow them (as Ray's ``JobSubmissionClient``).

    ``address`` is the head's jobs API, ``"http://HOST:PORT"`` or ``"HOST:PORT"``
    (port 8265 when left out); None: ``$NBCLUSTER_JOBS_ADDRESS``, else the newest cluster
    started on this machine (``"auto"`` always means that one). ``token``: else
    ``$NBCLUSTER_TOKEN``, else (inside a job) the job's driver credential, else the token
    of the cluster on this machine the address points at. ``timeout`` bounds each HTTP request, in seconds.

    An ``https://`` jobs API (a head with TLS) is verified against that cluster's CA,
    which came with its token file or session; ``verify`` as Ray's: a path to a CA
    bundle instead, or False to not verify (an explicit choice; never a fallback).
    """

    def __init__(
        self, address: str | None = None, token: str | None = None, *, timeout: float = 30.0,
        verify: bool | str = True,
    ) -> None:
        if address is None:
            address = os.environ.get(envvars.JOBS_ADDRESS) or "auto"
        local_token = ""
        if address == "auto":
            self._address, local_token = local_jobs_api()
        else:
            self._address = jobs_url(address)
        token = token or given_token() or local_token or local_token_for(self._address)
        if not token or not token.strip():
            raise no_token_error(self._address)
        self._token = check_token(token)
        self._timeout = float(timeout)
        self._ssl = ssl_context(self._address, self._token, verify)
        handlers: list[Any] = [urllib.request.ProxyHandler({}), NoRedirect()]
        if self._ssl is not None:
            handlers.append(urllib.request.HTTPSHandler(context=self._ssl))
        self._opener = urllib.request.build_opener(*handlers)

    @property
    def address(self) -> str:
        """The jobs API's base URL."""
        return self._address

    def __repr__(self) -> str:
        return f"JobSubmissionClient(address={self._address!r})"

    # -- requests ----------------------------------------------------------------------
    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token}", "Accept": "application/json"}

    def _request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        job_id: str | None = None,
        missing_ok: bool = False,
        decode: bool = True,
    ) -> Any:
        """One request; the decoded JSON answer (the bytes unless ``decode``; None for a
        404 when ``missing_ok``)."""
        headers = self._headers()
        data = None
        if isinstance(body, bytes):
            data = body
            headers["Content-Type"] = "application/zip"
        elif body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        what = f"{method} {path}"
        request = urllib.request.Request(self._address + path, data=data, method=method, headers=headers)
        try:
            with self._opener.open(request, timeout=self._timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            with exc:
                try:
                    raw = exc.read()
                except (OSError, http.client.HTTPException):
                    raw = b""
            if exc.code == 404 and missing_ok:
                return None
            raise http_error(exc.code, server_message(raw, exc.reason), self._address, what, job_id) from exc
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise ClusterConnectionError(
                f"cannot reach the jobs API at {self._address} ({what}): {reason}. Is the cluster running, "
                "and is this the head's jobs address?"
            ) from exc
        if not decode:
            return raw
        if not raw:
            return {}
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise NbclusterSystemError(
                f"the jobs API at {self._address} answered {what} with something other than JSON; "
                "is this address an nbcluster jobs API?"
            ) from exc

    @staticmethod
    def _job_path(job_id: str) -> str:
        if not isinstance(job_id, str) or not job_id:
            raise ValueError(f"a job id must be a non-empty string, got {job_id!r}")
        return "/api/jobs/" + urllib.parse.quote(job_id, safe="")

    def _details(self, data: Any) -> JobDetails:
        try:
            return JobDetails.from_json(data)
        except ValueError as exc:
            raise NbclusterSystemError(f"the jobs API at {self._address} sent a bad job record: {exc}") from exc

    def _upload(self, uri: str, data: bytes) -> None:
        """Upload a package (a zipped local directory or .py file) unless it is stored."""
        package = "/api/packages/gcs/" + urllib.parse.quote(parse_uri(uri)[1], safe="")
        if self._request("GET", package, missing_ok=True, decode=False) is None:
            self._request("PUT", package, body=data)

    # -- Ray's API ----------------------------------------------------------------------
    def get_version(self) -> str:
        """The version of the REST API the server speaks."""
        return str(self._request("GET", "/api/version").get("version", ""))

    def submit_job(
        self,
        *,
        entrypoint: str,
        submission_id: str | None = None,
        runtime_env: dict[str, Any] | None = None,
        metadata: dict[str, str] | None = None,
        entrypoint_num_cpus: float | None = None,
        entrypoint_num_gpus: float | None = None,
        entrypoint_memory: int | None = None,
        entrypoint_resources: dict[str, float] | None = None,
    ) -> str:
        """Run ``entrypoint`` (a shell command) as a job on the cluster; its submission id.

        A local ``working_dir`` and local ``py_modules`` in ``runtime_env`` are zipped and
        uploaded (once: a package the cluster holds already is not sent again).
        """
        if not isinstance(entrypoint, str) or not entrypoint.strip():
            raise ValueError("entrypoint must be a non-empty shell command, e.g. 'python script.py'")
        if submission_id is not None and (not isinstance(submission_id, str) or not submission_id):
            raise ValueError(f"submission_id must be a non-empty string, got {submission_id!r}")
        if metadata is not None and not (isinstance(metadata, Mapping) and all(
                isinstance(k, str) and isinstance(v, str) for k, v in metadata.items())):
            raise TypeError("metadata must be a dict of str to str")
        # Checked whole before anything is uploaded; local paths then zipped and uploaded.
        env = RuntimeEnv.parse(runtime_env).packed(self._upload).to_dict() if runtime_env is not None else None
        answer = self._request("POST", "/api/jobs/", body={
            "entrypoint": entrypoint,
            "submission_id": submission_id,
            "runtime_env": env,
            "metadata": dict(metadata) if metadata is not None else None,
            "entrypoint_num_cpus": entrypoint_num_cpus,
            "entrypoint_num_gpus": entrypoint_num_gpus,
            "entrypoint_memory": entrypoint_memory,
            "entrypoint_resources": entrypoint_resources,
        })
        return str(answer.get("submission_id") or answer["job_id"])

    def stop_job(self, job_id: str) -> bool:
        """Ask the job to stop; False when it had already ended."""
        return bool(self._request("POST", self._job_path(job_id) + "/stop", job_id=job_id).get("stopped"))

    def delete_job(self, job_id: str) -> bool:
        """Forget an ended job (its record and logs); ``ValueError`` while it still runs."""
        return bool(self._request("DELETE", self._job_path(job_id), job_id=job_id).get("deleted"))

    def get_job_info(self, job_id: str) -> JobDetails:
        """The job's record; ValueError when the cluster knows no such job."""
        return self._details(self._request("GET", self._job_path(job_id), job_id=job_id))

    def list_jobs(self) -> list[JobDetails]:
        """Every job the cluster knows, submitted jobs and drivers."""
        answer = self._request("GET", "/api/jobs/")
        if not isinstance(answer, list):
            raise NbclusterSystemError(f"the jobs API at {self._address} sent no job list")
        return [self._details(item) for item in answer]

    def get_job_status(self, job_id: str) -> JobStatus:
        """The job's status now."""
        return self.get_job_info(job_id).status

    def get_job_logs(self, job_id: str) -> str:
        """The job's output so far (stdout and stderr of the entrypoint)."""
        return str(self._request("GET", self._job_path(job_id) + "/logs", job_id=job_id).get("logs", ""))

    def get_job_artifact(self, job_id: str, name: str = "executed.ipynb") -> bytes:
        """A file the job kept on the head: for a notebook job (``%cluster submit
        --notebook``), ``executed.ipynb``, the notebook with its outputs."""
        return self._request("GET", self._job_path(job_id) + f"/artifacts/{name}", job_id=job_id, decode=False)

    async def tail_job_logs(self, job_id: str) -> AsyncIterator[str]:
        """The job's output from its start, chunk by chunk as it comes, until the job ends."""
        from tornado.httpclient import HTTPClientError, HTTPRequest
        from tornado.websocket import websocket_connect

        path = self._job_path(job_id) + "/logs/tail"
        url = "ws" + self._address.removeprefix("http") + path
        request = HTTPRequest(url, headers=self._headers(), connect_timeout=self._timeout,
                              request_timeout=self._timeout, ssl_options=self._ssl)
        try:
            conn = await websocket_connect(request, ping_interval=20, ping_timeout=20,
                                           max_message_size=_MAX_LOG_MESSAGE)
        except HTTPClientError as exc:
            if exc.code == 599:  # tornado's code for a timeout or a dropped connection
                raise ClusterConnectionError(f"cannot reach the jobs API at {self._address}: {exc}") from exc
            body = exc.response.body if exc.response is not None and exc.response.body else b""
            message = server_message(body, exc.message or "")
            raise http_error(exc.code, message, self._address, f"GET {path}", job_id) from exc
        except OSError as exc:
            raise ClusterConnectionError(f"cannot reach the jobs API at {self._address}: {exc}") from exc
        ended = False
        try:
            while True:
                message = await conn.read_message()
                if message is None:  # the server closed: the job ended, all was sent
                    ended = True
                    check_close(conn.close_code, conn.close_reason, self._address, job_id)
                    return
                yield message if isinstance(message, str) else message.decode("utf-8", "replace")
        finally:
            conn.close()
            if not ended:  # the closing handshake, so the socket is closed before the loop is
                try:
                    await asyncio.wait_for(drain(conn), 2.0)
                except (asyncio.TimeoutError, OSError):
                    stream = getattr(getattr(conn, "protocol", None), "stream", None)
                    if stream is not None:  # no answer to the close: drop the socket now
                        stream.close()

    def iter_job_logs(self, job_id: str, *, timeout: float | None = None) -> Iterator[str]:
        """:meth:`tail_job_logs` as a plain iterator, for sync code and Jupyter cells.

        The websocket runs on a private thread with an event loop of its own. Closing the
        iterator early (``break``, ``close()``) stops that thread. ``timeout``: raise
        ``TimeoutError`` when the logs have not ended within that many seconds (the job
        keeps running).
        """
        self._job_path(job_id)
        return self._iter_job_logs(job_id, timeout)

    def _iter_job_logs(self, job_id: str, timeout: float | None) -> Iterator[str]:
        pump = LogPump(lambda: self.tail_job_logs(job_id), name=f"nbcluster-job-logs-{job_id}")
        deadline = None if timeout is None else time.monotonic() + timeout
        pump.start()
        try:
            while True:
                wait = 0.2
                if deadline is not None:
                    wait = min(wait, deadline - time.monotonic())
                    if wait <= 0:
                        raise TimeoutError(f"the logs of job {job_id!r} did not end within {timeout} s "
                                           "(the job keeps running)")
                try:
                    kind, value = pump.queue.get(timeout=wait)
                except queue.Empty:
                    continue
                if kind == "chunk":
                    yield value
                elif kind == "error":
                    raise value
                else:
                    return
        finally:
            pump.stop()

    def wait_until_finished(self, job_id: str, timeout: float | None = None, poll: float = 0.2) -> JobStatus:
        """Poll until the job has ended; its final status. ``TimeoutError`` after ``timeout`` s."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            status = self.get_job_status(job_id)
            if status.is_terminal():
                return status
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"job {job_id!r} is still {status} after {timeout} s")
            pause = poll if deadline is None else max(0.0, min(poll, deadline - time.monotonic()))
            time.sleep(pause)
