"""Workers forked from a template process (``worker_start_method="fork"``, Linux).

The node manager starts one *worker template* (``core/worker_template.py``): a
fresh interpreter that imports what a worker runs and then only forks. Asking it for
a worker is one message on a Unix socket; the worker starts in milliseconds and
shares the template's memory until it writes to it. The template reaps its children
and reports their exits on the same socket, so :class:`ForkedProcess` can stand in
for the ``subprocess.Popen`` of a spawned worker. Signals go through a pidfd, which
cannot reach another process that reused the pid.

A template that dies is started again for the next worker; the workers it forked
live on (they belong to the node manager's connection, not to the template).
"""

from __future__ import annotations

import asyncio
import logging
import os
import select
import signal
import socket
import subprocess
import threading
from pathlib import Path

from nbcluster.runtime.core.template_messages import Message, decode, encode
from nbcluster.runtime.procutil import spawn_python

logger = logging.getLogger(__name__)

TEMPLATE_MODULE = "nbcluster.runtime.core.worker_template"
#: A worker whose exit code the template could not report (it died first).
UNKNOWN_EXIT = -1


class ForkedProcess:
    """A worker forked by the template, as a ``subprocess.Popen`` is used: ``pid``
    (None until the template has forked it), ``poll``, ``returncode``, signals."""

    def __init__(self, template: "WorkerTemplate", worker_id: str) -> None:
        self._template = template
        self.worker_id = worker_id
        self.pid: int | None = None
        self.returncode: int | None = None
        #: Where to look when it failed before it was forked (the template's log).
        self.failure_log: str | None = None
        self._pidfd: int | None = None
        self._pending_signal: int | None = None
        self._generation = template.generation
        self._lock = threading.Lock()

    def poll(self) -> int | None:
        """The exit code once it has exited, else None."""
        if self.returncode is None and not self._template.serves(self._generation):
            if self.pid is None:
                self._failed(f"the worker template exited before forking it; see {self._template.log}")
            elif self._has_exited():
                self._exited(UNKNOWN_EXIT)  # it died with its parent: no one to tell its code
        return self.returncode

    def send_signal(self, sig: int) -> None:
        """Send ``sig`` (once forked; a signal asked for before is sent then)."""
        if self.returncode is not None:
            return
        if self.pid is None:
            self._pending_signal = sig
            return
        pidfd = self._pidfd
        try:
            if pidfd is not None:
                signal.pidfd_send_signal(pidfd, sig)
            else:  # no pidfd could be had
                os.kill(self.pid, sig)
        except OSError:  # gone already (or its pidfd closed as it exited)
            pass

    def kill(self) -> None:
        """SIGKILL it."""
        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        """SIGTERM it."""
        self.send_signal(signal.SIGTERM)

    # -- from the template's messages ---------------------------------------------
    def _forked(self, pid: int) -> None:
        self.pid = pid
        try:
            self._pidfd = os.pidfd_open(pid)
        except ProcessLookupError:  # gone already: its exit is on its way
            return
        except OSError as exc:  # out of file descriptors: its exit still comes as a message
            logger.warning("no pidfd for worker pid=%d (%s): signals go by pid", pid, exc)
        if self._pending_signal is not None:
            self.send_signal(self._pending_signal)

    def _failed(self, detail: str) -> None:
        logger.warning("worker=%s could not be forked: %s", self.worker_id[:12], detail)
        self.failure_log = str(self._template.log)
        self._exited(1)

    def _exited(self, code: int) -> None:
        with self._lock:  # the loop and a thread waiting for exits may both get here
            if self.returncode is None:
                self.returncode = code
            pidfd, self._pidfd = self._pidfd, None
        if pidfd is not None:
            os.close(pidfd)

    def _has_exited(self) -> bool:
        pidfd = self._pidfd
        if pidfd is None:
            return True
        poller = select.poll()  # not select(): a node with 1,000 workers has fds above 1023
        poller.register(pidfd, select.POLLIN)
        try:
            return bool(poller.poll(0))
        except (OSError, ValueError):  # closed meanwhile: it has exited
            return True


class WorkerTemplate:
    """The node manager's side of its worker template (see the module docstring)."""

    def __init__(
        self, spawn_args: list[str], *, log_dir: Path, env: dict[str, str], credential: str, niceness: int
    ) -> None:
        self._spawn_args = spawn_args
        self._log_dir = log_dir
        self._env = env
        self._credential = credential
        self._niceness = niceness
        self._proc: subprocess.Popen | None = None
        self._control: socket.socket | None = None
        self._forking: dict[str, ForkedProcess] = {}
        self._by_pid: dict[int, ForkedProcess] = {}
        #: How many templates were started: a restarted one does not know the workers
        #: of the one before.
        self.generation = 0
        self.log = log_dir / "worker_template.err"

    def serves(self, generation: int) -> bool:
        """Whether the template of that generation runs (its control socket is open)."""
        return self._control is not None and generation == self.generation

    def fork(self, worker_id: bytes) -> ForkedProcess:
        """Ask the template for a worker (started first if it is not running)."""
        if self._control is None:
            self._start()
        assert self._control is not None
        handle = ForkedProcess(self, worker_id.hex())
        try:
            self._control.send(encode(Message("fork", handle.worker_id)))
        except OSError as exc:
            handle._failed(f"the worker template did not take the request: {exc}")
            self._gone()
            return handle
        self._forking[handle.worker_id] = handle
        return handle

    def stop(self) -> subprocess.Popen | None:
        """Close the control socket (the template exits on it); its process, to wait for."""
        proc = self._proc
        self._gone()
        if proc is not None and proc.poll() is None:
            proc.terminate()
        self._proc = None
        return proc

    def _start(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.generation += 1
        name = "worker_template" if self.generation == 1 else f"worker_template-{self.generation}"
        self.log = self._log_dir / f"{name}.err"
        try:
            self._proc = spawn_python(
                TEMPLATE_MODULE,
                [*self._spawn_args, "--control-fd", str(theirs.fileno()), "--niceness", str(self._niceness)],
                log_dir=self._log_dir,
                log_name=name,
                env=self._env,
                pass_fds=(theirs.fileno(),),
                credential=self._credential,
            )
        finally:
            theirs.close()
        ours.setblocking(False)
        self._control = ours
        asyncio.get_running_loop().add_reader(ours.fileno(), self._readable)
        logger.info("started the worker template pid=%d", self._proc.pid)

    def _readable(self) -> None:
        assert self._control is not None
        while True:
            try:
                data = self._control.recv(4096)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                logger.warning("the worker template exited; the next worker starts a new one (see %s)", self.log)
                self._gone()
                return
            self._handle(decode(data))

    def _handle(self, message: Message) -> None:
        if message.kind == "forked":
            handle = self._forking.pop(message.worker_id, None)
            if handle is not None:
                self._by_pid[message.pid] = handle
                handle._forked(message.pid)
        elif message.kind == "failed":
            handle = self._forking.pop(message.worker_id, None)
            if handle is not None:
                handle._failed(message.detail)
        elif message.kind == "exited":
            handle = self._by_pid.pop(message.pid, None)
            if handle is not None:
                handle._exited(int(message.detail))
        elif message.kind == "ready":
            logger.info("the worker template pid=%d is ready", message.pid)

    def _gone(self) -> None:
        if self._control is None:
            return
        try:
            asyncio.get_running_loop().remove_reader(self._control.fileno())
        except RuntimeError:  # no loop (stopping)
            pass
        self._control.close()
        self._control = None
        for handle in self._forking.values():
            handle.poll()  # never forked: failed
        self._forking.clear()
        self._by_pid.clear()
