"""Clusters the server makes: detached heads on this machine, with the autoscaler.

A cluster is started as ``nbcluster start --head --autoscaling-config F`` starts one
(:func:`nbcluster.runtime.cli.start_head`), by a short-lived helper process (this
module run as ``python -m``) that exits once the head serves: the head and its node are
then nobody's children — not the server's, so nothing that ends the server's process
tree ends them — in sessions of their own with no lifeline, and they outlive kernels and
the server. The session's ``processes.json`` names them for :func:`stop` (and for
``nbcluster stop``). Worker nodes are the autoscaler's (``local`` provider, children of
the head): a fixed size is ``min_workers = max_workers``, so scaling is
:func:`nbcluster.autoscaler.set_worker_bounds`.

Every function here blocks (processes, files): call them from an executor.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nbcluster.exceptions import AutoscalerConfigError, NbclusterError
from nbcluster.server_ext.models import BadRequest, ClusterSpec, ClusterStartError

__all__ = ["Started", "check_spec", "is_running", "start", "stop"]

#: Set to 1 to keep a deleted cluster's session directory (its logs).
KEEP_SESSION_ENV = "NBCLUSTER_KEEP_SESSION"
#: The helper's working directory: the one that holds this nbcluster package, so no
#: other ``nbcluster`` directory where the server runs (say /tmp/nbcluster, the
#: sessions' root) can shadow it.
_HELPER_CWD = str(Path(__file__).resolve().parents[2])


@dataclass(frozen=True)
class Started:
    session_dir: str
    address: str
    jobs_address: str
    token_file: str


def check_spec(name: str, spec: ClusterSpec) -> Any:
    """The validated :class:`AutoscalingConfig` of ``spec``; BadRequest with the
    config checker's message (key, what is wrong, how to fix it) otherwise."""
    from nbcluster.runtime.autoscaler.config import load_config
    from nbcluster.runtime.autoscaler.providers import provider_class

    field = "autoscaling_config" if spec.autoscaling_config is not None else "workers"
    try:
        config = load_config(spec.autoscaling(name))
        provider_class(config.provider)
    except AutoscalerConfigError as exc:
        raise BadRequest(f"{field}: {exc}", field) from None
    return config


def start(name: str, spec: ClusterSpec, *, host: str = "127.0.0.1", system_config: dict[str, Any] | None = None) -> Started:
    """Start the cluster and return once its head serves (its workers come as the
    autoscaler starts them). ClusterStartError with the reason when it does not start."""
    from nbcluster.runtime.config import RuntimeConfig

    autoscaling = check_spec(name, spec)
    try:
        config = RuntimeConfig.load(dict(system_config) if system_config else None)
    except (TypeError, ValueError) as exc:
        raise ClusterStartError(f"the server's NbclusterApp.system_config is invalid: {exc}") from None
    head = autoscaling.head_resources() or {}
    num_cpus = spec.num_cpus if spec.num_cpus is not None else head.get("CPU", float(os.cpu_count() or 1))
    request = {"config": autoscaling.to_json(), "num_cpus": num_cpus, "host": host, "system_config": system_config}
    try:
        done = subprocess.run([sys.executable, "-m", __name__], input=json.dumps(request), capture_output=True,
                              text=True, timeout=config.startup_timeout_s + 60.0, cwd=_HELPER_CWD)
    except subprocess.TimeoutExpired:
        raise ClusterStartError(f"cluster {name} did not start within {config.startup_timeout_s + 60:g} s") from None
    try:
        answer = json.loads(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        answer = {"error": (done.stderr.strip() or "the helper said nothing")[-2000:]}
    if "error" in answer:
        raise ClusterStartError(f"cluster {name} did not start: {answer['error']}")
    return Started(**answer)


def _detached_main() -> int:
    """The helper: start the head described on stdin, print where it is, exit."""
    from nbcluster.runtime.autoscaler.config import AutoscalingConfig
    from nbcluster.runtime.cli import CliError, start_head
    from nbcluster.runtime.config import RuntimeConfig

    request = json.loads(sys.stdin.read())
    try:
        handle, written = start_head(
            num_cpus=request["num_cpus"], autoscaling=AutoscalingConfig.from_json(request["config"]),
            host=request["host"], port=0, jobs_port=0, config=RuntimeConfig.load(request["system_config"]),
        )
    except (CliError, NbclusterError, OSError, ValueError) as exc:
        print(json.dumps({"error": str(exc)}), flush=True)
        return 1
    started = Started(str(handle.session.dir), written["gcs_address"], written.get("jobs_address", ""),
                      str(handle.session.token_file))
    print(json.dumps(dataclasses.asdict(started)), flush=True)
    return 0


def is_running(session_dir: str) -> bool:
    from nbcluster.runtime.cli import session_running

    return bool(session_dir) and session_running(Path(session_dir))


def stop(session_dir: str, grace_period: float = 10.0) -> None:
    """Stop the cluster's processes (its head, node and the nodes its autoscaler
    added); they are gone when this returns. The session directory goes too unless
    ``NBCLUSTER_KEEP_SESSION=1``."""
    from nbcluster.runtime.cli import stop_session
    from nbcluster.runtime.session import Session, remove_session

    if not session_dir:
        return
    stop_session(Path(session_dir), grace_period)
    if os.environ.get(KEEP_SESSION_ENV, "") in ("", "0"):
        remove_session(Session(Path(session_dir)))
        shutil.rmtree(session_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(_detached_main())
