"""The options of a cluster a notebook (or its Jupyter server) deploys on Kubernetes,
checked in one place (``nbcluster.runtime.kubernetes_options``): defaults, and errors
that name the option as each caller spells it. No API server."""

from __future__ import annotations

import getpass
import json
from pathlib import Path

import pytest

from nbcluster.runtime import KubernetesOptionError, KubernetesOptions, KubernetesValues, kubernetes_options
from nbcluster.runtime.kubernetes import options as module


@pytest.fixture
def outside_a_pod(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No pod namespace file; the kubeconfig a test writes is the default one."""
    import kubernetes.config.kube_config as kube_config

    monkeypatch.setattr(module, "POD_NAMESPACE", tmp_path / "no-pod" / "namespace")
    kubeconfig = tmp_path / "kubeconfig"
    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(kubeconfig))
    return kubeconfig


def test_defaults_are_the_magics(outside_a_pod: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(getpass, "getuser", lambda: "Jovyan_1")
    options = kubernetes_options()
    assert options == KubernetesOptions("nb-jovyan-1", "default")
    assert (options.image, options.workers_max, options.worker_cpus, options.timeout) == (
        KubernetesValues.image, 4, 1.0, 300.0)
    assert options.values == KubernetesValues(name="nb-jovyan-1", namespace="default", workers_max=4, cpu=1.0)


def test_the_namespace_is_the_pods_else_the_kubeconfig_contexts(outside_a_pod: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    outside_a_pod.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "k", "cluster": {"server": "https://k.example"}}], "users": [{"name": "u", "user": {}}],
        "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u", "namespace": "team-a"}}]}))
    assert kubernetes_options(name="x").namespace == "team-a"
    pod = outside_a_pod.parent / "pod-namespace"
    pod.write_text("jhub\n")
    monkeypatch.setattr(module, "POD_NAMESPACE", pod)
    assert kubernetes_options(name="x").namespace == "jhub"
    assert kubernetes_options(name="x", namespace="ml").namespace == "ml"


def test_a_user_name_that_makes_no_name_still_gives_one(outside_a_pod: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def nobody() -> str:
        raise KeyError("getpwuid(): uid not found: 1000680000")

    monkeypatch.setattr(getpass, "getuser", nobody)
    assert kubernetes_options(namespace="ml").name == "nb-user"
    monkeypatch.setattr(getpass, "getuser", lambda: "A" * 60)
    assert kubernetes_options(namespace="ml").name == "nb-" + "a" * 37


@pytest.mark.parametrize("given, option, problem", [
    ({"name": "Bad_Name"}, "name", "must be at most 40 lowercase letters"),
    ({"namespace": "-ml"}, "namespace", "must be at most 63 lowercase letters"),
    ({"image": ""}, "image", "must be an image reference"),
    ({"workers_max": 1.5}, "workers_max", "must be a whole number >= 0; got 1.5"),
    ({"worker_cpus": float("inf")}, "worker_cpus", "must be a number > 0"),
    ({"timeout": -1}, "timeout", "must be a number > 0; got -1"),
])
def test_a_bad_option_is_named_as_each_caller_spells_it(given: dict, option: str, problem: str) -> None:
    with pytest.raises(KubernetesOptionError) as info:
        kubernetes_options(**{"name": "demo", "namespace": "ml", **given})
    error = info.value
    assert (error.option, isinstance(error, ValueError)) == (option, True)
    assert str(error).startswith(f"--{option.replace('_', '-')} {problem}")  # the magic's flag
    assert error.spelled(option).startswith(f"{option} {problem}")  # the REST API's field
