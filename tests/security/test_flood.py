"""A flood of unauthenticated work from another machine does not take a cluster down.

Hosts in network namespaces (``tests/netns.py``): the head on one, a worker node on a
second, the attacker on a third. The attacker holds 500 idle connections open to each
listener (the GCS's and both node managers' gRPC ports, both object ports, the jobs
API) and sends rounds of ten 400 MB unauthenticated messages to each (gRPC calls, HTTP
POST bodies, object-port requests): for 2 s as fast as it can, then one round every
0.5 s (120 refused messages a second). Meanwhile:

- every server process's memory grows by less than 64 MB;
- the servers spend less than 5 ms of CPU on each refused message (measured at full
  speed: reading one 400 MB body would take hundreds);
- a legitimate 100 MB object crossing from the head's node to a task on the worker
  keeps at least 80 % of its throughput (best of 8 with the paced flood vs best of 8
  just before it; a round that falls short on this shared 2-core machine is run again,
  up to 3 rounds, every other bound holding in each), and is never declared lost;
- afterwards the attacker's connections are gone and the cluster works as before.

The attacker shares this machine's two cores with the cluster, where a real one would
bring its own; at full speed it and the servers' refusals take about a core, which is
why the throughput is timed under the paced flood and the full-speed flood is bounded
by its cost per message.

The cluster uses TLS (the default on a network address); the attacker knows the
cluster's CA certificate (it is not a secret), so its connections get as far as TLS
allows an outsider: past the handshake, up to the token check.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from ..cli_tools import Machine
from ..conftest import wait_for
from ..netns import Hosts, require_netns

IDLE = 500
BIG = 400 * 2**20
BIG_COUNT = 10
RSS_LIMIT = 64 * 2**20
ROUNDS = 3
FULL_SPEED_S = 2.0
ROUND_S = 0.5
CPU_PER_REFUSAL_LIMIT = 5e-3

ATTACKER = r'''
import json, resource, socket, ssl, struct, sys, threading, time

plan = json.loads(sys.stdin.readline())
resource.setrlimit(resource.RLIMIT_NOFILE, (20000, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
ca = plan["ca"].encode()
report = {}

def idle(targets, count):
    """Open count connections to each target and keep them; say when they are closed."""
    held = []
    for host, port in targets:
        for _ in range(count):
            try:
                s = socket.create_connection((host, port), timeout=5)
                s.setblocking(False)
                held.append(s)
            except OSError:
                report["idle_refused"] = report.get("idle_refused", 0) + 1
    report["idle_opened"] = len(held)
    return held

def closed_by_server(held):
    n = 0
    for s in held:
        try:
            if s.recv(1, socket.MSG_PEEK) == b"":
                n += 1
        except BlockingIOError:
            pass
        except OSError:
            n += 1
    return n

def big_grpc(target, count):
    """count unauthenticated gRPC calls, each a 400 MB message, in raw HTTP/2 frames (h2):
    as much of each body as the server's flow control lets in, until it refuses."""
    import h2.config, h2.connection, h2.events
    host, port = target.rsplit(":", 1)
    ctx = ssl.create_default_context(cadata=ca.decode())
    ctx.set_alpn_protocols(["h2"])
    sock = ctx.wrap_socket(socket.create_connection((host, int(port)), timeout=30), server_hostname=host)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    conn.initiate_connection()
    sock.sendall(conn.data_to_send())
    outcomes = []
    payload = b"\0" * 16384
    for _ in range(count):
        sid = conn.get_next_available_stream_id()
        conn.send_headers(sid, [(":method", "POST"), (":scheme", "https"), (":path", "/nbcluster.Gcs/KvPut"),
                                (":authority", target), ("content-type", "application/grpc"), ("te", "trailers"),
                                ("nbcluster-token", "not-the-token")])
        body = b"\0" + struct.pack(">I", plan["big"])  # one gRPC message of 400 MB
        sent, status, deadline = 0, None, time.monotonic() + 60
        while status is None and time.monotonic() < deadline:
            window = min(conn.local_flow_control_window(sid), conn.max_outbound_frame_size)
            if window > 0 and sent < plan["big"]:
                data = (body + payload)[:window] if not sent else payload[:window]
                conn.send_data(sid, data)
                sent += len(data)
                body = b""
            sock.sendall(conn.data_to_send())
            if window > 0 and sent < plan["big"]:
                sock.setblocking(False)
                try:
                    raw = sock.recv(65536)
                except (BlockingIOError, ssl.SSLWantReadError):
                    raw = None
                sock.setblocking(True)
                sock.settimeout(30)
            else:
                raw = sock.recv(65536)
            if raw == b"":
                status = "connection closed"
                break
            for event in conn.receive_data(raw) if raw else ():
                if isinstance(event, h2.events.ResponseReceived) or isinstance(event, h2.events.TrailersReceived):
                    headers = dict(event.headers)
                    if "grpc-status" in headers:
                        status = headers["grpc-status"]
                elif isinstance(event, h2.events.StreamReset) and event.stream_id == sid:
                    status = status or f"reset {event.error_code}"
            sock.sendall(conn.data_to_send())
        outcomes.append([status, sent])
    sock.close()
    return outcomes

