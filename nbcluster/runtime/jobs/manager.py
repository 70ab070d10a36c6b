"""The job manager, in the head process: submitted jobs from submission to end.

A submitted job is a row of the GCS's job table (type SUBMISSION) that moves
PENDING → RUNNING → SUCCEEDED | FAILED | STOPPED. The manager places its entrypoint
on a node whose free resources hold the entrypoint's (the head first), where the node
manager starts a *supervisor* process; the supervisor runs the entrypoint as its own
process group and reports to the GCS (``ReportJob``): started, output, exit. Output
is appended to ``logs/job-<submission_id>.log`` in the head's session directory, so
logs, like the job rows (SQLite), survive a head restart; a job that was not finished
when the head stopped ends FAILED when it comes back.

Stop = the node manager signals the supervisor, which sends SIGTERM to the
entrypoint's process group and SIGKILL after ``job_stop_grace_s``.
"""

from __future__ import annotations

import asyncio
import codecs
import logging
import math
import re
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Protocol

from nbcluster.runtime import envvars
from nbcluster.runtime.gcs.job_table import JobTable
from nbcluster.runtime.runtime_env import RuntimeEnv, packages
from nbcluster.runtime.node import resources as rs
from nbcluster.runtime.protocol import common_pb2, gcs_pb2
from nbcluster.runtime.protocol import node_manager_pb2 as nm_pb2
from nbcluster.runtime.session import Session
from nbcluster.runtime.states import JobStatus
from nbcluster.runtime.transport import methods
from nbcluster.runtime.transport.errors import ConnectionLost, RemoteError

logger = logging.getLogger(__name__)

#: The log tail sends what was written before it started in pieces this large.
TAIL_PIECE = 256 * 1024
_SUBMISSION_ID = re.compile(r"^[A-Za-z0-9_.\-]{1,128}$")


class JobError(Exception):
    """A request the job manager refuses; ``status`` is the HTTP status it maps to."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _number(value: Any, name: str, whole: bool = False) -> float | None:
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value < 0
        or (whole and value != int(value))
    ):
        kind = "a whole number" if whole else "a number"
        raise JobError(400, f"{name} must be {kind} >= 0, got {value!r}")
    return float(value)


class JobHost(Protocol):
    """What the job manager uses of the GCS that hosts it (``gcs/server.py``)."""

    session: Session
    #: The GCS's address for other machines (supervisors report there).
    address: str

    def alive_nodes(self) -> list[gcs_pb2.NodeInfo]:
        """The rows of the alive nodes."""

    async def node_connection(self, node: gcs_pb2.NodeInfo) -> Any:
        """A connection to ``node``'s node manager."""

    def job_progress(self, job_id: bytes) -> dict[str, int]:
        """Task and actor counts of ``job_id``."""

    def kv_get(self, namespace: str, key: bytes) -> bytes | None:
        """A KV value, None if unset."""

    def kv_put(self, namespace: str, key: bytes, value: bytes) -> None:
        """Set a KV value."""

    def kv_delete_prefix(self, namespace: str, prefix: bytes) -> None:
        """Delete the KV keys with a prefix."""


