"""A cluster on the Kubernetes stand-in (``tests/kube/``), end to end.

The manifests of ``nbcluster kubernetes manifests`` are applied to the stand-in API
server; the head pod is made from the Deployment's pod template (the stand-in has no
controllers: the test is the ReplicaSet) and runs ``nbcluster kubernetes head``, whose
``kubernetes`` node provider talks to the API server with the official client (the
stand-in gives pods a kubeconfig where Kubernetes would mount a service-account
token). Worker pods run ``nbcluster start --address demo-head.<ns>.svc:6380``, each in
a network namespace of its own. Drivers run in the head pod (``kubectl exec``).
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from nbcluster.runtime.kubernetes import manifests as mf
from nbcluster.runtime.kubernetes.values import LABEL_CLUSTER, LABEL_COMPONENT, Values

from .conftest import ROOT, wait_for
from .drivers import COUNTER_CLASS
from .kube import stand_in
from .kube.apiserver import Store
from .kube.kubelet import Kubelet
from .netns import FAST_HOSTS_CONFIG, Hosts, require_netns

NS = "ml"
IDLE_S = 4.0
SYSTEM = FAST_HOSTS_CONFIG
PLURALS = {"ServiceAccount": None, "Role": None, "RoleBinding": None, "Secret": "secrets",
           "ConfigMap": "configmaps", "Service": "services", "Deployment": "deployments",
           "PersistentVolumeClaim": "persistentvolumeclaims"}

#: A driver in the head pod: N one-CPU tasks that each note where and when they ran. A
#: task ends after SECONDS and once all N have started: each needs a worker pod of its
#: own however slowly pods start (a busy machine), none frees its CPU for another.
WORKLOAD = """
import json, os, socket, sys, time
import nbcluster
nbcluster.init(address="auto")

@nbcluster.remote(num_cpus=1)
def where(seconds, marks):
    started = time.time()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("10.77.0.1", 9))
        ip = s.getsockname()[0]
    open(os.path.join(marks, f"{ip}-{os.getpid()}"), "w").write(str(started))
    time.sleep(seconds)
    deadline = time.monotonic() + 180
    while len(os.listdir(marks)) < COUNT and time.monotonic() < deadline:
        time.sleep(0.1)
    return ip, started

t0 = time.time()
refs = [where.remote(SECONDS, MARKS) for _ in range(COUNT)]
print(json.dumps({"t0": t0, "results": nbcluster.get(refs, timeout=240), "done": time.time()}))
"""

STATE = """
import json
from nbcluster.state import get_autoscaler_state, list_nodes
print(json.dumps({"auto": get_autoscaler_state(address="auto").to_json(),
                  "nodes": [n.to_json() for n in list_nodes(address="auto")]}))
