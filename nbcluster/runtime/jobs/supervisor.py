"""A job supervisor: ``python -m nbcluster.runtime.jobs.supervisor --session-dir D
--gcs-route R --lifeline-fd N`` with the job in ``NBCLUSTER_JOB`` (a serialized
JobInfo, base64) and the cluster token in an inherited pipe (``credentials.py``).

Started by a node manager for one submitted job. It sets up the job's runtime_env
(packages unpacked on this node), runs the entrypoint with ``/bin/sh -c`` as its own
process group, with ``NBCLUSTER_ADDRESS``, ``NBCLUSTER_JOB_ID`` and
``NBCLUSTER_CREDENTIAL_FILE`` in its environment (so ``nbcluster.init()`` there joins
the cluster as this job). That file (mode 0600, removed when the job ends) holds the
driver credential, never the cluster token: the entrypoint can do what a driver does,
not administer the cluster, and ``env`` prints no secret. streams its output to the GCS (the job's log on the head) and
reports its exit. SIGTERM (a stop), its lifeline closing (its node manager gone) or
losing the GCS end the entrypoint: SIGTERM to the group, SIGKILL after
``job_stop_grace_s``. Whatever of the group is left when the entrypoint exits is
ended too, so a job leaves no process behind.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import logging
import os
import signal
from pathlib import Path

from nbcluster.exceptions import RuntimeEnvSetupError
from nbcluster.runtime import envvars
from nbcluster.runtime.config import RuntimeConfig
from nbcluster.runtime.credentials import driver_token, from_parent, write_token_file
from nbcluster.runtime.runtime_env import RuntimeEnv, setup as runtime_env
from nbcluster.runtime.private_dir import write_private
from nbcluster.runtime.procutil import configure_logging, watch_lifeline
from nbcluster.runtime.protocol import gcs_pb2
from nbcluster.runtime.session import Session
from nbcluster.runtime.transport import dial, methods
from nbcluster.runtime.transport.errors import ConnectionLost, RemoteError

logger = logging.getLogger("nbcluster.job_supervisor")

#: Output is sent to the head at most this often (and when 64 KiB gathered).
FLUSH_S = 0.1
CHUNK = 64 * 1024


class Supervisor:
    """Runs one job's entrypoint as a process group and reports it to the GCS."""

    def __init__(self, opts: argparse.Namespace, job: gcs_pb2.JobInfo, token: str, config: RuntimeConfig) -> None:
        self.opts = opts
        self.job = job
        self.token = token
        self.config = config
        self.gcs: object = None
        self.proc: asyncio.subprocess.Process | None = None
        self.stop_requested = asyncio.Event()
        self.stopped = False
        self._buffer = bytearray()
        self.lost = False
        #: The entrypoint's credential file, removed when the job ends.
        self.credential_file: Path | None = None

    async def report(self, **fields: object) -> gcs_pb2.ReportJobReply:
        """Tell the GCS; losing it ends the job (nothing could report its end)."""
        if self.lost:
            return gcs_pb2.ReportJobReply(stop=True)
        request = gcs_pb2.ReportJobRequest(job_id=self.job.job_id, **fields)  # type: ignore[arg-type]
        try:
            reply = await self.gcs.call(methods.Gcs.ReportJob, request, timeout=30.0)  # type: ignore[attr-defined]
        except (ConnectionLost, RemoteError, asyncio.TimeoutError) as exc:
            logger.error("job=%s: cannot reach the head (%s); ending the job", self.job.submission_id, exc)
            self.lost = True
            reply = gcs_pb2.ReportJobReply(stop=True)
        if reply.stop:
            self.stop_requested.set()
        return reply

    async def run(self) -> None:
        """Prepare the runtime_env, run the entrypoint, report its output and exit."""
        self.gcs = await dial(self.opts.gcs_route, self.token, timeout=self.config.startup_timeout_s)
        self.gcs.on_close(self._gcs_lost)  # type: ignore[attr-defined]
        env_spec = RuntimeEnv.from_json(self.job.runtime_env_json)
        try:
            prepared = await runtime_env.prepare(self.gcs, Path(self.opts.session_dir), env_spec, self.config)
        except (OSError, ValueError, ConnectionLost, RemoteError, RuntimeEnvSetupError) as exc:
            logger.exception("runtime_env setup failed")
            await self.report(exited=True, exit_code=-1, message=f"runtime_env setup failed: {exc}")
            return
        env = dict(os.environ)
        env.pop(envvars.JOB, None)
        env.update(env_spec.env_vars)
        credential = Path(self.opts.session_dir) / f"job-{self.opts.job_name}.credential"
        write_token_file(credential, driver_token(self.token), Session(Path(self.opts.session_dir)).read_ca())
        self.credential_file = credential
        env.update({
            envvars.ADDRESS: self.opts.gcs_address,
            envvars.CREDENTIAL_FILE: str(credential),
            envvars.JOB_ID: self.job.job_id.hex(),
            "PYTHONUNBUFFERED": "1",
            envvars.RUNTIME_ENV: env_spec.to_json(),
        })
        if prepared.venv is not None:  # the entrypoint's `python` is the virtualenv's
            env["PATH"] = os.pathsep.join([str(prepared.venv.path / "bin"), env.get("PATH", os.defpath)])
            env["VIRTUAL_ENV"] = str(prepared.venv.path)
        if prepared.sys_path:
            env["PYTHONPATH"] = os.pathsep.join(prepared.sys_path + [p for p in [env.get("PYTHONPATH")] if p])
        if self.stop_requested.is_set():  # stopped while its runtime_env was set up
            await self.report(exited=True, exit_code=-1, stopped=True, message="stopped before it started")
            return
        self.proc = await asyncio.create_subprocess_exec(
            "/bin/sh", "-c", self.job.entrypoint,
            cwd=str(prepared.working_dir) if prepared.working_dir else None,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
        logger.info("job=%s entrypoint pid=%d: %s", self.job.submission_id, self.proc.pid, self.job.entrypoint)
        if self.opts.pid_file:  # for the node manager, should this process die
            write_private(self.opts.pid_file, str(self.proc.pid))
        await self.report(started=True, pid=self.proc.pid)
        pump = asyncio.ensure_future(self._pump())
        flusher = asyncio.ensure_future(self._flush_loop())
        waiter = asyncio.ensure_future(self._exit_code())
        stopper = asyncio.ensure_future(self.stop_requested.wait())
        await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if not waiter.done():
            self.stopped = True
            await self._end_group()
        code = await waiter
        await self._end_group(leftovers_only=True)
        # A process that left the group (setsid) may still hold the output pipe: read
        # what is there, then stop waiting for its end.
        try:
            await asyncio.wait_for(asyncio.shield(pump), 1.0)
        except asyncio.TimeoutError:
            pump.cancel()
        stopper.cancel()
        flusher.cancel()
        await self._flush()
        await self.report(exited=True, exit_code=code, stopped=self.stopped)

    async def _exit_code(self) -> int:
        """The entrypoint's exit code. Not ``proc.wait()``: asyncio waits there for its
        pipes to close too, which a process that left the group can hold open."""
        assert self.proc is not None
        while self.proc.returncode is None:
            await asyncio.sleep(0.05)
        return self.proc.returncode

    def _gcs_lost(self, conn: object) -> None:
        """The head went away: nothing could report this job's end, so end it."""
        if not self.lost:
            logger.error("job=%s: lost the head; ending the job", self.job.submission_id)
            self.lost = True
            self.stop_requested.set()

    async def _pump(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        while True:
            data = await self.proc.stdout.read(CHUNK)
            if not data:
                return
            self._buffer += data
            if len(self._buffer) >= CHUNK:
                await self._flush()

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_S)
            await self._flush()

    async def _flush(self) -> None:
        if self._buffer:
            data, self._buffer = bytes(self._buffer), bytearray()
            await self.report(logs=data)

    async def _end_group(self, leftovers_only: bool = False) -> None:
        """SIGTERM the entrypoint's process group, SIGKILL what is left after the grace."""
        assert self.proc is not None
        pgid = self.proc.pid
        try:
            os.killpg(pgid, signal.SIGTERM)
        except ProcessLookupError:
            return
        if not leftovers_only:
            logger.info("job=%s stopping its process group", self.job.submission_id)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.job_stop_grace_s
        while loop.time() < deadline:
            if self.proc.returncode is not None and not _group_alive(pgid):
                return
            await asyncio.sleep(0.05)
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


async def serve(opts: argparse.Namespace, token: str) -> None:
    """Supervise the job in the environment until it ends or is stopped."""
    job = gcs_pb2.JobInfo.FromString(base64.b64decode(os.environ[envvars.JOB]))
    supervisor = Supervisor(opts, job, token, RuntimeConfig.load())
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, supervisor.stop_requested.set)
    if opts.lifeline_fd is not None:
        watch_lifeline(loop, opts.lifeline_fd, supervisor.stop_requested.set)
    try:
        await supervisor.run()
    except (ConnectionLost, RemoteError, OSError, asyncio.TimeoutError) as exc:
        logger.error("job=%s: lost the head (%s); ending the job", job.submission_id, exc)
        if supervisor.proc is not None and supervisor.proc.returncode is None:
            await supervisor._end_group()
    finally:
        if supervisor.credential_file is not None:
            supervisor.credential_file.unlink(missing_ok=True)


def main() -> None:
    """The supervisor's entry point (``python -m nbcluster.runtime.jobs.supervisor``)."""
    parser = argparse.ArgumentParser(prog="nbcluster-job-supervisor")
    parser.add_argument("--session-dir", required=True)
    parser.add_argument("--gcs-route", required=True, help="how this process reaches the GCS")
    parser.add_argument("--gcs-address", required=True, help="the GCS address the job's driver connects to")
    parser.add_argument("--job-name", required=True)
    parser.add_argument("--lifeline-fd", type=int)
    parser.add_argument("--pid-file", help="where to write the entrypoint's pid (its process group id)")
    opts = parser.parse_args()
    configure_logging(Path(opts.session_dir) / "logs" / f"job-supervisor-{opts.job_name}.log")
    token = from_parent()  # before the loop opens file descriptors
    if token is None:
        raise SystemExit("a job supervisor is started by its node manager, which passes its credential")
    asyncio.run(serve(opts, token))


if __name__ == "__main__":
    main()
