"""The manifests of a cluster on Kubernetes, made from one :class:`~.values.Values`.

``nbcluster kubernetes manifests`` prints them (``kubectl apply -f -`` takes them):

- ``ServiceAccount``, ``Role`` and ``RoleBinding`` for the head's autoscaler: pods
  ``create``, ``delete``, ``get``, ``list``, ``watch`` in the namespace — what the
  ``kubernetes`` node provider does — and ``get`` of the head's own Deployment (by
  name), so that worker pods can name it their owner and are deleted with it.
- ``Secret`` ``<name>-token``: the token file (the token, then the cluster CA's
  certificate) every pod mounts read-only; ``Secret`` ``<name>-ca``: the CA's
  certificate and key, mounted by the head alone. Both are made here, once: a head
  that restarts is the same cluster to its nodes and its clients. They never appear
  in an environment, a command line or a log.
- ``ConfigMap`` ``<name>-config``: the cluster YAML (``provider: type: kubernetes``).
- ``Service`` ``<name>-head``: the GCS, node manager, object and jobs ports.
- ``PersistentVolumeClaim`` ``<name>-head-state`` (ReadWriteOnce): the GCS's tables, so
  that a head pod that is deleted or rescheduled takes the cluster back — its nodes,
  actors and jobs (``docs/kubernetes.md``).
- ``Deployment`` ``<name>-head``: one replica (``Recreate``: never two heads), running
  ``nbcluster kubernetes head``, with TCP readiness and liveness probes on the GCS port.
"""

from __future__ import annotations

import base64
import secrets
from typing import Any

import yaml

from nbcluster.runtime import tls
from nbcluster.runtime.kubernetes import values as v
from nbcluster.runtime.kubernetes.pods import USER_ID

__all__ = ["cluster_config", "manifests", "render"]


def cluster_config(values: v.Values) -> dict[str, Any]:
    """The cluster YAML the head runs with (in the ConfigMap)."""
    requests: dict[str, Any] = {"cpu": f"{int(values.cpu * 1000)}m", "memory": values.memory}
    limits = dict(requests)
    worker: dict[str, Any] = {"CPU": values.cpu}
    if values.gpu:
        worker["GPU"] = values.gpu
        limits["nvidia.com/gpu"] = str(values.gpu)
    return {
        "cluster_name": values.name,
        "max_workers": values.workers_max,
        "idle_timeout_minutes": values.idle_timeout_minutes,
        "head_node_type": "head",
        "available_node_types": {
            "head": {"resources": {"CPU": 0}},  # the head schedules; workers run tasks
            "worker": {"resources": worker, "min_workers": values.workers_min, "max_workers": values.workers_max,
                       "node_config": {"resources": {"requests": requests, "limits": limits}}},
        },
        "provider": {
            "type": "kubernetes",
            "namespace": values.namespace,
            "head_service": values.head,
            "token_secret": values.token_secret,
            "image": values.image,
            "image_pull_policy": values.image_pull_policy,
            "head_deployment": values.head,
        },
        "tls": True,
    }


def _meta(values: v.Values, name: str, component: str) -> dict[str, Any]:
    return {"name": name, "namespace": values.namespace, "labels": v.labels(values.name, component)}


def _rbac(values: v.Values) -> list[dict[str, Any]]:
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(values, values.head, "head")},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": _meta(values, values.role, "head"),
         "rules": [
             {"apiGroups": [""], "resources": ["pods"], "verbs": ["create", "delete", "get", "list", "watch"]},
             {"apiGroups": ["apps"], "resources": ["deployments"], "resourceNames": [values.head], "verbs": ["get"]},
         ]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": _meta(values, values.role, "head"),
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": values.role},
         "subjects": [{"kind": "ServiceAccount", "name": values.head, "namespace": values.namespace}]},
    ]


def _secrets(values: v.Values, token: str, ca_pem: bytes, ca_key: bytes) -> list[dict[str, Any]]:
    def data(files: dict[str, bytes]) -> dict[str, str]:
        return {k: base64.b64encode(b).decode() for k, b in files.items()}

    return [
        {"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": _meta(values, values.token_secret, "head"),
         "data": data({v.TOKEN_FILE: tls.join_token_file(token, ca_pem)})},
        {"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": _meta(values, values.ca_secret, "head"),
         "data": data({v.CA_CERT_FILE: ca_pem, v.CA_KEY_FILE: ca_key})},
    ]


