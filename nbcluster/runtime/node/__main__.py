"""A node manager process: ``python -m nbcluster.runtime.node --session-dir DIR ...``.

Reads the cluster token from the pipe its parent passed (``credentials.py``), else
``NBCLUSTER_TOKEN`` or the session's token file; runs until asked to stop
(ShutdownNode RPC, SIGTERM, SIGINT, losing the GCS, or its lifeline closing). A worker
node drains on SIGTERM before it stops (``drain.py``); a second SIGTERM, or SIGINT,
stops it at once, as does everything else.
"""

from __future__ import annotations

import argparse
import contextlib
import asyncio
import dataclasses
import json
import logging
import signal
from pathlib import Path

from nbcluster.runtime import ids
from nbcluster.runtime.config import RuntimeConfig
from nbcluster.runtime.node.gcs_link import Fenced
from nbcluster.runtime.node.manager import NodeManager
from nbcluster.runtime.node.options import NodeOptions
from nbcluster.runtime.procutil import configure_logging, run_service, watch_lifeline
from nbcluster.runtime.credentials import from_parent, token_from_env, trust
from nbcluster.runtime.node import accelerators
from nbcluster.runtime.session import Session, remove_session

logger = logging.getLogger("nbcluster.node")


async def serve(opts: argparse.Namespace, token: str | None) -> None:
    session = Session(Path(opts.session_dir))
    token = token or token_from_env() or session.read_token()
    trust(token, session.read_ca())  # TLS to the other machines of a TLS cluster
    resources = json.loads(opts.resources) if opts.resources else {}
    if opts.num_gpus is None:  # not given: this machine's GPUs (none without nvidia-smi)
        num_gpus, gpu_ids, found = accelerators.detected_resources()
        resources = {**found, **resources}
    else:
        num_gpus, gpu_ids = opts.num_gpus, tuple(range(int(-(-opts.num_gpus // 1))))
    options = NodeOptions(
        node_id=bytes.fromhex(opts.node_id),
        gcs_address=opts.gcs_address,
        num_cpus=opts.num_cpus,
        num_gpus=num_gpus,
        gpu_ids=gpu_ids,
        resources=resources,
        object_store_memory=opts.object_store_memory,
        node_ip=opts.node_ip,
        grpc_port=opts.grpc_port,
        object_port=opts.object_port,
        is_head=opts.head,
        node_type=opts.node_type,
        instance_id=opts.instance_id,
    )
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    current: list[NodeManager] = []

    def stop() -> None:
        stopping.set()
        if current:
            current[0].shutdown_requested.set()

    def drain_then_stop() -> None:  # SIGTERM: what Kubernetes sends a pod it deletes
        again = stopping.is_set()
        stopping.set()
        if again or not current or not current[0].request_drain("it was asked to stop (SIGTERM)"):
            stop()

    loop.add_signal_handler(signal.SIGTERM, drain_then_stop)
    loop.add_signal_handler(signal.SIGINT, stop)
    if opts.lifeline_fd is not None:
        watch_lifeline(loop, opts.lifeline_fd, stop)
    config = RuntimeConfig.load()
    while True:
        manager = NodeManager(session, token, config, options)
        current[:] = [manager]
        try:
            # A stop while starting (e.g. still waiting for the GCS) ends the start.
            starting = asyncio.ensure_future(manager.start())
            stopped = asyncio.ensure_future(stopping.wait())
            await asyncio.wait({starting, stopped}, return_when=asyncio.FIRST_COMPLETED)
            stopped.cancel()
            if not starting.done():
                starting.cancel()
                await asyncio.gather(starting, return_exceptions=True)
                return
            try:
                starting.result()
            except Fenced as exc:  # declared dead while its registration went unanswered
                logger.error("the GCS declared this node dead while it registered (%s): rejoining", exc)
                manager.fenced = True
            else:
                await manager.serve_until_stopped()
        finally:
            logger.info("node manager %s stopping", options.node_id.hex())
            await manager.stop()
        if stopping.is_set() or not manager.fenced:
            return
        # Declared dead while alive (a partition): come back as a new node.
        options = dataclasses.replace(options, node_id=ids.random_id())
        with contextlib.suppress(OSError):  # best effort: stopping the session frees its memory then
            session.record_rejoin(options.node_id)
        logger.info("rejoining the cluster as node %s", options.node_id.hex())
        _readdress(session, options.node_id)


def _readdress(session: Session, node_id: bytes) -> None:
    """A worker node's session names its node for drivers that attach here."""
    try:
        info = session.read_address()
    except (OSError, ValueError):
        return
    if info.get("role") == "worker":
        info.update(node_id=node_id.hex(), node_endpoint=session.endpoint(f"node-{node_id.hex()[:12]}"))
        session.write_address(info)


def main() -> None:
    parser = argparse.ArgumentParser(prog="nbcluster-node")
    parser.add_argument("--session-dir", required=True)
    parser.add_argument("--node-id", required=True)
    parser.add_argument("--gcs-address", required=True)
    parser.add_argument("--num-cpus", type=float, required=True)
    parser.add_argument("--num-gpus", type=float, help="GPUs (default: those nvidia-smi lists)")
    parser.add_argument("--resources", default="")
    parser.add_argument("--object-store-memory", type=int)
    parser.add_argument("--node-ip", default="127.0.0.1")
    parser.add_argument("--grpc-port", type=int)
    parser.add_argument("--object-port", type=int, default=0)
    parser.add_argument("--node-type", default="")
    parser.add_argument("--instance-id", default="")
    parser.add_argument("--head", action="store_true")
    parser.add_argument("--lifeline-fd", type=int)
    parser.add_argument("--remove-session-on-exit", action="store_true")
    opts = parser.parse_args()
    configure_logging(Path(opts.session_dir) / "logs" / f"node-{opts.node_id[:12]}.log")
    run_service(serve(opts, from_parent()), "node")  # the pipe is read before the loop opens fds
    if opts.remove_session_on_exit:  # a node of its own session (a worker node) leaves nothing
        remove_session(Session(Path(opts.session_dir)))


if __name__ == "__main__":
    main()
