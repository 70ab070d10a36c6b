"""Clusters on your own machines over SSH (``provider: type: ssh``), with real sshd.

Three hosts (network namespaces, ``tests/netns.py``): the head's A, and C and D, each
running a real OpenSSH server (``tests/sshd.py``) with its own temp root (its
``NBCLUSTER_TEMP_DIR``, set by sshd's ``SetEnv``, as another machine's /tmp would be).
``nbcluster up`` runs in A; the head's autoscaler starts nodes on C and D over SSH
when tasks need them and terminates them when idle; ``nbcluster down`` leaves no
nbcluster process on any host.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest
import yaml

from nbcluster.runtime.credentials import read_token_file

from .cli_tools import Machine
from .conftest import ROOT, wait_for
from .netns import Hosts, require_netns
from .sshd import Sshd, SshKeys, require_sshd, start_sshd
from .test_autoscaler_multihost import SYSTEM, WORKLOAD
from .test_autoscaler_multihost import Net as HostsNet

PORT = 6380
IDLE_S = 4.0
WORKERS = ("C", "D")

#: Run in A: the ssh provider itself, launching one node, printing the errors it reports.
PROVIDER_ERRORS = """
import json, pathlib, sys, time
from nbcluster.runtime.autoscaler.config import load_config
from nbcluster.runtime.autoscaler.providers import ClusterContext, LaunchRequest, load_provider
config = load_config(json.loads(sys.argv[1]))
cluster = ClusterContext(gcs_address="A:1", gcs_local_endpoint="", token="not-used", session_dir=pathlib.Path("."),
                         config_env="{}")
provider = load_provider(config.provider, cluster)
provider.launch(LaunchRequest("i1", "cpu_worker", {"CPU": 1.0}))
deadline, errors = time.monotonic() + 60, []
while not errors and time.monotonic() < deadline:
    errors = provider.poll_errors()
    time.sleep(0.05)
left = provider.non_terminated()
provider.close()
print(json.dumps({"errors": [e.message for e in errors], "left": len(left)}))
"""


@dataclass
class Net(HostsNet):
    """The hosts, the head's machine (``address``: "" until a test starts a head), the sshd daemons."""

    daemons: dict[str, Sshd]
    keys: SshKeys
    known_hosts: Path
    tmp: Path
    roots: dict[str, Path]

    def config(self, **top: Any) -> dict[str, Any]:
        base = {
            "cluster_name": "ssh-test",
            "max_workers": 2,
            "upscaling_speed": 2,
            "idle_timeout_minutes": IDLE_S / 60,
            "head_node_type": "head",
            "available_node_types": {
                "head": {"resources": {"CPU": 0}},
                "cpu_worker": {"resources": {"CPU": 1}, "min_workers": 0, "max_workers": 2},
            },
            "provider": {"type": "ssh", "head_ip": self.ip("A"), "worker_ips": [self.ip(w) for w in WORKERS],
                         "python": sys.executable},
            "auth": {"ssh_user": "root", "ssh_private_key": str(self.keys.private_key),
                     "ssh_known_hosts": str(self.known_hosts)},
            "setup_commands": ['touch "$NBCLUSTER_TEMP_DIR/setup-ran"'],
            "head_setup_commands": ['touch "$NBCLUSTER_TEMP_DIR/head-setup-ran"'],
        }
        return {**base, **top}

    def write(self, config: dict[str, Any], name: str = "cluster.yaml") -> Path:
        path = self.tmp / name
        path.write_text(yaml.safe_dump(config))
        return path

    def nbcluster_procs(self, host: str) -> list[psutil.Process]:
        """The processes in ``host``'s namespace whose command line mentions nbcluster."""
        pids = subprocess.run(["ip", "netns", "pids", self.hosts.hosts[host][0]], capture_output=True,
                              text=True, check=True).stdout.split()
        found = []
        for pid in map(int, pids):
            try:
                proc = psutil.Process(pid)
                if proc.status() != psutil.STATUS_ZOMBIE and "nbcluster" in " ".join(proc.cmdline()):
                    found.append(proc)
            except psutil.NoSuchProcess:
                pass
        return found


