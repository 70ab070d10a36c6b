"""Request bodies and the Cluster JSON, without processes."""

from __future__ import annotations

import pytest

from nbcluster.runtime import KubernetesOptions
from nbcluster.server_ext.models import (
    BadRequest,
    ClusterRecord,
    ClusterSpec,
    Scale,
    cluster_json,
    notebook_path,
    parse_attach,
    parse_create,
    parse_scale,
)
from nbcluster.state import AutoscalerState, JobState, NodeState, NodeTypeState, machine_memory


def test_create_defaults_and_fields() -> None:
    defaults = ClusterSpec(num_cpus=2.0, workers=1, worker_cpus=1.0, idle_timeout_s=5.0)
    assert parse_create({}, defaults) == (None, defaults)
    name, spec = parse_create({"name": "a", "adapt": {"minimum": 0, "maximum": 3}, "worker_cpus": 2}, defaults)
    assert name == "a" and spec.adapt == (0, 3) and spec.workers is None and spec.worker_cpus == 2.0
    config = spec.autoscaling("a")
    assert config["available_node_types"]["worker"] == {"resources": {"CPU": 2.0}, "min_workers": 0, "max_workers": 3}
    assert config["idle_timeout_minutes"] == 5.0 / 60 and config["provider"] == {"type": "local"}
    _, spec = parse_create({"autoscaling_config": {"available_node_types": {}}}, defaults)
    assert spec.autoscaling("b")["cluster_name"] == "b"
    assert ClusterSpec.from_json(spec.to_json()) == spec


@pytest.mark.parametrize("body, field", [
    ({"workers": True}, "workers"), ({"workers": 1.5}, "workers"), ({"workers": 100000}, "workers"),
    ({"num_cpus": float("nan")}, "num_cpus"), ({"worker_cpus": 0}, "worker_cpus"),
    ({"adapt": {"minimum": 1}}, "adapt"), ({"name": ""}, "name"), ({"name": "-x"}, "name"),
    ({"name": "x" * 65}, "name"), ({"autoscaling_config": {}, "worker_cpus": 1}, "worker_cpus"),
])
def test_create_refuses(body: dict, field: str) -> None:
    with pytest.raises(BadRequest) as info:
        parse_create(body, ClusterSpec())
    assert info.value.field == field and field in str(info.value)


def test_create_on_kubernetes_takes_the_magics_options_and_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    import getpass

    monkeypatch.setattr(getpass, "getuser", lambda: "Ada.L")
    name, options = parse_create({"provider": "kubernetes", "namespace": "ml"}, ClusterSpec())
    assert name == "nb-ada-l" and options == KubernetesOptions("nb-ada-l", "ml")  # the magic's defaults
    assert (options.workers_max, options.worker_cpus, options.timeout) == (4, 1.0, 300.0)
    body = {"provider": "kubernetes", "name": "demo", "namespace": "ml", "image": "r.example/nb:1", "workers_max": 2,
            "worker_cpus": 0.5, "timeout": 60}
    name, options = parse_create(body, ClusterSpec())
    assert name == "demo" and options.to_json() == {k: v for k, v in body.items() if k != "provider"}
    assert options.address == "demo-head.ml.svc:6380" and options.values.cpu == 0.5


@pytest.mark.parametrize("body, field, says", [
    ({"provider": "aws"}, "provider", "provider must be one of 'local', 'kubernetes'"),
    ({"name": "Demo_1"}, "name", "name must be at most 40 lowercase letters"),
    ({"name": "x" * 41}, "name", "at most 40"),
    ({"namespace": "ML"}, "namespace", "namespace must be at most 63 lowercase letters"),
    ({"image": "a b"}, "image", "image must be an image reference"),
    ({"workers_max": -1}, "workers_max", "workers_max must be a whole number >= 0"),
    ({"workers_max": "2"}, "workers_max", "got '2'"),
    ({"worker_cpus": 0}, "worker_cpus", "worker_cpus must be a number > 0"),
    ({"timeout": True}, "timeout", "timeout must be a number > 0"),
    ({"workers": 2}, "workers", "workers is for a local cluster; a cluster on Kubernetes takes name, namespace"),
    ({"adapt": {"minimum": 0, "maximum": 1}}, "adapt", "adapt is for a local cluster"),
    ({"replicas": 2}, "replicas", "unknown field 'replicas'"),
])
def test_create_on_kubernetes_refuses(body: dict, field: str, says: str) -> None:
    with pytest.raises(BadRequest) as info:
        parse_create({"provider": "kubernetes", "name": "demo", "namespace": "ml", **body}, ClusterSpec())
    assert info.value.field == field and says in str(info.value), str(info.value)


def test_a_local_create_refuses_the_kubernetes_fields() -> None:
    with pytest.raises(BadRequest) as info:
        parse_create({"namespace": "ml"}, ClusterSpec())
    assert info.value.field == "namespace" and '"provider": "kubernetes"' in str(info.value)


