"""A cluster of several nodes on this one machine, for testing multi-node code
(as ``ray.cluster_utils.Cluster``)::

    from nbcluster.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    worker = cluster.add_node(num_cpus=2, resources={"accel": 1})
    cluster.wait_for_nodes()
    nbcluster.init(address=cluster.address)
    ...
    nbcluster.shutdown()
    cluster.shutdown()

Every node has its own node manager, object store and session directory, and the
nodes talk as separate machines would: through their node managers' ports on
127.0.0.1 (or the head's ``node_ip_address``). The head takes ``port`` (its GCS's,
default any) and ``node_ip_address`` too, so nodes on other machines can join with
``nbcluster start --address``; ``_tls=True`` gives the cluster TLS between its nodes
(as a head on a network address has by default). The nodes are children of this
process and stop with it.
"""

from __future__ import annotations

import atexit
import logging
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from nbcluster.exceptions import ClusterConnectionError
from nbcluster.runtime.api import init
from nbcluster.runtime.config import RuntimeConfig
from nbcluster.runtime.discovery import call_gcs
from nbcluster.runtime.launcher import LocalCluster, NodeSpec, start_local_cluster, start_worker_node
from nbcluster.runtime.procutil import wait_exit
from nbcluster.runtime.protocol import gcs_pb2
from nbcluster.runtime.transport import methods

__all__ = ["Cluster", "ClusterNode"]

_NODE_ARGS = (
    "num_cpus", "num_gpus", "resources", "object_store_memory", "_system_config", "_tls", "port", "node_ip_address",
    "node_manager_port", "object_manager_port",
)
#: Ray's node arguments (``ray._private.parameter.RayParams``) that mean nothing here:
#: accepted, and named in a warning (there is no dashboard, Redis, metrics agent or port
#: range for workers; workers reach each other through their node managers).
IGNORED_RAY_ARGS = frozenset({
    "redis_port", "redis_password", "redis_max_memory", "num_redis_shards", "dashboard_port", "dashboard_host",
    "include_dashboard", "dashboard_agent_listen_port", "dashboard_grpc_port", "metrics_export_port",
    "metrics_agent_port", "runtime_env_agent_port", "min_worker_port", "max_worker_port", "worker_port_list",
    "ray_client_server_port", "temp_dir", "plasma_directory", "object_spilling_directory", "huge_pages",
    "plasma_store_socket_name", "raylet_socket_name", "enable_object_reconstruction", "labels", "env_vars",
    "memory", "session_name", "raylet_ip_address", "storage", "setup_worker_path", "worker_path",
})

logger = logging.getLogger(__name__)


def _ray_node_args(node_args: dict[str, Any], is_head: bool) -> dict[str, Any]:
    """``node_args`` with Ray's names taken as ours (``gcs_server_port`` is the head's
    ``port``); those that mean nothing here dropped with a warning naming them."""
    args = dict(node_args)
    if is_head and "gcs_server_port" in args:
        args["port"] = args.pop("gcs_server_port")
    ignored = sorted(k for k in args if k in IGNORED_RAY_ARGS or (k == "gcs_server_port" and not is_head))
    if ignored:
        logger.warning("Cluster.add_node: ignoring Ray node arguments that do not apply here: %s", ", ".join(ignored))
    unknown = sorted(set(args) - set(_NODE_ARGS) - set(ignored))
    if unknown:
        raise ValueError(f"unknown node arguments {unknown}; valid: {list(_NODE_ARGS)} (ignored: Ray's "
                         f"{sorted(IGNORED_RAY_ARGS)})")
    return {k: v for k, v in args.items() if k not in ignored}


@dataclass
class ClusterNode:
    """One node of a :class:`Cluster`."""

    node_id: str
    is_head: bool
    _handle: LocalCluster

    @property
    def pid(self) -> int:
        """The node manager's process."""
        return self._handle.procs[-1].pid

    @property
    def session_dir(self) -> str:
        """The node's session directory (its logs are under ``logs/``)."""
        return str(self._handle.session.dir)

    @property
    def token_file(self) -> Path:
        """The file holding the cluster's token (with its CA, for a TLS cluster): what
        ``nbcluster start --address ... --token-file`` takes."""
        return self._handle.session.token_file

    def alive(self) -> bool:
        """Whether the node manager's process still runs."""
        return self._handle.procs[-1].poll() is None


