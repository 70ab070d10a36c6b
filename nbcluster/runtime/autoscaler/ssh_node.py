"""The remote end of the ssh node provider, run over SSH on a worker machine::

    python -m nbcluster.runtime.autoscaler.ssh_node --gcs-address HEAD:PORT --spec JSON --config JSON

It reads one line on stdin, ``{"token_file": TEXT}`` (the cluster's token file: the
token, and the CA of a TLS cluster), so the token is in no argv, environment or log.
It starts a node manager (:func:`~nbcluster.runtime.launcher.start_worker_node`, in a
session directory of its own that is removed when it ends), prints
``{"runner_pid", "node_pid", "session_dir"}`` on stdout, and stays until

- stdin reaches EOF: the head closed its SSH channel (terminate), or the connection
  was lost (the head died) — the SSH channel is the node's lifeline;
- SIGTERM, SIGHUP or SIGINT;
- the node manager exits by itself: its last log lines go to stderr, exit status 1.

In each case the node manager is stopped and waited for (killed after a grace period).

``--stop HEAD_IP`` instead ends every runner of this user whose cluster's head is at
HEAD_IP, and waits for them (``nbcluster down``).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading

import psutil

from nbcluster.runtime.config import RuntimeConfig
from nbcluster.runtime.credentials import parse_token_file
from nbcluster.runtime.launcher import NodeSpec, start_worker_node
from nbcluster.runtime.procutil import terminate
from nbcluster.runtime.session import remove_store

MODULE = "nbcluster.runtime.autoscaler.ssh_node"
#: A node manager asked to stop that has not exited after this long is killed.
GRACE_S = 10.0


def _read_token() -> str:
    line = sys.stdin.readline()
    try:
        text = json.loads(line)["token_file"]
    except (ValueError, KeyError, TypeError):
        raise SystemExit("ssh_node: expected {\"token_file\": ...} on the first line of stdin") from None
    return parse_token_file(text.encode(), "the token sent over SSH")


def run(opts: argparse.Namespace) -> int:
    """Start the node, report it, and stay until told to stop (module docstring)."""
    token = _read_token()
    spec = NodeSpec(**json.loads(opts.spec))
    config = RuntimeConfig.load(json.loads(opts.config)) if opts.config else RuntimeConfig.load()
    handle = start_worker_node(gcs_address=opts.gcs_address, token=token, spec=spec, config=config,
                               embedded=True, link_latest=False)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())

    def watch_stdin() -> None:
        while sys.stdin.read(4096):
            pass
        stop.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    proc = handle.procs[0]
    print(json.dumps({"runner_pid": os.getpid(), "node_pid": proc.pid, "session_dir": str(handle.session.dir)}),
          flush=True)
    while not stop.wait(0.2):
        if proc.poll() is not None:
            print(f"the node manager exited with code {proc.returncode}: {handle.failure()}", file=sys.stderr,
                  flush=True)
            handle.stop(0.0)
            remove_store(handle.node_id)
            return 1
    handle.stop(GRACE_S)
    remove_store(handle.node_id)
    return 0


def stop_runners(head_ip: str, grace: float = GRACE_S) -> int:
    """End this user's runners whose head is ``head_ip`` (and their node managers);
    how many there were."""
    found = []
    for proc in psutil.process_iter(["cmdline", "uids"]):
        try:
            argv = proc.info["cmdline"] or []
            if proc.pid == os.getpid() or MODULE not in argv or "--gcs-address" not in argv:
                continue
            gcs = argv[argv.index("--gcs-address") + 1]
            if proc.info["uids"].real == os.getuid() and gcs.rsplit(":", 1)[0].strip("[]") == head_ip:
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, IndexError):
            pass
    nodes = [c for p in found for c in _children(p)]
    terminate(found, grace)  # each stops its node manager
    terminate(nodes, 1.0)
    return len(found)


def _children(proc: psutil.Process) -> list[psutil.Process]:
    try:
        return proc.children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def main() -> None:
    """The command line (module docstring)."""
    parser = argparse.ArgumentParser(prog="nbcluster-ssh-node")
    parser.add_argument("--gcs-address")
    parser.add_argument("--spec", help="the NodeSpec as JSON")
    parser.add_argument("--config", default="", help="the head's RuntimeConfig as JSON")
    parser.add_argument("--stop", metavar="HEAD_IP", help="end this user's nodes of the cluster headed at HEAD_IP")
    opts = parser.parse_args()
    if opts.stop:
        count = stop_runners(opts.stop)
        print(f"stopped {count} node{'s' if count != 1 else ''}")
        sys.exit(0)
    if not (opts.gcs_address and opts.spec):
        parser.error("--gcs-address and --spec are required")
    sys.exit(run(opts))


if __name__ == "__main__":
    main()
