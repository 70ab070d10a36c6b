"""Clusters that outlive the process that starts them: heads and nodes started by
``nbcluster start`` (or :func:`start_head`, for the Jupyter server extension), recorded
in their session's ``processes.json`` so that ``nbcluster stop`` and
:func:`stop_session` find and stop them later, from any process of the same user.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from nbcluster.exceptions import InsecurePathError, NbclusterError
from nbcluster.runtime import discovery, tls
from nbcluster.runtime.config import RuntimeConfig
from nbcluster.runtime.launcher import LocalCluster, start_local_cluster
from nbcluster.runtime.private_dir import warn_skipped
from nbcluster.runtime.procutil import terminate
from nbcluster.runtime.protocol import gcs_pb2
from nbcluster.runtime.session import LATEST, Session, sessions, write_json
from nbcluster.runtime.state import NodeState
from nbcluster.runtime.transport import methods

#: In a session directory: the processes ``nbcluster start`` started there.
PROCESSES_FILE = "processes.json"


class CliError(Exception):
    """A problem with what the user asked for: printed, exit status 1."""


# -- start ----------------------------------------------------------------------------
def record(handle: LocalCluster, role: str, address: str, cluster_name: str = "") -> None:
    """Write the session's ``processes.json``: the role, address and node of a cluster
    started to outlive its starter, and its processes (pid and start time, so a later
    ``stop`` never signals a process that reused a pid)."""
    procs = []
    for proc in handle.procs:
        try:
            procs.append({"pid": proc.pid, "create_time": psutil.Process(proc.pid).create_time()})
        except psutil.NoSuchProcess:
            pass
    info = {"role": role, "address": address, "node_id": handle.node_id.hex(), "procs": procs,
            "cluster_name": cluster_name}
    write_json(handle.session.dir / PROCESSES_FILE, info)  # stop_session, session_running read it


def local_ip(towards: str | None = None) -> str:
    """The address other machines reach this one at: the source address of a route
    towards ``towards`` (the head), else of any route, else the first address of an
    interface that is up. No packet is sent."""
    for host in ([towards] if towards else []) + ["10.255.255.255"]:
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.connect((host, 9))
                ip = sock.getsockname()[0]
            if ip and ip != "0.0.0.0":
                return ip
        except OSError:
            continue
    stats = psutil.net_if_stats()
    for name, addrs in psutil.net_if_addrs().items():
        if name != "lo" and stats.get(name) is not None and stats[name].isup:
            for addr in addrs:
                if addr.family == socket.AF_INET and not addr.address.startswith("127."):
                    return addr.address
    return "127.0.0.1"


def wait_joined(handle: LocalCluster, target: tuple[str, str], timeout: float) -> Any:
    """The node's entry once the GCS lists it alive; CliError if a process exits."""
    deadline = time.monotonic() + timeout
    while True:
        dead = [p for p in handle.procs if p.poll() is not None]
        if dead:
            why = f"{handle.failure()} (logs: {handle.session.logs})"
            handle.abandon()
            raise CliError(f"the node did not start: {why}")
        if time.monotonic() > deadline:
            handle.abandon()
            raise CliError(f"the node did not join within {timeout:g} s; see the logs in {handle.session.logs}")
        if handle.session.address_file.exists():  # the head writes it once it serves
            try:
                reply = discovery.call_gcs(target, methods.Gcs.GetAllNodes, gcs_pb2.GetAllNodesRequest(), 5.0)
            except NbclusterError:
                reply = None
            for node in reply.nodes if reply is not None else ():
                if node.node_id == handle.node_id and node.state == gcs_pb2.NODE_STATE_ALIVE:
                    return NodeState.from_info(node)
        time.sleep(0.1)


