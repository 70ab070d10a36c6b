"""The values every Kubernetes object of a cluster is made from, in one place.

``nbcluster kubernetes manifests`` takes them as options (``--name``, ``--namespace``,
``--image``, ``--workers-max``, ``--cpu``, ...); the head's Deployment, Service,
Secrets, ConfigMap and RBAC, the cluster YAML in the ConfigMap (and so the worker pods
the autoscaler creates), the ports and the paths where Secrets are mounted all derive
from a :class:`Values`. ``docs/kubernetes.md`` lists them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from nbcluster._version import __version__

__all__ = ["CA_DIR", "CONFIG_DIR", "STATE_DIR", "TOKEN_DIR", "Values", "check_name", "labels", "name_problem"]

#: Where the head and the workers find the cluster's files (Secret and ConfigMap volumes).
TOKEN_DIR = "/etc/nbcluster/token"  # token: the token, then the CA certificate (a token file)
CA_DIR = "/etc/nbcluster/ca"  # ca.crt, ca.key: the cluster's CA (the head only)
CONFIG_DIR = "/etc/nbcluster/config"  # cluster.yaml
STATE_DIR = "/var/lib/nbcluster"  # the head's PersistentVolumeClaim: the GCS tables (gcs/)
TOKEN_FILE = "token"
CA_CERT_FILE = "ca.crt"
CA_KEY_FILE = "ca.key"
CONFIG_FILE = "cluster.yaml"

#: Labels on every object (app.kubernetes.io/*), and the ones that find a cluster's pods.
LABEL_NAME = "app.kubernetes.io/name"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_CLUSTER = "nbcluster.io/cluster"
LABEL_NODE_TYPE = "nbcluster.io/node-type"
LABEL_INSTANCE = "nbcluster.io/instance-id"

_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


def name_problem(value: object, max_len: int = 63) -> str:
    """What keeps ``value`` from being a DNS-1123 label of at most ``max_len``
    characters (what Kubernetes names and namespaces must be): "" when nothing does,
    else "must be ...; got ..." (the caller puts the option's name before it)."""
    if isinstance(value, str) and len(value) <= max_len and _DNS_LABEL.fullmatch(value):
        return ""
    return (f"must be at most {max_len} lowercase letters, digits and '-', starting and ending with a letter or "
            f"digit; got {value!r}")


def check_name(value: str, what: str, max_len: int = 63) -> str:
    """``value`` if it is a DNS-1123 label (:func:`name_problem`); ValueError naming
    ``what`` otherwise."""
    problem = name_problem(value, max_len)
    if problem:
        raise ValueError(f"{what} {problem}")
    return value


def labels(cluster: str, component: str) -> dict[str, str]:
    """The labels of one of ``cluster``'s objects."""
    return {LABEL_NAME: "nbcluster", LABEL_COMPONENT: component, LABEL_CLUSTER: cluster}


@dataclass(frozen=True)
class Values:
    """One cluster's settings (defaults as documented in ``docs/kubernetes.md``)."""

    #: The cluster's name: its ``cluster_name`` and the prefix of every object's name.
    name: str = "nbcluster"
    namespace: str = "default"
    #: The image of the head and the workers (``deploy/Dockerfile``).
    image: str = f"nbcluster:{__version__}"
    image_pull_policy: str = "IfNotPresent"
    #: Worker pods the autoscaler may run at once, and each one's size.
    workers_max: int = 4
    workers_min: int = 0
    cpu: float = 1.0
    memory: str = "2Gi"
    gpu: int = 0
    #: The head pod's size (it runs no tasks: CPU 0 for the scheduler).
    head_cpu: float = 1.0
    head_memory: str = "2Gi"
    idle_timeout_minutes: float = 5.0
    #: The head's ports (the Service's): GCS, node manager, object transfer, jobs API.
    gcs_port: int = 6380
    node_manager_port: int = 6381
    object_port: int = 6382
    jobs_port: int = 8265
    #: The head's PersistentVolumeClaim (its tables, so a rescheduled head takes the
    #: cluster back): its size, and its StorageClass ("": the cluster's default).
    state_size: str = "1Gi"
    storage_class: str = ""

    def __post_init__(self) -> None:
        check_name(self.name, "--name", max_len=40)  # leaves room for the suffixes of pod names
        check_name(self.namespace, "--namespace")
        if self.workers_max < 0 or not 0 <= self.workers_min <= self.workers_max:
            raise ValueError(f"need 0 <= --workers-min <= --workers-max, got {self.workers_min} and {self.workers_max}")
        if self.cpu <= 0 or self.head_cpu <= 0 or self.gpu < 0:
            raise ValueError("--cpu and --head-cpu must be > 0, --gpu >= 0")

    # -- names (one place) ---------------------------------------------------------
    @property
    def head(self) -> str:
        """The head's Deployment, Service and ServiceAccount."""
        return f"{self.name}-head"

    @property
    def state_claim(self) -> str:
        """The head's PersistentVolumeClaim."""
        return f"{self.name}-head-state"

    @property
    def token_secret(self) -> str:
        """The Secret with the token file (every pod of the cluster mounts it)."""
        return f"{self.name}-token"

    @property
    def ca_secret(self) -> str:
        """The Secret with the cluster's CA certificate and key (the head only)."""
        return f"{self.name}-ca"

    @property
    def config_map(self) -> str:
        """The ConfigMap with the cluster YAML."""
        return f"{self.name}-config"

    @property
    def role(self) -> str:
        """The Role (and RoleBinding) of the head's ServiceAccount."""
        return f"{self.name}-autoscaler"

    @property
    def head_address(self) -> str:
        """The GCS address worker pods and clients in the cluster dial."""
        return f"{self.head}.{self.namespace}.svc:{self.gcs_port}"


def service_names(service: str, namespace: str) -> tuple[str, ...]:
    """The DNS names of a Service (for the head's certificate)."""
    base = f"{service}.{namespace}"
    return (service, base, f"{base}.svc", f"{base}.svc.cluster.local")
