"""The head process: ``python -m nbcluster.runtime.gcs --session-dir DIR``.

Reads the cluster token from the pipe its parent passed (``credentials.py``), else
``NBCLUSTER_TOKEN`` or the session's token file; serves the GCS until asked to stop
(Shutdown RPC, SIGTERM, or its lifeline closing), then exits.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from pathlib import Path

import psutil

from nbcluster.runtime.autoscaler.config import AutoscalingConfig
from nbcluster.runtime.config import RuntimeConfig
from nbcluster.runtime.credentials import from_parent, token_from_env, trust
from nbcluster.runtime.gcs.server import GcsServer
from nbcluster.runtime.procutil import configure_logging, run_service, wait_exit, watch_lifeline
from nbcluster.runtime.session import Session, remove_session, remove_store

logger = logging.getLogger("nbcluster.head")


async def serve(opts: argparse.Namespace, token: str | None) -> None:
    """Serve the GCS of ``opts.session_dir`` until asked to stop, then stop it."""
    session = Session(Path(opts.session_dir))
    token = token or token_from_env() or session.read_token()
    trust(token, session.read_ca())  # TLS to the other machines of a TLS cluster
    autoscaling = None
    if opts.autoscaling_config:
        autoscaling = AutoscalingConfig.from_json(session.read_file(Path(opts.autoscaling_config)))
    server = GcsServer(
        session,
        token,
        RuntimeConfig.load(),
        host=opts.host,
        port=opts.port,
        autoscaling=autoscaling,
        jobs_host=opts.jobs_host,
        jobs_port=None if opts.jobs_port < 0 else opts.jobs_port,
    )
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, server.shutdown_requested.set)
    if opts.lifeline_fd is not None:
        watch_lifeline(loop, opts.lifeline_fd, server.shutdown_requested.set)
    await server.start()
    await server.shutdown_requested.wait()
    logger.info("head stopping")
    await server.stop()
    if opts.remove_session_on_exit:
        await asyncio.to_thread(_remove_session, server)


def _remove_session(server: GcsServer) -> None:
    """An embedded cluster leaves nothing behind: once this machine's node managers
    have exited, remove their shared-memory stores and the session directory."""
    procs = []
    for node in server.local_nodes():
        try:
            procs.append(psutil.Process(node.pid))
        except psutil.NoSuchProcess:
            pass
    wait_exit(procs, 10.0)
    for node in server.local_nodes():
        remove_store(node.node_id)
    remove_session(server.session)


def main() -> None:
    """The head's entry point: parse the command line, serve, exit."""
    parser = argparse.ArgumentParser(prog="nbcluster-head")
    parser.add_argument("--session-dir", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--lifeline-fd", type=int)
    parser.add_argument("--remove-session-on-exit", action="store_true")
    parser.add_argument("--autoscaling-config", help="the validated config, as JSON (written by the starter)")
    parser.add_argument("--jobs-host", default="127.0.0.1", help="where the Jobs REST API listens")
    parser.add_argument("--jobs-port", type=int, default=0, help="its port (0: any free one; -1: no Jobs API)")
    opts = parser.parse_args()
    configure_logging(Path(opts.session_dir) / "logs" / "gcs.log")
    run_service(serve(opts, from_parent()), "head")  # the pipe is read before the loop opens fds


if __name__ == "__main__":
    main()
