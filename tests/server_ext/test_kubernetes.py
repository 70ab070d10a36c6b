"""The server extension makes clusters on Kubernetes: a real ``jupyter server`` runs as
the container of a pod of the Kubernetes stand-in (``tests/kube``; JupyterHub's
single-user server, with the pod's credentials), reached through a port-forward.

``POST clusters`` with ``"provider": "kubernetes"`` creates the head's objects with the
server's own credentials and answers once the head runs; the list shows the cluster
with its provider; a kernel of that server connects to it by name (client mode through
the head's Service) and runs a task on a worker pod; it scales; DELETE deletes every
object of it; and a cluster left running is deleted when the server stops — on a
SIGTERM (its pod deleted, as JupyterHub stops a server) and on a clean shutdown. Bad
input is a 400/409 saying what is wrong, and leaves nothing behind; so do a head that
cannot start (a 500 with the scheduler's reason) and a DELETE while it starts. And the cluster page (headless
Chromium, through the port-forward) deploys one from its form and stops it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nbcluster.runtime.kubernetes.values import LABEL_CLUSTER, LABEL_COMPONENT

from ..browser import JupyterProcess, chromium, require_browser, screenshot
from ..conftest import wait_for
from ..kube import deploying_stand_in
from ..kube.apiserver import Store
from ..kube.kubelet import Kubelet
from ..kube.portforward import PortForward
from ..netns import FAST_HOSTS_CONFIG
from .conftest import until
from .test_e2e import Kernel, rest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

NS = "jhub"
SYSTEM = {**FAST_HOSTS_CONFIG, "autoscaler_interval_s": 0.3}
KINDS = ("pods", "services", "secrets", "configmaps", "deployments", "persistentvolumeclaims", "serviceaccounts",
         "roles", "rolebindings")
POD = "jupyter-ada"
PORT = 8888
IMAGE = "nbcluster:test"


@pytest.fixture
def kube(tmp_path: Path) -> Iterator[tuple[Store, Kubelet]]:
    with deploying_stand_in(tmp_path / "kube", NS, SYSTEM) as kube:
        yield kube.store, kube.kubelet


def objects(store: Store, cluster: str, namespace: str = NS) -> list[str]:
    """Every object labelled with the cluster's name."""
    found = []
    for plural in KINDS:
        items, _ = store.list(plural, namespace, f"{LABEL_CLUSTER}={cluster}")
        found += [f"{plural}/{item['metadata']['name']}" for item in items]
    return found


@contextlib.contextmanager
def server_in_a_pod(store: Store, kubelet: Kubelet, tmp_path: Path) -> Iterator[JupyterProcess]:
    """``jupyter server`` with the extension as the container of the pod ``POD``;
    yields a JupyterProcess that is only its client (``url``, ``request``: through a
    port-forward to the pod)."""
    client = JupyterProcess(home=tmp_path / "jupyter")
    tmp_path.chmod(0o755)
    store.create("pods", NS, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": POD}, "spec": {
        "terminationGracePeriodSeconds": 30,
        "containers": [{
            "name": "notebook", "image": "jupyterhub/nbcluster",
            "command": [sys.executable, "-m", "jupyter_server", "--no-browser", "--ip=0.0.0.0", f"--port={PORT}",
                        "--allow-root", f"--IdentityProvider.token={client.token}",
                        f"--ServerApp.root_dir={client.root_dir}", "--ServerApp.jpserver_extensions=nbcluster=True"],
            "env": [{"name": "JUPYTER_RUNTIME_DIR", "value": str(client.runtime_dir)},
                    {"name": "JUPYTER_CONFIG_DIR", "value": str(client.home / "config")}],
        }]}})
    wait_for(lambda: POD in kubelet.running, timeout=30, message="the notebook server's pod runs")
    forward = PortForward(kubelet.running[POD].netns, kubelet.ip_of(POD), PORT)
    client.port = forward.port
    try:
        def answers() -> bool:
            try:
                return client.request("GET", "api/status", timeout=5)[0] == 200
            except OSError:
                return False

        wait_for(answers, timeout=90, interval=0.3, message=f"the server in the pod to answer:\n{kubelet.log(POD)}")
        yield client
    except BaseException:
        print(f"--- the server's log (pod {POD}) ---\n{kubelet.log(POD)[-8000:]}")
        raise
    finally:
        forward.close()


def head_phase(store: Store, cluster: str) -> list[str]:
    pods, _ = store.list("pods", NS, f"{LABEL_CLUSTER}={cluster},{LABEL_COMPONENT}=head")
    return [p["status"].get("phase", "") for p in pods]


