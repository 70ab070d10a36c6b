"""Node providers: the autoscaler's one door to machines.

A provider launches and terminates nodes; it knows nothing of demand or policy. Its
guarantees, which the reconcile loop relies on:

- ``launch(request)`` returns quickly (the node comes up in the background) and is
  idempotent by ``request.request_id``: asking twice launches one node.
- The node it starts runs a node manager that joins the cluster with
  ``--node-type`` and ``--instance-id`` set from the request (see
  :func:`node_command`), so the autoscaler can tell which registered node is which.
- ``terminate(instance_id)`` returns quickly and is idempotent; terminating an
  unknown or already ended instance is not an error.
- ``non_terminated()`` lists the instances that exist (launched, not yet ended).
- ``poll_errors()`` returns each launch failure once (and a node that died by
  itself before it was terminated).
- ``pending_reasons()`` (optional) says why launched nodes have not started yet
  (a pod the Kubernetes scheduler cannot place: its message), for the status view.
- A provider whose nodes outlive the head (Kubernetes pods) lists them in
  ``non_terminated()`` when a new head starts: the autoscaler adopts them (they
  count as launching until their node manager registers again, and are terminated
  if it does not) rather than launching more.

Providers are found by ``provider.type``: ``local``, ``ssh`` (``ssh_provider.py``) and any name registered in the
``nbcluster.node_providers`` entry-point group (``name = "package.module:Class"``),
or ``type: external`` with ``module: package.module.Class`` as in Ray's cluster YAML.
"""

from __future__ import annotations

import abc
import importlib
import sys
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, ClassVar

from nbcluster.exceptions import AutoscalerConfigError
from nbcluster.runtime.autoscaler.config import ProviderConfig
from nbcluster.runtime.launcher import NodeSpec, node_args
from nbcluster.runtime.session import Session

ENTRY_POINT_GROUP = "nbcluster.node_providers"


@dataclass(frozen=True)
class ClusterContext:
    """What a provider needs to make a node join this cluster."""

    #: The GCS for other machines ("host:port") and for this machine (framed endpoint).
    gcs_address: str
    gcs_local_endpoint: str
    token: str
    session_dir: Path
    #: The head's RuntimeConfig as JSON, for the node managers it starts.
    config_env: str
    #: The head's address for other machines; nodes on the head's machine use it too.
    node_ip: str = "127.0.0.1"
    #: The cluster YAML's ``cluster_name`` (providers label what they create with it).
    cluster_name: str = "default"


class LaunchFailed(Exception):
    """A provider cannot start this node; the message says why."""


@dataclass(frozen=True)
class LaunchRequest:
    """What the autoscaler asks a provider to launch: one node of ``node_type``."""

    #: The idempotency key; also the instance id of the node launched.
    request_id: str
    node_type: str
    resources: dict[str, float]
    node_config: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ProviderNode:
    """An instance a provider launched and has not seen end."""

    instance_id: str
    node_type: str


@dataclass(frozen=True)
class LaunchError:
    """A failed launch (or a node that ended by itself), reported once by ``poll_errors``."""

    request_id: str
    node_type: str
    message: str


class NodeProvider(abc.ABC):
    """Launches and terminates the nodes of one cluster (see the module docstring)."""

    #: The ``provider:`` keys this provider reads, besides ``type`` (and ``module`` for an
    #: external one): any other key is an error that names it. None: the provider checks
    #: its options itself.
    options: ClassVar[frozenset[str] | None] = None

    def __init__(self, config: ProviderConfig, cluster: ClusterContext) -> None:
        self.config = config
        self.cluster = cluster

    @abc.abstractmethod
    def launch(self, request: LaunchRequest) -> None:
        """Start launching the node ``request`` asks for; idempotent by its request id."""

    @abc.abstractmethod
    def terminate(self, instance_id: str) -> None:
        """End the instance; idempotent, an unknown instance is not an error."""

    @abc.abstractmethod
    def non_terminated(self) -> list[ProviderNode]:
        """The instances that exist (launched, not yet ended)."""

    @abc.abstractmethod
    def poll_errors(self) -> list[LaunchError]:
        """Launch failures (and nodes that died by themselves) since the last call, each once."""

    def pending_reasons(self) -> dict[str, str]:
        """Why launched instances are not running yet, by instance id (none by default)."""
        return {}

    def close(self) -> None:
        """The head is stopping: end every node this provider started."""
        for node in self.non_terminated():
            self.terminate(node.instance_id)


