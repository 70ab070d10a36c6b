"""The Jobs REST API on the head (tornado), with Ray's paths and field names.

    GET    /api/version
    GET    /api/packages/gcs/{name}         200 when stored, else 404
    PUT    /api/packages/gcs/{name}         body: a zip (a working_dir or py_module)
    POST   /api/jobs/                       {"entrypoint", "submission_id", "runtime_env", "metadata",
                                             "entrypoint_num_cpus", "entrypoint_num_gpus",
                                             "entrypoint_memory", "entrypoint_resources"}
    GET    /api/jobs/                       [JobDetails]
    GET    /api/jobs/{id}                   JobDetails
    DELETE /api/jobs/{id}                   a finished job and its log
    POST   /api/jobs/{id}/stop              {"stopped": bool}
    GET    /api/jobs/{id}/logs              {"logs": str}
    GET    /api/jobs/{id}/artifacts/{name}  a file the job kept (a notebook job: executed.ipynb)
    WS     /api/jobs/{id}/logs/tail         the log from its start, then live; closed at the end

Every request needs ``Authorization: Bearer <credential>`` (the cluster token or a
driver credential, ``credentials.py``): 401 without one or with a wrong one, checked
when the headers arrive, before a body is read (bodies before that are capped at
``MAX_BODY``; the package route streams its body after the check). Idle connections
are closed after ``IDLE_TIMEOUT_S``, and at most ``MAX_PREAUTH_PER_PEER`` per address
(``MAX_PREAUTH_TOTAL`` in all) are kept before one of their requests proved the token
(``transport/preauth.py``). With a TLS cluster the API is HTTPS. Requests that change
something and carry a browser ``Origin`` of another site are refused (403). Errors
are ``{"error": "message"}`` with 400 (bad input), 404, 409 (a submission_id that
exists) or 413 (a package over the size cap). Served on 127.0.0.1 unless the head is
told to bind another address (``--dashboard-host``); default port 8265 for heads
started from the command line.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any
from urllib.parse import urlsplit

import tornado.web
import tornado.websocket
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

from nbcluster._version import __version__
from nbcluster.runtime import tls
from nbcluster.runtime.credentials import Verifier
from nbcluster.runtime.runtime_env import packages
from nbcluster.runtime.jobs.manager import JobError, JobManager
from nbcluster.runtime.transport.preauth import PreAuthGate
from nbcluster.runtime.transport.refusals import Refusals

logger = logging.getLogger(__name__)

DEFAULT_PORT = 8265
API_VERSION = "1"
#: The largest request body read before a handler checked the token.
MAX_BODY = 1 << 20
#: A connection that sends no request for this long is closed.
IDLE_TIMEOUT_S = 30.0
#: Connections kept before one of their requests proved the token (the oldest goes).
MAX_PREAUTH_PER_PEER = 16
MAX_PREAUTH_TOTAL = 64


def _authorize(handler: tornado.web.RequestHandler) -> None:
    """401 unless the request carries a credential of this cluster."""
    verifier: Verifier = handler.settings["verifier"]
    header = handler.request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise tornado.web.HTTPError(401, reason="Unauthorized", log_message="no token")
    if verifier.scope_of(token.strip()) is None:
        raise tornado.web.HTTPError(401, reason="Unauthorized", log_message="wrong token")


def _write_error(handler: tornado.web.RequestHandler, kwargs: dict[str, Any]) -> None:
    """Errors as ``{"error": message}``, for the token checks too."""
    exc = kwargs.get("exc_info", (None, None, None))[1]
    if isinstance(exc, tornado.web.HTTPError) and exc.log_message:
        message = {
            "no token": "this API needs the cluster token: send 'Authorization: Bearer <token>'",
            "wrong token": "the token is not this cluster's",
        }.get(exc.log_message, exc.log_message)
    else:
        message = handler._reason
    handler.set_header("Content-Type", "application/json")
    handler.finish(json.dumps({"error": message}))


class _Handler(tornado.web.RequestHandler):
    @property
    def jobs(self) -> JobManager:
        """The job manager this API serves."""
        return self.settings["jobs"]

    def prepare(self) -> None:
        _authorize(self)
        self.settings["gate"].authenticated(getattr(self.request.connection, "stream", None))
        if self.request.method in ("POST", "PUT", "DELETE", "PATCH"):
            origin = self.request.headers.get("Origin")
            if origin is not None and urlsplit(origin).netloc != self.request.host:
                raise tornado.web.HTTPError(403, reason="Forbidden", log_message="cross-site request refused")

    def check_xsrf_cookie(self) -> None:  # token-authenticated API, no cookies
        return

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        _write_error(self, kwargs)

    def send(self, data: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(data))

    def fail(self, exc: JobError) -> None:
        self.send({"error": str(exc)}, exc.status)

    def body(self) -> Any:
        try:
            return json.loads(self.request.body or b"null")
        except ValueError:
            raise JobError(400, "the request body is not JSON") from None


class VersionHandler(_Handler):
    """``GET /api/version``."""

    def get(self) -> None:
        """The API and nbcluster versions."""
        self.send({"version": API_VERSION, "nbcluster_version": __version__})


@tornado.web.stream_request_body
class PackageHandler(_Handler):
    """Streamed: the token is checked when the headers arrive, before any byte of the
    body is read, and an upload over the cap is refused as it crosses it."""

    def prepare(self) -> None:
        """Check the token, then accept a body up to the package size cap."""
        super().prepare()
        self._data = bytearray()
        self._over = False
        # Only now, with the token checked, may a body be as large as a package.
        self.request.connection.set_max_body_size(packages.DEFAULT_MAX_BYTES + (1 << 20))  # type: ignore[union-attr]

    def data_received(self, chunk: bytes) -> None:
        """Buffer a piece of the body (dropped once over the cap: 413)."""
        if len(self._data) + len(chunk) > packages.DEFAULT_MAX_BYTES:
            self._over = True
            self._data.clear()
            return
        self._data += chunk

    def get(self, protocol: str, name: str) -> None:
        """200 when the package is stored, else 404."""
        if protocol != packages.PROTOCOL or not self.jobs.has_package(name):
            self.send({"error": f"no package {protocol}://{name}"}, 404)
            return
        self.send({"uri": f"{protocol}://{name}"})

    def put(self, protocol: str, name: str) -> None:
        """Store the uploaded zip under its ``gcs://`` name."""
        if protocol != packages.PROTOCOL:
            self.send({"error": f"packages are stored under gcs://, not {protocol}://"}, 400)
            return
        if self._over:
            cap = packages.DEFAULT_MAX_BYTES // 2**20
            self.send({"error": f"the package is larger than {cap} MiB; exclude large files from it"}, 413)
            return
        try:
            uri = self.jobs.put_package(name, bytes(self._data))
        except JobError as exc:
            self.fail(exc)
            return
        self.send({"uri": uri})


