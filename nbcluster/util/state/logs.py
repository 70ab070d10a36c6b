"""``list_logs`` and ``get_log`` of ``nbcluster.util.state`` (Ray's log API).

A node writes its logs into its session directory's ``logs/``: ``node-<id>.*`` (the
node manager, Ray's "raylet"), ``worker-<id>.out``/``.err``/``.log`` per worker, and on
the head ``gcs.*``. Those of the nodes on this machine are read directly; a node on
another machine is out of reach of these calls (``nbcluster job logs`` and the Jobs API
serve jobs' output from anywhere).
"""

from __future__ import annotations

import fnmatch
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from nbcluster import state as snapshots
from nbcluster.runtime.state_nodes import log_dir, node_reports
from nbcluster.util.state.common import RayStateApiException

_CATEGORIES = (
    ("gcs.", "gcs_server"), ("node-", "raylet"), ("job-supervisor-", "job"), ("autoscaler", "autoscaler"),
)


def _category(name: str) -> str:
    if name.startswith("worker-"):
        return {".out": "worker_out", ".err": "worker_err"}.get(Path(name).suffix, "core_worker")
    return next((category for prefix, category in _CATEGORIES if name.startswith(prefix)), "internal")


def _node(node_id: str | None, node_ip: str | None, address: str | None) -> snapshots.NodeState:
    """The node named by id or ip (default: the head)."""
    nodes = snapshots.list_nodes(address=address)
    for node in nodes:
        if (node_id and node.node_id == node_id) or (not node_id and node_ip and node.node_ip == node_ip):
            return node
        if not node_id and not node_ip and node.is_head and node.state == "ALIVE":
            return node
    raise RayStateApiException(f"no node with {'id ' + node_id if node_id else 'ip ' + str(node_ip)} in the cluster")


def _directory(node: snapshots.NodeState) -> Path:
    directory = log_dir(node.node_id)
    if directory is None:
        raise RayStateApiException(
            f"the logs of node {node.node_id[:12]} ({node.hostname or node.node_ip}) are not on this machine"
        )
    return directory


def list_logs(
    address: str | None = None, node_id: str | None = None, node_ip: str | None = None,
    glob_filter: str | None = None, timeout: float = 30, raise_on_missing_output: bool = True,
) -> dict[str, list[str]]:
    """A node's log files by category (``gcs_server``, ``raylet``, ``worker_out``,
    ``worker_err``, ``core_worker``, ``job``, ``internal``); the head's unless ``node_id``
    or ``node_ip`` names another. ``glob_filter``: only names that match (``"*.err"``)."""
    directory = _directory(_node(node_id, node_ip, address))
    found: dict[str, list[str]] = {}
    for path in sorted(directory.iterdir()):
        if path.is_file() and fnmatch.fnmatch(path.name, glob_filter or "*"):
            found.setdefault(_category(path.name), []).append(path.name)
    return found


def _worker_of(node_id: str, pid: int) -> str:
    for report in node_reports():
        if report.node.node_id == node_id and report.stats is not None:
            for worker in report.stats.workers:
                if worker.pid == pid:
                    return worker.worker_id.hex()
    raise RayStateApiException(f"no worker with pid {pid} on node {node_id[:12]} (it may have exited)")


def _target(
    address: str | None, node_id: str | None, node_ip: str | None, filename: str | None, actor_id: str | None,
    task_id: str | None, pid: int | None, suffix: str, attempt_number: int,
) -> Path:
    """The file a ``get_log`` call names, on a node of this machine."""
    if filename is not None:
        if Path(filename).name != filename or filename in (".", ".."):
            raise ValueError(f"filename must be a file's name in the logs directory, got {filename!r}")
        return _directory(_node(node_id, node_ip, address)) / filename
    if suffix not in ("out", "err", "log"):
        raise ValueError(f"suffix must be 'out', 'err' or 'log', got {suffix!r}")
    if actor_id is not None:
        actor = snapshots.get_actor_state(actor_id)
        if actor is None or not actor.pid:
            raise RayStateApiException(f"no actor {actor_id} with a worker is known")
        node_id, worker = actor.node_id, _worker_of(actor.node_id, actor.pid)
    elif task_id is not None:
        tasks = snapshots.list_tasks(task_ids=[task_id], address=address)
        runs = [a for a in (tasks[0].attempts if tasks else []) if a["attempt"] == attempt_number]
        if not runs:
            raise RayStateApiException(f"no run of task {task_id} (attempt {attempt_number}) has ended yet")
        node_id, worker = runs[-1]["node_id"], runs[-1]["worker_id"]
    elif pid is not None:
        node_id = _node(node_id, node_ip, address).node_id
        worker = _worker_of(node_id, pid)
    else:
        raise ValueError("get_log needs one of filename, actor_id, task_id or pid")
    return _directory(_node(node_id, None, address)) / f"worker-{worker[:12]}.{suffix}"


def get_log(
    address: str | None = None, node_id: str | None = None, node_ip: str | None = None,
    filename: str | None = None, actor_id: str | None = None, task_id: str | None = None, pid: int | None = None,
    follow: bool = False, tail: int = 1000, timeout: float = 30, suffix: str = "out", encoding: str = "utf-8",
    errors: str = "strict", attempt_number: int = 0,
) -> Iterator[str]:
    """The lines (without their newline) of a log file: named by ``filename`` on a node
    (the head's by default), or the worker of ``actor_id``, ``task_id`` (its
    ``attempt_number``) or ``pid``, its ``suffix`` file (out, err, log). The last
    ``tail`` lines (-1: all); ``follow=True`` goes on with lines as they are written,
    until the caller stops iterating."""
    path = _target(address, node_id, node_ip, filename, actor_id, task_id, pid, suffix, attempt_number)
    if not path.is_file():
        raise RayStateApiException(f"no log file {path.name} on that node")
    file = open(path, encoding=encoding, errors=errors, newline="")  # read now: the lines up to this call
    lines = file.read().splitlines()
    return _lines(file, lines if tail < 0 else (lines[-tail:] if tail else []), follow)


def _lines(file: TextIO, lines: list[str], follow: bool) -> Iterator[str]:
    with file:
        yield from lines
        partial = ""
        while follow:
            chunk = file.read()
            if not chunk:
                time.sleep(0.2)  # following a file: new lines are read as they land
                continue
            *complete, partial = (partial + chunk).split("\n")
            yield from (line.rstrip("\r") for line in complete)
