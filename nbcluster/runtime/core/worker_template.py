"""The worker template: ``python -m nbcluster.runtime.core.worker_template ...``.

A node manager starts one (on Linux) and forks its workers from it instead of
starting a fresh interpreter per worker (``node/worker_template.py`` is the node
manager's side, ``template_messages.py`` the messages between them). The template imports what a worker runs, freezes
those objects out of the garbage collector (``gc.freeze``, so the collector does not
write to the pages the workers share), then only forks: every worker shares the
template's pages until it writes to them. A worker starts in a few milliseconds
instead of a few hundred, and costs a third of the memory.

The template imports neither gRPC nor anything that starts a thread, and never runs
an event loop: it is safe to fork. It reaps its children and reports each exit to the
node manager; it exits when the node manager's end of the control socket closes.
"""

from __future__ import annotations

import argparse
import gc
import os
import selectors
import signal
import socket
import sys

from nbcluster.runtime.core import worker_main
from nbcluster.runtime.credentials import from_parent
from nbcluster.runtime.core.template_messages import Message, decode, encode
from nbcluster.runtime.procutil import TEMPLATE_PROCESS_NAME, WORKER_PROCESS_NAME, lower_priority, set_process_name

#: What a worker imports only once it runs something, imported here so that its
#: workers share them too.
PRELOAD = (
    "nbcluster.runtime.core.executor",
    "nbcluster.runtime.core.object_values",
    "cloudpickle",
    "pickle",
    "inspect",
)


class _Template:
    def __init__(self, argv: list[str] | None = None) -> None:
        self.opts = worker_main.parser(template=True).parse_args(argv)
        token = from_parent()
        if token is None:
            raise SystemExit("the worker template is started by its node manager, which passes its credential")
        self.token = token
        self.control = socket.socket(fileno=self.opts.control_fd)
        self.wake_read, self.wake_write = os.pipe()
        os.set_blocking(self.wake_read, False)
        os.set_blocking(self.wake_write, False)

    def serve(self) -> None:
        set_process_name(TEMPLATE_PROCESS_NAME)
        for name in PRELOAD:
            __import__(name)
        if "grpc" in sys.modules:  # it is not fork-safe: nothing a worker imports may bring it in
            raise SystemExit("the worker template imported grpc, which cannot be forked safely")
        gc.collect()
        gc.freeze()
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.set_wakeup_fd(self.wake_write)
        selector = selectors.DefaultSelector()
        selector.register(self.control, selectors.EVENT_READ)
        selector.register(self.wake_read, selectors.EVENT_READ)
        self.control.sendall(encode(Message("ready", "", os.getpid())))
        while True:
            for key, _ in selector.select():
                if key.fileobj is self.control:
                    data = self.control.recv(256)
                    if not data:  # the node manager is gone: its workers go with it
                        return
                    message = decode(data)
                    if message.kind == "fork":
                        self._fork(message.worker_id, selector)
                else:
                    while True:
                        try:
                            if not os.read(self.wake_read, 512):
                                break
                        except BlockingIOError:
                            break
            self._reap()

    def _fork(self, worker_id: str, selector: selectors.BaseSelector) -> None:
        try:
            pid = os.fork()
        except OSError as exc:
            self.control.sendall(encode(Message("failed", worker_id, 0, str(exc))))
            return
        if pid == 0:
            code = 1
            try:
                selector.close()
                self._become_worker(worker_id)
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            except BaseException:
                import traceback

                traceback.print_exc()
            finally:
                os._exit(code)
        self.control.sendall(encode(Message("forked", worker_id, pid)))

    def _become_worker(self, worker_id: str) -> None:
        """In the child: drop the template's own parts, then run as the worker."""
        set_process_name(WORKER_PROCESS_NAME)
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        self.control.close()
        os.close(self.wake_read)
        os.close(self.wake_write)
        os.setsid()  # its own session, as a spawned worker (signals to it reach it alone)
        name = f"worker-{worker_id[:12]}"
        logs = os.path.join(self.opts.session_dir, "logs")
        for fd, suffix in ((1, "out"), (2, "err")):
            log = os.open(os.path.join(logs, f"{name}.{suffix}"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            os.dup2(log, fd)
            os.close(log)
        if self.opts.niceness:  # before the worker starts threads: they inherit it
            lower_priority(os.getpid(), self.opts.niceness)
        sys.argv = [worker_main.__file__, "--worker-id", worker_id]
        worker_main.run(argparse.Namespace(**vars(self.opts), worker_id=worker_id), self.token)

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self.control.sendall(encode(Message("exited", "", pid, str(os.waitstatus_to_exitcode(status)))))


def main() -> None:
    """The worker template process (see the module docstring)."""
    _Template().serve()


if __name__ == "__main__":
    main()