class Cluster:
    """Nodes on this machine that form one cluster: a head (``add_node()`` first, or
    ``initialize_head=True``), then workers that join it. ``connect``: also
    ``nbcluster.init()`` this process to it; ``shutdown_at_exit``: stop it when the
    interpreter exits."""

    def __init__(
        self,
        initialize_head: bool = False,
        connect: bool = False,
        head_node_args: dict[str, Any] | None = None,
        shutdown_at_exit: bool = True,
    ) -> None:
        self.head_node: ClusterNode | None = None
        self.worker_nodes: list[ClusterNode] = []
        self._config: RuntimeConfig | None = None
        self._host = "127.0.0.1"
        if initialize_head:
            self.add_node(**(head_node_args or {}))
            if connect:
                init(address=self.address)
        if shutdown_at_exit:
            atexit.register(self.shutdown)

    @property
    def address(self) -> str:
        """The head's address, for ``nbcluster.init(address=...)``."""
        if self.head_node is None:
            raise ClusterConnectionError("the cluster has no head node yet: add_node() first")
        return self.head_node._handle.session.read_address()["gcs_address"]

    @property
    def token_file(self) -> Path:
        """The head's token file, for nodes that join from elsewhere
        (``nbcluster start --address ADDRESS --token-file FILE``)."""
        if self.head_node is None:
            raise ClusterConnectionError("the cluster has no head node yet: add_node() first")
        return self.head_node.token_file

    @property
    def list_all_nodes(self) -> list[ClusterNode]:
        """The head (when there is one) and the worker nodes, in the order added."""
        return ([self.head_node] if self.head_node else []) + self.worker_nodes

    def add_node(self, wait: bool = True, **node_args: Any) -> ClusterNode:
        """Start a node: the head first, then workers that join it. ``node_args``:
        ``num_cpus``, ``num_gpus``, ``resources``, ``object_store_memory``,
        ``node_manager_port`` and ``object_manager_port`` (0: any); on the head also
        ``port`` (or Ray's ``gcs_server_port``), ``node_ip_address``, ``_system_config``,
        ``_tls``. Ray's other node arguments (:data:`IGNORED_RAY_ARGS`) are accepted and
        named in a warning; anything else is a ValueError."""
        node_args = _ray_node_args(node_args, self.head_node is None)
        system_config = node_args.pop("_system_config", None)
        use_tls = node_args.pop("_tls", False)
        port, host = node_args.pop("port", 0), node_args.pop("node_ip_address", None)
        node_port, object_port = node_args.pop("node_manager_port", 0), node_args.pop("object_manager_port", 0)
        spec = dict(num_cpus=1, num_gpus=0, resources=None, object_store_memory=None)
        spec.update(node_args)
        if self.head_node is None:
            self._config = RuntimeConfig.load(system_config)
            self._host = host or "127.0.0.1"
            handle = start_local_cluster(
                num_cpus=spec["num_cpus"],
                num_gpus=spec["num_gpus"],
                resources=spec["resources"],
                object_store_memory=spec["object_store_memory"],
                config=self._config,
                head_port=port,
                host=self._host,
                node_port=node_port,
                object_port=object_port,
                jobs_host=self._host,
                tls_settings=True if use_tls else None,  # None: on when the head is not on loopback
            )
            node = self.head_node = ClusterNode(handle.node_id.hex(), True, handle)
            if wait:
                self._wait_address(handle)
        else:
            if system_config or port or host or use_tls:
                raise ValueError("_system_config, _tls, port and node_ip_address are set once, on the head node")
            head = self.head_node._handle
            handle = start_worker_node(
                gcs_address=self.address,
                token=head.token,
                spec=NodeSpec(
                    spec["num_cpus"], spec["num_gpus"], spec["resources"] or {}, spec["object_store_memory"],
                    node_ip=self._host, grpc_port=node_port, object_port=object_port,
                ),
                config=self._config,
                link_latest=False,
            )
            node = ClusterNode(handle.node_id.hex(), False, handle)
            self.worker_nodes.append(node)
        if wait:
            self.wait_for_nodes()
        return node

    def remove_node(self, node: ClusterNode, allow_graceful: bool = True) -> None:
        """Stop a worker node: SIGTERM (it unregisters), or SIGKILL of its node manager
        and workers (the GCS then finds it dead by its health checks)."""
        if node is self.head_node:
            raise ValueError("remove the head with shutdown()")
        if allow_graceful:
            node._handle.stop()
        else:
            try:
                victims = [psutil.Process(node.pid), *psutil.Process(node.pid).children(recursive=True)]
            except psutil.NoSuchProcess:
                victims = []
            for proc in victims:
                try:
                    proc.send_signal(signal.SIGKILL)
                except psutil.NoSuchProcess:
                    pass
            wait_exit(node._handle.procs, 5.0)
            wait_exit(victims, 5.0)
            node._handle.stop()  # reaps it, closes the lifeline, removes the session
        if node in self.worker_nodes:
            self.worker_nodes.remove(node)

    def wait_for_nodes(self, timeout: float = 30.0) -> None:
        """Until every node added is alive in the GCS's node table."""
        wanted = {n.node_id for n in self.list_all_nodes}
        deadline = time.monotonic() + timeout
        delay = 0.05  # growing to 0.5 s: each look lists every node, work for a busy head
        while True:
            try:
                alive = {n.node_id.hex() for n in self._gcs_nodes() if n.state == gcs_pb2.NODE_STATE_ALIVE}
            except TimeoutError:  # a head too busy to answer in time (many nodes starting): ask again
                alive = set()
            if wanted <= alive:
                return
            if time.monotonic() > deadline:
                missing = sorted(wanted - alive)
                raise TimeoutError(f"nodes {missing} did not join within {timeout} s (see their logs/)")
            for node in self.list_all_nodes:
                if not node.alive():
                    raise ClusterConnectionError(
                        f"node {node.node_id} exited while starting; see {node.session_dir}/logs"
                    )
            time.sleep(delay)
            delay = min(delay * 1.5, 0.5)

    def _wait_address(self, handle: LocalCluster, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not handle.session.address_file.exists():
            exited = not handle.alive()
            if exited or time.monotonic() > deadline:
                err = handle.failure(default="")
                if exited:
                    why = err or "it exited without saying why"
                else:
                    why = f"it did not serve within {timeout:g} s" + (f" ({err})" if err else "")
                self.head_node = None
                handle.abandon()  # removes its session, logs included, unless NBCLUSTER_KEEP_SESSION=1
                raise ClusterConnectionError(f"the head did not start: {why}")
            time.sleep(0.02)

    def _gcs_nodes(self) -> list[gcs_pb2.NodeInfo]:
        assert self.head_node is not None
        head = self.head_node._handle
        reply = call_gcs((head.gcs_endpoint, head.token), methods.Gcs.GetAllNodes, gcs_pb2.GetAllNodesRequest(), 10.0)
        return list(reply.nodes)

    def shutdown(self) -> None:
        """Stop every node, the workers first."""
        for node in list(self.worker_nodes):
            self.remove_node(node)
        if self.head_node is not None:
            self.head_node._handle.stop()
            self.head_node = None
