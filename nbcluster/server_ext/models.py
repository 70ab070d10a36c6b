"""What the REST API takes and gives: request bodies checked into dataclasses, the
registry's records, and the Cluster JSON (the contract in ``openapi.yaml``).

Pure functions and frozen dataclasses: no processes, and no I/O but one: a create
request for Kubernetes without a namespace takes the pod's (a file) or the kubeconfig's,
so the manager parses bodies in its thread pool. A bad body raises :class:`BadRequest`
naming the field and what is allowed. A Kubernetes cluster's options are checked by the
runtime's :func:`~nbcluster.runtime.kubernetes_options`, which ``%cluster start
--provider kubernetes`` uses too.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

from nbcluster.exceptions import NbclusterError
from nbcluster.runtime import KubernetesOptionError, KubernetesOptions, kubernetes_options
from nbcluster.state import machine_memory

__all__ = [
    "KUBERNETES_FIELDS",
    "LOCAL_FIELDS",
    "NAME_PATTERN",
    "PROVIDERS",
    "AttachRequest",
    "BadRequest",
    "ClusterConflict",
    "ClusterRecord",
    "ClusterSpec",
    "ClusterStartError",
    "Scale",
    "UnknownCluster",
    "cluster_json",
    "notebook_path",
    "parse_attach",
    "parse_create",
    "parse_kubernetes",
    "parse_local",
    "parse_scale",
]

#: Cluster names (they are the REST ids): a letter or digit, then up to 63 of [A-Za-z0-9_.-].
NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}"
_NAME = re.compile(NAME_PATTERN + r"\Z")
#: The worker node type of clusters the server makes.
WORKER_TYPE = "worker"
#: The most worker nodes a body may ask for (a typo guard, not a resource policy).
MAX_WORKERS = 256


class BadRequest(NbclusterError, ValueError):
    """A request body the API cannot use (HTTP 400); ``field`` names the culprit."""

    def __init__(self, message: str, field: str = "") -> None:
        self.field = field
        super().__init__(message)


class UnknownCluster(NbclusterError, LookupError):
    """No cluster of that name (HTTP 404)."""


class ClusterConflict(NbclusterError):
    """The name is taken, or the cluster cannot do that (HTTP 409)."""


class ClusterStartError(NbclusterError):
    """A cluster's processes did not start (HTTP 500, with the reason from its logs)."""


@dataclass(frozen=True)
class ClusterSpec:
    """How the server makes a local cluster. Exactly one way to size it is used:
    ``workers`` (fixed), ``adapt`` (minimum, maximum) or ``autoscaling_config`` (a Ray
    cluster-YAML dict); every way runs the autoscaler with the ``local`` provider."""

    #: CPUs of the head node; None: this machine's core count.
    num_cpus: float | None = None
    workers: int | None = 0
    worker_cpus: float = 1.0
    adapt: tuple[int, int] | None = None
    autoscaling_config: dict[str, Any] | None = None
    #: Worker nodes idle this long go (when above the minimum).
    idle_timeout_s: float = 15.0

    def to_json(self) -> dict[str, Any]:
        """The spec as saved in the registry and shown in Cluster JSON."""
        out: dict[str, Any] = {"num_cpus": self.num_cpus}
        if self.autoscaling_config is not None:
            out["autoscaling_config"] = self.autoscaling_config
        elif self.adapt is not None:
            out.update(adapt={"minimum": self.adapt[0], "maximum": self.adapt[1]}, worker_cpus=self.worker_cpus)
        else:
            out.update(workers=self.workers, worker_cpus=self.worker_cpus)
        out["idle_timeout_s"] = self.idle_timeout_s
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "ClusterSpec":
        """The spec of its :meth:`to_json` form."""
        adapt = data.get("adapt")
        return cls(
            num_cpus=data.get("num_cpus"),
            workers=data.get("workers"),
            worker_cpus=data.get("worker_cpus", 1.0),
            adapt=(adapt["minimum"], adapt["maximum"]) if adapt else None,
            autoscaling_config=data.get("autoscaling_config"),
            idle_timeout_s=data.get("idle_timeout_s", 15.0),
        )

    def autoscaling(self, name: str) -> dict[str, Any]:
        """The cluster YAML (as a dict) this spec runs with."""
        if self.autoscaling_config is not None:
            return {"cluster_name": name, **self.autoscaling_config}
        low, high = self.adapt if self.adapt is not None else (self.workers or 0, self.workers or 0)
        return {
            "cluster_name": name,
            "max_workers": high,
            "idle_timeout_minutes": self.idle_timeout_s / 60.0,
            "upscaling_speed": 1.0,
            "provider": {"type": "local"},
            "available_node_types": {
                WORKER_TYPE: {"resources": {"CPU": self.worker_cpus}, "min_workers": low, "max_workers": high},
            },
        }