async def test_a_server_in_a_pod_makes_a_cluster_a_kernel_uses_and_stop_or_sigterm_deletes_it(
    kube: tuple[Store, Kubelet], tmp_path: Path,
) -> None:
    store, kubelet = kube
    with server_in_a_pod(store, kubelet, tmp_path) as server:
        code, cluster = await rest(server, "POST", "nbcluster/api/clusters", {
            "provider": "kubernetes", "name": "demo", "workers_max": 1, "image": IMAGE, "timeout": 120})
        assert code == 201, (cluster, kubelet.log(POD))
        assert (cluster["name"], cluster["provider"], cluster["status"], cluster["origin"]) == (
            "demo", "kubernetes", "running", "created"), cluster
        assert cluster["address"] == f"demo-head.{NS}.svc:6380"
        assert cluster["spec"]["namespace"] == NS  # none given: the context's of the pod's credentials
        assert head_phase(store, "demo") == ["Running"]
        code, listed = await rest(server, "GET", "nbcluster/api/clusters")
        assert [(c["name"], c["provider"], c["status"]) for c in listed["clusters"]] == [
            ("demo", "kubernetes", "running")]
        discovery = json.loads((server.runtime_dir / "nbcluster-clusters.json").read_text())["clusters"]
        assert [(c["name"], c["address"]) for c in discovery] == [("demo", cluster["address"])]

        code, session = await rest(server, "POST", "api/sessions", {
            "path": "k8s.ipynb", "type": "notebook", "name": "k8s.ipynb", "kernel": {"name": "python3"}})
        assert code == 201, session
        async with Kernel(server, session["kernel"]["id"]) as kernel:
            reply, out = await kernel.execute("%load_ext nbcluster\n%cluster connect demo", timeout=180)
            assert reply["status"] == "ok" and "client mode" in out, out
            reply, out = await kernel.execute(
                "import nbcluster\n"
                "@nbcluster.remote(num_cpus=1)\n"
                "def where():\n"
                "    return nbcluster.get_runtime_context().get_node_id()\n"
                "node = nbcluster.get(where.remote(), timeout=180)\n"
                "print('RAN ON', [n['NodeManagerAddress'] for n in nbcluster.nodes() if n['NodeID'] == node][0])",
                timeout=240)
            assert reply["status"] == "ok", out
            ips = {obj["status"].get("podIP"): obj["metadata"]["name"] for _, plural, _, _, obj in store.history
                   if plural == "pods" and obj.get("status", {}).get("podIP")}
            assert ips.get(out.split("RAN ON")[1].split()[0], "").startswith("demo-worker-"), (out, ips)

            async def driver() -> Any:
                _, got = await rest(server, "GET", "nbcluster/api/clusters/demo")
                return got["drivers"]

            drivers = await until(driver, 60.0, "the kernel listed as a driver of demo")
            assert [d["notebook_path"] for d in drivers] == ["k8s.ipynb"]
            code, jobs = await rest(server, "GET", "nbcluster/api/clusters/demo/jobs/")  # through the Service
            assert code == 200 and isinstance(jobs, list), (code, jobs)

        code, scaled = await rest(server, "PATCH", "nbcluster/api/clusters/demo", {"adapt": {"minimum": 0,
                                                                                             "maximum": 2}})
        assert code == 200 and scaled["workers"]["max"] == 2, scaled
        await rest(server, "DELETE", f"api/sessions/{session['id']}")

        code, _ = await rest(server, "DELETE", "nbcluster/api/clusters/demo")
        assert code == 204
        await until(lambda: not objects(store, "demo"), 60.0, "no object of demo left")
        code, listed = await rest(server, "GET", "nbcluster/api/clusters")
        assert listed == {"clusters": []}
        assert not (server.runtime_dir / "nbcluster-tokens" / "demo").exists()

        # A cluster left running goes when the server gets SIGTERM (its pod is deleted).
        code, other = await rest(server, "POST", "nbcluster/api/clusters", {
            "provider": "kubernetes", "name": "other", "image": IMAGE, "timeout": 120})
        assert code == 201, other
        assert objects(store, "other")
        store.delete("pods", NS, POD)
        await until(lambda: POD not in kubelet.running, 120.0, "the server to stop on SIGTERM")
        await until(lambda: not objects(store, "other"), 60.0, "no object of other left after SIGTERM")