"""


@dataclass
class Kube:
    store: Store
    kubelet: Kubelet
    values: Values
    head: str = ""
    last_error: str = ""

    def pods(self, component: str = "worker") -> list[dict[str, Any]]:
        items, _ = self.store.list("pods", NS, f"{LABEL_CLUSTER}={self.values.name},{LABEL_COMPONENT}={component}")
        return items

    def running_workers(self) -> list[dict[str, Any]]:
        return [p for p in self.pods() if p["status"].get("phase") == "Running" and
                "deletionTimestamp" not in p["metadata"]]

    def start_head(self) -> str:
        """Make the head pod from the Deployment's template (as its ReplicaSet would)."""
        deployment = self.store.get("deployments", NS, self.values.head)
        template = json.loads(json.dumps(deployment["spec"]["template"]))
        name = f"{self.values.head}-{int(time.time() * 1000) % 100000}"
        template["spec"]["containers"][0]["command"] += ["--system-config", json.dumps(SYSTEM)]
        self.store.create("pods", NS, {"apiVersion": "v1", "kind": "Pod",
                                       "metadata": {**template["metadata"], "name": name}, "spec": template["spec"]})
        self.head = name
        try:
            wait_for(lambda: self.serving(), timeout=60, interval=0.3, message="the head pod serves")
        except BaseException:
            print(f"head pod {name}:\n{self.kubelet.log(name)}\n{self.last_error}\n{self.store.get('pods', NS, name)['status']}")
            raise
        return name

    def serving(self) -> bool:
        if self.head not in self.kubelet.running:
            return False
        proc = self.python(STATE, check=False)
        self.last_error = proc.stderr[-3000:]
        return proc.returncode == 0

    def python(self, code: str, *, timeout: float = 120, check: bool = True, background: bool = False) -> Any:
        argv, env = self.kubelet.exec_argv(self.head, [sys.executable, "-c", textwrap.dedent(code)])
        if background:
            return subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                    cwd=str(ROOT))
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout, cwd=str(ROOT))
        if check and proc.returncode != 0:
            pytest.fail(f"driver in the head pod exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
        return proc

    @contextlib.contextmanager
    def driver(self, code: str) -> Iterator[subprocess.Popen]:
        """A driver in the head pod running ``code`` in the background; killed if it
        still runs when the block ends."""
        driver = self.python(code, background=True)
        try:
            yield driver
        finally:
            if driver.poll() is None:
                driver.kill()
                driver.communicate()

    def state(self) -> dict[str, Any]:
        return json.loads(self.python(STATE).stdout.strip().splitlines()[-1])

    def events(self) -> list[str]:
        return [e["message"] for e in self.state()["auto"]["events"]]

    def stop_head(self) -> None:
        self.store.delete("pods", NS, self.head)
        wait_for(lambda: not any(p["metadata"]["name"] == self.head for p in self.pods("head")), timeout=60,
                 interval=0.2, message="the head pod gone")


#: A driver in the head pod, with a counter actor class.
COUNTER = """
import json, os
import nbcluster
nbcluster.init(address="auto", namespace="demo")
""" + COUNTER_CLASS


def workload(count: int, seconds: float, marks: Path) -> str:
    return (WORKLOAD.replace("SECONDS", repr(seconds)).replace("MARKS", repr(str(marks)))
            .replace("COUNT", str(count)))


@contextlib.contextmanager
def installed(values: Values, objects: list[dict[str, Any]], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kube]:
    """A cluster on the stand-in made of ``objects`` (a cluster's manifests), its head
    pod serving."""
    require_netns()
    hosts = Hosts()
    try:
        with stand_in(hosts, NS, tmp_path_factory.mktemp("kube"), SYSTEM) as kube:
            for obj in objects:
                plural = PLURALS[obj["kind"]]
                if plural:  # RBAC is not enforced by the stand-in (test_kubernetes_manifests checks it)
                    kube.store.create(plural, NS, obj)
            cluster = Kube(kube.store, kube.kubelet, values)
            cluster.start_head()
            yield cluster
    finally:
        hosts.close()


@pytest.fixture(scope="module")
def kube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kube]:
    values = Values(name="demo", namespace=NS, image="nbcluster:test", workers_max=4, cpu=1, memory="1Gi",
                    head_cpu=0.25, idle_timeout_minutes=IDLE_S / 60)
    with installed(values, mf.manifests(values), tmp_path_factory) as cluster:
        yield cluster


def test_tasks_scale_up_three_worker_pods_then_back_to_zero(kube: Kube, tmp_path: Path) -> None:
    assert not kube.pods()
    out = kube.python(workload(3, 3.0, tmp_path), timeout=240).stdout
    ran = json.loads(out.strip().splitlines()[-1])
    pods = {p["status"]["podIP"]: p for p in kube.pods() if p["status"].get("podIP")}
    ips = {ip for ip, _ in ran["results"]}
    assert len(ips) == 3 and ips <= set(pods), (ran, list(pods))  # each task on its own worker pod
    for pod in pods.values():
        labels = pod["metadata"]["labels"]
        assert labels["nbcluster.io/node-type"] == "worker" and labels["nbcluster.io/instance-id"]
        assert pod["metadata"]["ownerReferences"][0]["kind"] == "Deployment"
        command = pod["spec"]["containers"][0]["command"]
        assert command[:4] == ["nbcluster", "start", "--address", f"demo-head.{NS}.svc:6380"]
        assert "--token-file" in command and not any(
            re.fullmatch(r"[0-9a-f]{32}", part) for part in command)  # the token is a mounted file
        assert not any("TOKEN" in e["name"] for e in pod["spec"]["containers"][0]["env"])
    t0 = ran["t0"]
    running = sorted(kube.kubelet.started_at[p["metadata"]["name"]] - t0 for p in pods.values())
    started = sorted(s - t0 for _, s in ran["results"])
    print(f"\nscale-up: worker pods running after {', '.join(f'{x:.2f}' for x in running)} s; "
          f"tasks started after {', '.join(f'{x:.2f}' for x in started)} s")
    done = ran["done"]
    wait_for(lambda: not kube.pods(), timeout=90, interval=0.2, message="the worker pods deleted when idle")
    print(f"scale-down: no worker pod {time.time() - done:.1f} s after the last task ended "
          f"(idle_timeout {IDLE_S:g} s)")
    msgs = kube.events()
    assert sum(int(m.split()[1]) for m in msgs if re.match(r"Adding \d+ nodes? of type worker", m)) == 3, "\n".join(msgs)
    assert sum(m.startswith("Removing node") for m in msgs) == 3, "\n".join(msgs)