def test_scale_and_attach() -> None:
    assert parse_scale({"workers": 3}) == Scale(3, 3)
    assert parse_scale({"adapt": {"minimum": 1, "maximum": 4}}) == Scale(1, 4)
    for body in ({}, {"workers": 1, "adapt": {"minimum": 0, "maximum": 1}}, {"workers": -1}, "3"):
        with pytest.raises(BadRequest):
            parse_scale(body)
    request = parse_attach({"name": "x", "address": "10.0.0.1:6380", "token": " t "})
    assert (request.address, request.token) == ("10.0.0.1:6380", "t")
    with pytest.raises(BadRequest, match="address"):
        parse_attach({"name": "x", "address": "10.0.0.1:99999", "token": "t"})


def _node(state: str, cpu: float, free: float, head: bool = False, host: str = "", used: int = 0,
          total: int = 0, node_id: str = "n") -> NodeState:
    return NodeState(node_id=node_id, state=state, address="", node_ip="", hostname=host, is_head=head,
                     resources_total={"CPU": cpu, "node:1.2.3.4": 1.0}, resources_available={"CPU": free},
                     object_store_used=0, object_store_capacity=0, num_workers=0, tasks_running=0,
                     pending_demand=[], start_time=0, end_time=0, death_reason="", node_type="",
                     memory_used=used, memory_total=total)


def test_physical_memory_counts_each_machine_once() -> None:
    gib = 1 << 30
    nodes = [
        _node("ALIVE", 1, 1, True, "box-a", 10 * gib, 46 * gib, "a1"),  # three nodes on one machine
        _node("ALIVE", 1, 1, False, "box-a", 11 * gib, 46 * gib, "a2"),
        _node("ALIVE", 1, 1, False, "box-a", 10 * gib, 46 * gib, "a3"),
        _node("ALIVE", 1, 1, False, "box-b", 2 * gib, 8 * gib, "b1"),
        _node("DEAD", 1, 1, False, "box-c", 1 * gib, 100 * gib, "c1"),  # gone: not counted
        _node("ALIVE", 1, 1, False, "box-d", 0, 0, "d1"),  # not reported yet: not counted
    ]
    assert machine_memory(nodes) == {"used": 13 * gib, "total": 54 * gib, "machines": 2}
    out = cluster_json(ClusterRecord("demo", "127.0.0.1:1", "/t", "created"), "running", nodes)
    assert out["memory"] == {"used": 13 * gib, "total": 54 * gib, "machines": 2}
    assert "memory" not in out["resources"]  # the logical resource stays in resources (none given here)
    assert cluster_json(ClusterRecord("demo", "127.0.0.1:1", "/t", "created"), "unreachable")["memory"] == {
        "used": 0, "total": 0, "machines": 0}


def test_jobs_proxy_talks_only_to_the_clusters_head() -> None:
    from nbcluster.server_ext.entries import reachable_jobs_address as _jobs_address

    assert _jobs_address("0.0.0.0:8265", "10.0.0.5:6380") == "10.0.0.5:8265"
    assert _jobs_address("127.0.0.1:8265", "10.0.0.5:6380") == "10.0.0.5:8265"  # the head's own loopback
    assert _jobs_address("169.254.169.254:80", "10.0.0.5:6380") == "10.0.0.5:80"  # never elsewhere
    assert _jobs_address("", "10.0.0.5:6380") == ""


def test_cluster_json() -> None:
    record = ClusterRecord("demo", "127.0.0.1:1", "/t", "created", {"workers": 1})
    autoscaler = AutoscalerState(enabled=True, node_types=[NodeTypeState("worker", {"CPU": 1}, 1, 0, 0, 1, 1)])
    jobs = [JobState("j1", "DRIVER", "RUNNING", "", 1, 0, 0, "", "")]
    out = cluster_json(record, "running", [_node("ALIVE", 2, 1.5, True), _node("DEAD", 1, 1)], autoscaler, jobs)
    assert out["nodes"] == {"alive": 1, "total": 2}
    assert out["resources"] == {"CPU": {"used": 0.5, "total": 2.0}}
    assert out["workers"] == {"node_type": "worker", "running": 1, "pending": 0, "min": 1, "max": 1}
    assert out["drivers"] == []  # a driver that does not say which kernel it is
    assert cluster_json(record, "unreachable")["workers"] is None
    kernel = JobState("j2", "DRIVER", "RUNNING", "", 1, 0, 0, "", "",
                      metadata={"kernel_id": "k1", "notebook_path": "/srv/root/a/b.ipynb"})
    finished = JobState("j3", "DRIVER", "SUCCEEDED", "", 1, 0, 0, "", "", metadata={"kernel_id": "k2"})
    out = cluster_json(record, "running", [], None, [kernel, finished], root_dir="/srv/root")
    assert out["drivers"] == [{"kernel_id": "k1", "notebook_path": "a/b.ipynb", "job_id": "j2"}]
    assert notebook_path("/elsewhere/x.ipynb", "/srv/root") == "/elsewhere/x.ipynb"
    assert notebook_path("a/x.ipynb", "/srv/root") == "a/x.ipynb"
    assert out["provider"] == "local"
    kube = ClusterRecord("demo", "demo-head.ml.svc:6380", "/t", "created", {"namespace": "ml"}, provider="kubernetes")
    assert cluster_json(kube, "running")["provider"] == "kubernetes"
    assert cluster_json(ClusterRecord("a", "h:1", "/t", "attached"), "running")["provider"] is None