def node_spec(request: LaunchRequest, *, node_ip: str = "127.0.0.1", grpc_port: int | None = None) -> NodeSpec:
    """The :class:`NodeSpec` of the node ``request`` asks for (its type's resources,
    ``node_config.object_store_memory``); LaunchFailed for a bad ``object_store_memory``."""
    resources = dict(request.resources)
    num_cpus = resources.pop("CPU", 0)
    num_gpus = resources.pop("GPU", 0)
    store = request.node_config.get("object_store_memory")
    if store is not None and (isinstance(store, bool) or not isinstance(store, int) or store <= 0):
        raise LaunchFailed(
            f"node_config.object_store_memory of {request.node_type} must be a whole number of bytes > 0, "
            f"got {store!r}"
        )
    return NodeSpec(
        num_cpus=num_cpus,
        num_gpus=num_gpus,
        resources=resources,
        object_store_memory=store,
        node_ip=node_ip,
        grpc_port=grpc_port,
        node_type=request.node_type,
        instance_id=request.request_id,
    )


def node_command(
    cluster: ClusterContext,
    request: LaunchRequest,
    *,
    node_id: bytes,
    session_dir: Path,
    gcs_address: str,
    node_ip: str = "127.0.0.1",
    grpc_port: int | None = None,
) -> list[str]:
    """``python -m nbcluster.runtime.node ...`` for the node ``request`` asks for.
    The token goes in the environment (``NBCLUSTER_TOKEN``), never on this line."""
    spec = node_spec(request, node_ip=node_ip, grpc_port=grpc_port)
    args = node_args(Session(session_dir), node_id, gcs_address, spec, head=False)
    return [sys.executable, "-m", "nbcluster.runtime.node", *args]


def _load_class(path: str, key: str) -> type:
    module_name, sep, attr = path.partition(":")
    if not sep:
        module_name, _, attr = path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError, ValueError) as exc:
        raise AutoscalerConfigError(
            f"{key}: cannot import node provider {path!r} ({exc}); give 'package.module.Class'",
            key=key,
        ) from exc
    if not (isinstance(cls, type) and issubclass(cls, NodeProvider)):
        raise AutoscalerConfigError(f"{key}: {path!r} is not a NodeProvider subclass", key=key)
    return cls


def load_provider(config: ProviderConfig, cluster: ClusterContext) -> NodeProvider:
    """The provider ``config`` names, constructed for ``cluster``."""
    return provider_class(config)(config, cluster)


def provider_class(config: ProviderConfig) -> type:
    """The NodeProvider class ``config`` names (AutoscalerConfigError if none)."""
    if config.type == "external":
        module = config.options.get("module")
        if not isinstance(module, str):
            raise AutoscalerConfigError(
                "provider.module: 'type: external' needs 'module: package.module.Class'", key="provider.module"
            )
        return _checked(_load_class(module, "provider.module"), config)
    # The built-in providers are also declared in pyproject.toml; this covers a source
    # tree used without installing.
    found = {
        "local": "nbcluster.runtime.autoscaler.local_provider:LocalNodeProvider",
        "ssh": "nbcluster.runtime.autoscaler.ssh_provider:SshNodeProvider",
        "kubernetes": "nbcluster.runtime.autoscaler.kubernetes_provider:KubernetesNodeProvider",
    }
    found.update((ep.name, ep.value) for ep in entry_points(group=ENTRY_POINT_GROUP))
    if config.type not in found:
        known = ", ".join(sorted({"external", *found}))
        raise AutoscalerConfigError(
            f"provider.type: no node provider named {config.type!r}; installed: {known}", key="provider.type"
        )
    return _checked(_load_class(found[config.type], "provider.type"), config)


#: Ray's on-prem keys: machines to start nodes on over SSH.
_ON_PREM = ("head_ip", "worker_ips")


def _checked(cls: type, config: ProviderConfig) -> type:
    """``cls`` once ``config``'s keys are ones it reads (see :attr:`NodeProvider.options`)."""
    known = cls.options  # type: ignore[attr-defined]
    if known is None:
        return cls
    extra = sorted(set(config.options) - set(known) - ({"module"} if config.type == "external" else set()))
    if not extra:
        return cls
    key = extra[0]
    if key in _ON_PREM:
        raise AutoscalerConfigError(
            f"provider.{key}: starting nodes on other machines (Ray's on-prem {', '.join(_ON_PREM)}) needs an "
            f"SSH node provider: write `type: ssh` (see docs/machines.md); node provider {config.type!r} starts "
            "every node on the head's machine. Or remove the key, and start nodes there with "
            "`nbcluster start --address`.",
            key=f"provider.{key}",
        )
    takes = f"it takes {', '.join(sorted(known))}" if known else "it takes no other keys"
    raise AutoscalerConfigError(
        f"provider.{key}: unknown key for node provider {config.type!r} ({takes}); remove it",
        key=f"provider.{key}",
    )