class JobsHandler(_Handler):
    """``/api/jobs/``: list and submit."""

    def get(self) -> None:
        """Every job's details."""
        jobs = self.jobs
        self.send([jobs.details(info) for info in jobs.infos()])

    def post(self) -> None:
        """Submit a job; its submission id."""
        try:
            info = self.jobs.submit(self.body())
        except JobError as exc:
            self.fail(exc)
            return
        self.send({"job_id": info.submission_id, "submission_id": info.submission_id})


class JobHandler(_Handler):
    """``/api/jobs/{id}``: one job."""

    def get(self, job_id: str) -> None:
        """The job's details."""
        try:
            self.send(self.jobs.details(self.jobs.find(job_id)))
        except JobError as exc:
            self.fail(exc)

    def delete(self, job_id: str) -> None:
        """Delete a finished job and its log."""
        try:
            self.send({"deleted": self.jobs.delete(job_id)})
        except JobError as exc:
            self.fail(exc)


class StopHandler(_Handler):
    """``POST /api/jobs/{id}/stop``."""

    async def post(self, job_id: str) -> None:
        """Stop the job; whether it was running."""
        try:
            self.send({"stopped": await self.jobs.stop(job_id)})
        except JobError as exc:
            self.fail(exc)


class LogsHandler(_Handler):
    """``GET /api/jobs/{id}/logs``."""

    def get(self, job_id: str) -> None:
        """The job's log so far."""
        try:
            self.send({"logs": self.jobs.logs(job_id)})
        except JobError as exc:
            self.fail(exc)


