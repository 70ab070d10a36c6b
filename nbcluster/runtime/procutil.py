"""Starting and watching the runtime's processes.

Processes that use gRPC are started as fresh interpreters (never forked). Each child
gets a *lifeline*: the read end of a pipe whose write end only the parent holds. When
the parent exits — cleanly or by ``kill -9`` — the pipe reaches EOF and the child shuts
itself down.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, Protocol

import psutil

from nbcluster.runtime import credentials

logger = logging.getLogger(__name__)

LOG_FORMAT = "%(asctime)s %(levelname)s %(process)d %(name)s: %(message)s"
#: What a worker process is called (``ps``, ``psutil.Process.name()``), however started.
WORKER_PROCESS_NAME = "nbc-worker"
#: What a node's worker template (``core/worker_template.py``) is called.
TEMPLATE_PROCESS_NAME = "nbc-template"


def spawn_python(
    module: str,
    args: Sequence[str],
    *,
    log_dir: Path,
    log_name: str,
    env: dict[str, str] | None = None,
    pass_fds: Sequence[int] = (),
    cwd: str | None = None,
    credential: str | None = None,
) -> subprocess.Popen:
    """Start ``python -m module args`` in its own session, output to log files."""
    return spawn(
        [sys.executable, "-m", module, *args],
        log_dir=log_dir, log_name=log_name, env=env, pass_fds=pass_fds, cwd=cwd, credential=credential,
    )


def spawn(
    argv: Sequence[str],
    *,
    log_dir: Path,
    log_name: str,
    env: dict[str, str] | None = None,
    pass_fds: Sequence[int] = (),
    cwd: str | None = None,
    credential: str | None = None,
) -> subprocess.Popen:
    """Start ``argv`` in its own session, stdout and stderr to ``log_dir/log_name.{out,err}``.

    ``credential`` (a token) reaches the child through an inherited pipe
    (:func:`credentials.from_parent` reads it); no credential of this process's
    environment is passed on (see :mod:`nbcluster.runtime.credentials`)."""
    full_env = {k: v for k, v in os.environ.items() if k not in credentials.INHERITED_NEVER}
    if env:
        full_env.update(env)
    fds = list(pass_fds)
    pipe = None
    if credential is not None:
        entry, pipe = credentials.credential_pipe(credential)
        full_env.update(entry)
        fds.append(pipe)
    try:
        with open(log_dir / f"{log_name}.out", "ab") as out, open(log_dir / f"{log_name}.err", "ab") as err:
            return subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                env=full_env,
                pass_fds=tuple(fds),
                cwd=cwd,
                start_new_session=True,
                close_fds=True,
            )
    finally:
        if pipe is not None:
            os.close(pipe)


def is_worker_process(proc: psutil.Process) -> bool:
    """Whether ``proc`` is a worker (spawned, or forked from a worker template)."""
    try:
        return proc.name() == WORKER_PROCESS_NAME
    except psutil.Error:
        return False


def set_process_name(name: str) -> None:
    """Name this process as ``ps``, ``top`` and ``psutil.Process.name()`` show it
    (Linux: its ``comm``, at most 15 bytes); best effort."""
    try:
        with open("/proc/self/comm", "w") as f:
            f.write(name[:15])
    except OSError:  # not Linux
        pass


def lower_priority(pid: int, niceness: int) -> None:
    """Set process ``pid``'s nice value to ``niceness`` when that lowers its priority
    (raising it would need privileges); best effort. Right after it is spawned, before
    it starts threads, so that they inherit it. On Linux with autogroups (the default
    on desktops and many servers) a process that leads its own session — as every
    process :func:`spawn` starts — is weighed against others by its session's
    autogroup, where its own nice value counts for nothing: that is set too."""
    try:
        if niceness > os.getpriority(os.PRIO_PROCESS, pid):
            os.setpriority(os.PRIO_PROCESS, pid, niceness)
    except OSError as exc:  # gone already, or not allowed
        logger.debug("could not renice pid=%d to %d: %s", pid, niceness, exc)
        return
    try:
        with open(f"/proc/{pid}/autogroup", "r+") as f:
            current = int(f.read().rsplit(None, 1)[-1])  # "/autogroup-123 nice 0"
            if niceness > current:
                f.seek(0)
                f.write(str(niceness))
    except (OSError, ValueError, IndexError):  # no autogroups here, or gone already
        pass


def watch_lifeline(loop: asyncio.AbstractEventLoop, fd: int, on_eof: Callable[[], None]) -> None:
    """Call ``on_eof()`` on the loop when the parent's end of the lifeline closes."""
    os.set_blocking(fd, False)

    def readable() -> None:
        try:
            data = os.read(fd, 4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            loop.remove_reader(fd)
            on_eof()

    loop.add_reader(fd, readable)


def configure_logging(path: Path, level: int = logging.INFO) -> None:
    """Process entry points only: send this process's logs to ``path``."""
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("asyncio").setLevel(logging.WARNING)


def terminate(procs: Sequence[subprocess.Popen | psutil.Process], timeout: float) -> int:
    """SIGTERM, wait up to ``timeout`` in all, then SIGKILL what is left; reap all.
    Returns how many had to be killed."""
    alive = []
    for proc in procs:
        try:
            proc.terminate()
            alive.append(proc)
        except (ProcessLookupError, psutil.NoSuchProcess):
            pass
    wait_exit(alive, timeout)
    killed = 0
    for proc in alive:
        try:
            if _running(proc):
                proc.kill()
                killed += 1
        except (ProcessLookupError, psutil.NoSuchProcess):
            pass
    wait_exit(alive, 5.0)
    return killed


def run_service(main: Coroutine[Any, Any, None], role: str) -> None:
    """``asyncio.run(main)`` for a process entry point. An OSError (a port in use)
    ends it with one line on stderr, which is what a starting command shows."""
    try:
        asyncio.run(main)
    except OSError as exc:
        logger.error("%s failed: %s", role, exc)
        print(f"nbcluster {role}: {exc}", file=sys.stderr)
        sys.exit(1)


class Child(Protocol):
    """A process started by the runtime, as ``subprocess.Popen`` shows it (a worker
    forked from a template shows the same, ``node/worker_template.py``)."""

    returncode: int | None

    def poll(self) -> int | None:
        """Its exit code once it has exited, else None."""

    def kill(self) -> None:
        """SIGKILL it."""


def _running(proc: Child | psutil.Process) -> bool:
    if not isinstance(proc, psutil.Process):
        return proc.poll() is None
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def wait_exit(procs: Sequence[Child | psutil.Process], timeout: float) -> bool:
    """Wait until every process has exited (reaping children); True if all did."""
    deadline = time.monotonic() + timeout
    pending = list(procs)
    delay = 0.002
    while pending:
        pending = [p for p in pending if _running(p)]
        if not pending:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(delay)
        delay = min(delay * 2, 0.05)
    return True
