"""The manifests ``nbcluster kubernetes manifests`` prints, and the worker pods the
provider creates, checked against the official Kubernetes schemas (kubernetes-validate)."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest
import yaml

from nbcluster.runtime import tls
from nbcluster.runtime.autoscaler.config import load_config
from nbcluster.runtime.autoscaler.providers import provider_class
from nbcluster.runtime.kubernetes import manifests as mf
from nbcluster.runtime.kubernetes.pods import PodError, PodSettings, parse_quantity, worker_pod
from nbcluster.runtime.kubernetes.values import Values

#: A recent Kubernetes release the schemas are taken from.
K8S_VERSION = "1.33"


def validate(objects: list[dict]) -> None:
    try:
        import kubernetes_validate
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("kubernetes-validate is not installed (pip install -e '.[test]'); CI must run this")
        pytest.skip("kubernetes-validate is not installed")
    for obj in objects:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


def by_kind(objects: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for obj in objects:
        out.setdefault(obj["kind"], []).append(obj)
    return out


@pytest.mark.parametrize("values", [Values(), Values(name="ml-demo", namespace="team-a", image="reg.example/nb:1",
                                                     workers_max=8, workers_min=1, cpu=2, memory="4Gi", gpu=1)])
def test_every_manifest_is_valid_kubernetes(values: Values) -> None:
    objects = mf.manifests(values)
    validate(objects)
    kinds = by_kind(objects)
    assert sorted(kinds) == ["ConfigMap", "Deployment", "PersistentVolumeClaim", "Role", "RoleBinding", "Secret",
                             "Service", "ServiceAccount"]
    # The worker pods the provider makes from the ConfigMap's cluster YAML are valid too.
    config = load_config(yaml.safe_load(kinds["ConfigMap"][0]["data"]["cluster.yaml"]))
    assert provider_class(config.provider).__name__ == "KubernetesNodeProvider"
    worker = config.available_node_types["worker"]
    settings = PodSettings(values.name, values.namespace, values.head_address, values.token_secret, values.image)
    request = SimpleNamespace(request_id="abc123def456", node_type="worker", resources=dict(worker.resources),
                              node_config=dict(worker.node_config))
    validate([worker_pod(settings, request)])


def test_rbac_allows_exactly_what_the_provider_does() -> None:
    kinds = by_kind(mf.manifests(Values(name="demo")))
    rules = kinds["Role"][0]["rules"]
    assert rules == [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["create", "delete", "get", "list", "watch"]},
        {"apiGroups": ["apps"], "resources": ["deployments"], "resourceNames": ["demo-head"], "verbs": ["get"]},
    ]
    assert kinds["RoleBinding"][0]["subjects"][0]["name"] == kinds["ServiceAccount"][0]["metadata"]["name"]
    assert kinds["Deployment"][0]["spec"]["template"]["spec"]["serviceAccountName"] == "demo-head"


def test_the_secrets_hold_the_token_file_and_the_ca_and_nothing_leaks_elsewhere() -> None:
    objects = mf.manifests(Values(name="demo"), token="f" * 32)
    kinds = by_kind(objects)
    secrets = {s["metadata"]["name"]: s["data"] for s in kinds["Secret"]}
    token, ca = tls.split_token_file(base64.b64decode(secrets["demo-token"]["token"]))
    assert token == "f" * 32 and ca == base64.b64decode(secrets["demo-ca"]["ca.crt"])
    tls.check_pair(ca, base64.b64decode(secrets["demo-ca"]["ca.key"]), "ca.key")
    others = yaml.safe_dump_all([o for o in objects if o["kind"] != "Secret"])
    assert "f" * 32 not in others  # not in a command, an env or the ConfigMap
    head = kinds["Deployment"][0]["spec"]["template"]["spec"]
    assert not head["containers"][0].get("env")
    assert {v["name"] for v in head["volumes"]} == {"token", "ca", "config", "state", "dshm"}
    assert kinds["Deployment"][0]["spec"]["strategy"] == {"type": "Recreate"}  # never two heads
    # The GCS's tables outlive the pod: on the claim, which the head's command is told of.
    claim = kinds["PersistentVolumeClaim"][0]
    assert claim["metadata"]["name"] == "demo-head-state" and claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert {"name": "state", "persistentVolumeClaim": {"claimName": "demo-head-state"}} in head["volumes"]
    command = head["containers"][0]["command"]
    mount = next(m for m in head["containers"][0]["volumeMounts"] if m["name"] == "state")
    assert command[command.index("--state-dir") + 1] == mount["mountPath"]
    ports = {p["name"]: p["port"] for p in kinds["Service"][0]["spec"]["ports"]}
    assert ports == {"gcs": 6380, "node-manager": 6381, "objects": 6382, "jobs": 8265}


def test_node_config_maps_to_the_pod_and_is_checked() -> None:
    settings = PodSettings("demo", "ml", "demo-head.ml.svc:6380", "demo-token", "img:1")
    config = {"image": "img:gpu", "resources": {"requests": {"cpu": "2", "memory": "8Gi"},
                                                "limits": {"cpu": "2", "memory": "8Gi", "nvidia.com/gpu": "1"}},
              "nodeSelector": {"gpu": "a100"}, "tolerations": [{"key": "gpu", "operator": "Exists"}],
              "env": [{"name": "HF_HOME", "value": "/cache"}],
              "volumes": [{"name": "cache", "emptyDir": {}}], "volumeMounts": [{"name": "cache", "mountPath": "/cache"}]}
    request = SimpleNamespace(request_id="0123456789ab", node_type="gpu_worker",
                              resources={"CPU": 2, "GPU": 1, "accel": 1}, node_config=config)
    pod = worker_pod(settings, request)
    validate([pod])
    spec, container = pod["spec"], pod["spec"]["containers"][0]
    assert pod["metadata"]["name"] == "demo-gpu-worker-0123456789ab"
    assert pod["metadata"]["labels"]["nbcluster.io/node-type"] == "gpu_worker"
    assert spec["nodeSelector"] == {"gpu": "a100"} and spec["tolerations"][0]["key"] == "gpu"
    assert container["image"] == "img:gpu" and {"name": "HF_HOME", "value": "/cache"} in container["env"]
    command = container["command"]
    assert command[command.index("--num-gpus") + 1] == "1" and '{"accel": 1}' in command
    assert command[command.index("--object-store-memory") + 1] == str(int(8 * 2**30 * 0.3))
    with pytest.raises(PodError, match="less than its resources' CPU 4"):
        worker_pod(settings, SimpleNamespace(**{**vars(request), "resources": {"CPU": 4}}))
    with pytest.raises(PodError, match="does not know: instance_type"):
        worker_pod(settings, SimpleNamespace(**{**vars(request), "node_config": {"instance_type": "m5"}}))
    assert parse_quantity("500m") == 0.5 and parse_quantity("2Gi") == 2 * 2**30


def test_a_worker_pod_drains_within_its_grace_period() -> None:
    settings = PodSettings("demo", "ml", "demo-head.ml.svc:6380", "demo-token", "img:1")

    def env(node_config: dict) -> dict:
        request = SimpleNamespace(request_id="0123456789ab", node_type="worker", resources={"CPU": 1},
                                  node_config=node_config)
        pod = worker_pod(settings, request)
        validate([pod])
        return {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}

    assert env({})["NBCLUSTER_DRAIN_TIMEOUT_S"] == "25"  # 30 s to go: 5 of them for stopping
    assert env({"terminationGracePeriodSeconds": 120})["NBCLUSTER_DRAIN_TIMEOUT_S"] == "115"
    assert env({"terminationGracePeriodSeconds": 6})["NBCLUSTER_DRAIN_TIMEOUT_S"] == "4"  # a third to stop
    assert env({"terminationGracePeriodSeconds": 0})["NBCLUSTER_DRAIN_TIMEOUT_S"] == "0"  # no drain
    given = {"env": [{"name": "NBCLUSTER_DRAIN_TIMEOUT_S", "value": "10"}]}
    assert env(given)["NBCLUSTER_DRAIN_TIMEOUT_S"] == "10"  # the node type's own
    with pytest.raises(PodError, match="terminationGracePeriodSeconds of worker must be a whole number"):
        env({"terminationGracePeriodSeconds": "30s"})


def test_the_command_prints_the_manifests_and_refuses_bad_names() -> None:
    run = [sys.executable, "-m", "nbcluster.runtime.cli", "kubernetes", "manifests"]
    proc = subprocess.run([*run, "--name", "demo", "--workers-max", "3"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    objects = list(yaml.safe_load_all(proc.stdout))
    assert [o["kind"] for o in objects][-1] == "Deployment"
    assert "do not keep this output" in proc.stderr
    bad = subprocess.run([*run, "--name", "Demo_1"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and "--name must be" in bad.stderr
