"""Node providers for autoscaler tests (loaded by the head through ``type: external``)."""

from __future__ import annotations

import sys

from nbcluster.runtime.autoscaler.process_provider import ProcessNode, ProcessNodeProvider
from nbcluster.runtime.autoscaler.providers import LaunchRequest
from nbcluster.runtime.procutil import spawn


class SilentProvider(ProcessNodeProvider):
    """Launches a process that never joins the cluster (a machine that boots but
    whose node manager never registers)."""

    def start_node(self, request: LaunchRequest) -> ProcessNode:
        proc = spawn(
            [sys.executable, "-c", "import time; time.sleep(300)"],
            log_dir=self.cluster.session_dir / "logs",
            log_name=f"silent-{request.request_id}",
        )
        return ProcessNode(request, proc, None)