@dataclass(frozen=True)
class AttachRequest:
    """A parsed attach request: the name to give the cluster, its address, and its token or
    token file (neither: a cluster on this machine)."""

    name: str
    address: str
    token: str | None = None
    token_file: str | None = None


@dataclass(frozen=True)
class Scale:
    """New worker bounds: ``{"workers": n}`` is (n, n)."""

    minimum: int
    maximum: int


@dataclass(frozen=True)
class ClusterRecord:
    """One cluster the server knows, as persisted in its registry file."""

    name: str
    address: str
    token_file: str
    origin: str  # "created" | "attached"
    spec: dict[str, Any] = field(default_factory=dict)
    session_dir: str = ""
    created: float = 0.0
    jobs_address: str = ""
    #: Saved while a created cluster starts (its session known, its head not serving
    #: yet): a server that finds it so at start-up waits for it to serve, or stops it.
    starting: bool = False
    #: How a created cluster was made: "local" (processes on this machine) or
    #: "kubernetes" (objects in ``spec["namespace"]``, labelled with its name).
    provider: str = "local"

    @property
    def saved_while_starting(self) -> bool:
        """Whether a starting cluster is saved yet: a local one once its session is known
        (a later server can find it), one on Kubernetes from the start (a later server
        deletes what a start it did not finish made)."""
        return bool(self.session_dir) or self.provider == "kubernetes"

    def to_json(self) -> dict[str, Any]:
        """The record as the registry saves it."""
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "ClusterRecord":
        """The record of its :meth:`to_json` form (unknown keys ignored)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


# -- parsing bodies -------------------------------------------------------------------
def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise BadRequest(f"the body must be a JSON object, got {type(body).__name__}")
    return body


def _known(body: Mapping[str, Any], allowed: Sequence[str]) -> None:
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise BadRequest(f"unknown field {unknown[0]!r}; the fields are {', '.join(allowed)}", unknown[0])


def check_name(name: Any, field_name: str = "name") -> str:
    """``name`` when it is a valid cluster name; BadRequest naming ``field_name``
    otherwise."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise BadRequest(
            f"{field_name} must be 1-64 characters of letters, digits, '_', '.' or '-', starting with a letter "
            f"or digit; got {name!r}",
            field_name,
        )
    return name


def _whole(value: Any, field_name: str, minimum: int = 0, maximum: int = MAX_WORKERS) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        raise BadRequest(f"{field_name} must be a whole number from {minimum} to {maximum}, got {value!r}", field_name)
    return value


def _cpus(value: Any, field_name: str, minimum: float) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < minimum or value > 1024:
        raise BadRequest(f"{field_name} must be a number from {minimum:g} to 1024, got {value!r}", field_name)
    return float(value)


def _adapt(value: Any, field_name: str = "adapt") -> tuple[int, int]:
    if not isinstance(value, dict) or set(value) != {"minimum", "maximum"}:
        raise BadRequest(f'{field_name} must be {{"minimum": a, "maximum": b}}, got {value!r}', field_name)
    low = _whole(value["minimum"], f"{field_name}.minimum")
    high = _whole(value["maximum"], f"{field_name}.maximum")
    if low > high:
        raise BadRequest(f"{field_name}.minimum ({low}) must not be above {field_name}.maximum ({high})", field_name)
    return low, high


#: How the server makes clusters (a create request's ``provider``; default local).
PROVIDERS = ("local", "kubernetes")
#: The fields of a create request, by provider.
LOCAL_FIELDS = ("provider", "name", "num_cpus", "workers", "worker_cpus", "adapt", "autoscaling_config")
KUBERNETES_FIELDS = ("provider", "name", "namespace", "image", "workers_max", "worker_cpus", "timeout")


