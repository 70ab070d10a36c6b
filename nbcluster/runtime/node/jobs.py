"""The job supervisors a node manager runs: one process per submitted job placed on
this node, holding the entrypoint's resources until it exits (see
``nbcluster.runtime.jobs.supervisor``)."""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import signal
import subprocess
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from nbcluster.exceptions import InsecurePathError
from nbcluster.runtime import envvars
from nbcluster.runtime.node import resources as rs
from nbcluster.runtime.private_dir import read_private, warn_skipped
from nbcluster.runtime.procutil import spawn_python
from nbcluster.runtime.protocol import gcs_pb2
from nbcluster.runtime.protocol import node_manager_pb2 as nm_pb2
from nbcluster.runtime.session import Session

logger = logging.getLogger(__name__)


@dataclass(eq=False)
class _Supervisor:
    proc: subprocess.Popen
    held: rs.Fixed
    lifeline: int | None
    pid_file: Path
    name: str

    def entrypoint_group(self) -> int | None:
        """The entrypoint's process group (its pid), once the supervisor started it
        (and only from a pid file that is this user's alone)."""
        try:
            return int(read_private(self.pid_file))
        except (OSError, ValueError):
            return None
        except InsecurePathError as exc:
            warn_skipped(exc)
            return None


class JobSupervisors:
    """The job supervisors this node runs: started with their entrypoint's resources
    held, stopped, reaped."""

    def __init__(
        self,
        session: Session,
        token: str,
        config_env: str,
        gcs_route: Callable[[], str],
        hold: Callable[[rs.Fixed], bool],
        release: Callable[[rs.Fixed], None],
        report: Callable[[gcs_pb2.ReportJobRequest], Awaitable[object]],
    ) -> None:
        self._session = session
        self._token = token
        self._config_env = config_env
        self._gcs_route = gcs_route
        self._hold = hold  # takes the resources if they are free now
        self._release = release
        self._report = report
        self.running: dict[bytes, _Supervisor] = {}

    def start(self, request: nm_pb2.StartJobRequest) -> nm_pb2.StartJobReply:
        """Start a supervisor for ``request.job`` if its resources are free here."""
        job = request.job
        if job.job_id in self.running:
            return nm_pb2.StartJobReply(started=True)
        need = rs.to_fixed(job.entrypoint_resources.amounts)
        if not self._hold(need):
            return nm_pb2.StartJobReply(started=False, reason="its entrypoint resources are not free here now")
        read, write = os.pipe()
        name = job.submission_id or job.job_id.hex()
        pid_file = self._session.dir / f"job-{name}.pid"
        try:
            proc = spawn_python(
                "nbcluster.runtime.jobs.supervisor",
                [
                    "--session-dir", str(self._session.dir),
                    "--gcs-route", self._gcs_route(),
                    "--gcs-address", request.gcs_address,
                    "--job-name", name,
                    "--lifeline-fd", str(read),
                    "--pid-file", str(pid_file),
                ],
                log_dir=self._session.logs,
                log_name=f"job-supervisor-{name}",
                env={
                    envvars.CONFIG: self._config_env,
                    envvars.JOB: base64.b64encode(job.SerializeToString()).decode(),
                },
                pass_fds=(read,),
                credential=self._token,
            )
        except OSError as exc:
            os.close(write)
            self._release(need)
            return nm_pb2.StartJobReply(started=False, reason=f"cannot start its supervisor: {exc}")
        finally:
            os.close(read)
        os.set_inheritable(write, False)
        self.running[job.job_id] = _Supervisor(proc, need, write, pid_file, name)
        logger.info("job=%s supervisor pid=%d", name, proc.pid)
        return nm_pb2.StartJobReply(started=True)

    def reap(self) -> None:
        """Notice supervisors that exited (called periodically): free their resources;
        one that died without reporting the end (killed) is reported here, and what is
        left of its entrypoint's process group is ended."""
        for job_id, supervisor in list(self.running.items()):
            code = supervisor.proc.poll()
            if code is None:
                continue
            del self.running[job_id]
            self._close(supervisor)
            self._release(supervisor.held)
            group = supervisor.entrypoint_group()
            supervisor.pid_file.unlink(missing_ok=True)
            if code != 0:
                logger.error("job=%s: its supervisor exited with code %d", supervisor.name, code)
                if group is not None:
                    _killpg(group, signal.SIGKILL)
                request = gcs_pb2.ReportJobRequest(
                    job_id=job_id, exited=True, exit_code=-1, stopped=True,
                    message=f"its supervisor exited with code {code}",
                )
                asyncio.get_running_loop().create_task(self._report(request))

    def stop(self, job_id: bytes) -> None:
        """Ask a job's supervisor to stop its entrypoint (SIGTERM)."""
        supervisor = self.running.get(job_id)
        if supervisor is not None and supervisor.proc.poll() is None:
            supervisor.proc.send_signal(signal.SIGTERM)

    def shutdown(self) -> list[subprocess.Popen]:
        """Ask every supervisor to end its job (and the entrypoints' groups directly, so
        none outlives the node); return the supervisors to wait for."""
        procs = []
        for supervisor in self.running.values():
            self._close(supervisor)
            if supervisor.proc.poll() is None:
                supervisor.proc.send_signal(signal.SIGTERM)
            group = supervisor.entrypoint_group()
            if group is not None:
                _killpg(group, signal.SIGTERM)
            procs.append(supervisor.proc)
        return procs

    def kill_groups(self) -> None:
        """The node is going: SIGKILL whatever is left of the entrypoints."""
        for supervisor in self.running.values():
            group = supervisor.entrypoint_group()
            if group is not None:
                _killpg(group, signal.SIGKILL)
            supervisor.pid_file.unlink(missing_ok=True)

    @staticmethod
    def _close(supervisor: _Supervisor) -> None:
        if supervisor.lifeline is not None:
            os.close(supervisor.lifeline)
            supervisor.lifeline = None


def _killpg(group: int, sig: int) -> None:
    try:
        os.killpg(group, sig)
    except (ProcessLookupError, PermissionError):
        pass
