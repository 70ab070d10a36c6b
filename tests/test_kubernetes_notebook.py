"""``%cluster start --provider kubernetes`` from a notebook that runs in a pod (as with
JupyterHub on Kubernetes), on the Kubernetes stand-in (``tests/kube``) with its
Deployment controller: the kernel creates the cluster's objects with its own
credentials through the official client, waits for the head pod, connects to it in
client mode through the head's Service, a task runs on an autoscaled worker pod, and
``%cluster stop`` leaves no pod, Service, Secret or other object of the cluster.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest

from nbcluster.runtime.kubernetes.values import LABEL_CLUSTER

from .conftest import ROOT, wait_for
from .kube import deploying_stand_in
from .kube.apiserver import Store
from .kube.kubelet import SLEEP_IMAGE, Kubelet
from .netns import FAST_HOSTS_CONFIG
from .notebooks import cell_text

NS = "jhub"
SYSTEM = {**FAST_HOSTS_CONFIG, "autoscaler_interval_s": 0.3}
KINDS = ("pods", "services", "secrets", "configmaps", "deployments", "persistentvolumeclaims", "serviceaccounts",
         "roles", "rolebindings")


@pytest.fixture
def kube(tmp_path: Path) -> Iterator[tuple[Store, Kubelet, Path]]:
    with deploying_stand_in(tmp_path / "kube", NS, SYSTEM) as kube:
        yield kube.store, kube.kubelet, kube.kubeconfig


def _notebook_pod(store: Store, kubelet: Kubelet) -> None:
    """The notebook server's pod (JupyterHub's single-user server): notebooks run in it."""
    store.create("pods", NS, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "jupyter-ada"},
                              "spec": {"containers": [{"name": "notebook", "image": SLEEP_IMAGE}]}})
    wait_for(lambda: "jupyter-ada" in kubelet.running, timeout=30, message="the notebook pod runs")


def _in_notebook_pod(kubelet: Kubelet, kubeconfig: Path, code: str, *args: str) -> str:
    """Run Python ``code`` in the notebook pod; its output."""
    argv, env = kubelet.exec_argv("jupyter-ada", [sys.executable, "-c", code, *args])
    env["KUBECONFIG"] = str(kubeconfig)  # the pod's service account, as the stand-in gives it
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600, cwd=str(ROOT))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def _objects(store: Store, cluster: str) -> list[str]:
    found = []
    for plural in KINDS:
        items, _ = store.list(plural, NS, f"{LABEL_CLUSTER}={cluster}")
        found += [f"{plural}/{item['metadata']['name']}" for item in items]
    return found


def test_a_notebook_in_a_pod_starts_a_cluster_of_pods_uses_it_and_stop_deletes_it(
    kube: tuple[Store, Kubelet, Path], tmp_path: Path,
) -> None:
    store, kubelet, kubeconfig = kube
    _notebook_pod(store, kubelet)
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(src) for src in (
        "%load_ext nbcluster\n"
        f"%cluster start --provider kubernetes --namespace {NS} --name demo --workers-max 2 --image nbcluster:test",
        "import nbcluster\n"
        "@nbcluster.remote(num_cpus=1)\n"
        "def where():\n"
        "    return nbcluster.get_runtime_context().get_node_id()\n"
        "node = nbcluster.get(where.remote(), timeout=180)\n"
        "print('ran on', [n['NodeManagerAddress'] for n in nbcluster.nodes() if n['NodeID'] == node][0])",
        "%cluster stop",
    )])
    source, executed = tmp_path / "k8s.ipynb", tmp_path / "k8s-out.ipynb"
    nbformat.write(notebook, source)
    tmp_path.chmod(0o755)
    runner = (
        "import nbformat, sys\nfrom nbclient import NotebookClient\n"
        "nb = nbformat.read(sys.argv[1], as_version=4)\n"
        "NotebookClient(nb, timeout=300, kernel_name='python3', allow_errors=True).execute()\n"
        "nbformat.write(nb, sys.argv[2])\n"
    )
    _in_notebook_pod(kubelet, kubeconfig, runner, str(source), str(executed))
    cells = [c for c in nbformat.read(executed, as_version=4).cells if c.cell_type == "code"]
    started, ran, stopped = (cell_text(c) for c in cells)
    assert "creating cluster 'demo' in namespace 'jhub'" in started and "ERROR" not in started, started
    assert "client mode" in started, started
    pods = {obj["status"].get("podIP"): obj["metadata"]["name"]  # every pod there was (they are gone now)
            for _, plural, _, _, obj in store.history if plural == "pods" and obj.get("status", {}).get("podIP")}
    assert pods.get(ran.split()[-1], "").startswith("demo-worker-"), (ran, pods)  # a pod the autoscaler made
    assert "deleted cluster 'demo'" in stopped and "ERROR" not in stopped, stopped
    # Nothing of the cluster is left once the kubelet has stopped its pods.
    wait_for(lambda: not _objects(store, "demo"), timeout=60, interval=0.3,
             message=f"no object of the cluster left: {_objects(store, 'demo')}")
    assert "jupyter-ada" in kubelet.running  # the notebook's own pod is not touched


def test_a_second_cluster_of_the_same_name_is_refused_and_nothing_is_created(
    kube: tuple[Store, Kubelet, Path],
) -> None:
    store, kubelet, kubeconfig = kube
    store.create("deployments", NS, {"apiVersion": "apps/v1", "kind": "Deployment",
                                     "metadata": {"name": "taken-head", "labels": {LABEL_CLUSTER: "taken"}},
                                     "spec": {"selector": {"matchLabels": {"x": "y"}},
                                              "template": {"metadata": {"labels": {"x": "y"}},
                                                           "spec": {"containers": [{"name": "c",
                                                                                    "image": SLEEP_IMAGE}]}}}})
    before = _objects(store, "taken")
    _notebook_pod(store, kubelet)
    said = _in_notebook_pod(kubelet, kubeconfig, (
        "from nbcluster.exceptions import ClusterConnectionError\n"
        "from nbcluster.runtime import KubernetesValues, deploy_kubernetes\n"
        "try:\n"
        f"    deploy_kubernetes(KubernetesValues(name='taken', namespace='{NS}'), timeout=5)\n"
        "except ClusterConnectionError as exc:\n"
        "    print(exc)\n"))
    assert "already runs in namespace 'jhub'" in said and "%cluster connect taken-head.jhub.svc:6380" in said, said
    assert _objects(store, "taken") == before