@pytest.fixture(scope="module")
def net() -> Iterator[Net]:
    require_netns()
    require_sshd()
    hosts = Hosts()
    tmp = Path(tempfile.mkdtemp(prefix="ssh-", dir=os.environ["NBCLUSTER_TEMP_DIR"]))
    head: Machine | None = None
    daemons: dict[str, Sshd] = {}
    try:
        head_ns, head_ip = hosts.add("A")
        pythonpath = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
        head = Machine("head", netns=head_ns, env={"PYTHONPATH": pythonpath})
        keys = SshKeys(tmp)
        shm = os.environ["NBCLUSTER_SHM_DIR"]
        roots = {"A": head.root}
        for name in ("A", *WORKERS):  # A's sshd: a head started over SSH uses the head's temp root
            netns, ip = (head_ns, head_ip) if name == "A" else hosts.add(name)
            roots.setdefault(name, tmp / f"root-{name}").mkdir(mode=0o700, exist_ok=True)
            (tmp / f"home-{name}").mkdir(mode=0o700)
            env = {"PYTHONPATH": pythonpath, "NBCLUSTER_TEMP_DIR": str(roots[name]), "NBCLUSTER_SHM_DIR": shm,
                   "HOME": str(tmp / f"home-{name}")}
            daemons[name] = start_sshd(name, netns, ip, tmp, keys, env)
        hosts.add("B")  # a laptop: runs nbcluster commands, no node
        known_hosts = tmp / "known_hosts"
        known_hosts.write_text("".join(d.known_hosts_line() + "\n" for d in daemons.values()))
        yield Net(hosts, head, "", daemons, keys, known_hosts, tmp, roots)
    finally:
        problems = []
        if head is not None:
            try:
                head.close()
            except BaseException as exc:  # noqa: BLE001 - still stop sshd and remove the namespaces
                problems.append(str(exc))
        for daemon in daemons.values():
            daemon.close()
        hosts.close()
        shutil.rmtree(tmp, ignore_errors=True)
        if problems:
            pytest.fail("; ".join(problems))


def test_up_runs_tasks_on_the_ssh_machines_scales_down_and_down_leaves_nothing(net: Net) -> None:
    path = net.write(net.config())
    out = net.head.run("up", str(path), "--port", str(PORT), "--system-config", json.dumps(SYSTEM)).stdout
    assert f"head node at {net.ip('A')}:{PORT}" in out, out
    assert f"Worker machines (one node each, started over SSH as demand needs them): {net.ip('C')}, {net.ip('D')}" \
        in out, out
    assert (net.head.root / "head-setup-ran").exists()
    token = read_token_file(net.head.token_file())
    assert not net.workers_alive()
    assert not net.nbcluster_procs("C") and not net.nbcluster_procs("D")

    driver = net.head.spawn_python(WORKLOAD.replace("HEAD_IP", repr(net.ip("A"))))
    wait_for(lambda: all(any("nbcluster.runtime.node" in p.cmdline() for p in net.nbcluster_procs(h)) for h in WORKERS),
             timeout=90, interval=0.2, message="a node manager on C and on D")
    # The token is in no process's argv or environment on any host, nor in a log there.
    for host in ("A", *WORKERS):
        for proc in net.nbcluster_procs(host):
            try:
                assert token not in " ".join(proc.cmdline()), (host, proc.cmdline())
                assert token not in json.dumps(proc.environ()), (host, proc.pid)
            except psutil.NoSuchProcess:
                pass
    for name in WORKERS:
        logs = [p for p in net.roots[name].rglob("*") if p.is_file() and p.name != "token"]
        assert logs and not [p for p in logs if token in p.read_text(errors="replace")]
    stdout, stderr = driver.communicate(timeout=180)
    assert driver.returncode == 0, f"{stdout}\n{stderr}\n{net.head.log_tail()}"
    results = json.loads(stdout.strip().splitlines()[-1])["results"]
    assert sorted({ip for _, ip in results}) == sorted(net.ip(w) for w in WORKERS), results
    nodes = {n["node_id"]: n for n in net.state()["nodes"]}
    assert {nodes[node_id]["node_type"] for node_id, _ in results} == {"cpu_worker"}
    for name in WORKERS:
        assert (net.roots[name] / "setup-ran").exists(), name

    # Idle: both nodes are terminated, their runners and node managers exit.
    wait_for(lambda: not net.workers_alive(), timeout=60, interval=0.5, message="idle nodes removed")
    wait_for(lambda: all(i["state"] == "terminated" for i in net.state()["auto"]["instances"]),
             timeout=60, interval=0.5, message="the instances terminated")
    wait_for(lambda: not net.nbcluster_procs("C") and not net.nbcluster_procs("D"), timeout=30, interval=0.2,
             message="no nbcluster process left on C and D")
    messages = [e["message"] for e in net.state()["auto"]["events"]]
    assert not any(m.startswith("Failed to launch") for m in messages), messages
    assert sum(m.startswith("Removing node ") for m in messages) == 2, messages

    # exec and submit run on the head (this machine here).
    assert net.head.run("exec", str(path), "echo on-the-head").stdout.strip() == "on-the-head"
    script = net.tmp / "job.py"
    script.write_text("import nbcluster\nnbcluster.init(address='auto')\nprint('nodes', len(nbcluster.nodes()))\n")
    assert "nodes " in net.head.run("submit", str(path), str(script)).stdout

    down = net.head.run("down", str(path)).stdout
    assert "Stopped" in down, down
    for host in ("A", *WORKERS):
        assert not net.nbcluster_procs(host), host
    for name in WORKERS:
        assert not list(net.roots[name].glob("session_*")), name
    assert not net.head.processes()


