"""A node provider whose "machines" are network namespaces (for multi-host autoscaler
tests; loaded by the head through ``provider: {type: external, module:
tests.netns_provider.NetnsNodeProvider}``, so the head needs the repository root on
``PYTHONPATH``).

``provider`` options::

    hosts:                       # the machines this provider may use
      h1: {netns: NAME, ip: 10.77.0.2}
      h2: {netns: NAME, ip: 10.77.0.3}

A host runs at most one node. ``launch`` takes the first free host in name order
(a host stays taken until its node's process has exited) and runs ``ip netns exec
NETNS python -m nbcluster.runtime.node`` there through
:func:`~nbcluster.runtime.launcher.start_worker_node`: the node serves other hosts on
the host's address and joins the GCS at the head's ``host:port``. With no free host
the launch is a :class:`LaunchError` ("no free host").

The head process holds each node's lifeline, so a node ends when it is terminated
(lifeline closed, SIGTERM, SIGKILL after a grace period), when ``close()`` runs, or
when the head process dies. A node's session directory is its own, under the head's
temp root (``NBCLUSTER_TEMP_DIR`` of the head process), and is removed when it exits,
as is its shared-memory store if the node could not remove it itself.

``node_config`` keys: ``object_store_memory`` (bytes).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from typing import Any

from nbcluster.runtime.autoscaler.process_provider import LaunchFailed, ProcessNode, ProcessNodeProvider
from nbcluster.runtime.autoscaler.providers import LaunchRequest
from nbcluster.runtime.config import RuntimeConfig
from nbcluster.runtime.launcher import LocalCluster, NodeSpec, start_worker_node
from nbcluster.runtime.session import store_dir


@dataclass(frozen=True)
class Host:
    name: str
    netns: str
    ip: str


def _hosts(options: dict[str, Any]) -> dict[str, Host]:
    raw = options.get("hosts")
    if not isinstance(raw, dict) or not raw:
        raise ValueError("provider.hosts: give {name: {netns: NAME, ip: ADDRESS}, ...}")
    hosts = {}
    for name, spec in sorted(raw.items()):
        if not isinstance(spec, dict) or not isinstance(spec.get("netns"), str) or not isinstance(spec.get("ip"), str):
            raise ValueError(f"provider.hosts.{name}: give {{netns: NAME, ip: ADDRESS}}, got {spec!r}")
        hosts[str(name)] = Host(str(name), spec["netns"], spec["ip"])
    return hosts


class NetnsNodeProvider(ProcessNodeProvider):
    options = frozenset({"hosts"})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.hosts = _hosts(self.config.options)
        self._runtime = RuntimeConfig.load(json.loads(self.cluster.config_env))

    def start_node(self, request: LaunchRequest) -> ProcessNode:
        taken = {n.data.name for n in self.nodes.values()}
        host = next((h for name, h in self.hosts.items() if name not in taken), None)
        if host is None:
            raise LaunchFailed(f"no free host (all of {', '.join(self.hosts)} run a node)")
        resources = dict(request.resources)
        store = request.node_config.get("object_store_memory")
        spec = NodeSpec(
            num_cpus=resources.pop("CPU", 0),
            num_gpus=resources.pop("GPU", 0),
            resources=resources,
            object_store_memory=int(store) if store else None,
            node_ip=host.ip,
            grpc_port=0,  # other hosts reach it at host.ip
            node_type=request.node_type,
            instance_id=request.request_id,
        )
        try:
            handle = start_worker_node(
                gcs_address=self.cluster.gcs_address,
                token=self.cluster.token,
                spec=spec,
                config=self._runtime,
                embedded=True,
                link_latest=False,
                command_prefix=["ip", "netns", "exec", host.netns],
            )
        except OSError as exc:
            raise LaunchFailed(f"cannot start a node on {host.name}: {exc}") from exc
        lifeline, handle.lifeline = handle.lifeline, None  # the provider closes it
        return ProcessNode(request, handle.procs[0], lifeline, where=f" on {host.name}", data=host,
                           cleanup=lambda: _cleanup(handle))


def _cleanup(handle: LocalCluster) -> None:
    """The node's process has exited: remove what it could not (killed)."""
    handle.stop(timeout=0.0)  # reaps the process and removes its session dir
    shutil.rmtree(store_dir(handle.node_id), ignore_errors=True)
