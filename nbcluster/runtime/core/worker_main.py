"""A worker process: ``python -m nbcluster.runtime.core.worker_main ...``.

Started by its node manager. Connects back to it, then runs pushed tasks on the main
thread until the node manager goes away or tells it to exit.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
from pathlib import Path

from nbcluster.runtime.config import RuntimeConfig
from nbcluster.runtime.core import worker_state
from nbcluster.runtime.core.core_worker import WORKER, CoreWorker
from nbcluster.runtime.core.executor import Executor
from nbcluster.runtime.procutil import LOG_FORMAT, WORKER_PROCESS_NAME, set_process_name
from nbcluster.runtime.protocol import node_manager_pb2 as nm_pb2
from nbcluster.runtime.credentials import from_parent


def _configure_logging(path: Path) -> None:
    # Only the runtime's own logger goes to the worker's log file: the root logger is
    # left to user code, whose output reaches the driver through stderr.
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    ours = logging.getLogger("nbcluster")
    ours.addHandler(handler)
    ours.setLevel(logging.INFO)
    ours.propagate = False


def _credential() -> str:
    token = from_parent()
    if token is None:
        raise SystemExit("a worker is started by its node manager, which passes its credential")
    return token


def parser(template: bool = False) -> argparse.ArgumentParser:
    """The command line of a worker (``template``: of the worker template, which has
    every argument but ``--worker-id``; it adds that per worker it forks)."""
    parser = argparse.ArgumentParser(prog="nbcluster-worker-template" if template else "nbcluster-worker")
    parser.add_argument("--session-dir", required=True)
    parser.add_argument("--node-id", required=True)
    parser.add_argument("--node-endpoint", required=True)
    parser.add_argument("--node-ip", default="127.0.0.1")
    parser.add_argument("--gcs-address", default="")
    parser.add_argument("--relay-endpoint", default="")
    if template:
        parser.add_argument("--control-fd", type=int, required=True)
        parser.add_argument("--niceness", type=int, default=0)
    else:
        parser.add_argument("--worker-id", required=True)
    return parser


def main() -> None:
    """A worker process: connect to its node manager, then run the tasks pushed to it."""
    run(parser().parse_args(), _credential())


def run(opts: argparse.Namespace, token: str) -> None:
    """Be the worker ``opts`` describe (a fresh process, or one forked from the worker
    template, ``worker_template.py``); returns only when the worker is done."""
    set_process_name(WORKER_PROCESS_NAME)
    session_dir = Path(opts.session_dir)
    _configure_logging(session_dir / "logs" / f"worker-{opts.worker_id[:12]}.log")
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    core = CoreWorker(
        mode=WORKER,
        session_dir=session_dir,
        token=token,
        node_id=bytes.fromhex(opts.node_id),
        node_endpoint=opts.node_endpoint,
        node_ip=opts.node_ip,
        worker_id=bytes.fromhex(opts.worker_id),
        config=RuntimeConfig.load(),
        gcs_address=opts.gcs_address,
        relay_endpoint=opts.relay_endpoint,
    )
    executor = Executor(core)
    core.executor = executor
    worker_state.current = core
    executor.install()

    async def setup() -> None:
        await core.connect_node(nm_pb2.CLIENT_KIND_WORKER)
        # Without its node manager a worker has nothing to do.
        assert core.nm is not None
        core.nm.on_close(lambda _conn: os._exit(0))

    try:
        core.start(setup)
    except Exception:
        logging.getLogger("nbcluster.worker").exception("worker failed to start")
        os._exit(1)
    executor.run()


if __name__ == "__main__":
    main()
