"""The ``kubernetes`` node provider: each node is a worker pod, made and removed through
the official ``kubernetes`` client::

    provider:
      type: kubernetes
      namespace: ml                 # default: the head pod's own, else the kubeconfig context's
      head_service: demo-head       # the Service worker pods join by (default: <cluster_name>-head)
      token_secret: demo-token      # the Secret with the token file (default: <cluster_name>-token)
      image: nbcluster:0.1.0        # default image of the node types (node_config.image overrides)
      head_deployment: demo-head    # optional: worker pods are owned by it (deleted with it)
      kubeconfig: ~/.kube/config    # optional: default in-cluster config, else the default kubeconfig
      context: my-context           # optional: a kubeconfig context

A node type's ``node_config`` is its pod template (``runtime/kubernetes/pods.py``).

Guarantees, on top of ``providers.NodeProvider``'s:

- ``launch`` creates the pod ``<cluster>-<type>-<instance id>`` labelled with the
  cluster, node type and instance id; a second launch of the same request, or a pod
  of that name already there (409), creates nothing.
- ``terminate`` deletes the pod (its grace period lets the node manager leave the
  cluster); the instance counts as existing until the pod is gone.
- The provider keeps a cache of its cluster's pods, filled by one list and then a
  watch from that list's resourceVersion (re-listed after a 410 or a lost connection),
  so the autoscaler's calls read memory, not the API.
- A new head (a restarted head pod) lists its cluster's pods by label: running and
  pending ones are returned by ``non_terminated`` for the autoscaler to adopt; ended
  ones (Failed, Succeeded) are deleted as orphans. Nothing is created for them.
- A pod that fails, is evicted or OOM-killed, or is deleted by someone else, is
  reported once by ``poll_errors`` with the reason Kubernetes gives (then the ended pod
  is deleted); a pending pod the scheduler cannot place, or whose image cannot be
  pulled, is in ``pending_reasons`` with Kubernetes' message.
- ``close`` (the head stopping) stops the watch and leaves the pods: a head that comes
  back adopts them; ones never adopted end by themselves when their head stays away
  (the node manager gives up after ``gcs_reconnect_timeout_s``) and the next head
  deletes them, or Kubernetes does with the head's Deployment (``head_deployment``).

The provider needs exactly pods create, delete, get, list and watch in its namespace
(and get of its Deployment with ``head_deployment``): ``runtime/kubernetes/manifests.py``.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path
from typing import Any

import kubernetes
from kubernetes.client.rest import ApiException

from nbcluster.exceptions import AutoscalerConfigError
from nbcluster.runtime.autoscaler.providers import LaunchError, LaunchRequest, NodeProvider, ProviderNode
from nbcluster.runtime.kubernetes import values as v
from nbcluster.runtime.kubernetes.api import api_client, api_message
from nbcluster.runtime.kubernetes.pods import PodError, PodSettings, worker_pod

__all__ = ["KubernetesNodeProvider"]

logger = logging.getLogger(__name__)

OPTIONS = frozenset(
    "namespace head_service token_secret image image_pull_policy head_deployment kubeconfig context".split()
)
#: A watch request ends after this long and is made again from the last resourceVersion.
WATCH_S = 5
#: Waiting before listing again after the API could not be reached.
RETRY_S = 1.0
_INCLUSTER_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
_ENDED = ("Failed", "Succeeded")


def ended_reason(pod: dict[str, Any]) -> str:
    """Why an ended pod ended, in Kubernetes' words."""
    name = pod["metadata"]["name"]
    status = pod.get("status") or {}
    if status.get("reason") == "Evicted":
        return f"its pod {name} was evicted: {status.get('message') or 'no message'}"
    for container in status.get("containerStatuses") or []:
        done = (container.get("state") or {}).get("terminated")
        if not done:
            continue
        if done.get("reason") == "OOMKilled":
            return f"its pod {name} was OOM-killed (container {container['name']} went over its memory limit)"
        said = f": {done['message'].strip()}" if done.get("message") else ""
        return (f"its pod {name} ended: container {container['name']} exited with code {done.get('exitCode')} "
                f"({done.get('reason') or 'no reason'}){said}")
    why = status.get("reason") or status.get("message") or ""
    return f"its pod {name} ended (phase {status.get('phase')}{': ' + why if why else ''})"