def _ports(values: v.Values) -> list[tuple[str, int]]:
    return [("gcs", values.gcs_port), ("node-manager", values.node_manager_port),
            ("objects", values.object_port), ("jobs", values.jobs_port)]


def _head_pod(values: v.Values) -> dict[str, Any]:
    probe = {"tcpSocket": {"port": "gcs"}, "periodSeconds": 10}
    memory = {"cpu": f"{int(values.head_cpu * 1000)}m", "memory": values.head_memory}
    container = {
        "name": "head",
        "image": values.image,
        "imagePullPolicy": values.image_pull_policy,
        "command": ["nbcluster", "kubernetes", "head", "--port", str(values.gcs_port),
                    "--node-manager-port", str(values.node_manager_port),
                    "--object-manager-port", str(values.object_port), "--dashboard-port", str(values.jobs_port),
                    "--state-dir", v.STATE_DIR],
        "ports": [{"name": n, "containerPort": p} for n, p in _ports(values)],
        "resources": {"requests": memory, "limits": memory},
        "readinessProbe": {**probe, "initialDelaySeconds": 3},
        "livenessProbe": {**probe, "initialDelaySeconds": 30, "failureThreshold": 6},
        "volumeMounts": [{"name": "token", "mountPath": v.TOKEN_DIR, "readOnly": True},
                         {"name": "ca", "mountPath": v.CA_DIR, "readOnly": True},
                         {"name": "config", "mountPath": v.CONFIG_DIR, "readOnly": True},
                         {"name": "state", "mountPath": v.STATE_DIR},
                         {"name": "dshm", "mountPath": "/dev/shm"}],
        "securityContext": {"allowPrivilegeEscalation": False, "runAsNonRoot": True},
    }
    return {
        "metadata": {"labels": v.labels(values.name, "head")},
        "spec": {
            "serviceAccountName": values.head,
            "enableServiceLinks": False,
            "terminationGracePeriodSeconds": 30,
            "securityContext": {"runAsUser": USER_ID, "runAsGroup": USER_ID, "fsGroup": USER_ID, "runAsNonRoot": True},
            "containers": [container],
            "volumes": [{"name": "token", "secret": {"secretName": values.token_secret, "defaultMode": 0o440}},
                        {"name": "ca", "secret": {"secretName": values.ca_secret, "defaultMode": 0o440}},
                        {"name": "config", "configMap": {"name": values.config_map}},
                        {"name": "state", "persistentVolumeClaim": {"claimName": values.state_claim}},
                        {"name": "dshm", "emptyDir": {"medium": "Memory"}}],
        },
    }


def _state_claim(values: v.Values) -> dict[str, Any]:
    spec: dict[str, Any] = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": values.state_size}}}
    if values.storage_class:
        spec["storageClassName"] = values.storage_class
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": _meta(values, values.state_claim, "head"),
            "spec": spec}


def manifests(values: v.Values, *, token: str | None = None, ca: tuple[bytes, bytes] | None = None) -> list[dict[str, Any]]:
    """Every object of the cluster, in the order to apply them. ``token`` and ``ca``
    (certificate, key): the cluster's credentials (default: new ones)."""
    token = token or secrets.token_hex(16)
    ca_pem, ca_key = ca or tls.make_ca(f"{values.name}.{values.namespace}")
    selector = v.labels(values.name, "head")
    return [
        *_rbac(values),
        *_secrets(values, token, ca_pem, ca_key),
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta(values, values.config_map, "head"),
         "data": {v.CONFIG_FILE: yaml.safe_dump(cluster_config(values), sort_keys=False)}},
        {"apiVersion": "v1", "kind": "Service", "metadata": _meta(values, values.head, "head"),
         "spec": {"selector": selector, "ports": [{"name": n, "port": p, "targetPort": n} for n, p in _ports(values)]}},
        _state_claim(values),
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": _meta(values, values.head, "head"),
         "spec": {"replicas": 1, "strategy": {"type": "Recreate"}, "selector": {"matchLabels": selector},
                  "template": _head_pod(values)}},
    ]


def render(objects: list[dict[str, Any]]) -> str:
    """The objects as one multi-document YAML stream."""
    return yaml.safe_dump_all(objects, sort_keys=False)