class ArtifactHandler(_Handler):
    """A file the job kept on the head (a notebook job's executed notebook)."""

    def get(self, job_id: str, name: str) -> None:
        """A file the job kept, as bytes."""
        try:
            data = self.jobs.artifact(job_id, name)
        except JobError as exc:
            self.fail(exc)
            return
        self.set_header("Content-Type", "application/octet-stream")
        self.finish(data)


class TailHandler(tornado.websocket.WebSocketHandler):
    """``WS /api/jobs/{id}/logs/tail``: the log from its start, then live."""

    def prepare(self) -> None:
        """Check the token before the upgrade."""
        _authorize(self)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Errors as JSON, as the other routes."""
        _write_error(self, kwargs)

    def open(self, job_id: str) -> None:  # type: ignore[override]
        """Start streaming the log to the socket."""
        # Stream from a task of its own: open() must return for the socket to read
        # the client's frames (pings), or a long tail would be dropped.
        self._task = asyncio.get_running_loop().create_task(self._stream(job_id))

    async def _stream(self, job_id: str) -> None:
        jobs: JobManager = self.settings["jobs"]
        try:
            async for chunk in jobs.tail(job_id):
                await self.write_message(chunk)
        except JobError as exc:
            self.close(4004, str(exc)[:120])
            return
        except tornado.websocket.WebSocketClosedError:
            return
        self.close(1000, "the job ended")

    def on_close(self) -> None:
        """The client went: stop streaming."""
        task = getattr(self, "_task", None)
        if task is not None:
            task.cancel()


class _GatedServer(HTTPServer):
    """Counts every new connection as unauthenticated until a request of it passes the
    token check (``transport/preauth.py``): a flood of idle connections stays bounded."""

    def handle_stream(self, stream: Any, address: Any) -> Any:
        gate: PreAuthGate = self.request_callback.settings["gate"]  # type: ignore[attr-defined]
        peer = address[0] if isinstance(address, tuple) else ""
        gate.admit(stream, peer, stream.close, stream.closed)
        return super().handle_stream(stream, address)


def serve(
    jobs: JobManager, verifier: Verifier, identity: tls.Identity | None, host: str, port: int
) -> tuple[HTTPServer, int]:
    """Start serving ``jobs`` on ``host:port`` (0: any free port), to the holders of a
    credential ``verifier`` accepts, over HTTPS with ``identity`` (a TLS cluster's);
    return the server and port."""
    app = tornado.web.Application(
        [
            (r"/api/version", VersionHandler),
            (r"/api/packages/([^/]+)/([^/]+)", PackageHandler),
            (r"/api/jobs/?", JobsHandler),
            (r"/api/jobs/([^/]+)/stop", StopHandler),
            (r"/api/jobs/([^/]+)/logs/tail", TailHandler),
            (r"/api/jobs/([^/]+)/logs", LogsHandler),
            (r"/api/jobs/([^/]+)/artifacts/([^/]+)", ArtifactHandler),
            (r"/api/jobs/([^/]+)/?", JobHandler),
        ],
        jobs=jobs,
        verifier=verifier,
        websocket_ping_interval=10,
        gate=PreAuthGate(MAX_PREAUTH_PER_PEER, MAX_PREAUTH_TOTAL, Refusals("jobs API", log=logger)),
    )
    # Small bodies until the token is checked; the package route raises its own limit.
    ssl_options = identity.server_context() if identity is not None else None  # a TLS cluster: HTTPS
    server = _GatedServer(app, max_body_size=MAX_BODY, ssl_options=ssl_options, idle_connection_timeout=IDLE_TIMEOUT_S,
                          body_timeout=IDLE_TIMEOUT_S)
    sockets = bind_sockets(port, host)
    server.add_sockets(sockets)
    return server, sockets[0].getsockname()[1]
