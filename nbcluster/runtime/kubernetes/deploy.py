"""Deploy a cluster on Kubernetes from Python, and delete it: what
``%cluster start --provider kubernetes`` does from a notebook that runs in a pod
(JupyterHub on Kubernetes), with the notebook's own credentials.

:func:`deploy_kubernetes` creates the objects of :func:`~.manifests.manifests` through the
official client, with a token and CA made here (the token is written to a private file
for this process to connect with, and is otherwise only in the Secret), waits until the
head pod is ready, and returns a :class:`KubernetesCluster` whose ``address`` a driver
connects to in client mode. :meth:`KubernetesCluster.shutdown` deletes every object
labelled with the cluster's name — the head's and the worker pods the autoscaler made;
a process other than the one that deployed it (a restarted Jupyter server) deletes it
the same way with a :class:`KubernetesCluster` made from its values. What the user
chooses (name, namespace, image, ...) is checked by
:func:`~.options.kubernetes_options`, which the magic and the Jupyter server share.

The notebook's service account needs, in the namespace: ``create``, ``get``,
``list``, ``delete`` of serviceaccounts, roles, rolebindings, secrets, configmaps,
services, persistentvolumeclaims, deployments and pods (``docs/kubernetes.md``).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nbcluster.exceptions import KubernetesError
from nbcluster.runtime import tls
from nbcluster.runtime.private_dir import write_private
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
    """A cluster deployed on Kubernetes: returned by :func:`deploy_kubernetes`, or made
    from the values of one deployed earlier (by this process or another) to delete it."""

    values: Values
    token_file: Path
    #: The client of the Kubernetes API (None: made on first use from ``kubeconfig`` and
    #: ``context``, as :func:`deploy_kubernetes` makes it).
    api: Any = field(default=None, repr=False)
    kubeconfig: str | None = None
    context: str | None = None

    @property
    def address(self) -> str:
        """Where a driver connects (client mode, through the head's Service)."""
        return f"nbcluster://{self.values.head_address}"

    def shutdown(self) -> None:
        """Delete every object of the cluster (and the token file). KubernetesError
        when no Kubernetes configuration can be loaded (``reason`` "config"), the API
        server does not answer ("unreachable") or refuses ("forbidden", "refused")."""
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        v = self.values
        try:
            if self.api is None:
                self.api = api_client(self.kubeconfig, self.context)
            delete(self.api, v)
        except ValueError as exc:
            raise KubernetesError(str(exc), "config", v.name, v.namespace, str(exc)) from None
        except ApiException as exc:
            raise KubernetesError(f"the Kubernetes API server refused to delete the objects of {v.name!r} in "
                                  f"namespace {v.namespace!r}: {api_message(exc)}", _refusal(exc), v.name,
                                  v.namespace, api_message(exc)) from None
        except HTTPError as exc:
            raise KubernetesError(f"cannot reach the Kubernetes API server: {exc}", "unreachable", v.name,
                                  v.namespace, str(exc)) from None
        finally:
            self.token_file.unlink(missing_ok=True)


def _call(api: Any, kind: str, verb: str, *args: Any, **kwargs: Any) -> Any:
    import kubernetes

    cls, suffix = _KINDS[kind]
    return getattr(getattr(kubernetes.client, cls)(api), f"{verb}_{suffix}")(*args, **kwargs)


def deploy_kubernetes(values: Values, *, kubeconfig: str | None = None, context: str | None = None,
                      timeout: float = 300.0, token_file: str | os.PathLike[str] | None = None,
                      stop: threading.Event | None = None) -> KubernetesCluster:
    """Create the cluster ``values`` describes and wait (up to ``timeout`` s) until its
    head pod is ready. The token file (the token, then the CA) is written to
    ``token_file`` (0600; default: a new private temporary file) once no cluster of
    that name is found, before any object is made. Setting ``stop`` (from another
    thread) ends the deploy within a second. KubernetesError saying why when it
    does not succeed (its ``reason``: what the API server refused, why the head pod does
    not start, ...); what was created is deleted then, and the token file too."""
    try:
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError
    except ImportError:
        raise KubernetesError("a cluster on Kubernetes needs the kubernetes package in this Python: "
                              "pip install 'nbcluster[kubernetes]'", "config", values.name, values.namespace) from None

    def failed(reason: str, message: str, detail: str = "") -> KubernetesError:
        return KubernetesError(message, reason, values.name, values.namespace, detail)

    try:
        api = api_client(kubeconfig, context)
    except ValueError as exc:
        raise failed("config", str(exc), str(exc)) from None
    where = f"namespace {values.namespace!r}"
    try:
        found = _call(api, "Deployment", "list", values.namespace, label_selector=_selector(values))
    except ApiException as exc:
        raise failed(_refusal(exc), f"cannot list deployments in {where}: "
                                    f"{api_message(exc)}", api_message(exc)) from None
    except HTTPError as exc:
        raise failed("unreachable", f"cannot reach the Kubernetes API server "
                                    f"({api.configuration.host}): {exc}", str(exc)) from None
    if found.items:
        raise failed("exists", f"a cluster named {values.name!r} already runs in {where}: connect to it with "
                               f"%cluster connect {values.head_address}, or choose another --name")
    token = secrets.token_hex(16)
    ca_pem, ca_key = tls.make_ca(f"{values.name}.{values.namespace}")
    cluster = KubernetesCluster(values, _write_token_file(token_file, values, tls.join_token_file(token, ca_pem)),
                                api, kubeconfig, context)
    what = "create the cluster's objects"
    try:
        try:
            for obj in mf.manifests(values, token=token, ca=(ca_pem, ca_key)):
                if stop is not None and stop.is_set():
                    raise failed("stopped", f"deploying cluster {values.name!r} was stopped")
                what = f"create {obj['kind']} {obj['metadata']['name']}"
                _call(api, obj["kind"], "create", values.namespace, obj)
            what = "list the head's pod"
            _wait_ready(api, values, timeout, stop)
        except ApiException as exc:
            raise failed(_refusal(exc), f"the Kubernetes API server refused to {what} in {where}: "
                                        f"{api_message(exc)}", api_message(exc)) from None
        except HTTPError as exc:
            raise failed("unreachable", f"the Kubernetes API server stopped answering: {exc}",
                         str(exc)) from None
    except BaseException:
        with contextlib.suppress(Exception):
            cluster.shutdown()  # the token file too
        raise
    return cluster


def _write_token_file(path: str | os.PathLike[str] | None, values: Values, contents: bytes) -> Path:
    if path is not None:
        write_private(path, contents.decode("ascii"))
        return Path(path)
    fd, made = tempfile.mkstemp(prefix=f"nbcluster-{values.name}-", suffix=".token")  # 0600
    with os.fdopen(fd, "wb") as f:
        f.write(contents)
    return Path(made)


def _refusal(exc: Any) -> str:
    """The reason of a refused request: a namespaced request's 404 is a namespace that
    does not exist, 403 is RBAC."""
    return {404: "namespace", 403: "forbidden"}.get(exc.status, "refused")


def _selector(values: Values, component: str = "") -> str:
    return f"{LABEL_CLUSTER}={values.name}" + (f",{LABEL_COMPONENT}={component}" if component else "")


def _wait_ready(api: Any, values: Values, timeout: float, stop: threading.Event | None) -> None:
    from nbcluster.runtime.autoscaler.kubernetes_provider import ended_reason, waiting_reason

    def failed(reason: str, message: str, detail: str) -> KubernetesError:
        return KubernetesError(message, reason, values.name, values.namespace, detail)

    deadline = time.monotonic() + timeout
    why = "no head pod was made (is the Deployment controller running?)"
    while time.monotonic() < deadline:
        pods = _call(api, "Pod", "list", values.namespace, label_selector=_selector(values, "head")).items
        for pod in (api.sanitize_for_serialization(p) for p in pods):
            status = pod.get("status") or {}
            if status.get("phase") in ("Failed", "Succeeded"):
                raise failed("not_ready", f"the head {ended_reason(pod)}", ended_reason(pod))
            if any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or []):
                return
            why = waiting_reason(pod) or f"its pod {pod['metadata']['name']} is {status.get('phase') or 'Pending'}"
        if stop is not None and stop.wait(0.5):
            raise failed("stopped", f"deploying cluster {values.name!r} was stopped", why)
        if stop is None:
            time.sleep(0.5)
    raise failed("not_ready", f"the head of {values.name!r} was not ready within {timeout:g} s: {why}", why)


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
