"""The worker pod of one node the autoscaler launches (a plain dict, as the API takes it).

A node type's ``node_config`` is a pod template in Kubernetes' own field names:
``image``, ``imagePullPolicy``, ``resources`` (the container's requests and limits),
``nodeSelector``, ``tolerations``, ``affinity``, ``volumes``, ``volumeMounts``,
``env``, ``labels``, ``annotations``, ``serviceAccountName``, ``priorityClassName``,
``terminationGracePeriodSeconds``; and ``object_store_memory`` (bytes), as with the
other providers. Any other key is a launch error that names it.

The node's CPUs, GPUs and custom resources are the node type's ``resources`` (what
the autoscaler plans with); the container asks for them: without ``resources`` in
``node_config`` its requests and limits are ``CPU`` (and ``nvidia.com/gpu`` for
``GPU``), with them they must grant at least that many CPUs and GPUs. A memory limit
caps the object store at 30% of it unless ``object_store_memory`` says otherwise, and
``/dev/shm`` (where the store lives) is a memory volume of that size.

The pod runs ``nbcluster start --address <head service>:PORT --token-file ... --block``
with the node type and instance id, its labels name the cluster, the node type and
the instance, and the cluster token comes from a Secret mounted read-only as a file:
it is never in the pod's environment or command line. Deleted or evicted, the pod has
``terminationGracePeriodSeconds`` (30) before it is killed: its node drains for that
less a margin (``NBCLUSTER_DRAIN_TIMEOUT_S``, set from it: 25 s), then leaves.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass
from typing import Any

from nbcluster.runtime.envvars import DRAIN_TIMEOUT
from nbcluster.runtime.kubernetes import values as v

__all__ = ["NODE_CONFIG_KEYS", "PodError", "PodSettings", "drain_timeout", "parse_quantity", "pod_name", "worker_pod"]

NODE_CONFIG_KEYS = frozenset(
    "image imagePullPolicy resources nodeSelector tolerations affinity volumes volumeMounts env labels annotations "
    "serviceAccountName priorityClassName terminationGracePeriodSeconds object_store_memory".split()
)
#: A worker pod asked to stop has this long to drain before it is killed.
GRACE_S = 30
#: Of a pod's grace period, what stopping takes after the drain (at most; a third of
#: a short one): the node manager ends its workers and leaves the cluster.
STOP_MARGIN_S = 5.0
#: Non-root user and group of the image (``deploy/Dockerfile``).
USER_ID = 1000
_GPU = "nvidia.com/gpu"


class PodError(ValueError):
    """A node type's ``node_config`` cannot make a pod; the message says why."""


@dataclass(frozen=True)
class PodSettings:
    """What every worker pod of one cluster shares (from the ``provider:`` section)."""

    cluster_name: str
    namespace: str
    #: The GCS address the pods join (the head Service's name and port).
    head_address: str
    token_secret: str
    image: str
    image_pull_policy: str = "IfNotPresent"
    node_manager_port: int = v.Values.node_manager_port
    object_port: int = v.Values.object_port
    #: An ownerReference (the head's Deployment): deleting it deletes the workers.
    owner: dict[str, Any] | None = None


_SUFFIXES = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
             "m": 1e-3, "": 1, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18}


