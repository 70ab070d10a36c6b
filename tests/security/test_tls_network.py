"""TLS between hosts (network namespaces), seen from the wire.

A sniffer on the test network's bridge (``tests/sniffer.py``) watches a cluster of a
head host and a worker host while a driver sends a task argument and an object across
and gets a result back, and a job is submitted from the worker host to the head's jobs
API (served on the head's address by default). Without TLS (``--no-tls``: the control that shows the sniffer sees what crosses)
the token and the payloads are on the wire; with TLS (the default on a network
address) none of them is, although as many bytes crossed. A node whose token file
carries another CA is refused, and one with no CA at all is told to use the token file.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from nbcluster.runtime import credentials, tls

from ..cli_tools import Machine
from ..conftest import wait_for
from ..netns import Hosts, require_netns
from ..sniffer import Sniffer

JOBS_PORT = 8271

WORKLOAD = """
import json, os
import nbcluster

nbcluster.init(address="auto")
arg, obj, res = (bytes.fromhex(os.environ[k]) for k in ("ARG_MARK", "OBJ_MARK", "RES_MARK"))

@nbcluster.remote(resources={"worker": 1})
def across(small, big):
    assert big.count(obj) == 65536
    return small + res

ref = nbcluster.put(obj * 65536)  # 1 MiB: an object that crosses by the object port
print(json.dumps({"ok": nbcluster.get(across.remote(arg, ref), timeout=120) == arg + res}))
"""


@dataclass
class Net:
    hosts: Hosts
    head: Machine
    worker: Machine
    address: str
    token_copy: Path

    def ip(self, name: str) -> str:
        return self.hosts.hosts[name][1]

    def alive(self) -> list[dict]:
        nodes = json.loads(self.head.run("list", "nodes", "--format", "json").stdout)
        return [n for n in nodes if n["state"] == "ALIVE"]


@pytest.fixture(scope="module")
def hosts() -> Iterator[Hosts]:
    require_netns()
    h = Hosts()
    try:
        for name in ("head", "worker", "stranger"):
            h.add(name)
        yield h
    finally:
        h.close()


@contextlib.contextmanager
def cluster(hosts: Hosts, *head_flags: str) -> Iterator[Net]:
    head = Machine("head", netns=hosts.hosts["head"][0])
    worker = Machine("worker", netns=hosts.hosts["worker"][0])
    try:
        head_ip, worker_ip = hosts.hosts["head"][1], hosts.hosts["worker"][1]
        # No --dashboard-host: a head on a network address serves its Jobs API there too.
        address = head.start_head("--port", "6391", "--node-ip-address", head_ip,
                                  "--dashboard-port", str(JOBS_PORT), "--num-cpus", "1", *head_flags)
        copy = worker.root / "token-copy"  # what a user copies to the other machine
        shutil.copy(head.token_file(), copy)
        worker.run("start", "--address", address, "--token-file", str(copy), "--num-cpus", "1",
                   "--node-ip-address", worker_ip, "--resources", '{"worker": 1}')
        net = Net(hosts, head, worker, address, copy)
        wait_for(lambda: len(net.alive()) == 2, timeout=30, message="both nodes alive")
        yield net
    finally:
        worker.close()
        head.close()


def _watch(net: Net) -> Sniffer:
    """Run the workload and a job submission under the sniffer; return what it saw."""
    token = credentials.read_token_file(net.token_copy)
    marks = {name: secrets.token_bytes(16) for name in ("argument", "object", "result")}
    needles = {"token": token.encode(), "driver credential": credentials.driver_token(token).encode(),
               **{f"{name} bytes": value for name, value in marks.items()},
               "job entrypoint": b"job-marker-" + marks["argument"].hex().encode()}
    env = {"ARG_MARK": marks["argument"].hex(), "OBJ_MARK": marks["object"].hex(), "RES_MARK": marks["result"].hex()}
    with Sniffer(net.hosts, needles) as sniffer:
        out = net.head.python(WORKLOAD, env=env).stdout
        assert json.loads(out.strip().splitlines()[-1]) == {"ok": True}, out
        scheme = "https" if tls.split_token_file(net.token_copy.read_bytes())[1] else "http"
        job = net.worker.run("job", "submit", "--address", f"{scheme}://{net.ip('head')}:{JOBS_PORT}",
                             "--token-file", str(net.token_copy), "--", "echo",
                             needles["job entrypoint"].decode())
        assert needles["job entrypoint"].decode() in job.stdout, job.stdout + job.stderr
    return sniffer


def test_without_tls_the_sniffer_sees_token_and_payloads(hosts: Hosts) -> None:
    """The control: what the TLS test must not find is there to find in clear text."""
    with cluster(hosts, "--no-tls") as net:
        seen = _watch(net)
    assert seen.bytes > 1_000_000, seen.bytes
    assert {"token", "argument bytes", "object bytes", "result bytes", "job entrypoint"} <= seen.seen, seen.seen


def test_with_tls_nothing_secret_crosses_in_clear(hosts: Hosts) -> None:
    with cluster(hosts) as net:  # TLS: the default on a network address
        assert tls.split_token_file(net.token_copy.read_bytes())[1], "the token file carries no CA"
        seen = _watch(net)
        _wrong_ca_is_refused(net)
    assert seen.bytes > 1_000_000, f"only {seen.bytes} bytes crossed the bridge: the test proves nothing"
    assert seen.seen == set(), f"in clear text on the wire: {sorted(seen.seen)}"


def _wrong_ca_is_refused(net: Net) -> None:
    """A node on a third host whose token file pins another CA cannot join (it refuses
    the head's certificate); one with the token but no CA is told what to use."""
    stranger = Machine("stranger", netns=net.hosts.hosts["stranger"][0])
    try:
        token = credentials.read_token_file(net.token_copy)
        other_ca, _ = tls.make_ca("not this cluster")
        forged = stranger.root / "token-other-ca"
        credentials.write_token_file(forged, token, other_ca)
        args = ("start", "--address", net.address, "--num-cpus", "1", "--node-ip-address", net.ip("stranger"))
        refused = stranger.run(*args, "--token-file", str(forged), check=False)
        assert refused.returncode != 0
        assert "the TLS handshake failed (CERTIFICATE_VERIFY_FAILED" in refused.stderr, refused.stderr
        bare = stranger.run(*args, check=False, env={"NBCLUSTER_TOKEN": token})
        assert bare.returncode != 0
        assert "uses TLS, use its token file" in bare.stderr, bare.stderr
        assert len(net.alive()) == 2  # nobody joined
    finally:
        stranger.close()
