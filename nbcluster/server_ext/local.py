"""Clusters the server makes: detached heads on this machine, with the autoscaler.

A cluster is started as ``nbcluster start --head --autoscaling-config F`` starts one
(:func:`nbcluster.runtime.start_head`), by a short-lived helper process (this
module run as ``python -m``) that exits once the head serves: the head and its node are
then nobody's children — not the server's, so nothing that ends the server's process
tree ends them — in sessions of their own with no lifeline, and they outlive kernels and
the server. The session's ``processes.json`` names them for :func:`stop` (and for
``nbcluster stop``) from the moment they run. The helper tells the server the session
directory as soon as it has started them and waits until the server has saved it (see
:func:`start`), so a server killed while a cluster starts leaves it findable: the next
server re-attaches it once it serves (:func:`serving`) or stops it. Worker nodes are
the autoscaler's (``local`` provider, children of the head): a fixed size is
``min_workers = max_workers``, so scaling is :func:`nbcluster.autoscaler.set_worker_bounds`.

Every function here blocks (processes, files): call them from an executor.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nbcluster.exceptions import AutoscalerConfigError, ClusterConnectionError, NbclusterError
from nbcluster.runtime import (
    AutoscalingConfig,
    CliError,
    LocalNode,
    RuntimeConfig,
    Session,
    envvars,
    load_config,
    provider_class,
    remove_session,
    session_running,
    start_head,
    stop_session,
)
from nbcluster.server_ext.models import BadRequest, ClusterSpec, ClusterStartError
from nbcluster.state import get_head_state

__all__ = ["Started", "check_spec", "is_running", "serving", "start", "start_time", "startup_timeout", "stop"]

logger = logging.getLogger(__name__)

#: The helper's working directory: the one that holds this nbcluster package, so no
#: other ``nbcluster`` directory where the server runs (say ``$XDG_RUNTIME_DIR/nbcluster``,
#: the sessions' root) can shadow it.
_HELPER_CWD = str(Path(__file__).resolve().parents[2])


@dataclass(frozen=True)
class Started:
    """Where a cluster the server started serves: its session directory, GCS and Jobs
    API addresses, and its token file."""

    session_dir: str
    address: str
    jobs_address: str
    token_file: str


def check_spec(name: str, spec: ClusterSpec) -> Any:
    """The validated :class:`AutoscalingConfig` of ``spec``; BadRequest with the
    config checker's message (key, what is wrong, how to fix it) otherwise."""
    field = "autoscaling_config" if spec.autoscaling_config is not None else "workers"
    try:
        config = load_config(spec.autoscaling(name))
        provider_class(config.provider)
    except AutoscalerConfigError as exc:
        raise BadRequest(f"{field}: {exc}", field) from None
    return config


def start(name: str, spec: ClusterSpec, *, host: str = "127.0.0.1", system_config: dict[str, Any] | None = None,
          on_session: Callable[[str, str], None] | None = None) -> Started:
    """Start the cluster and return once its head serves (its workers come as the
    autoscaler starts them). ClusterStartError with the reason when it does not start.

    ``on_session(session_dir, token_file)`` is called as soon as the helper has
    started the processes (recorded in the session's ``processes.json``), before they
    serve: the caller saves where they are, so that they are not lost if the caller
    dies while they start. The helper waits for it to return; if it raises (or the
    caller is gone) the helper stops them. A start that fails after that stops the
    processes too; the session directory stays for its logs."""
    autoscaling = check_spec(name, spec)
    try:
        config = RuntimeConfig.load(dict(system_config) if system_config else None)
    except (TypeError, ValueError) as exc:
        raise ClusterStartError(f"the server's NbclusterApp.system_config is invalid: {exc}") from None
    head = autoscaling.head_resources() or {}
    num_cpus = spec.num_cpus if spec.num_cpus is not None else head.get("CPU", float(os.cpu_count() or 1))
    request = {"config": autoscaling.to_json(), "num_cpus": num_cpus, "host": host, "system_config": system_config}
    timeout = config.startup_timeout_s + 60.0
    session_dir = ""
    answer: dict[str, Any] = {}
    timed_out = threading.Event()
    with tempfile.TemporaryFile("w+") as stderr, subprocess.Popen(
        [sys.executable, "-m", __name__], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, text=True,
        cwd=_HELPER_CWD,
    ) as helper:
        assert helper.stdin is not None and helper.stdout is not None

        def expire() -> None:
            timed_out.set()
            helper.kill()  # ends its stdout, and so the loop below

        timer = threading.Timer(timeout, expire)
        timer.start()
        try:
            _tell(helper, json.dumps(request))
            for line in helper.stdout:
                try:
                    message = json.loads(line)
                except ValueError:
                    continue  # not ours
                if "session" in message:
                    session_dir = message["session"]["session_dir"]
                    if on_session is not None:
                        on_session(session_dir, message["session"]["token_file"])
                    _tell(helper, "ok")
                elif "started" in message or "error" in message:
                    answer = message
                    break
        except BaseException:
            _give_up(helper, session_dir)
            raise
        finally:
            timer.cancel()
            with contextlib.suppress(OSError):  # the helper may be gone
                helper.stdin.close()
        if not answer:  # it died (or was killed) before it said how it went
            _give_up(helper, session_dir)
            logs = f" (logs: {session_dir}/logs)" if session_dir else ""
            if timed_out.is_set():
                raise ClusterStartError(f"cluster {name} did not start within {timeout:g} s{logs}")
            stderr.seek(0)
            answer = {"error": (stderr.read().strip() or "the helper said nothing")[-2000:] + logs}
        try:  # it said how it went and exits now; Popen's exit would wait for it without a bound
            helper.wait(timeout=10)
        except subprocess.TimeoutExpired:
            helper.kill()
    if "error" in answer:
        raise ClusterStartError(f"cluster {name} did not start: {answer['error']}")
    return Started(**answer["started"])