def parse_quantity(value: Any) -> float:
    """A Kubernetes quantity (``"500m"``, ``"2Gi"``, ``1.5``) as a number."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    match = re.fullmatch(r"([0-9.]+(?:[eE][-+]?[0-9]+)?)([a-zA-Z]*)", str(value).strip())
    if not match or match.group(2) not in _SUFFIXES:
        raise PodError(f"not a Kubernetes quantity: {value!r} (write e.g. 500m, 2, 4Gi)")
    return float(match.group(1)) * _SUFFIXES[match.group(2)]


def pod_name(cluster: str, node_type: str, instance_id: str) -> str:
    """``<cluster>-<type>-<instance>``, as a DNS-1123 name of at most 63 characters."""
    kind = re.sub(r"[^a-z0-9-]+", "-", node_type.lower()).strip("-") or "worker"
    keep = 63 - len(cluster) - len(instance_id) - 2
    return f"{cluster}-{kind[:max(keep, 1)].strip('-') or 'w'}-{instance_id}"


def _container_resources(node_type: str, resources: dict[str, float], given: Any) -> dict[str, Any]:
    cpus, gpus = resources.get("CPU", 0), resources.get("GPU", 0)
    if given is None:
        amounts: dict[str, Any] = {"cpu": f"{int(cpus * 1000)}m"} if cpus else {}
        if gpus:
            amounts[_GPU] = str(int(gpus))
        return {"requests": dict(amounts), "limits": dict(amounts)} if amounts else {}
    if not isinstance(given, dict) or set(given) - {"requests", "limits"}:
        raise PodError(f"node_config.resources of {node_type} must be {{requests: {{...}}, limits: {{...}}}}")
    granted = {**given.get("requests", {}), **given.get("limits", {})}
    if cpus and "cpu" in granted and parse_quantity(granted["cpu"]) + 1e-9 < cpus:
        raise PodError(f"node_config.resources of {node_type} grant cpu {granted['cpu']}, less than its "
                       f"resources' CPU {cpus:g}")
    if gpus and parse_quantity(granted.get(_GPU, 0)) < gpus:
        raise PodError(f"node_config.resources of {node_type} grant {_GPU} {granted.get(_GPU, 0)}, less than its "
                       f"resources' GPU {gpus:g}")
    return copy.deepcopy(given)


def _store_bytes(node_type: str, node_config: dict[str, Any], container: dict[str, Any]) -> int | None:
    store = node_config.get("object_store_memory")
    if store is not None:
        if isinstance(store, bool) or not isinstance(store, int) or store <= 0:
            raise PodError(f"node_config.object_store_memory of {node_type} must be a whole number of bytes > 0, "
                           f"got {store!r}")
        return store
    limit = container.get("limits", {}).get("memory")
    return int(parse_quantity(limit) * 0.3) if limit is not None else None


def drain_timeout(grace_s: float) -> float:
    """How long a worker pod's node drains when the pod is deleted or evicted: its
    grace period less the time stopping takes after it (``STOP_MARGIN_S``)."""
    return max(0.0, grace_s - min(STOP_MARGIN_S, grace_s / 3))


def _env(node_type: str, config: dict[str, Any], grace: Any) -> list[dict[str, Any]]:
    """The container's environment: the drain timeout its grace period allows (unless
    ``node_config.env`` sets it), then ``node_config.env``."""
    if isinstance(grace, bool) or not isinstance(grace, (int, float)) or grace < 0:
        raise PodError(f"node_config.terminationGracePeriodSeconds of {node_type} must be a whole number of "
                       f"seconds >= 0, got {grace!r}")
    env = copy.deepcopy(list(config.get("env") or []))
    if not any(isinstance(e, dict) and e.get("name") == DRAIN_TIMEOUT for e in env):
        env.insert(0, {"name": DRAIN_TIMEOUT, "value": f"{drain_timeout(grace):g}"})
    return env


def _command(settings: PodSettings, request: Any, store: int | None) -> list[str]:
    resources = dict(request.resources)
    cpus, gpus = resources.pop("CPU", 0), resources.pop("GPU", 0)
    resources.pop("memory", None)  # the node measures its memory itself
    argv = ["nbcluster", "start", "--address", settings.head_address,
            "--token-file", f"{v.TOKEN_DIR}/{v.TOKEN_FILE}", "--block",
            "--num-cpus", f"{cpus:g}", "--num-gpus", f"{gpus:g}",
            "--node-manager-port", str(settings.node_manager_port),
            "--object-manager-port", str(settings.object_port),
            "--node-type", request.node_type, "--instance-id", request.request_id]
    if resources:
        argv += ["--resources", json.dumps(resources, sort_keys=True)]
    if store is not None:
        argv += ["--object-store-memory", str(store)]
    return argv


def worker_pod(settings: PodSettings, request: Any) -> dict[str, Any]:
    """The pod for ``request`` (a LaunchRequest); PodError for a bad ``node_config``."""
    config = request.node_config
    unknown = sorted(set(config) - NODE_CONFIG_KEYS)
    if unknown:
        raise PodError(f"node_config of {request.node_type} has keys the kubernetes provider does not know: "
                       f"{', '.join(unknown)} (it knows {', '.join(sorted(NODE_CONFIG_KEYS))})")
    resources = _container_resources(request.node_type, dict(request.resources), config.get("resources"))
    store = _store_bytes(request.node_type, config, resources)
    grace = config.get("terminationGracePeriodSeconds", GRACE_S)
    labels = {**dict(config.get("labels") or {}), **v.labels(settings.cluster_name, "worker"),
              v.LABEL_NODE_TYPE: re.sub(r"[^A-Za-z0-9_.-]", "-", request.node_type)[:63],
              v.LABEL_INSTANCE: request.request_id}
    probe = {"tcpSocket": {"port": settings.node_manager_port}, "periodSeconds": 10}
    shm: dict[str, Any] = {"medium": "Memory", **({"sizeLimit": str(store)} if store else {})}
    container = {
        "name": "node",
        "image": config.get("image", settings.image),
        "imagePullPolicy": config.get("imagePullPolicy", settings.image_pull_policy),
        "command": _command(settings, request, store),
        "ports": [{"name": "node-manager", "containerPort": settings.node_manager_port},
                  {"name": "objects", "containerPort": settings.object_port}],
        "env": _env(request.node_type, config, grace),
        "volumeMounts": [{"name": "token", "mountPath": v.TOKEN_DIR, "readOnly": True},
                         {"name": "dshm", "mountPath": "/dev/shm"},
                         *copy.deepcopy(list(config.get("volumeMounts") or []))],
        "readinessProbe": {**probe, "initialDelaySeconds": 2},
        "livenessProbe": {**probe, "initialDelaySeconds": 30, "failureThreshold": 6},
        "securityContext": {"allowPrivilegeEscalation": False, "runAsNonRoot": True},
    }
    if resources:
        container["resources"] = resources
    spec: dict[str, Any] = {
        "restartPolicy": "Never",  # a node that ends is replaced by the autoscaler, not restarted
        "terminationGracePeriodSeconds": grace,
        "automountServiceAccountToken": False,  # workers never call the API
        "enableServiceLinks": False,
        "securityContext": {"runAsUser": USER_ID, "runAsGroup": USER_ID, "fsGroup": USER_ID, "runAsNonRoot": True},
        "containers": [container],
        "volumes": [{"name": "token", "secret": {"secretName": settings.token_secret, "defaultMode": 0o440}},
                    {"name": "dshm", "emptyDir": shm},
                    *copy.deepcopy(list(config.get("volumes") or []))],
    }
    for key in ("nodeSelector", "tolerations", "affinity", "serviceAccountName", "priorityClassName"):
        if config.get(key) is not None:
            spec[key] = copy.deepcopy(config[key])
    metadata: dict[str, Any] = {
        "name": pod_name(settings.cluster_name, request.node_type, request.request_id),
        "namespace": settings.namespace,
        "labels": labels,
        "annotations": dict(config.get("annotations") or {}),
    }
    if settings.owner is not None:
        metadata["ownerReferences"] = [dict(settings.owner)]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}