def parse_create(body: Any, defaults: ClusterSpec) -> tuple[str | None, ClusterSpec | KubernetesOptions]:
    """(name or None, the spec) of a ``POST clusters`` body: a :class:`ClusterSpec`,
    whose missing fields the server's ``defaults`` fill, or with ``"provider":
    "kubernetes"`` the :class:`~nbcluster.runtime.KubernetesOptions` (the magic's
    defaults; its name is the cluster's)."""
    body = _object(body)
    provider = body.get("provider", "local")
    if provider not in PROVIDERS:
        raise BadRequest(f"provider must be one of {', '.join(map(repr, PROVIDERS))}, got {provider!r}", "provider")
    if provider == "kubernetes":
        options = parse_kubernetes(body)
        return options.name, options
    return parse_local(body, defaults)


def parse_local(body: Mapping[str, Any], defaults: ClusterSpec) -> tuple[str | None, ClusterSpec]:
    """(name or None, the spec) of a create request for a local cluster; the server's
    ``defaults`` fill what the body leaves out."""
    other = [k for k in body if k in KUBERNETES_FIELDS and k not in LOCAL_FIELDS]
    if other:
        raise BadRequest(f'{other[0]} is for a cluster on Kubernetes: add "provider": "kubernetes"', other[0])
    _known(body, LOCAL_FIELDS)
    name = check_name(body["name"]) if "name" in body else None
    given = [k for k in ("workers", "adapt", "autoscaling_config") if k in body]
    if len(given) > 1:
        raise BadRequest(f"give one of workers, adapt or autoscaling_config, not {' and '.join(given)}", given[1])
    spec = defaults
    if "num_cpus" in body:
        spec = dataclasses.replace(spec, num_cpus=_cpus(body["num_cpus"], "num_cpus", 0))
    if "worker_cpus" in body:
        if "autoscaling_config" in body:
            raise BadRequest("worker_cpus does not go with autoscaling_config (its node types say it)", "worker_cpus")
        spec = dataclasses.replace(spec, worker_cpus=_cpus(body["worker_cpus"], "worker_cpus", 0.01))
    if "workers" in body:
        spec = dataclasses.replace(spec, workers=_whole(body["workers"], "workers"), adapt=None)
    elif "adapt" in body:
        spec = dataclasses.replace(spec, adapt=_adapt(body["adapt"]), workers=None)
    elif "autoscaling_config" in body:
        config = body["autoscaling_config"]
        if not isinstance(config, dict):
            raise BadRequest("autoscaling_config must be an object in Ray's cluster-YAML shape "
                             '(e.g. {"available_node_types": {...}})', "autoscaling_config")
        spec = dataclasses.replace(spec, autoscaling_config=config, workers=None, adapt=None)
    return name, spec


def parse_kubernetes(body: Mapping[str, Any]) -> KubernetesOptions:
    """The options of a create request with ``"provider": "kubernetes"``, checked as
    ``%cluster start --provider kubernetes`` checks its own (one validator); a missing
    field takes the magic's default (name ``nb-<user>``, namespace the server pod's)."""
    local = [k for k in body if k in LOCAL_FIELDS and k not in KUBERNETES_FIELDS]
    if local:
        raise BadRequest(f"{local[0]} is for a local cluster; a cluster on Kubernetes takes "
                         f"{', '.join(KUBERNETES_FIELDS[1:])} (workers_max: worker pods at most, made as work "
                         "needs them)", local[0])
    _known(body, KUBERNETES_FIELDS)
    try:
        return kubernetes_options(**{k: body.get(k) for k in KUBERNETES_FIELDS if k != "provider"})
    except KubernetesOptionError as exc:
        raise BadRequest(exc.spelled(exc.option), exc.option) from None


def parse_attach(body: Any) -> AttachRequest:
    """The :class:`AttachRequest` of an attach request's body; BadRequest saying what is
    wrong."""
    body = _object(body)
    _known(body, ("name", "address", "token", "token_file"))
    if "name" not in body:
        raise BadRequest("name is required: the name kernels use in %cluster connect NAME", "name")
    name = check_name(body["name"])
    address = body.get("address")
    host, sep, port = address.rpartition(":") if isinstance(address, str) else ("", "", "")
    if not (sep and host and port.isdigit() and 0 < int(port) < 65536):
        raise BadRequest(f"address must be the head's host:port (as `nbcluster start --head` prints), got {address!r}",
                         "address")
    token, token_file = body.get("token"), body.get("token_file")
    if token is not None and token_file is not None:
        raise BadRequest("give token or token_file, not both", "token_file")
    if token is not None and (not isinstance(token, str) or not token.strip()):
        raise BadRequest("token must be a non-empty string (the contents of the head's token file)", "token")
    if token_file is not None and (not isinstance(token_file, str) or not token_file):
        raise BadRequest("token_file must be the path of a file holding the cluster's token", "token_file")
    return AttachRequest(name, address, token.strip() if token else None, token_file)