class JobManager:
    """Submitted jobs from submission to end (see the module docstring): the rows are
    ``table``'s, nodes, connections and the KV ``gcs``'s."""

    def __init__(self, table: JobTable, gcs: JobHost) -> None:
        self.table = table
        self.gcs = gcs
        self._tails: dict[bytes, set[asyncio.Queue]] = {}
        self._placing = False
        self._stop_requested: set[bytes] = set()

    # -- paths and lookups -------------------------------------------------------------
    def log_path(self, info: gcs_pb2.JobInfo) -> Path:
        """Where the output of job ``info`` goes, in the head's session directory."""
        name = info.submission_id or info.job_id.hex()
        return self.gcs.session.logs / f"job-{name}.log"

    def find(self, job_id: str) -> gcs_pb2.JobInfo:
        """A job by submission id, or by job id (hex) for drivers."""
        for info in self.table.infos():
            if info.submission_id == job_id or (info.job_id.hex() == job_id):
                return info
        raise JobError(404, f"no job {job_id!r}; `nbcluster job list` shows the jobs")

    # -- submit --------------------------------------------------------------------------
    def infos(self) -> list[gcs_pb2.JobInfo]:
        """Every job's row (drivers' and submitted ones)."""
        return self.table.infos()

    def submit(self, body: Any) -> gcs_pb2.JobInfo:
        """Add a job from a ``POST /api/jobs/`` body and place it; JobError when the body is wrong."""
        if not isinstance(body, dict):
            raise JobError(400, "the request body must be a JSON object with an 'entrypoint'")
        known = {
            "entrypoint", "submission_id", "job_id", "runtime_env", "metadata", "entrypoint_num_cpus",
            "entrypoint_num_gpus", "entrypoint_memory", "entrypoint_resources",
        }
        unknown = sorted(set(body) - known)
        if unknown:
            raise JobError(400, f"unknown fields {unknown}; the fields are {sorted(known)}")
        entrypoint = body.get("entrypoint")
        if not isinstance(entrypoint, str) or not entrypoint.strip():
            raise JobError(400, "'entrypoint' must be a non-empty shell command, e.g. \"python script.py\"")
        submission_id = body.get("submission_id") or body.get("job_id") or f"nbcsubmit_{secrets.token_hex(8)}"
        if not isinstance(submission_id, str) or not _SUBMISSION_ID.match(submission_id):
            raise JobError(400, f"submission_id must be 1-128 letters, digits, '_', '.' or '-', got {submission_id!r}")
        for info in self.table.infos():
            if info.submission_id == submission_id:
                raise JobError(409, f"a job with submission_id {submission_id!r} exists already ({info.entrypoint!r})")
        metadata = body.get("metadata") or {}
        if not isinstance(metadata, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
            raise JobError(400, "metadata must map strings to strings")
        runtime_env = self._runtime_env(body.get("runtime_env"))
        needs: dict[str, float] = {}
        for key, name, whole in (
            ("CPU", "entrypoint_num_cpus", False), ("GPU", "entrypoint_num_gpus", False),
            ("memory", "entrypoint_memory", True),
        ):
            value = _number(body.get(name), name, whole)
            if value:
                needs[key] = value
        custom = body.get("entrypoint_resources") or {}
        if not isinstance(custom, dict):
            raise JobError(400, "entrypoint_resources must map resource names to numbers")
        for key, value in custom.items():
            if key in ("CPU", "GPU", "memory"):
                raise JobError(400, f"entrypoint_resources: give {key} with entrypoint_num_cpus/_gpus/_memory")
            amount = _number(value, f"entrypoint_resources[{key!r}]")
            if amount:
                needs[str(key)] = amount
        info = gcs_pb2.JobInfo(
            type=gcs_pb2.JOB_TYPE_SUBMISSION,
            entrypoint=entrypoint,
            submission_id=submission_id,
            metadata=metadata,
            runtime_env_json=runtime_env.to_json(),
            entrypoint_resources=common_pb2.ResourceSet(amounts=needs),
        )
        job = self.table.add(info)
        self.log_path(job).touch()
        self.place()
        return job

    def _runtime_env(self, raw: Any) -> RuntimeEnv:
        """The submitted runtime_env, validated (URIs only: the client uploads local
        directories first) and its packages present in the store."""
        try:
            env = RuntimeEnv.parse(raw, local_paths=False)
        except (TypeError, ValueError) as exc:
            raise JobError(400, str(exc)) from None
        for uri in env.uris:
            _, name = packages.parse_uri(uri)
            if not self.has_package(name):
                raise JobError(400, f"runtime_env: package {uri} was not uploaded (PUT /api/packages/gcs/{name})")
        return env

    # -- packages --------------------------------------------------------------------------
    def has_package(self, name: str) -> bool:
        """Whether the package ``name`` (a ``gcs://`` name) is stored."""
        return self.gcs.kv_get(envvars.KV_PACKAGES, name.encode()) is not None

    def put_package(self, name: str, data: bytes) -> str:
        """Store a package zip under ``name``, which must be its content's; its URI.
        JobError (400) when the name or the archive is wrong."""
        uri = f"{packages.PROTOCOL}://{name}"
        try:
            packages.parse_uri(uri)
            if packages.package_uri(data) != uri:
                raise packages.PackageError(f"the content of {name} does not match its name (a sha256 prefix)")
            packages.check_archive(data)
        except packages.PackageError as exc:
            raise JobError(400, str(exc)) from None
        self.gcs.kv_put(envvars.KV_PACKAGES, name.encode(), data)
        return uri

    # -- placing entrypoints -------------------------------------------------------------------
    def place(self) -> None:
        """Start the supervisors of pending jobs where their resources are free."""
        if self._placing:
            return
        pending = [
            j for j in self.table.infos()
            if j.type == gcs_pb2.JOB_TYPE_SUBMISSION and j.state == gcs_pb2.JOB_STATE_PENDING and not j.supervisor_node_id
        ]
        if pending:
            self._placing = True
            task = asyncio.get_running_loop().create_task(self._place(pending))
            task.add_done_callback(lambda _t: setattr(self, "_placing", False))

    async def _place(self, pending: list[gcs_pb2.JobInfo]) -> None:
        for info in pending:
            if self.table.status(info.job_id) is not JobStatus.PENDING:
                continue  # stopped meanwhile
            try:
                await self._place_one(info)
            except Exception:  # noqa: BLE001 - one job's trouble must not hold up the others
                logger.exception("placing job=%s failed", info.submission_id)

    async def _place_one(self, info: gcs_pb2.JobInfo) -> None:
        need = rs.to_fixed(info.entrypoint_resources.amounts)
        nodes = [n for n in self.gcs.alive_nodes() if not n.draining and rs.fits(rs.to_fixed(n.available.amounts), need)]
        if not nodes:
            if not any(rs.fits(rs.to_fixed(n.total.amounts), need) for n in self.gcs.alive_nodes()):
                info.message = (
                    f"waiting for a node with {rs.describe(dict(info.entrypoint_resources.amounts))} "
                    "(no node has these resources)"
                )
            return
        nodes.sort(key=lambda n: (not n.is_head, n.node_id))
        node = nodes[0]
        info.supervisor_node_id = node.node_id
        try:
            conn = await self.gcs.node_connection(node)
            reply = await conn.call(
                methods.NodeManager.StartJob,
                nm_pb2.StartJobRequest(job=info, gcs_address=self.gcs.address),
                timeout=30.0,
            )
        except (ConnectionLost, RemoteError, asyncio.TimeoutError, OSError) as exc:
            reply = nm_pb2.StartJobReply(started=False, reason=f"node {node.node_id.hex()[:8]} unreachable ({exc})")
        if not reply.started:
            logger.info("job=%s not started on node=%s: %s", info.submission_id, node.node_id.hex(), reply.reason)
            if self.table.status(info.job_id) is JobStatus.PENDING:
                info.supervisor_node_id = b""
            return
        self.table.save(info)

    # -- what supervisors report ------------------------------------------------------------------
    def report(self, request: gcs_pb2.ReportJobRequest) -> gcs_pb2.ReportJobReply:
        """A supervisor's report: output appended to the log, start and exit recorded;
        the reply tells it to stop when the job ended meanwhile."""
        info = self.table.info(request.job_id)
        if info is None:
            return gcs_pb2.ReportJobReply(stop=True)
        if request.logs:
            with open(self.log_path(info), "ab") as log:
                log.write(request.logs)
            for queue in self._tails.get(info.job_id, ()):
                queue.put_nowait(request.logs)
        status = self.table.status(info.job_id)
        if request.started and status is JobStatus.PENDING:
            info.supervisor_pid = request.pid
            self.table.set_status(info.job_id, JobStatus.RUNNING, "")
        if request.exited:
            info.has_exit_code = not request.message
            info.exit_code = request.exit_code
            if info.job_id in self._stop_requested:
                end, message = JobStatus.STOPPED, "stopped by request"
            elif request.stopped:
                end, message = JobStatus.FAILED, request.message or "ended early: its node or the head went away"
            elif request.message:
                end, message = JobStatus.FAILED, request.message
            elif request.exit_code == 0:
                end, message = JobStatus.SUCCEEDED, "the entrypoint exited with code 0"
            else:
                end, message = JobStatus.FAILED, f"the entrypoint exited with code {request.exit_code}"
            self.end(info.job_id, end, message)
            self.place()  # its resources are free again
        stop = self.table.status(info.job_id).value in ("STOPPED", "FAILED", "SUCCEEDED") and not request.exited
        return gcs_pb2.ReportJobReply(stop=stop)

    def end(self, job_id: bytes, status: JobStatus, message: str) -> None:
        """End the job in ``status``; live log tails end too."""
        self.table.set_status(job_id, status, message)
        self._stop_requested.discard(job_id)
        for queue in self._tails.pop(job_id, ()):
            queue.put_nowait(None)

    def node_died(self, node_id: bytes) -> None:
        """Submitted jobs whose supervisor ran on ``node_id`` end FAILED."""
        for info in self.table.infos():
            if info.supervisor_node_id == node_id and info.type == gcs_pb2.JOB_TYPE_SUBMISSION:
                if self.table.status(info.job_id).value not in ("STOPPED", "FAILED", "SUCCEEDED"):
                    self.end(info.job_id, JobStatus.FAILED, f"the node running it ({node_id.hex()[:8]}) died")

    # -- stop, delete, logs ----------------------------------------------------------------------
    async def stop(self, job_id: str) -> bool:
        """Stop a job (its supervisor ends the entrypoint); False if it had ended."""
        info = self.find(job_id)
        status = self.table.status(info.job_id)
        if status.value in ("STOPPED", "FAILED", "SUCCEEDED"):
            return False
        if info.type != gcs_pb2.JOB_TYPE_SUBMISSION:
            raise JobError(400, f"job {job_id} is a driver connected directly; stop it where it runs")
        self._stop_requested.add(info.job_id)
        if status is JobStatus.PENDING:
            # Not started: it ends now; a supervisor starting it meanwhile is told to stop
            # by the reply to its first report.
            self.end(info.job_id, JobStatus.STOPPED, "stopped before it started")
        node = next((n for n in self.gcs.alive_nodes() if n.node_id == info.supervisor_node_id), None)
        if node is None:
            self.end(info.job_id, JobStatus.STOPPED, "stopped (its node is gone)")
            return True
        try:
            conn = await self.gcs.node_connection(node)
            await conn.call(methods.NodeManager.StopJob, nm_pb2.StopJobRequest(job_id=info.job_id), timeout=10.0)
        except (ConnectionLost, RemoteError, asyncio.TimeoutError, OSError) as exc:
            self.end(info.job_id, JobStatus.STOPPED, f"stopped (its node did not answer: {exc})")
        return True

    def delete(self, job_id: str) -> bool:
        """Delete a finished job, its log and artifacts; JobError (400) while it runs."""
        info = self.find(job_id)
        if self.table.status(info.job_id).value not in ("STOPPED", "FAILED", "SUCCEEDED"):
            raise JobError(400, f"job {job_id} has not finished; stop it first (POST /api/jobs/{job_id}/stop)")
        self.log_path(info).unlink(missing_ok=True)
        self.gcs.kv_delete_prefix(envvars.KV_JOB_ARTIFACTS, f"{info.job_id.hex()}/".encode())
        self.table.remove(info.job_id)
        return True

    def artifact(self, job_id: str, name: str) -> bytes:
        """A file the job kept (e.g. a notebook job's result); JobError (404) if none."""
        info = self.find(job_id)
        data = self.gcs.kv_get(envvars.KV_JOB_ARTIFACTS, f"{info.job_id.hex()}/{name}".encode())
        if data is None:
            raise JobError(404, f"job {job_id} kept no artifact {name!r}")
        return data

    def logs(self, job_id: str) -> str:
        """The job's log so far ("" before any output)."""
        info = self.find(job_id)
        try:
            return self.log_path(info).read_bytes().decode("utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    async def tail(self, job_id: str) -> AsyncIterator[str]:
        """The log from its start (in pieces of at most TAIL_PIECE bytes), then live
        chunks until the job ends; characters split between chunks stay whole."""
        info = self.find(job_id)
        queue: asyncio.Queue = asyncio.Queue()
        terminal = self.table.status(info.job_id).value in ("STOPPED", "FAILED", "SUCCEEDED")
        if not terminal:
            self._tails.setdefault(info.job_id, set()).add(queue)
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        try:
            try:
                with open(self.log_path(info), "rb") as log:  # after subscribing: nothing falls between
                    while piece := log.read(TAIL_PIECE):
                        if text := decoder.decode(piece):
                            yield text
            except FileNotFoundError:
                pass
            while not terminal:
                chunk = await queue.get()
                if chunk is None:
                    break
                if text := decoder.decode(chunk):
                    yield text
            if rest := decoder.decode(b"", final=True):
                yield rest
        finally:
            self._tails.get(info.job_id, set()).discard(queue)

    # -- JSON for the REST API -----------------------------------------------------------------------
    def details(self, info: gcs_pb2.JobInfo) -> dict[str, Any]:
        """The job as the Jobs API's JSON (Ray's JobDetails fields)."""
        submitted = info.type == gcs_pb2.JOB_TYPE_SUBMISSION
        needs = dict(info.entrypoint_resources.amounts)
        end = info.end_time
        return {
            "type": "SUBMISSION" if submitted else "DRIVER",
            "job_id": info.job_id.hex(),
            "submission_id": info.submission_id or None,
            "status": self.table.status(info.job_id).value,
            "entrypoint": info.entrypoint,
            "message": info.message,
            "error_type": None,
            "start_time": int(info.start_time * 1000) if info.start_time else None,
            "end_time": int(end * 1000) if end else None,
            "metadata": dict(info.metadata),
            "runtime_env": RuntimeEnv.from_json(info.runtime_env_json).to_dict(),
            "driver_exit_code": info.exit_code if info.has_exit_code else None,
            "driver_node_id": (info.supervisor_node_id or info.driver.node_id).hex() or None,
            "driver_pid": info.supervisor_pid or info.driver_pid or None,
            "entrypoint_num_cpus": needs.pop("CPU", None) if submitted else None,
            "entrypoint_num_gpus": needs.pop("GPU", None) if submitted else None,
            "entrypoint_memory": int(needs.pop("memory")) if submitted and "memory" in needs else None,
            "entrypoint_resources": needs or None,
            "progress": self.gcs.job_progress(info.job_id),
        }
