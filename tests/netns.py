"""Separate hosts from Linux network namespaces, for multi-host tests.

A "switch" namespace holds a bridge; each host is a namespace whose ``eth0`` is one
end of a veth pair, the other end plugged into the bridge. Hosts have an address on
``10.77.0.0/24`` and no default route, so they reach each other and nothing else.
Abstract Unix sockets are per network namespace too, so a host's local endpoints
are its own, as on a real machine. (The file system and PIDs are shared: each host
gets its own temp root through :class:`tests.cli_tools.Machine`.)

A host is cut off by setting its namespace-side link down (``partition``); taking
the switch-side end down does not isolate it here. Every partition test first
proves with :meth:`Hosts.reachable` that a connection fails.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest

SUBNET = "10.77.0"
#: Runtime settings of multi-host autoscaler tests: fast heartbeats, health checks and
#: autoscaler steps, so that nodes come and go in seconds.
FAST_HOSTS_CONFIG = {
    "heartbeat_interval_s": 0.2,
    "autoscaler_interval_s": 0.5,
    "health_check_initial_delay_s": 1.0,
    "health_check_period_s": 0.5,
    "health_check_timeout_s": 0.5,
    "health_check_failure_threshold": 4,
    "idle_worker_timeout_s": 2.0,
}


_T = TypeVar("_T")


def in_netns(netns: str, make: Callable[[], _T]) -> _T:
    """``make()`` run by a thread that enters network namespace ``netns`` (setns affects
    only the calling thread; a socket it makes stays in that namespace, whichever thread
    uses it); its result, or its exception raised here."""
    out: list[Any] = []

    def run() -> None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = os.open(f"/run/netns/{netns}", os.O_RDONLY)
            try:
                if libc.setns(fd, 0x40000000) != 0:  # CLONE_NEWNET
                    raise OSError(ctypes.get_errno(), "setns")
            finally:
                os.close(fd)
            out.append(make())
        except BaseException as exc:  # noqa: BLE001 - raised in the caller
            out.append(exc)

    thread = threading.Thread(target=run)  # it ends in the namespace; never reused
    thread.start()
    thread.join()
    if isinstance(out[0], BaseException):
        raise out[0]
    return out[0]


def _ip(*args: str, netns: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    argv = ["ip", "netns", "exec", netns, "ip", *args] if netns else ["ip", *args]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    if check and proc.returncode != 0:
        raise RuntimeError(f"`{' '.join(argv)}` failed: {proc.stderr.strip()}")
    return proc


def require_netns() -> None:
    """Skip (fail under CI) when this machine cannot make network namespaces."""
    problem = None
    if shutil.which("ip") is None:
        problem = "the `ip` command (iproute2) is not installed"
    elif os.geteuid() != 0:
        problem = "network namespaces need root"
    else:
        name = f"nbc-probe-{os.getpid()}"
        made = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
        if made.returncode != 0:
            problem = f"`ip netns add` failed: {made.stderr.strip()}"
        else:
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
    if problem:
        if os.environ.get("CI"):
            pytest.fail(f"multi-host tests cannot run: {problem} (CI must run them)")
        pytest.skip(f"multi-host tests need network namespaces: {problem}")


class Hosts:
    def __init__(self) -> None:
        self.tag = f"nbc{os.getpid() % 100000}"
        self.switch = f"{self.tag}-switch"
        self.hosts: dict[str, tuple[str, str]] = {}  # name -> (netns, ip)
        subprocess.run(["ip", "netns", "add", self.switch], check=True, capture_output=True)
        _ip("link", "add", "br0", "type", "bridge", netns=self.switch)
        _ip("link", "set", "br0", "up", netns=self.switch)

    def add(self, name: str) -> tuple[str, str]:
        """A new host: (its namespace, its address)."""
        index = len(self.hosts) + 1
        netns, ip, peer = f"{self.tag}-{name}", f"{SUBNET}.{index}", f"v{index}-{self.tag}"[:15]
        subprocess.run(["ip", "netns", "add", netns], check=True, capture_output=True)
        _ip("link", "add", "eth0", "netns", netns, "type", "veth", "peer", "name", peer, "netns", self.switch)
        _ip("link", "set", peer, "master", "br0", netns=self.switch)
        _ip("link", "set", peer, "up", netns=self.switch)
        _ip("addr", "add", f"{ip}/24", "dev", "eth0", netns=netns)
        _ip("link", "set", "eth0", "up", netns=netns)
        _ip("link", "set", "lo", "up", netns=netns)
        self.hosts[name] = (netns, ip)
        return netns, ip

    def partition(self, name: str) -> None:
        """Cut the host off: its own end of the link goes down."""
        _ip("link", "set", "eth0", "down", netns=self.hosts[name][0])

    def heal(self, name: str) -> None:
        netns, ip = self.hosts[name]
        _ip("link", "set", "eth0", "up", netns=netns)
        # The kernel brings back the subnet route with the link; make sure it did.
        routes = _ip("route", "show", netns=netns).stdout
        if f"{SUBNET}.0/24" not in routes:
            _ip("route", "add", f"{SUBNET}.0/24", "dev", "eth0", netns=netns)

    def reachable(self, src: str, dst_ip: str, port: int, timeout: float = 1.0) -> bool:
        """Can ``src`` open a TCP connection to ``dst_ip:port`` (a probe)?"""
        code = (
            "import socket, sys\n"
            f"try:\n socket.create_connection(({dst_ip!r}, {port}), timeout={timeout}).close()\n"
            "except OSError:\n sys.exit(1)\n"
        )
        proc = subprocess.run(["ip", "netns", "exec", self.hosts[src][0], sys.executable, "-c", code],
                              capture_output=True, timeout=timeout + 30)
        return proc.returncode == 0

    def close(self) -> None:
        for netns, _ in self.hosts.values():
            subprocess.run(["ip", "netns", "del", netns], capture_output=True)
        subprocess.run(["ip", "netns", "del", self.switch], capture_output=True)
        self.hosts.clear()


def close_machines(machines: dict, order: tuple[str, ...], hosts: "Hosts") -> None:
    """Close each machine in ``order`` (worker hosts first: they leave the cluster
    cleanly), then the namespaces; fail with every problem after closing them all."""
    problems = []
    for name in order:
        if name in machines:
            try:
                machines[name].close()
            except BaseException as exc:  # noqa: BLE001 - close every host, then report
                problems.append(f"{name}: {exc}")
    hosts.close()
    if problems:
        pytest.fail("; ".join(problems))


@contextlib.contextmanager
def machines_on_hosts(
    names: tuple[str, ...], close_order: tuple[str, ...] | None = None
) -> Iterator[tuple["Hosts", dict[str, Any]]]:
    """A host (namespace) and a :class:`tests.cli_tools.Machine` on it per name;
    all closed at the end, by default in reverse order."""
    from .cli_tools import Machine

    require_netns()
    hosts = Hosts()
    machines: dict[str, Machine] = {}
    try:
        for name in names:
            netns, _ = hosts.add(name)
            machines[name] = Machine(name, netns=netns)
        yield hosts, machines
    finally:
        close_machines(machines, close_order or tuple(reversed(names)), hosts)
