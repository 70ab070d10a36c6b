"""The autoscaler adding and removing machines: a head host with 0 CPUs, started with
``nbcluster start --head --autoscaling-config``, and two free hosts (network
namespaces with nothing running) that the head's node provider
(:class:`tests.netns_provider.NetnsNodeProvider`) starts node managers on.

A driver on the head host runs 4 one-CPU tasks: two nodes are added, one per free
host, the tasks run there, and once idle the nodes are removed.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psutil
import pytest
import yaml

from .cli_tools import Machine
from .conftest import ROOT, shm_stores, wait_for
from .netns import FAST_HOSTS_CONFIG, Hosts, require_netns

PORT = 6380
IDLE_S = 3.0
SYSTEM = FAST_HOSTS_CONFIG
WORKERS = ("h1", "h2")

#: A driver on the head host: prints the autoscaler's state and the nodes, as JSON.
STATE = """
import json
from nbcluster.state import get_autoscaler_state, list_nodes
print(json.dumps({"auto": get_autoscaler_state(address="auto").to_json(),
                  "nodes": [n.to_json() for n in list_nodes(address="auto")]}))
"""

WORKLOAD = """
import json, socket, time
import nbcluster
nbcluster.init(address="auto")

@nbcluster.remote(num_cpus=1)
def where(seconds, head_ip):
    time.sleep(seconds)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect((head_ip, 9))  # no packet is sent: this picks the host's own address
        ip = s.getsockname()[0]
    return nbcluster.get_runtime_context().get_node_id(), ip

head = nbcluster.get_runtime_context().get_node_id()
results = nbcluster.get([where.remote(2.0, HEAD_IP) for _ in range(4)], timeout=120)
print(json.dumps({"head": head, "results": results}))
"""


@dataclass
class Net:
    hosts: Hosts
    head: Machine
    address: str

    def ip(self, name: str) -> str:
        return self.hosts.hosts[name][1]

    def state(self) -> dict[str, Any]:
        out = self.head.python(STATE).stdout
        return json.loads(out.strip().splitlines()[-1])

    def workers_alive(self) -> list[dict[str, Any]]:
        return [n for n in self.state()["nodes"] if n["state"] == "ALIVE" and not n["is_head"]]


def cluster_yaml(hosts: Hosts) -> dict[str, Any]:
    return {
        "cluster_name": "netns",
        "max_workers": 2,
        "upscaling_speed": 2,
        "idle_timeout_minutes": IDLE_S / 60,
        "head_node_type": "head",
        "available_node_types": {
            "head": {"resources": {"CPU": 0}},
            "cpu_worker": {"resources": {"CPU": 1}, "min_workers": 0, "max_workers": 2},
        },
        "provider": {
            "type": "external",
            "module": "tests.netns_provider.NetnsNodeProvider",
            "hosts": {name: {"netns": hosts.hosts[name][0], "ip": hosts.hosts[name][1]} for name in WORKERS},
        },
    }


def added_node_procs(head: Machine) -> list[int]:
    """Node managers of the head's machine other than the head's own (the added nodes)."""
    pids = []
    for proc in head.processes():
        try:
            argv = proc.cmdline()
        except psutil.NoSuchProcess:
            continue
        if "nbcluster.runtime.node" in argv and "--head" not in argv:
            pids.append(proc.pid)
    return pids


@pytest.fixture(scope="module")
def net() -> Iterator[Net]:
    require_netns()
    hosts = Hosts()
    head: Machine | None = None
    try:
        head_ns, head_ip = hosts.add("head")
        for name in WORKERS:
            hosts.add(name)
        pythonpath = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
        head = Machine("head", netns=head_ns, env={"PYTHONPATH": pythonpath})
        config = head.root / "cluster.yaml"
        config.write_text(yaml.safe_dump(cluster_yaml(hosts)))
        address = head.start_head("--port", str(PORT), "--node-ip-address", head_ip,
                                  "--autoscaling-config", str(config), "--system-config", json.dumps(SYSTEM))
        assert address == f"{head_ip}:{PORT}"
        yield Net(hosts, head, address)
    finally:
        problems = []
        if head is not None:
            try:
                head.close()  # the head's provider.close() ends the nodes it started
            except BaseException as exc:  # noqa: BLE001 - still remove the namespaces, then report
                problems.append(str(exc))
            if head.root.exists():
                problems.append(f"the head's temp root {head.root} was left behind")
        hosts.close()
        if problems:
            pytest.fail("; ".join(problems))


def test_tasks_add_a_node_on_each_free_host_then_idle_nodes_go(net: Net) -> None:
    stores_before = shm_stores()
    assert not net.workers_alive()
    out = net.head.python(WORKLOAD.replace("HEAD_IP", repr(net.ip("head"))), timeout=180).stdout
    ran = json.loads(out.strip().splitlines()[-1])
    results = ran["results"]
    assert len(results) == 4
    nodes = {n["node_id"]: n for n in net.state()["nodes"]}
    workers = {node_id for node_id, _ in results}
    assert ran["head"] not in workers
    assert len(workers) == 2, results  # both added nodes ran tasks
    # Each task saw its host's own address, and the GCS places its node there.
    assert sorted({ip for _, ip in results}) == sorted(net.ip(h) for h in WORKERS), results
    assert all(nodes[node_id]["node_ip"] == ip for node_id, ip in results), (results, nodes)
    assert {nodes[w]["node_type"] for w in workers} == {"cpu_worker"}

    status = net.head.run("status").stdout
    assert "Autoscaler (cluster netns: max_workers 2" in status, status
    assert re.search(r"Recent autoscaler events\n.*Adding 2 nodes of type cpu_worker", status), status

    wait_for(lambda: not net.workers_alive(), timeout=60, interval=0.5, message="idle nodes removed")
    state = net.state()
    msgs = [e["message"] for e in state["auto"]["events"]]
    assert re.fullmatch(r"Adding 2 nodes of type cpu_worker for \d pending tasks \{CPU: 1\}", msgs[0]), msgs
    assert sum(int(m.split()[1]) for m in msgs if m.startswith("Adding ")) == 2, msgs
    removals = [m for m in msgs if m.startswith("Removing node ")]
    assert len(removals) == 2, msgs
    assert all(re.fullmatch(r"Removing node [0-9a-f]{8}… \(cpu_worker\): idle for \d+ s", m) for m in removals), msgs
    assert not any(m.startswith(("Failed to launch", "Cannot schedule")) for m in msgs), msgs
    dead = [n for n in state["nodes"] if not n["is_head"]]
    assert {n["node_id"] for n in dead} == workers
    assert {n["death_reason"].split(":")[0] for n in dead} == {"removed by the autoscaler"}

    # The provider's view: both instances terminated, their processes and stores gone.
    wait_for(lambda: all(i["state"] == "terminated" for i in net.state()["auto"]["instances"]),
             timeout=30, interval=0.5, message="the instances terminated")
    wait_for(lambda: not added_node_procs(net.head), timeout=30, interval=0.2, message="the added nodes' processes exited")
    worker_stores = {f"nbcluster-{w[:16]}" for w in workers}
    wait_for(lambda: not (shm_stores() - stores_before) & worker_stores, timeout=10,
             message="the added nodes' stores removed")
    status = net.head.run("status").stdout
    assert "Autoscaler (cluster netns" in status and "Removing node" in status, status