def parse_scale(body: Any) -> Scale:
    """The worker bounds of a scale request's body (``workers`` n: n..n; ``adapt``:
    minimum..maximum); BadRequest saying what is wrong."""
    body = _object(body)
    _known(body, ("workers", "adapt"))
    if len(body) != 1:
        raise BadRequest('give {"workers": n} or {"adapt": {"minimum": a, "maximum": b}}', "workers")
    if "workers" in body:
        n = _whole(body["workers"], "workers")
        return Scale(n, n)
    low, high = _adapt(body["adapt"])
    return Scale(low, high)


# -- the Cluster JSON -----------------------------------------------------------------
def _resources(nodes: Sequence[Any]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for node in nodes:
        if node.state != "ALIVE":
            continue
        for key, total in node.resources_total.items():
            if key.startswith("node:"):
                continue
            entry = out.setdefault(key, {"used": 0.0, "total": 0.0})
            entry["total"] += total
            entry["used"] += total - node.resources_available.get(key, total)
    return out


def _workers(autoscaler: Any) -> dict[str, Any] | None:
    if autoscaler is None or not autoscaler.enabled:
        return None
    types = list(autoscaler.node_types)
    if len(types) > 1:  # leave out a head type (no workers of it)
        types = [t for t in types if t.max_workers > 0 or t.running]
    if len(types) != 1:
        return None
    t = types[0]
    return {"node_type": t.name, "running": t.running, "pending": t.pending, "min": t.min_workers, "max": t.max_workers}


def notebook_path(path: str, root_dir: str | None) -> str:
    """A kernel's notebook as Jupyter names it: relative to the server's root
    directory when it lies under it (JupyterLab's sessions give kernels the absolute
    path of the file), else as the kernel said."""
    if root_dir and os.path.isabs(path):
        root = os.path.realpath(root_dir)
        full = os.path.realpath(path)
        if full.startswith(root + os.sep):
            return PurePath(os.path.relpath(full, root)).as_posix()
    return path


def _drivers(jobs: Sequence[Any], root_dir: str | None, sessions: Mapping[str, str]) -> list[dict[str, str]]:
    """Running driver jobs that say which kernel they are (job metadata ``kernel_id``
    and ``notebook_path``, set by drivers started from kernels). A kernel of one of the
    server's sessions has that session's path now (``sessions``: kernel id -> path),
    which follows renames; the metadata has the path its kernel started with."""
    out = []
    for job in jobs:
        metadata = job.metadata or {}
        kernel_id = metadata.get("kernel_id")
        if job.type == "DRIVER" and job.status == "RUNNING" and kernel_id:
            path = sessions.get(kernel_id) or notebook_path(metadata.get("notebook_path", ""), root_dir)
            out.append({"kernel_id": kernel_id, "notebook_path": path, "job_id": job.job_id})
    return out


def cluster_json(
    record: ClusterRecord,
    status: str,
    nodes: Sequence[Any] = (),
    autoscaler: Any = None,
    jobs: Sequence[Any] = (),
    root_dir: str | None = None,
    sessions: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The Cluster JSON of the REST API, from the record and what the head said
    (``nbcluster.state`` snapshots; empty when it could not be asked); notebook paths
    relative to ``root_dir`` (the server's) where they lie under it, or the path of the
    server's session of the driver's kernel (``sessions``: kernel id -> path)."""
    alive = sum(1 for n in nodes if n.state == "ALIVE")
    return {
        "name": record.name,
        "address": record.address,
        "origin": record.origin,
        "provider": record.provider if record.origin == "created" else None,
        "status": status,
        "spec": record.spec,
        "created": record.created,
        "nodes": {"alive": alive, "total": len(nodes)},
        # Logical resources (what tasks ask for; "memory" there is the logical resource).
        "resources": _resources(nodes),
        # Physical memory of the cluster's machines, each machine counted once.
        "memory": machine_memory(nodes),
        "autoscaler": bool(autoscaler is not None and autoscaler.enabled),
        "workers": _workers(autoscaler),
        "drivers": _drivers(jobs, root_dir, sessions or {}),
        "links": {"events": f"clusters/{record.name}/events", "jobs": f"clusters/{record.name}/jobs/"},
    }