async def test_bad_input_is_a_clear_error_leaves_nothing_and_a_clean_stop_deletes_clusters(
    kube: tuple[Store, Kubelet], tmp_path: Path,
) -> None:
    store, kubelet = kube
    store.namespaces = {NS}
    taken = {"apiVersion": "apps/v1", "kind": "Deployment",
             "metadata": {"name": "taken-head", "labels": {LABEL_CLUSTER: "taken"}},
             "spec": {"selector": {"matchLabels": {"x": "y"}},
                      "template": {"metadata": {"labels": {"x": "y"}},
                                   "spec": {"containers": [{"name": "c", "image": "standin/sleep"}]}}}}
    store.create("deployments", NS, taken)
    with server_in_a_pod(store, kubelet, tmp_path) as server:
        async def refused(body: dict[str, Any], status: int, *says: str) -> None:
            code, answer = await rest(server, "POST", "nbcluster/api/clusters", {"provider": "kubernetes", **body})
            assert code == status and all(s in answer["message"] for s in says), (code, answer)

        await refused({"name": "Demo_1"}, 400, "name must be at most 40 lowercase letters, digits and '-'",
                      "'Demo_1'")
        await refused({"name": "demo", "workers": 2}, 400, "workers is for a local cluster", "workers_max")
        await refused({"name": "demo", "workers_max": "two"}, 400, "workers_max must be a whole number")
        await refused({"name": "lost", "namespace": "nope"}, 400, "namespace 'nope' does not exist",
                      "kubectl create namespace nope")
        await refused({"name": "taken"}, 409, "a cluster named 'taken' already runs in namespace 'jhub'")
        kubelet.set_cpu(0.5)  # the head pod (1 CPU) cannot be scheduled
        await refused({"name": "late", "timeout": 3}, 500, "cluster late did not start", "Insufficient cpu",
                      "deleted")
        # DELETE while it starts: the deploy stops and deletes what it made; the POST says so.
        posting = asyncio.ensure_future(rest(server, "POST", "nbcluster/api/clusters", {
            "provider": "kubernetes", "name": "halted", "timeout": 120}))
        await until(lambda: head_phase(store, "halted"), 60.0, "the deploy of halted under way")
        code, listed = await rest(server, "GET", "nbcluster/api/clusters")
        assert [(c["name"], c["status"]) for c in listed["clusters"]] == [("halted", "starting")]
        code, _ = await rest(server, "DELETE", "nbcluster/api/clusters/halted")
        assert code == 204
        code, answer = await posting
        assert code == 409 and "stopped while it started" in answer["message"], answer
        kubelet.set_cpu(3.5)
        assert objects(store, "taken") == ["deployments/taken-head"]  # the other cluster's, untouched
        for name in ("demo", "lost", "late", "halted"):
            await until(lambda n=name: not objects(store, n) and not objects(store, n, "nope"), 30.0,
                        f"no object of {name} left")
        code, listed = await rest(server, "GET", "nbcluster/api/clusters")
        assert listed == {"clusters": []}
        registry = json.loads((server.runtime_dir / "nbcluster-server-clusters.json").read_text())
        assert registry == {"clusters": []}
        assert not list((server.runtime_dir / "nbcluster-tokens").glob("*"))

        # A clean shutdown (POST api/shutdown) deletes what the server made.
        code, kept = await rest(server, "POST", "nbcluster/api/clusters", {
            "provider": "kubernetes", "name": "kept", "image": IMAGE, "timeout": 120})
        assert code == 201, kept
        try:  # the server stops before it answers
            said: Any = await asyncio.to_thread(server.request, "POST", "api/shutdown", None, 120.0)
        except OSError as exc:
            said = exc
        await until(lambda: POD not in kubelet.running, 120.0, f"the server to stop (api/shutdown: {said!r})")
        await until(lambda: not objects(store, "kept"), 60.0, "no object of kept left after the shutdown")


def test_the_cluster_page_deploys_a_cluster_on_kubernetes_and_stops_it(
    kube: tuple[Store, Kubelet], tmp_path: Path,
) -> None:
    require_browser()
    from playwright.sync_api import expect

    store, kubelet = kube
    with server_in_a_pod(store, kubelet, tmp_path) as server, chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(server.url("nbcluster/"))
        expect(page.locator("body[data-ready='true']")).to_have_count(1)
        page.locator("#create-provider-kubernetes").check()
        page.locator("#create-name").fill("paged")
        page.locator("#create-image").fill(IMAGE)
        page.locator("#create-workers-max").fill("1")
        page.locator("#create-submit").click()
        row = page.locator("[data-testid='cluster-row'][data-name='paged']")
        expect(row).to_have_attribute("data-status", "running", timeout=180_000)
        expect(row.locator(".cluster-meta")).to_contain_text(f"kubernetes: {NS}")
        expect(page.locator("#sum-origin")).to_have_text(f"created on Kubernetes, namespace {NS}")
        expect(page.locator("#sum-address")).to_have_text(f"paged-head.{NS}.svc:6380")
        expect(page.locator("[data-testid='nodes-table'] tbody tr")).to_have_count(1)  # the head
        assert head_phase(store, "paged") == ["Running"]
        screenshot(page, "kubernetes-page-deployed")

        page.locator("#stop-button").click()
        expect(page.locator("#confirm-text")).to_contain_text(f"Every object of paged in namespace {NS}")
        page.locator("#confirm-ok").click()
        expect(row).to_have_count(0, timeout=120_000)
        wait_for(lambda: not objects(store, "paged"), timeout=60, interval=0.3, message="no object of paged left")
        assert not errors, errors
