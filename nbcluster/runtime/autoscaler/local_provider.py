"""The ``local`` node provider: node managers as processes on this machine.

Each node is one ``python -m nbcluster.runtime.node`` process with its node type's
resources, in the head's session directory (its log is ``logs/node-<id>.err``), and
joined to the GCS over the local socket. The head process holds each node's
lifeline: terminating a node closes it and sends SIGTERM (the node manager
unregisters and exits; SIGKILL after a grace period), and if the head dies, however
it dies, its nodes go with it.

``node_config`` keys: ``object_store_memory`` (bytes). Any other key is a launch
error that names it.
"""

from __future__ import annotations

import os

from nbcluster.runtime import envvars, ids
from nbcluster.runtime.autoscaler.process_provider import ProcessNode, ProcessNodeProvider
from nbcluster.runtime.autoscaler.providers import LaunchRequest, node_command
from nbcluster.runtime.procutil import spawn


class LocalNodeProvider(ProcessNodeProvider):
    """Nodes as node manager processes on the head's machine (see the module docstring)."""

    options = frozenset()  # every node starts here: no machines, no options

    def start_node(self, request: LaunchRequest) -> ProcessNode:
        """Start a node manager process for ``request``, holding its lifeline."""
        node_id = ids.random_id()
        argv = node_command(
            self.cluster,
            request,
            node_id=node_id,
            session_dir=self.cluster.session_dir,
            gcs_address=self.cluster.gcs_local_endpoint,
            node_ip=self.cluster.node_ip,
            grpc_port=0,  # other nodes spill work and pull objects over it
        )
        read, write = os.pipe()
        argv += ["--lifeline-fd", str(read)]
        try:
            proc = spawn(
                argv,
                log_dir=self.cluster.session_dir / "logs",
                log_name=f"node-{node_id.hex()[:12]}",
                env={envvars.CONFIG: self.cluster.config_env},
                pass_fds=(read,),
                credential=self.cluster.token,
            )
        except OSError:
            os.close(write)
            raise
        finally:
            os.close(read)
        os.set_inheritable(write, False)
        return ProcessNode(request, proc, write)