def big_http(host, port, count):
    ctx = ssl.create_default_context(cadata=ca.decode())
    chunk = b"\0" * (1 << 20)
    answers = []
    for _ in range(count):
        s = ctx.wrap_socket(socket.create_connection((host, port), timeout=30), server_hostname=host)
        s.sendall((f"POST /api/jobs/ HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer not-the-token\r\n"
                   f"Content-Type: application/json\r\nContent-Length: {plan['big']}\r\n\r\n").encode())
        sent = 0
        try:
            while sent < plan["big"]:
                s.sendall(chunk)
                sent += len(chunk)
        except OSError:
            pass
        try:
            answer = s.recv(200).split(b"\r\n", 1)[0].decode(errors="replace")
        except OSError as exc:
            answer = f"closed ({type(exc).__name__})"
        answers.append((answer, sent))
        s.close()
    return answers

def big_objects(host, port, count):
    ctx = ssl.create_default_context(cadata=ca.decode())
    outcomes = []
    chunk = b"\xff" * (1 << 20)
    for _ in range(count):
        s = ctx.wrap_socket(socket.create_connection((host, port), timeout=30), server_hostname=host)
        sent = 0
        try:
            s.sendall(struct.pack("<HI", 1000, 400 << 20))  # claims a 400 MB request
            while sent < plan["big"]:
                s.sendall(chunk)
                sent += len(chunk)
        except OSError:
            pass
        outcomes.append(sent)
        s.close()
    return outcomes

def refused():
    return (sum(len(c) for c in report["grpc"].values()) + len(report["http"])
            + sum(len(s) for s in report["objects"].values()))

def commands():
    """'pace': say how many messages were refused so far, then go on at one round per
    plan["round_s"]; 'stop' (or the end of stdin): stop after the round under way."""
    for line in sys.stdin:
        if line.strip() != "pace":
            break
        print("REFUSED", refused(), flush=True)
        paced.set()
    stop.set()

held = idle([tuple(t) for t in plan["idle"]], plan["count"])
print("HOLDING", len(held), flush=True)
sys.stdin.readline()  # the test says: now the big messages, in rounds as fast as they go
paced, stop = threading.Event(), threading.Event()
report.update(grpc={t_: [] for t_ in plan["grpc"]}, http=[], objects={f"{h}:{p}": [] for h, p in plan["objects"]})
threading.Thread(target=commands, daemon=True).start()
t = time.monotonic()
rounds = 0
while not stop.is_set() or rounds < 1:
    started = time.monotonic()
    for t_ in plan["grpc"]:
        report["grpc"][t_] += big_grpc(t_, plan["big_count"])
    report["http"] += big_http(*plan["http"], plan["big_count"])
    for h, p in plan["objects"]:
        report["objects"][f"{h}:{p}"] += big_objects(h, p, plan["big_count"])
    rounds += 1
    if paced.is_set():
        stop.wait(started + plan["round_s"] - time.monotonic())
report["rounds"] = rounds
report["big_s"] = time.monotonic() - t
report["closed_by_server"] = closed_by_server(held)
print("DONE", json.dumps(report), flush=True)
for s in held:
    s.close()
'''

DRIVER = r'''
import json, sys, time
import numpy as np
import nbcluster

nbcluster.init(address="auto")
n = 100 * 2**20 // 8

@nbcluster.remote(resources={"head": 0.01})
def make():
    return np.ones(n)

@nbcluster.remote(resources={"worker": 0.01})
def consume(arr):
    return float(arr.sum())

def once():
    ref = make.remote()
    nbcluster.wait([ref], fetch_local=False)
    t = time.perf_counter()
    assert nbcluster.get(consume.remote(ref), timeout=120) == n
    return time.perf_counter() - t

once()
print("READY", flush=True)
for line in sys.stdin:
    if line.strip() != "measure":
        break
    print(json.dumps([n * 8 / 1e9 / once() for _ in range(8)]), flush=True)