def test_an_unschedulable_pod_shows_the_schedulers_message(kube: Kube, tmp_path: Path) -> None:
    kube.kubelet.set_cpu(1.5)  # room for the head and one worker
    try:
        driver = kube.python(workload(2, 1.0, tmp_path), background=True)
        try:
            wait_for(lambda: len(kube.pods()) == 2 and len(kube.running_workers()) == 1, timeout=60, interval=0.2,
                     message="one worker running, one pending")
            status = wait_for(lambda: (lambda s: "Insufficient cpu" in s and s)(
                kube.python("import subprocess; subprocess.run(['nbcluster', 'status'])").stdout),
                timeout=30, interval=0.5, message="the scheduler's message in the status")
            assert re.search(r"Pending demand\n  \{CPU: 1\}: 1 pending task; waiting-for-launch: .*"
                             r"1 worker node cannot start: its pod demo-worker-\w+ cannot be scheduled "
                             r"\(Unschedulable\): 0/1 nodes are available: 1 Insufficient cpu\.", status), status
            assert any(re.fullmatch(r"A worker node \(instance \w+\) cannot start yet: its pod .* cannot be "
                                    r"scheduled \(Unschedulable\): 0/1 nodes are available: 1 Insufficient cpu\.", m)
                       for m in kube.events())
        finally:
            kube.kubelet.set_cpu(3.5)
            out, err = driver.communicate(timeout=180)
        assert driver.returncode == 0, err
        assert len(json.loads(out.strip().splitlines()[-1])["results"]) == 2
    finally:
        kube.kubelet.set_cpu(3.5)
    wait_for(lambda: not kube.pods(), timeout=90, interval=0.2, message="the worker pods deleted when idle")


def test_an_evicted_worker_pods_tasks_are_retried_and_the_reason_shown(kube: Kube, tmp_path: Path) -> None:
    with kube.driver(workload(2, 4.0, tmp_path)) as driver:
        wait_for(lambda: len(list(tmp_path.iterdir())) >= 2, timeout=90, interval=0.2, message="both tasks started")
        victim_ip = sorted(tmp_path.iterdir())[0].name.split("-")[0]
        victim = next(p["metadata"]["name"] for p in kube.pods() if p["status"].get("podIP") == victim_ip)
        kube.kubelet.evict(victim, "The node was low on resource: memory.")
        out, err = driver.communicate(timeout=180)
    assert driver.returncode == 0, err
    results = json.loads(out.strip().splitlines()[-1])["results"]
    assert len(results) == 2 and victim_ip not in {ip for ip, _ in results}, results  # retried elsewhere
    msgs = kube.events()
    evicted = [m for m in msgs if f"its pod {victim} was evicted: The node was low on resource: memory." in m]
    assert len(evicted) == 1, msgs  # reported once
    assert not any(p["metadata"]["name"] == victim for p in kube.pods())  # the ended pod is deleted
    wait_for(lambda: not kube.pods(), timeout=90, interval=0.2, message="the worker pods deleted when idle")


#: A driver in the head pod: one task on a worker pod that stores its result there; the
#: result is read once the test says (the file "go"), after that pod is gone.
DRAINED = """
import json, os, time
import numpy as np
import nbcluster
nbcluster.init(address="auto")

@nbcluster.remote(num_cpus=1, max_retries=2)
def work(marks):
    open(os.path.join(marks, f"run-{os.getpid()}"), "w").close()
    time.sleep(4)
    return np.arange(1_000_000)  # 8 MB: in the worker pod's object store

ref = work.remote(MARKS)
nbcluster.wait([ref], timeout=240, fetch_local=False)
while not os.path.exists(os.path.join(MARKS, "go")):
    time.sleep(0.05)
print(json.dumps({"sum": int(nbcluster.get(ref, timeout=120).sum())}))
"""


def test_a_deleted_worker_pod_drains_its_task_and_objects(kube: Kube, tmp_path: Path) -> None:
    with kube.driver(DRAINED.replace("MARKS", repr(str(tmp_path)))) as driver:
        wait_for(lambda: list(tmp_path.glob("run-*")), timeout=90, interval=0.2, message="the task started")
        (pod,) = kube.running_workers()
        name = pod["metadata"]["name"]
        env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
        assert env["NBCLUSTER_DRAIN_TIMEOUT_S"] == "25"  # from its grace period, 30 s
        deleted = time.monotonic()
        kube.store.delete("pods", NS, name)  # Kubernetes: SIGTERM now, SIGKILL after 30 s
        wait_for(lambda: not any(p["metadata"]["name"] == name for p in kube.pods()), timeout=60, interval=0.1,
                 message="the deleted pod gone")
        took = time.monotonic() - deleted
        (tmp_path / "go").touch()
        out, err = driver.communicate(timeout=180)
    assert driver.returncode == 0, err
    assert json.loads(out.strip().splitlines()[-1])["sum"] == sum(range(1_000_000))
    assert len(list(tmp_path.glob("run-*"))) == 1  # it ran once: not retried, not rebuilt
    assert took < 20, f"the pod took {took:.1f} s to go (its task had 4 s to run)"
    dead = [n for n in kube.state()["nodes"] if n["state"] == "DEAD" and "SIGTERM" in n["death_reason"]]
    assert any("1 object(s) handed off" in n["death_reason"] for n in dead), dead
    assert any("is stopping: it was asked to stop (SIGTERM)" in m for m in kube.events())
    wait_for(lambda: not kube.pods(), timeout=90, interval=0.2, message="no worker pods")