def _tell(helper: subprocess.Popen, line: str) -> None:
    """Write a line to the helper; if it died, its stdout ends and its stderr says why."""
    assert helper.stdin is not None
    with contextlib.suppress(OSError):
        helper.stdin.write(line + "\n")
        helper.stdin.flush()


def _give_up(helper: subprocess.Popen, session_dir: str) -> None:
    """A start that failed: stop the helper and whatever it started (the session
    directory stays, for its logs)."""
    helper.kill()
    helper.wait()
    if session_dir:
        stop_session(Path(session_dir), 5.0)


class _Unwanted(Exception):
    """The server did not take the cluster (it is gone, or refused it); the argument is
    the session."""


def _detached_main() -> int:
    """The helper: start the head described on stdin's first line; print
    ``{"session": ...}`` as soon as its processes run and wait for ``ok`` on stdin
    (anything else: stop them); then print ``{"started": Started}`` once it serves (or
    ``{"error": ...}``) and exit."""
    request = json.loads(sys.stdin.readline())

    def announce(handle: Any) -> None:
        session = {"session_dir": str(handle.session.dir), "token_file": str(handle.session.token_file)}
        try:
            print(json.dumps({"session": session}), flush=True)
            taken = sys.stdin.readline().strip() == "ok"
        except OSError:
            taken = False
        if not taken:  # start_head stops the processes
            raise _Unwanted(handle.session)

    try:
        handle, written, _ = start_head(
            num_cpus=request["num_cpus"], autoscaling=AutoscalingConfig.from_json(request["config"]),
            host=request["host"], port=0, jobs_port=0, config=RuntimeConfig.load(request["system_config"]),
            on_started=announce,
        )
    except _Unwanted as exc:  # the server is gone (or refused it): nobody needs the session's logs
        remove_session(exc.args[0])
        return 1
    except (CliError, NbclusterError, OSError, ValueError) as exc:
        with contextlib.suppress(OSError):  # the server may be gone
            print(json.dumps({"error": str(exc)}), flush=True)
        return 1
    started = Started(str(handle.session.dir), written["gcs_address"], written.get("jobs_address", ""),
                      str(handle.session.token_file))
    with contextlib.suppress(OSError):  # the server may be gone: its registry names the session
        print(json.dumps({"started": dataclasses.asdict(started)}), flush=True)
    return 0


def startup_timeout(system_config: dict[str, Any] | None = None) -> float:
    """Seconds a cluster's head has to serve (the runtime's ``startup_timeout_s``)."""
    try:
        return RuntimeConfig.load(dict(system_config) if system_config else None).startup_timeout_s
    except (TypeError, ValueError):
        return RuntimeConfig().startup_timeout_s


def serving(session_dir: str) -> Started | None:
    """Where a cluster whose start was announced serves, read from its session once
    its head wrote its address there; None before (or when that is unreadable)."""
    session = Session(Path(session_dir))
    try:
        written = session.read_address()
        return Started(session_dir, written["gcs_address"], written.get("jobs_address", ""), str(session.token_file))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def start_time(head: LocalNode) -> float | None:
    """When a cluster running on this machine started, as its GCS says (None, logged:
    its head does not answer)."""
    try:
        return get_head_state(address=head.gcs_address, token=head.token).start_time
    except (ClusterConnectionError, NbclusterError) as exc:
        logger.warning("nbcluster: the head at %s did not say when it started: %s", head.gcs_address, exc)
        return None


def is_running(session_dir: str) -> bool:
    """Whether any process the cluster's session records still runs."""
    return bool(session_dir) and session_running(Path(session_dir))


def stop(session_dir: str, grace_period: float = 10.0) -> None:
    """Stop the cluster's processes (its head, node and the nodes its autoscaler
    added); they are gone when this returns. The session directory goes too unless
    ``NBCLUSTER_KEEP_SESSION=1``."""
    if not session_dir:
        return
    stop_session(Path(session_dir), grace_period)
    if os.environ.get(envvars.KEEP_SESSION, "") in ("", "0"):
        remove_session(Session(Path(session_dir)))
        shutil.rmtree(session_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(_detached_main())