nbcluster.shutdown()
'''


@dataclass
class FloodNet:
    hosts: Hosts
    head: Machine
    worker: Machine
    attacker_ns: str
    address: str
    token: Path

    def nodes(self) -> list[dict]:
        return json.loads(self.head.run("list", "nodes", "--format", "json").stdout)


@pytest.fixture(scope="module")
def flood_net() -> Iterator[FloodNet]:
    require_netns()
    hosts = Hosts()
    head = worker = None
    try:
        head_ns, head_ip = hosts.add("head")
        worker_ns, worker_ip = hosts.add("worker")
        attacker_ns, _ = hosts.add("attacker")
        head = Machine("head", netns=head_ns)
        worker = Machine("worker", netns=worker_ns)
        address = head.start_head("--port", "6390", "--node-ip-address", head_ip, "--dashboard-host", head_ip,
                                  "--dashboard-port", "8270", "--num-cpus", "1", "--resources", '{"head": 1}',
                                  "--object-store-memory", str(2**30))
        token = worker.root / "token-copy"
        shutil.copy(head.token_file(), token)
        worker.run("start", "--address", address, "--token-file", str(token), "--num-cpus", "1",
                   "--node-ip-address", worker_ip, "--resources", '{"worker": 1}', "--object-store-memory", str(2**30))
        net = FloodNet(hosts, head, worker, attacker_ns, address, token)
        wait_for(lambda: len([n for n in net.nodes() if n["state"] == "ALIVE"]) == 2, timeout=30)
        yield net
    finally:
        for machine in (worker, head):
            if machine is not None:
                machine.close()
        hosts.close()


def _servers(net: FloodNet) -> dict[str, psutil.Process]:
    """The head's GCS and node manager and the worker's node manager."""
    found = {}
    for machine in (net.head, net.worker):
        for proc in machine.processes():
            cmd = " ".join(proc.info["cmdline"])  # as listed: a worker may have exited since
            if "nbcluster.runtime.gcs" in cmd:
                found["gcs"] = proc
            elif "nbcluster.runtime.node" in cmd:
                found[f"{machine.name} node manager"] = proc
    assert len(found) == 3, found
    return found


class PeakRss:
    """The highest RSS each process reaches while sampled (every 50 ms)."""

    def __init__(self, procs: dict[str, psutil.Process]) -> None:
        self.procs = procs
        self.base = {n: p.memory_info().rss for n, p in procs.items()}
        self.peak = dict(self.base)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            for name, proc in self.procs.items():
                try:
                    self.peak[name] = max(self.peak[name], proc.memory_info().rss)
                except psutil.NoSuchProcess:
                    pass

    def __enter__(self) -> "PeakRss":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def growth(self) -> dict[str, int]:
        return {n: self.peak[n] - self.base[n] for n in self.procs}


class Measurer:
    """The driver on the head's host, timing the 100 MB crossing on demand."""

    def __init__(self, net: FloodNet) -> None:
        self.proc = subprocess.Popen(net.head.argv([sys.executable, "-c", DRIVER]), stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=net.head.env)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line.strip() == "READY", line + self.proc.stderr.read()  # type: ignore[union-attr]

    def best(self) -> float:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("measure\n")
        self.proc.stdin.flush()
        return max(json.loads(self.proc.stdout.readline()))

    def close(self) -> None:
        try:
            _, err = self.proc.communicate(timeout=60)  # closes its stdin: the driver ends
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        assert self.proc.returncode == 0, err


def test_a_flood_of_unauthenticated_work_is_bounded(flood_net: FloodNet) -> None:
    net = flood_net
    nodes = {n["node_ip"]: n for n in net.nodes() if n["state"] == "ALIVE"}
    head_ip, worker_ip = net.hosts.hosts["head"][1], net.hosts.hosts["worker"][1]
    jobs_port = 8270
    grpc_targets = [net.address, nodes[head_ip]["address"], nodes[worker_ip]["address"]]
    object_targets = [nodes[ip]["object_address"] for ip in (head_ip, worker_ip)]
    split = lambda a: [a.rsplit(":", 1)[0], int(a.rsplit(":", 1)[1])]  # noqa: E731
    plan = {
        "ca": net.head.token_file().read_text().split("\n", 1)[1],
        "idle": [split(a) for a in grpc_targets + object_targets] + [[head_ip, jobs_port]],
        "count": IDLE, "big": BIG, "big_count": BIG_COUNT, "round_s": ROUND_S,
        "grpc": grpc_targets, "http": [head_ip, jobs_port], "objects": [split(a) for a in object_targets],
    }
    measurer = Measurer(net)
    try:
        # This machine is shared and has 2 cores: a round whose throughput falls short is
        # measured again (3 rounds at most); every other bound must hold in every round.
        rounds = []
        for _ in range(ROUNDS):
            rounds.append(_flood(net, plan, measurer))
            calm, under_idle, under_big = rounds[-1]
            if min(under_idle, under_big) >= 0.8 * calm:
                break
        else:
            pytest.fail(f"the legitimate transfer fell below 80 % of its throughput under the flood in every "
                        f"round (calm, idle flood, big messages GB/s): {rounds}")
        assert measurer.best() > 0  # and after it, transfers go on
    finally:
        measurer.close()
    # Everything recovers: no node lost, the flood's connections are gone from every server.
    assert len([n for n in net.nodes() if n["state"] == "ALIVE"]) == 2
    attacker_ip = net.hosts.hosts["attacker"][1]

    def connections_gone() -> bool:
        for proc in _servers(net).values():
            if any(c.raddr and c.raddr.ip == attacker_ip for c in proc.net_connections(kind="tcp")):
                return False
        return True

    wait_for(connections_gone, timeout=30, message="the attacker's connections to close")


def _cpu_seconds(servers: dict[str, psutil.Process]) -> float:
    """The CPU time the servers (the GCS and both node managers) have used so far."""
    return sum(sum(p.cpu_times()[:2]) for p in servers.values())


def _flood(net: FloodNet, plan: dict, measurer: Measurer) -> tuple[float, float, float]:
    """One round: calm throughput, then the attacker's idle connections, then its big
    messages too; every bound but throughput is checked here. (calm, idle, big) GB/s."""
    attacker = None
    try:
        calm = measurer.best()
        servers = _servers(net)
        with PeakRss(servers) as rss:
            attacker = subprocess.Popen(["ip", "netns", "exec", net.attacker_ns, sys.executable, "-c", ATTACKER],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            assert attacker.stdin is not None and attacker.stdout is not None
            attacker.stdin.write(json.dumps(plan) + "\n")
            attacker.stdin.flush()
            holding = attacker.stdout.readline()
            assert holding.startswith("HOLDING"), holding
            under_idle = measurer.best()
            cpu = _cpu_seconds(servers)
            attacker.stdin.write("go\n")  # as fast as it goes: what each refusal costs the servers
            attacker.stdin.flush()
            time.sleep(FULL_SPEED_S)
            attacker.stdin.write("pace\n")  # then at a stated rate, the transfer timed meanwhile
            attacker.stdin.flush()
            refused_line = attacker.stdout.readline()
            assert refused_line.startswith("REFUSED"), refused_line
            cpu_per_refusal = (_cpu_seconds(servers) - cpu) / int(refused_line.split()[1])
            under_big = measurer.best()
            attacker.stdin.write("stop\n")
            attacker.stdin.flush()
            done = attacker.stdout.readline()
            assert done.startswith("DONE"), done
            report = json.loads(done.split(" ", 1)[1])
        growth = rss.growth()
        print(f"servers' CPU per refused message {cpu_per_refusal * 1e3:.2f} ms; "
              f"throughput GB/s calm {calm:.2f}, 500 idle per listener {under_idle:.2f}, "
              f"with 400 MB messages {under_big:.2f}; RSS growth MB "
              f"{ {n: round(g / 2**20, 1) for n, g in growth.items()} }; attack report {report}")
        assert report["idle_opened"] >= 0.9 * IDLE * len(plan["idle"]), report
        assert cpu_per_refusal < CPU_PER_REFUSAL_LIMIT, \
            f"the servers spent {cpu_per_refusal * 1e3:.1f} ms of CPU on each refused message"
        for name, grown in growth.items():
            assert grown < RSS_LIMIT, f"{name} grew by {grown / 2**20:.0f} MB under the flood"
        for target, calls in report["grpc"].items():  # grpc-status 16: UNAUTHENTICATED
            assert len(calls) >= BIG_COUNT and {c[0] for c in calls} == {"16"}, (target, calls)
            assert all(sent <= 2 * 2**20 for _, sent in calls), (target, calls)  # the window, no more
        for answer, sent in report["http"]:
            assert sent < BIG, f"the jobs API read a whole unauthenticated body ({answer})"
        for target, sent in report["objects"].items():
            assert all(s < BIG for s in sent), (target, sent)
        return calm, under_idle, under_big
    finally:
        if attacker is not None:
            if attacker.stdin is not None:
                try:
                    if attacker.poll() is None:
                        attacker.stdin.write("bye\n")
                    attacker.stdin.close()  # also when it has ended: no file left to the collector
                except BrokenPipeError:  # it ended meanwhile
                    pass
            try:
                attacker.wait(60)
            finally:
                if attacker.poll() is None:
                    attacker.kill()
                if attacker.stdout is not None:
                    attacker.stdout.close()