def test_a_restarted_head_adopts_its_pods_and_deletes_orphans(kube: Kube, tmp_path: Path) -> None:
    """Last in the module: it replaces the head pod, and stops its own at the end."""
    kube.python("import nbcluster, nbcluster.autoscaler; nbcluster.init(address='auto'); "
                "nbcluster.autoscaler.request_resources(num_cpus=2)")
    wait_for(lambda: len(kube.running_workers()) == 2, timeout=90, interval=0.2, message="two workers")
    workers = {p["metadata"]["name"] for p in kube.running_workers()}
    # A detached actor on a worker pod: the restarted head takes it back (same process, same state).
    before = json.loads(kube.python(COUNTER + "c = Counter.options(name='keeper', lifetime='detached').remote()\n"
                                    "print(json.dumps(nbcluster.get(c.incr.remote())))").stdout.strip().splitlines()[-1])
    # An ended pod of this cluster, as a head that died could leave behind.
    orphan = json.loads(json.dumps(kube.pods()[0]))
    orphan["metadata"] = {"name": "demo-worker-0rphan", "labels": {**orphan["metadata"]["labels"],
                                                                 "nbcluster.io/instance-id": "0rphan"}}
    orphan["spec"]["containers"][0]["image"] = "standin/sleep"
    kube.store.create("pods", NS, orphan)
    wait_for(lambda: kube.store.get("pods", NS, "demo-worker-0rphan")["status"].get("phase") == "Running",
             timeout=30, message="the orphan runs")
    kube.kubelet.oom_kill("demo-worker-0rphan")  # and it ended
    kube.stop_head()
    creates = sum(1 for m, path in kube.store.requests if m == "POST" and path.endswith("/pods"))
    kube.start_head()
    # request_resources lives in the head's store: the new head keeps room for it (the
    # adopted workers stay, though idle past idle_timeout).
    wait_for(lambda: any(m.startswith("Resources requested: ") and m != "Resources requested: none"
                         for m in kube.events()), timeout=60, interval=0.5, message="the request restored")
    adopted = r"Found 2 nodes this cluster's provider runs: adopting 2, terminating 0"
    wait_for(lambda: any(re.fullmatch(adopted, m) for m in kube.events()), timeout=90, interval=0.5,
             message="the new head to adopt the two worker pods")
    wait_for(lambda: len([n for n in kube.state()["nodes"] if n["state"] == "ALIVE" and not n["is_head"]]) == 2,
             timeout=90, interval=0.5, message="the workers rejoined the new head")
    assert {p["metadata"]["name"] for p in kube.running_workers()} == workers  # the same pods
    after = json.loads(kube.python(COUNTER + "print(json.dumps(nbcluster.get(nbcluster.get_actor('keeper').incr.remote(), "
                                   "timeout=60)))").stdout.strip().splitlines()[-1])
    assert after == [before[0] + 1, *before[1:]], (before, after)  # its state kept, the same process
    kube.python(COUNTER + "nbcluster.kill(nbcluster.get_actor('keeper'))")
    assert not any(p["metadata"]["name"] == "demo-worker-0rphan" for p in kube.pods())  # the orphan deleted
    instances = kube.state()["auto"]["instances"]
    assert sorted(i["state"] for i in instances) == ["running", "running"], instances
    assert sum(1 for m, path in kube.store.requests if m == "POST" and path.endswith("/pods")) == creates
    # Adopted nodes are the autoscaler's as any other: idle once nothing asks for them, they go.
    kube.python("import nbcluster, nbcluster.autoscaler; nbcluster.init(address='auto'); "
                "nbcluster.autoscaler.request_resources(num_cpus=0)")
    wait_for(lambda: not kube.pods(), timeout=90, interval=0.2, message="the adopted idle workers deleted")
    kube.stop_head()  # the last test of the module: the head it started is its to stop