def start_head(
    *,
    num_cpus: float,
    autoscaling: Any = None,
    host: str = "127.0.0.1",
    port: int = 0,
    jobs_port: int | None = 0,
    config: RuntimeConfig | None = None,
    on_started: Callable[[LocalCluster], None] | None = None,
    num_gpus: float = 0,
    resources: dict[str, float] | None = None,
    object_store_memory: int | None = None,
    node_port: int = 0,
    object_port: int = 0,
    jobs_host: str | None = None,
    tls_settings: tls.Settings | bool | None = None,
    token: str | None = None,
) -> tuple[LocalCluster, dict[str, Any], Any]:
    """Start a head that outlives this process, as ``nbcluster start --head`` does
    (sessions of their own, no lifeline, recorded in ``processes.json`` so that
    ``nbcluster stop`` and :func:`stop_session` stop it), quietly; ``autoscaling``: a
    validated :class:`~nbcluster.runtime.autoscaler.config.AutoscalingConfig`. Returns
    once the head serves and its node has joined: (handle, the session's
    ``address.json``, the node's NodeState). CliError (with the reason from its logs)
    when it does not start; an interrupt (Ctrl-C) while it starts stops it too.

    The processes are recorded as soon as they run, before they serve, so that
    :func:`stop_session` finds them even if this process dies while they start; the
    record gets the address once they serve. ``on_started(handle)`` is called then too
    (the session directory is known): what it raises stops them, and is raised."""
    config = config or RuntimeConfig.load()
    handle = start_local_cluster(
        num_cpus=num_cpus, num_gpus=num_gpus, resources=resources, object_store_memory=object_store_memory,
        config=config, embedded=False, head_port=port, host=host, node_port=node_port, object_port=object_port,
        autoscaling=autoscaling, jobs_host=host if jobs_host is None else jobs_host, jobs_port=jobs_port,
        tls_settings=tls_settings, token=token,
    )
    handle.forget()  # not this process's to stop at exit: processes.json names it
    name = autoscaling.cluster_name if autoscaling is not None else ""
    record(handle, "head", "", name)
    try:
        if on_started is not None:
            on_started(handle)
        node = wait_joined(handle, (handle.gcs_endpoint, handle.token), config.startup_timeout_s)
    except BaseException:
        handle.abandon()  # stopped already when it did not join
        (handle.session.dir / PROCESSES_FILE).unlink(missing_ok=True)
        raise
    written = handle.session.read_address()
    record(handle, "head", written["gcs_address"], name)
    return handle, written, node


def recorded(session_dir: Path) -> tuple[dict, list[psutil.Process]]:
    """What ``processes.json`` records, and those of its processes that still run;
    InsecurePathError when the session or the file is not this user's alone."""
    try:
        info = json.loads(Session(session_dir).read_file(session_dir / PROCESSES_FILE))
    except (OSError, ValueError):
        return {}, []
    procs = []
    for entry in info.get("procs", []):
        try:
            proc = psutil.Process(entry["pid"])
            if _same_process(proc, entry["create_time"], session_dir):
                procs.append(proc)
        except (psutil.NoSuchProcess, KeyError, TypeError):
            pass
    return info, procs


def _same_process(proc: psutil.Process, create_time: float, session_dir: Path) -> bool:
    """Whether ``proc`` is the process recorded with ``create_time``, not another that
    reused its pid: its start time matches, or its command line names this session's
    directory (``--session-dir``), as only this session's processes do. (A start time
    is the boot time plus the time since boot, and the boot time as the wall clock puts
    it moves when the clock is stepped — NTP, a laptop that wakes — so after a step no
    recorded start time matches.)"""
    if abs(proc.create_time() - create_time) < 0.01:
        return True
    try:
        argv = proc.cmdline()
    except psutil.AccessDenied:
        return False
    named = [argv[i + 1] for i, arg in enumerate(argv[:-1]) if arg == "--session-dir"]
    return any(os.path.realpath(d) == os.path.realpath(session_dir) for d in named)


def started_sessions() -> dict[Path, tuple[dict, list[psutil.Process]]]:
    """Sessions of nodes `nbcluster start` started here, with their live processes;
    those whose processes are all gone (killed) are tidied: their shared memory
    freed, their record dropped."""
    found = {}
    for path in (session.dir for session in sessions()):
        if not (path / PROCESSES_FILE).exists():
            continue
        try:
            info, procs = recorded(path)
            if not procs:
                Session(path).remove_stores(info.get("node_id", ""))
        except InsecurePathError as exc:  # not ours to stop, nor to tidy
            warn_skipped(exc)
            continue
        if procs:
            found[path] = (info, procs)
        else:
            (path / PROCESSES_FILE).unlink(missing_ok=True)
    return found