def test_unknown_host_key_and_failing_setup_command_are_reported(net: Net) -> None:
    empty = net.tmp / "empty_known_hosts"
    empty.write_text("")
    unknown = net.config(auth={**net.config()["auth"], "ssh_known_hosts": str(empty)},
                         provider={**net.config()["provider"], "worker_ips": [net.ip("C")]})
    failing = net.config(setup_commands=["echo 'no such package' >&2; exit 3"])
    for config in (unknown, failing):
        out = net.head.python(PROVIDER_ERRORS.replace("sys.argv[1]", repr(json.dumps(config)))).stdout
        report = json.loads(out.strip().splitlines()[-1])
        assert report["left"] == 0 and len(report["errors"]) == 1, report
        message = report["errors"][0]
        if config is unknown:
            assert f"the SSH host key of {net.ip('C')} is not trusted" in message, message
            assert f"ssh-keyscan -p 22 {net.ip('C')} >> {empty}" in message, message
        else:
            assert "setup command `echo 'no such package' >&2; exit 3` failed on" in message, message
            assert "(exit 3): no such package" in message, message
    assert "Accepted publickey" in net.daemons["C"].log()  # the second one did log in


def test_wrong_keys_are_refused_naming_the_key(net: Net, capsys: pytest.CaptureFixture[str]) -> None:
    from nbcluster.runtime.cli import main

    cases = {
        "provider.worker_ip": net.config(provider={**net.config()["provider"], "worker_ip": ["10.0.0.9"]}),
        "auth.ssh_pasword": net.config(auth={**net.config()["auth"], "ssh_pasword": "x"}),
        "auth.ssh_user": net.config(auth={"ssh_private_key": str(net.keys.private_key)}),
    }
    for key, config in cases.items():
        assert main(["up", str(net.write(config, "bad.yaml"))]) == 1
        err = capsys.readouterr().err
        assert f"nbcluster up: error: {key}: " in err, err
    local = net.config(provider={"type": "local", "worker_ips": [net.ip("C")]})
    assert main(["up", str(net.write(local, "bad.yaml"))]) == 1
    assert "provider.worker_ips: starting nodes on other machines" in capsys.readouterr().err


def test_attach_execs_ssh_to_the_head_with_the_checked_host_key(net: Net) -> None:
    from nbcluster.runtime.cli_cluster import cmd_attach
    from nbcluster.runtime.cli import build_parser

    called: list[tuple[str, list[str]]] = []
    opts = build_parser().parse_args(["attach", str(net.write(net.config()))])
    cmd_attach(opts, execvp=lambda file, argv: called.append((file, argv)))
    (file, argv), = called
    assert file == "ssh" and argv[-1] == f"root@{net.ip('A')}", argv
    assert argv.count("StrictHostKeyChecking=yes") == 1
    assert f"UserKnownHostsFile={net.known_hosts}" in argv and str(net.keys.private_key) in argv


def test_up_from_another_machine_starts_the_head_over_ssh(net: Net) -> None:
    """`nbcluster up` on B (no node there): the head starts on A over SSH with the YAML and
    key copied there; a script submitted from B runs a task on a worker machine; `down`
    from B leaves nothing on A, C or D."""
    laptop = Machine("laptop", netns=net.hosts.hosts["B"][0], env={"PYTHONPATH": net.head.env["PYTHONPATH"]})
    try:
        path = net.write(net.config(), "remote.yaml")
        out = laptop.run("up", str(path), "--port", str(PORT), "--system-config", json.dumps(SYSTEM)).stdout
        assert f"head node at {net.ip('A')}:{PORT}" in out and "Worker machines" in out, out
        copied = net.tmp / "home-A" / ".nbcluster" / "clusters" / "ssh-test"
        assert oct(copied.stat().st_mode & 0o777) == "0o700"
        assert (copied / "ssh_private_key").read_bytes() == net.keys.private_key.read_bytes()
        assert (net.head.root / "head-setup-ran").exists()
        assert not list(laptop.root.iterdir()) and not laptop.processes()  # nothing runs on B

        script = net.tmp / "remote_job.py"
        script.write_text(textwrap.dedent("""
            import socket
            import nbcluster
            nbcluster.init(address="auto")

            @nbcluster.remote(num_cpus=1)
            def where():
                return nbcluster.get_runtime_context().get_node_id()

            node = nbcluster.get(where.remote(), timeout=120)
            print("ran on", [n["NodeManagerAddress"] for n in nbcluster.nodes() if n["NodeID"] == node][0])
        """))
        ran = laptop.run("submit", str(path), str(script), timeout=180).stdout
        assert any(f"ran on {net.ip(w)}" in ran for w in WORKERS), ran
        status = laptop.run("exec", str(path), f"{sys.executable} -m nbcluster.runtime.cli status").stdout
        assert f"Cluster at {net.ip('A')}:{PORT}" in status, status

        down = laptop.run("down", str(path)).stdout
        assert "Stopped" in down, down
        for host in ("A", *WORKERS):
            assert not net.nbcluster_procs(host), host
        for name in WORKERS:
            assert not list(net.roots[name].glob("session_*")), name
    finally:
        laptop.close()
