"""Deploy a cluster on Kubernetes from Python, and delete it: what
``%cluster start --provider kubernetes`` does from a notebook that runs in a pod
(JupyterHub on Kubernetes), with the notebook's own credentials.

:func:`deploy_kubernetes` creates the objects of :func:`~.manifests.manifests` through the
official client, with a token and CA made here (the token is written to a private file
for this process to connect with, and is otherwise only in the Secret), waits until the
head pod is ready, and returns a :class:`KubernetesCluster` whose ``address`` a driver
connects to in client mode. :meth:`KubernetesCluster.shutdown` deletes every object
labelled with the cluster's name — the head's and the worker pods the autoscaler made.

The notebook's service account needs, in the namespace: ``create``, ``get``,
``list``, ``delete`` of serviceaccounts, roles, rolebindings, secrets, configmaps,
services, persistentvolumeclaims, deployments and pods (``docs/kubernetes.md``).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nbcluster.exceptions import ClusterConnectionError
from nbcluster.runtime import tls
from nbcluster.runtime.kubernetes import manifests as mf
from nbcluster.runtime.kubernetes.api import api_client, api_message
from nbcluster.runtime.kubernetes.values import LABEL_CLUSTER, LABEL_COMPONENT, Values

__all__ = ["KubernetesCluster", "KubernetesValues", "delete", "deploy_kubernetes"]

#: The settings of a cluster on Kubernetes (the options of ``nbcluster kubernetes manifests``).
KubernetesValues = Values

#: kind → (the client's API class, the suffix of its ``create_``/``list_``/``delete_`` methods).
_KINDS = {
    "ServiceAccount": ("CoreV1Api", "namespaced_service_account"),
    "Role": ("RbacAuthorizationV1Api", "namespaced_role"),
    "RoleBinding": ("RbacAuthorizationV1Api", "namespaced_role_binding"),
    "Secret": ("CoreV1Api", "namespaced_secret"),
    "ConfigMap": ("CoreV1Api", "namespaced_config_map"),
    "Service": ("CoreV1Api", "namespaced_service"),
    "PersistentVolumeClaim": ("CoreV1Api", "namespaced_persistent_volume_claim"),
    "Deployment": ("AppsV1Api", "namespaced_deployment"),
    "Pod": ("CoreV1Api", "namespaced_pod"),
}
#: Deleted in this order: what makes pods first, then the pods, then the rest.
_DELETE_ORDER = ("Deployment", "Pod", "Service", "PersistentVolumeClaim", "ConfigMap", "Secret", "RoleBinding",
                 "Role", "ServiceAccount")


@dataclass
class KubernetesCluster:
    """A cluster this process deployed on Kubernetes."""

    values: Values
    token_file: Path
    api: Any = field(repr=False)

    @property
    def address(self) -> str:
        """Where a driver connects (client mode, through the head's Service)."""
        return f"nbcluster://{self.values.head_address}"

    def shutdown(self) -> None:
        """Delete every object of the cluster (and the token file)."""
        try:
            delete(self.api, self.values)
        finally:
            self.token_file.unlink(missing_ok=True)


def _call(api: Any, kind: str, verb: str, *args: Any, **kwargs: Any) -> Any:
    import kubernetes

    cls, suffix = _KINDS[kind]
    return getattr(getattr(kubernetes.client, cls)(api), f"{verb}_{suffix}")(*args, **kwargs)


def deploy_kubernetes(values: Values, *, kubeconfig: str | None = None, context: str | None = None,
           timeout: float = 300.0) -> KubernetesCluster:
    """Create the cluster ``values`` describes and wait (up to ``timeout`` s) until its
    head pod is ready. ClusterConnectionError saying why when it cannot (what the API
    server refused, why the head pod does not start); what was created is deleted then."""
    from kubernetes.client.exceptions import ApiException

    try:
        api = api_client(kubeconfig, context)
    except ValueError as exc:
        raise ClusterConnectionError(f"--provider kubernetes: {exc}") from None
    where = f"namespace {values.namespace!r}"
    try:
        found = _call(api, "Deployment", "list", values.namespace, label_selector=_selector(values))
    except ApiException as exc:
        raise ClusterConnectionError(f"--provider kubernetes: cannot list deployments in {where}: "
                                     f"{api_message(exc)}") from None
    if found.items:
        raise ClusterConnectionError(
            f"a cluster named {values.name!r} already runs in {where}: connect to it with %cluster connect "
            f"{values.head_address}, or choose another --name")
    token = secrets.token_hex(16)
    ca_pem, ca_key = tls.make_ca(f"{values.name}.{values.namespace}")
    fd, path = tempfile.mkstemp(prefix=f"nbcluster-{values.name}-", suffix=".token")  # 0600
    with os.fdopen(fd, "wb") as f:
        f.write(tls.join_token_file(token, ca_pem))
    cluster = KubernetesCluster(values, Path(path), api)
    try:
        for obj in mf.manifests(values, token=token, ca=(ca_pem, ca_key)):
            try:
                _call(api, obj["kind"], "create", values.namespace, obj)
            except ApiException as exc:
                raise ClusterConnectionError(
                    f"--provider kubernetes: the API server refused to create {obj['kind']} "
                    f"{obj['metadata']['name']} in {where}: {api_message(exc)}") from None
        _wait_ready(api, values, timeout)
    except BaseException:
        with contextlib.suppress(Exception):
            cluster.shutdown()
        raise
    return cluster


def _selector(values: Values, component: str = "") -> str:
    return f"{LABEL_CLUSTER}={values.name}" + (f",{LABEL_COMPONENT}={component}" if component else "")


def _wait_ready(api: Any, values: Values, timeout: float) -> None:
    from nbcluster.runtime.autoscaler.kubernetes_provider import ended_reason, waiting_reason

    deadline = time.monotonic() + timeout
    why = "no head pod was made (is the Deployment controller running?)"
    while time.monotonic() < deadline:
        pods = _call(api, "Pod", "list", values.namespace, label_selector=_selector(values, "head")).items
        for pod in (api.sanitize_for_serialization(p) for p in pods):
            status = pod.get("status") or {}
            if status.get("phase") in ("Failed", "Succeeded"):
                raise ClusterConnectionError(f"the head {ended_reason(pod)}")
            if any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or []):
                return
            why = waiting_reason(pod) or f"its pod {pod['metadata']['name']} is {status.get('phase') or 'Pending'}"
        time.sleep(0.5)
    raise ClusterConnectionError(f"the head of {values.name!r} was not ready within {timeout:g} s: {why}")


def delete(api: Any, values: Values) -> list[str]:
    """Delete every object labelled with the cluster's name; what was deleted
    (``Kind/name``). Objects already gone are fine."""
    from kubernetes.client.exceptions import ApiException

    deleted = []
    for kind in _DELETE_ORDER:
        try:
            items = _call(api, kind, "list", values.namespace, label_selector=_selector(values)).items
        except ApiException as exc:
            if exc.status == 404:
                continue
            raise
        for item in items:
            try:
                _call(api, kind, "delete", item.metadata.name, values.namespace)
                deleted.append(f"{kind}/{item.metadata.name}")
            except ApiException as exc:
                if exc.status != 404:
                    raise
    return deleted
