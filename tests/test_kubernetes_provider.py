"""The ``kubernetes`` node provider against the stand-in (``tests/kube/``), in this
process: pods whose container only sleeps (no cluster), so each guarantee of the
provider is checked on its own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from nbcluster.runtime.autoscaler.config import ProviderConfig
from nbcluster.runtime.autoscaler.kubernetes_provider import KubernetesNodeProvider
from nbcluster.runtime.autoscaler.providers import ClusterContext, LaunchRequest

from .conftest import wait_for
from .kube.apiserver import ApiServer, Store
from .kube.kubelet import SLEEP_IMAGE, Kubelet
from .netns import Hosts, require_netns

NS = "ml"


class Stand:
    def __init__(self, tmp: Path) -> None:
        self.hosts = Hosts()
        self.store = Store()
        self.api = ApiServer(self.store)
        self.kubeconfig = self.api.write_kubeconfig(tmp / "kubeconfig", NS)
        self.kubelet = Kubelet(self.store, self.hosts, NS, self.kubeconfig, cpu=2)
        self.store.create("secrets", NS, {"metadata": {"name": "demo-token"}, "data": {"token": "dG9rZW4K"}})
        self.providers: list[KubernetesNodeProvider] = []

    def provider(self) -> KubernetesNodeProvider:
        config = ProviderConfig("kubernetes", {"kubeconfig": str(self.kubeconfig), "image": SLEEP_IMAGE})
        cluster = ClusterContext("10.77.0.9:6380", "", "t" * 32, Path("/nonexistent"), "{}", cluster_name="demo")
        provider = KubernetesNodeProvider(config, cluster)
        self.providers.append(provider)
        return provider

    def phase(self, name: str) -> str:
        return self.store.get("pods", NS, name)["status"].get("phase", "")

    def close(self) -> None:
        for provider in self.providers:
            provider.close()
        self.kubelet.close()
        self.api.close()
        self.hosts.close()


@pytest.fixture
def stand(tmp_path: Path) -> Iterator[Stand]:
    require_netns()
    stand = Stand(tmp_path)
    try:
        yield stand
    finally:
        stand.close()


def request(instance: str, cpu: float = 1) -> LaunchRequest:
    # `sleep` as PID 1 ignores SIGTERM (as in a container): killed after the grace period.
    return LaunchRequest(instance, "worker", {"CPU": cpu}, {"terminationGracePeriodSeconds": 1})


def test_launch_is_idempotent_and_terminate_deletes_the_pod(stand: Stand) -> None:
    provider = stand.provider()
    provider.launch(request("aaaaaaaaaaaa"))
    provider.launch(request("aaaaaaaaaaaa"))
    pods, _ = stand.store.list("pods", NS)
    assert [p["metadata"]["name"] for p in pods] == ["demo-worker-aaaaaaaaaaaa"]
    assert pods[0]["metadata"]["labels"]["nbcluster.io/cluster"] == "demo"
    assert [n.instance_id for n in provider.non_terminated()] == ["aaaaaaaaaaaa"]
    wait_for(lambda: stand.phase("demo-worker-aaaaaaaaaaaa") == "Running", timeout=20)
    provider.terminate("aaaaaaaaaaaa")
    provider.terminate("aaaaaaaaaaaa")
    provider.terminate("unknown")
    wait_for(lambda: not provider.non_terminated(), timeout=40, message="the pod gone")
    assert provider.poll_errors() == []  # the autoscaler ended it: no error
    assert sum(1 for m, p in stand.store.requests if m == "DELETE") == 1


def test_unschedulable_pods_say_why_and_ended_pods_are_reported_once(stand: Stand) -> None:
    provider = stand.provider()
    stand.store.delete("secrets", NS, "demo-token")
    provider.launch(request("ffffffffffff"))
    why = wait_for(lambda: provider.pending_reasons().get("ffffffffffff"), timeout=20)
    assert why == ('its pod demo-worker-ffffffffffff is waiting (ContainerCreating): MountVolume.SetUp failed for '
                   'volume "token" : secret "demo-token" not found')
    provider.terminate("ffffffffffff")
    stand.store.create("secrets", NS, {"metadata": {"name": "demo-token"}, "data": {"token": "dG9rZW4K"}})
    provider.launch(request("bbbbbbbbbbbb", cpu=4))  # more than the node's 2 CPUs
    why = wait_for(lambda: provider.pending_reasons().get("bbbbbbbbbbbb"), timeout=20)
    assert why == ("its pod demo-worker-bbbbbbbbbbbb cannot be scheduled (Unschedulable): "
                   "0/1 nodes are available: 1 Insufficient cpu.")
    provider.launch(request("cccccccccccc"))
    wait_for(lambda: stand.phase("demo-worker-cccccccccccc") == "Running", timeout=20)
    stand.kubelet.oom_kill("demo-worker-cccccccccccc")
    errors = wait_for(lambda: provider.poll_errors(), timeout=20)
    assert [(e.request_id, e.message) for e in errors] == [
        ("cccccccccccc", "its pod demo-worker-cccccccccccc was OOM-killed (container node went over its memory "
                         "limit)")]
    assert provider.poll_errors() == []
    wait_for(lambda: "cccccccccccc" not in {n.instance_id for n in provider.non_terminated()}, timeout=20)
    stand.store.delete("pods", NS, "demo-worker-bbbbbbbbbbbb")  # someone else deletes a pod
    errors = wait_for(lambda: provider.poll_errors(), timeout=20)
    assert [e.message for e in errors] == ["its pod demo-worker-bbbbbbbbbbbb was deleted (not by the autoscaler)"]


def test_a_new_provider_finds_running_pods_and_deletes_ended_ones(stand: Stand) -> None:
    first = stand.provider()
    for instance in ("dddddddddddd", "eeeeeeeeeeee"):
        first.launch(request(instance))
    wait_for(lambda: all(stand.phase(f"demo-worker-{i * 12}") == "Running" for i in "de"), timeout=20)
    first.close()  # the head goes; its pods stay
    stand.kubelet.evict("demo-worker-eeeeeeeeeeee")
    wait_for(lambda: stand.phase("demo-worker-eeeeeeeeeeee") == "Failed", timeout=20)
    posts = sum(1 for m, _ in stand.store.requests if m == "POST")
    second = stand.provider()
    assert [n.instance_id for n in second.non_terminated()] == ["dddddddddddd"]
    wait_for(lambda: [p["metadata"]["name"] for p in stand.store.list("pods", NS)[0]] == ["demo-worker-dddddddddddd"],
             timeout=20, message="the ended pod deleted")
    assert second.poll_errors() == []  # an earlier head's pod: not this head's error
    assert sum(1 for m, _ in stand.store.requests if m == "POST") == posts