def waiting_reason(pod: dict[str, Any]) -> str:
    """Why a pending pod is not running ("" when nothing is wrong yet)."""
    name = pod["metadata"]["name"]
    status = pod.get("status") or {}
    for cond in status.get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
            return f"its pod {name} cannot be scheduled ({cond.get('reason')}): {cond.get('message') or ''}".rstrip()
    for container in status.get("containerStatuses") or []:
        waiting = (container.get("state") or {}).get("waiting") or {}
        quiet = waiting.get("reason") in ("ContainerCreating", "PodInitializing") and not waiting.get("message")
        if waiting.get("reason") and not quiet:
            return f"its pod {name} is waiting ({waiting['reason']}): {waiting.get('message') or ''}".rstrip()
    return ""


class KubernetesNodeProvider(NodeProvider):
    """Nodes as worker pods (see the module docstring)."""

    options = OPTIONS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        opts = self.config.options
        for key in OPTIONS:
            if key in opts and not isinstance(opts[key], str):
                raise AutoscalerConfigError(f"provider.{key}: must be a string, got {opts[key]!r}",
                                            key=f"provider.{key}")
        cluster = self.cluster.cluster_name
        try:
            v.check_name(cluster, "cluster_name (it names and labels the pods)", max_len=40)
        except ValueError as exc:
            raise AutoscalerConfigError(f"cluster_name: {exc}", key="cluster_name") from None
        self.selector = f"{v.LABEL_CLUSTER}={cluster}"
        self._lock = threading.Lock()
        self._start_lock = threading.Lock()
        self._core: Any = None
        self.namespace = ""
        self.settings: PodSettings | None = None
        #: The cluster's pods by instance id, as the API last described them.
        self._pods: dict[str, dict[str, Any]] = {}
        self._rv = ""
        self._seen: set[str] = set()
        self._terminated: set[str] = set()
        self._reported: set[str] = set()
        self._errors: list[LaunchError] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- connecting, listing, watching ------------------------------------------------
    def _api_client(self) -> Any:
        opts = self.config.options
        try:
            return api_client(opts.get("kubeconfig"), opts.get("context"))
        except ValueError as exc:
            raise AutoscalerConfigError(f"provider: {exc}", key="provider.kubeconfig") from None

    def _namespace(self) -> str:
        opts = self.config.options
        if opts.get("namespace"):
            return opts["namespace"]
        if not opts.get("kubeconfig") and os.environ.get("KUBERNETES_SERVICE_HOST") and _INCLUSTER_NAMESPACE.exists():
            return _INCLUSTER_NAMESPACE.read_text().strip()
        try:
            _, current = kubernetes.config.list_kube_config_contexts(
                config_file=os.path.expanduser(opts["kubeconfig"]) if opts.get("kubeconfig") else None)
            return current.get("context", {}).get("namespace") or "default"
        except (kubernetes.config.ConfigException, OSError):
            return "default"

    def _ensure_started(self) -> None:
        """Connect, list the cluster's pods (deleting ended ones: orphans of an earlier
        head), and start the watch; once."""
        with self._start_lock:
            if self._core is not None:
                return
            api_client = self._api_client()
            self.namespace = self._namespace()
            core = kubernetes.client.CoreV1Api(api_client)
            opts = self.config.options
            cluster = self.cluster.cluster_name
            port = self.cluster.gcs_address.rsplit(":", 1)[1]
            service = opts.get("head_service") or f"{cluster}-head"
            self.settings = PodSettings(
                cluster_name=cluster, namespace=self.namespace, head_address=f"{service}.{self.namespace}.svc:{port}",
                token_secret=opts.get("token_secret") or f"{cluster}-token",
                image=opts.get("image") or v.Values.image,
                image_pull_policy=opts.get("image_pull_policy") or v.Values.image_pull_policy,
                owner=self._owner(api_client),
            )
            pods = self._list(core)
            orphans = [p for p in pods.values() if (p.get("status") or {}).get("phase") in _ENDED]
            with self._lock:
                for pod in orphans:
                    pods.pop(pod["metadata"]["labels"][v.LABEL_INSTANCE])
                self._pods = pods
            self._core = core
            for pod in orphans:
                logger.info("deleting pod=%s: it ended before this head started", pod["metadata"]["name"])
                self._delete(pod["metadata"]["name"])
            self._thread = threading.Thread(target=self._watch, name="kubernetes-watch", daemon=True)
            self._thread.start()
            logger.info("kubernetes provider: namespace=%s selector=%s found %d pods (%d ended, deleted)",
                        self.namespace, self.selector, len(pods) + len(orphans), len(orphans))

    def _owner(self, api_client: Any) -> dict[str, Any] | None:
        name = self.config.options.get("head_deployment")
        if not name:
            return None
        try:
            deployment = kubernetes.client.AppsV1Api(api_client).read_namespaced_deployment(name, self.namespace)
        except ApiException as exc:
            logger.warning("worker pods get no owner: cannot read deployment=%s: %s", name, api_message(exc))
            return None
        return {"apiVersion": "apps/v1", "kind": "Deployment", "name": name, "uid": deployment.metadata.uid}

    def _list(self, core: Any) -> dict[str, dict[str, Any]]:
        """The cluster's pods now (and the resourceVersion to watch from)."""
        reply = core.list_namespaced_pod(self.namespace, label_selector=self.selector, _preload_content=False)
        data = json.loads(reply.data)
        self._rv = data["metadata"]["resourceVersion"]
        return {p["metadata"]["labels"][v.LABEL_INSTANCE]: p for p in data["items"]
                if v.LABEL_INSTANCE in (p["metadata"].get("labels") or {})}

    def _watch(self) -> None:
        """Keep the cache current: watch from the last resourceVersion, re-list when the
        API says it is too old (410) or cannot be reached."""
        while not self._stop.is_set():
            try:
                stream = kubernetes.watch.Watch().stream(
                    self._core.list_namespaced_pod, self.namespace, label_selector=self.selector,
                    resource_version=self._rv, timeout_seconds=WATCH_S, deserialize=False,
                )
                for event in stream:
                    if self._stop.is_set():
                        return
                    self._apply(event["type"], event["object"])
            except ApiException as exc:
                if exc.status != 410:
                    logger.warning("watching pods failed (%s); listing again", api_message(exc))
                    self._stop.wait(RETRY_S)
                self._relist()
            except Exception as exc:  # noqa: BLE001 - the connection (urllib3, OS): list again and go on
                if self._stop.is_set():
                    return
                logger.warning("watching pods failed (%s: %s); listing again", type(exc).__name__, exc)
                self._stop.wait(RETRY_S)
                self._relist()

    def _relist(self) -> None:
        try:
            pods = self._list(self._core)
        except Exception as exc:  # noqa: BLE001 - tried again by the watch loop
            logger.warning("listing pods failed: %s", exc)
            return
        with self._lock:
            for instance_id, pod in self._pods.items():
                if instance_id not in pods:
                    self._gone(instance_id, pod)
            self._pods = pods

    def _apply(self, kind: str, pod: dict[str, Any]) -> None:
        if kind == "BOOKMARK":
            self._rv = pod["metadata"]["resourceVersion"]
            return
        instance_id = (pod["metadata"].get("labels") or {}).get(v.LABEL_INSTANCE)
        self._rv = pod["metadata"]["resourceVersion"]
        if instance_id is None:
            return
        with self._lock:
            if kind == "DELETED":
                self._pods.pop(instance_id, None)
                self._gone(instance_id, pod)
            else:
                self._pods[instance_id] = pod

    def _gone(self, instance_id: str, pod: dict[str, Any]) -> None:
        """A pod vanished (lock held): an error unless the autoscaler ended it, or it was reported."""
        if instance_id in self._terminated or instance_id in self._reported:
            return
        self._reported.add(instance_id)
        node_type = pod["metadata"]["labels"].get(v.LABEL_NODE_TYPE, "")
        self._errors.append(LaunchError(instance_id, node_type,
                                        f"its pod {pod['metadata']['name']} was deleted (not by the autoscaler)"))

    def _delete(self, name: str) -> None:
        try:
            self._core.delete_namespaced_pod(name, self.namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise

    # -- the provider interface ------------------------------------------------------
    def launch(self, request: LaunchRequest) -> None:
        """Create the node's pod; idempotent by request id (and by pod name)."""
        self._ensure_started()
        assert self.settings is not None
        with self._lock:
            if request.request_id in self._seen or self._stop.is_set():
                return
            self._seen.add(request.request_id)
        try:
            body = worker_pod(self.settings, request)
            reply = self._core.create_namespaced_pod(self.namespace, body, _preload_content=False)
        except PodError as exc:
            message = str(exc)
        except ApiException as exc:
            if exc.status == 409:  # a pod of that name exists: launched already
                return
            message = f"the Kubernetes API refused the pod ({exc.status}): {api_message(exc)}"
        except Exception as exc:  # noqa: BLE001 - the connection (urllib3, OS): a failed launch, reported
            message = f"cannot reach the Kubernetes API: {type(exc).__name__}: {exc}"
        else:
            pod = json.loads(reply.data)
            with self._lock:
                self._pods.setdefault(request.request_id, pod)  # the watch may have it already
            logger.info("created pod=%s instance=%s type=%s", pod["metadata"]["name"], request.request_id,
                        request.node_type)
            return
        with self._lock:
            self._errors.append(LaunchError(request.request_id, request.node_type, message))

    def terminate(self, instance_id: str) -> None:
        """Delete the instance's pod; idempotent, an unknown instance is not an error."""
        self._ensure_started()
        with self._lock:
            pod = self._pods.get(instance_id)
            if pod is None or instance_id in self._terminated:
                return
            self._terminated.add(instance_id)
        name = pod["metadata"]["name"]
        try:
            self._delete(name)
        except BaseException:
            with self._lock:
                self._terminated.discard(instance_id)  # the autoscaler tries again
            raise
        logger.info("deleting pod=%s instance=%s", name, instance_id)

    def non_terminated(self) -> list[ProviderNode]:
        """Pods of the cluster that exist and have not ended (ones being deleted too)."""
        self._ensure_started()
        with self._lock:
            return [
                ProviderNode(i, p["metadata"]["labels"].get(v.LABEL_NODE_TYPE, ""))
                for i, p in self._pods.items()
                if not ((p.get("status") or {}).get("phase") in _ENDED and i in self._reported | self._terminated)
            ]

    def poll_errors(self) -> list[LaunchError]:
        """Failed launches, and pods that ended or vanished by themselves, each once."""
        self._ensure_started()
        ended = []
        with self._lock:
            for instance_id, pod in self._pods.items():
                phase = (pod.get("status") or {}).get("phase")
                if phase in _ENDED and instance_id not in self._reported | self._terminated:
                    self._reported.add(instance_id)
                    self._errors.append(LaunchError(instance_id, pod["metadata"]["labels"].get(v.LABEL_NODE_TYPE, ""),
                                                    ended_reason(pod)))
                    ended.append(pod["metadata"]["name"])
            errors, self._errors = self._errors, []
        for name in ended:  # reported: its reason is in the autoscaler's events now
            try:
                self._delete(name)
            except Exception as exc:  # noqa: BLE001 - the next head deletes it as an orphan
                logger.warning("cannot delete the ended pod=%s: %s", name, exc)
        return errors

    def pending_reasons(self) -> dict[str, str]:
        """Pending pods that cannot start: the scheduler's (or the kubelet's) message."""
        self._ensure_started()
        with self._lock:
            found = {i: waiting_reason(p) for i, p in self._pods.items()
                     if (p.get("status") or {}).get("phase", "Pending") == "Pending"}
        return {i: why for i, why in found.items() if why}

    def close(self) -> None:
        """Stop watching; the pods stay for the next head to adopt (module docstring)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=1.0)  # a daemon: one blocked in a read ends with its request
