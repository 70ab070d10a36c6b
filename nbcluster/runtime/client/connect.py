"""Connecting this process as a driver in client mode: through a proxy on the head,
with no node of the cluster on this machine (``init(address=...)`` when none runs
here, or an ``nbcluster://`` address)."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import time
from typing import Any

from nbcluster.exceptions import ClusterConnectionError
from nbcluster.runtime import envvars
from nbcluster.runtime.client.core import ClientCore
from nbcluster.runtime.core import autoscaler_events as autoscaler_printer
from nbcluster.runtime.core import worker_state
from nbcluster.runtime.discovery import something_listens
from nbcluster.runtime.job_setup import JobSetup, dial_gcs, driver_metadata, job_config, upload_packages
from nbcluster.runtime.protocol import gcs_pb2, node_manager_pb2 as nm_pb2
from nbcluster.runtime.transport import methods
from nbcluster.runtime.transport.errors import TransportError, public_error


def connect_client(address: str, token: str, job: JobSetup) -> None:
    """Connect in client mode (``runtime/client/``): through a proxy on the head."""
    started = time.time()
    config = job_config(job)
    del config.sys_path[:]  # this machine's paths mean nothing on the cluster
    config.cwd = ""
    host = socket.gethostname()
    metadata = {**driver_metadata(), "client_host": host}
    core = ClientCore(address, token, job.config, "")
    core.job_config = config  # an actor's own runtime_env is laid over it (core/task_env.py)

    async def setup() -> None:
        await something_listens(address)
        gcs = core.gcs = await dial_gcs(address, token, job.config)
        await upload_packages(gcs, job.uploads)
        head = await _head_node(gcs, job.config.startup_timeout_s)
        if not head.address:
            raise ClusterConnectionError(
                f"the cluster at {address} serves no clients from other machines: it was started embedded "
                "(nbcluster.init() or %cluster start). Start it with `nbcluster start --head` to connect from here."
            )
        core.link.node_address = head.address
        core.object_address = head.object_address
        entrypoint = f"{' '.join(sys.argv) or sys.executable} (client on {host})"
        client_job = nm_pb2.ClientJob(config=config, metadata=metadata, entrypoint=entrypoint,
                                      reconnect_grace_s=core.link.grace_s)
        try:
            core.attached(await core.link.open(client_job))
        except TransportError as exc:
            raise public_error(exc, head.address, connecting=True) from None
        if job.autoscaler_events and os.environ.get(envvars.AUTOSCALER_EVENTS, "1") not in ("0", "false", "False"):
            core.spawn(autoscaler_printer.print_events(gcs, started))

    core.start_loop()
    try:
        core.run_sync(setup())
    except BaseException:
        core.shutdown()
        raise
    worker_state.current = core


async def _head_node(gcs: Any, timeout: float) -> gcs_pb2.NodeInfo:
    """The head's node, waited for while the head has just started (its GCS serves
    before its node registers): a ClusterConnectionError if none comes within ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        nodes = (await gcs.call(methods.Gcs.GetAllNodes, gcs_pb2.GetAllNodesRequest())).nodes
        head = next((n for n in nodes if n.is_head and n.state == gcs_pb2.NODE_STATE_ALIVE), None)
        if head is not None:
            return head
        if time.monotonic() > deadline:
            raise ClusterConnectionError(f"the cluster's head has no node that serves clients (none joined "
                                         f"within {timeout:g} s)")
        await asyncio.sleep(0.2)
