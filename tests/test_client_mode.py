"""Client mode across machines: a driver on a host where no node of the cluster runs,
and that nothing can dial (its firewall drops every new inbound connection, as NAT
would), drives a cluster of three other hosts.

Hosts are network namespaces (``tests/netns.py``): the head on A, worker nodes on C
and D, the driver on B. B reaches the others; a probe proves nothing reaches B. The
driver runs tasks on C and D, puts and gets 200 MB (checksum, its memory bounded),
uses actors by name, waits and cancels, submits a job; a notebook on B does the same
through ``%cluster connect``. A killed driver's objects are released on the cluster
after its reconnect grace; a head that goes away is a clear error in the driver.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import nbformat
import psutil
import pytest

from .cli_tools import Machine
from .conftest import wait_for
from .netns import Hosts, machines_on_hosts
from .notebooks import cell_text

PORT = 6380
GRACE = 3.0
PROBE_PORT = 7777


def _require_nft() -> None:
    if shutil.which("nft") is None:
        message = "the client-mode tests firewall their driver host with `nft` (apt install nftables)"
        if os.environ.get("CI"):
            pytest.fail(message + "; CI must run them")
        pytest.skip(message)


@dataclass
class Net:
    hosts: Hosts
    machines: dict[str, Machine]
    address: str
    token: Path

    def ip(self, name: str) -> str:
        return self.hosts.hosts[name][1]

    def driver(self, code: str, timeout: float = 180.0) -> dict:
        """A driver script on B (no node there); its last line of output, as JSON."""
        proc = self.machines["B"].python(DRIVER_PREAMBLE + textwrap.dedent(code), timeout=timeout,
                                         env=self.driver_env())
        return json.loads(proc.stdout.strip().splitlines()[-1])

    def driver_env(self) -> dict[str, str]:
        jobs = json.loads((self.machines["A"].token_file().parent / "address.json").read_text())["jobs_address"]
        return {"HEAD": self.address, "TOKEN_FILE": str(self.token), "NBCLUSTER_TOKEN": self.token.read_text(),
                "JOBS": jobs}

    def head_processes(self, marker: str) -> list[psutil.Process]:
        return [p for p in self.machines["A"].processes() if marker in " ".join(p.info["cmdline"])]

    def store_used(self) -> int:
        nodes = json.loads(self.machines["A"].run("list", "nodes", "--format", "json").stdout)
        return sum(n.get("object_store_used", 0) for n in nodes if n["state"] == "ALIVE")


DRIVER_PREAMBLE = """
import json, os, resource, time
import nbcluster
"""


def _firewall(netns: str) -> None:
    """Drop every new connection into ``netns`` from outside (replies to its own pass)."""
    rules = [
        ["add", "table", "inet", "nbc"],
        ["add", "chain", "inet", "nbc", "input", "{ type filter hook input priority 0 ; policy accept ; }"],
        ["add", "rule", "inet", "nbc", "input", "iif", "!=", "lo", "ct", "state", "new", "drop"],
    ]
    for rule in rules:
        subprocess.run(["ip", "netns", "exec", netns, "nft", *rule], check=True, capture_output=True, timeout=30)


@pytest.fixture(scope="module")
def net() -> Iterator[Net]:
    _require_nft()
    with machines_on_hosts(("A", "B", "C", "D"), close_order=("B", "D", "C", "A")) as (hosts, machines):
        _firewall(hosts.hosts["B"][0])
        head = machines["A"]
        address = head.start_head("--port", str(PORT), "--node-ip-address", hosts.hosts["A"][1], "--num-cpus", "1")
        token = machines["B"].root / "token-copy"  # what the user copies to the laptop
        shutil.copy(head.token_file(), token)
        for name in ("C", "D"):
            machines[name].run("start", "--address", address, "--token-file", str(token), "--num-cpus", "1",
                               "--node-ip-address", hosts.hosts[name][1], "--resources", json.dumps({name: 1}))
        yield Net(hosts, machines, address, token)


def test_nothing_can_dial_the_driver_host_and_it_dials_out(net: Net) -> None:
    listener = subprocess.Popen(
        ["ip", "netns", "exec", net.hosts.hosts["B"][0], sys.executable, "-c",
         f"import socket,time; s=socket.socket(); s.bind(('0.0.0.0', {PROBE_PORT})); s.listen(); time.sleep(60)"],
    )
    try:
        wait_for(lambda: net.hosts.reachable("B", "127.0.0.1", PROBE_PORT), timeout=20,
                 message="the probe listener on B")
        for name in ("A", "C", "D"):
            assert not net.hosts.reachable(name, net.ip("B"), PROBE_PORT), f"{name} reached B"
        assert net.hosts.reachable("B", net.ip("A"), PORT)
    finally:
        listener.kill()
        listener.wait(10)


def test_a_driver_with_no_node_runs_tasks_objects_actors_and_jobs(net: Net) -> None:
    out = net.driver("""
        import hashlib
        import numpy as np
        from nbcluster.job_submission import JobSubmissionClient
        info = nbcluster.init(address=os.environ["HEAD"], token_file=os.environ["TOKEN_FILE"])
        here = lambda: nbcluster.get_runtime_context().get_node_id()
        @nbcluster.remote(resources={"C": 0.1})
        def on_c(x): return here(), x * 2
        @nbcluster.remote(resources={"D": 0.1})
        def on_d(x): return here(), x + 1
        c = nbcluster.get([on_c.remote(i) for i in range(4)])
        d = nbcluster.get([on_d.remote(i) for i in range(4)])
        # 200 MB each way: bounded memory on the driver (no copy beyond the array itself and what it reads)
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        array = np.frombuffer(np.random.default_rng(7).bytes(200 * 2**20), dtype=np.uint8)
        digest = hashlib.sha256(array).hexdigest()
        ref = nbcluster.put(array)
        @nbcluster.remote(resources={"C": 0.1})
        def digest_on_c(a): return hashlib.sha256(a).hexdigest()
        remote_digest = nbcluster.get(digest_on_c.remote(ref))
        del array
        back = nbcluster.get(ref)
        back_digest = hashlib.sha256(back).hexdigest()
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base
        @nbcluster.remote
        class Counter:
            def __init__(self): self.n = 0
            def add(self, k): self.n += k; return self.n
        counter = Counter.options(name="counter").remote()
        nbcluster.get([counter.add.remote(1) for _ in range(3)])
        found = nbcluster.get(nbcluster.get_actor("counter").add.remote(10))
        @nbcluster.remote
        def slow(s): time.sleep(s); return s
        ready, rest = nbcluster.wait([slow.remote(0), slow.remote(60)], num_returns=1, timeout=30)
        nbcluster.cancel(rest[0])
        try:
            nbcluster.get(rest[0], timeout=30)
            cancelled = "no"
        except nbcluster.exceptions.TaskCancelledError:
            cancelled = "yes"
        jobs = JobSubmissionClient(os.environ["JOBS"])
        job = jobs.submit_job(entrypoint="python -c 'print(6 * 7)'")
        deadline = time.time() + 60
        while str(jobs.get_job_status(job)) not in ("SUCCEEDED", "FAILED", "STOPPED") and time.time() < deadline:
            time.sleep(0.2)
        print(json.dumps({
            "client_mode": info.client_mode, "c": c, "d": d, "digests": [digest, remote_digest, back_digest],
            "peak": peak, "found": found, "ready": nbcluster.get(ready), "cancelled": cancelled,
            "job": str(jobs.get_job_status(job)), "job_logs": jobs.get_job_logs(job),
            "nodes": sorted(n["NodeManagerAddress"] for n in nbcluster.nodes() if n["Alive"]),
        }))
    """)
    assert out["client_mode"] is True
    node_c, node_d = {n for n, _ in out["c"]}, {n for n, _ in out["d"]}
    assert len(node_c) == 1 and len(node_d) == 1 and node_c != node_d
    assert [x for _, x in out["c"]] == [0, 2, 4, 6] and [x for _, x in out["d"]] == [1, 2, 3, 4]
    assert out["digests"][0] == out["digests"][1] == out["digests"][2]
    assert out["peak"] < 420 * 2**20, f"the driver grew by {out['peak'] / 2**20:.0f} MiB for 200 MB each way"
    assert out["found"] == 13 and out["ready"] == [0] and out["cancelled"] == "yes"
    assert out["job"] == "SUCCEEDED" and "42" in out["job_logs"]
    assert out["nodes"] == sorted([net.ip("A"), net.ip("C"), net.ip("D")])


def test_a_killed_client_has_its_objects_released_after_the_grace(net: Net) -> None:
    before = net.store_used()
    env = {**net.machines["B"].env, **net.driver_env()}
    code = DRIVER_PREAMBLE + textwrap.dedent(f"""
        nbcluster.init(address=os.environ["HEAD"], _system_config={{"client_reconnect_grace_s": {GRACE}}})
        ref = nbcluster.put(b"x" * (30 * 2**20))
        print("ready", flush=True)
        time.sleep(600)
    """)
    driver = subprocess.Popen(net.machines["B"].argv([sys.executable, "-c", code]), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert driver.stdout is not None and driver.stdout.readline().strip() == "ready", driver.stderr.read()
        wait_for(lambda: net.store_used() >= before + 30 * 2**20, timeout=20, interval=0.3,
                 message="the client's object in the head's store")
        proxies = net.head_processes("nbcluster.runtime.client.proxy")
        assert proxies, "no proxy runs for the client on the head"
        killed_at = time.monotonic()
        driver.kill()
        driver.wait(10)
        wait_for(lambda: not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in proxies),
                 timeout=GRACE + 20, interval=0.2, message="the proxy to end after the grace")
        assert time.monotonic() - killed_at >= GRACE - 0.5, "the proxy ended before the grace ran out"
        wait_for(lambda: net.store_used() <= before, timeout=20, interval=0.3,
                 message="the client's object to be freed")
    finally:
        _end(driver)


def _end(driver: subprocess.Popen) -> None:
    if driver.poll() is None:
        driver.kill()
    driver.communicate(timeout=10)


NOTEBOOK_CELLS = [
    "%load_ext nbcluster",
    "%cluster connect {address} --token-file {token}",
    "import nbcluster\n@nbcluster.remote\ndef shout(s):\n    print('task says', s.upper())\n    return len(s)\n"
    "nbcluster.get(shout.remote('hello from b'))",
    "%cluster disconnect",
    "%cluster connect {closed} --token-file {token}",
    "shout.remote('again')",
]


def test_a_notebook_on_the_driver_host_connects_in_client_mode(net: Net, tmp_path: Path) -> None:
    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell(c.format(address=net.address, token=net.token, closed=f"{net.ip('A')}:6399"))
        for c in NOTEBOOK_CELLS
    ])
    source, executed = tmp_path / "client.ipynb", tmp_path / "client-out.ipynb"
    nbformat.write(notebook, source)
    runner = (
        "import nbformat, sys\nfrom nbclient import NotebookClient\n"
        "nb = nbformat.read(sys.argv[1], as_version=4)\n"
        "NotebookClient(nb, timeout=120, kernel_name='python3', allow_errors=True).execute()\n"
        "nbformat.write(nb, sys.argv[2])\n"
    )
    subprocess.run(net.machines["B"].argv([sys.executable, "-c", runner, str(source), str(executed)]),
                   env=net.machines["B"].env, check=True, timeout=240, capture_output=True)
    cells = [c for c in nbformat.read(executed, as_version=4).cells if c.cell_type == "code"]
    text = cell_text

    assert "client mode" in text(cells[1]), text(cells[1])
    assert "task says HELLO FROM B" in text(cells[2]) and "12" in text(cells[2]), text(cells[2])
    assert "cannot reach" in text(cells[4]), text(cells[4])
    assert "ClusterConnectionError" in text(cells[5]) and f"{net.ip('A')}:6399" in text(cells[5]), text(cells[5])


def test_the_head_going_away_is_a_clear_error_in_the_client(net: Net, tmp_path: Path) -> None:
    """Last: it stops the cluster."""
    go = tmp_path / "go"
    env = {**net.machines["B"].env, **net.driver_env(), "GO": str(go)}
    code = DRIVER_PREAMBLE + textwrap.dedent(f"""
        nbcluster.init(address=os.environ["HEAD"], _system_config={{"client_reconnect_grace_s": {GRACE}}})
        @nbcluster.remote
        def one(): return 1
        assert nbcluster.get(one.remote()) == 1
        print("ready", flush=True)
        while not os.path.exists(os.environ["GO"]):
            time.sleep(0.05)
        started = time.monotonic()
        try:
            nbcluster.get(one.remote(), timeout=60)
            print(json.dumps({{"error": None}}))
        except nbcluster.exceptions.ClusterConnectionError as exc:
            print(json.dumps({{"error": str(exc), "after": time.monotonic() - started}}))
    """)
    driver = subprocess.Popen(net.machines["B"].argv([sys.executable, "-c", code]), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert driver.stdout is not None and driver.stdout.readline().strip() == "ready", driver.stderr.read()
        for name in ("D", "C", "A"):
            net.machines[name].run("stop")
        go.touch()
        out, err = driver.communicate(timeout=60)
        driver.wait()
        result = json.loads(out.strip().splitlines()[-1])
        assert result["error"] and "lost" in result["error"] and "nbcluster.init()" in result["error"], (result, err)
        assert result["after"] < GRACE + 15
    finally:
        _end(driver)