def session_running(session_dir: Path) -> bool:
    """Whether a process `nbcluster start` (or :func:`start_head`) recorded in
    ``session_dir`` still runs."""
    return bool(recorded(Path(session_dir))[1])


def stop_session(session_dir: Path, grace_period: float = 10.0) -> int:
    """Stop the processes recorded in ``session_dir`` and their children (nodes its
    autoscaler added), free their shared memory and drop the record, as ``nbcluster
    stop`` does for one session; returns how many recorded processes were running.
    They are gone when it returns (SIGKILL after ``grace_period``)."""
    path = Path(session_dir)
    info, procs = recorded(path)
    stop_found({path: (info, procs)}, False, grace_period)
    return len(procs)


def stop_found(found: dict[Path, tuple[dict, list[psutil.Process]]], force: bool, grace_period: float) -> tuple[int, int]:
    """Stop them quietly; (processes asked to stop, processes killed)."""
    victims = [proc for _, procs in found.values() for proc in procs]
    children = []
    for proc in victims:
        try:
            children.extend(proc.children(recursive=True))
        except psutil.NoSuchProcess:
            pass
    killed = terminate(victims, 0.0 if force else grace_period)
    killed += terminate(children, 1.0)  # workers that outlived their node manager
    for path, (info, _) in found.items():
        Session(path).remove_stores(info.get("node_id", ""))
        (path / PROCESSES_FILE).unlink(missing_ok=True)
        link = path.parent / LATEST
        if link.is_symlink() and os.readlink(link) == path.name:
            link.unlink(missing_ok=True)
    return len(victims), killed



#: After a drain's deadline, how long a node manager may take to stop (end its workers,
#: leave the cluster) before it is killed.
STOP_MARGIN_S = 5.0


class StopSignals:
    """SIGTERM, SIGINT and SIGHUP, caught from the moment this is made, for
    :func:`block`. Make it before the node starts: the first process of a container (a
    pod) gets only the signals it handles, so a SIGTERM that came while the node started
    would be lost and the pod killed only after its grace period."""

    def __init__(self) -> None:
        self.received: list[int] = []
        self.event = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self._on_signal)

    def _on_signal(self, signum: int, _frame: Any) -> None:
        self.received.append(signum)
        self.event.set()


def block(handle: LocalCluster, drain_s: float | None = None, signals: StopSignals | None = None) -> int:
    """Stay in the foreground until a signal (then stop the node) or until one of the
    node's processes exits (then stop the rest). With ``drain_s`` (a worker node: its
    ``drain_timeout_s``), a SIGTERM is passed on to the node manager, which drains for up
    to that long before it stops; another signal meanwhile stops it at once. ``signals``:
    caught since before the node started (else from now on)."""
    signals = signals or StopSignals()
    received, stop = signals.received, signals.event
    status = 0
    while not stop.wait(0.2):
        exited = [p for p in handle.procs if p.poll() is not None]
        if exited:
            codes = {p.returncode for p in exited}
            if not codes <= {0, -signal.SIGTERM}:  # not an `nbcluster stop`
                print(f"nbcluster: a node process exited with status {sorted(codes)}; stopping the node. "
                      f"See {handle.session.logs}", file=sys.stderr)
                status = 1
            break
    if drain_s and received[:1] == [signal.SIGTERM]:
        _drain(handle, drain_s, received)
    handle.stop(10.0)
    return status


def _drain(handle: LocalCluster, drain_s: float, received: list[int]) -> None:
    """Pass SIGTERM on to the node's processes and wait for them to drain and exit;
    a signal that comes meanwhile is passed on as SIGINT (stop at once)."""
    for proc in handle.procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + drain_s + STOP_MARGIN_S
    seen = len(received)
    while time.monotonic() < deadline and any(p.poll() is None for p in handle.procs):
        if len(received) > seen:
            for proc in handle.procs:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGINT)
            return
        time.sleep(0.05)
