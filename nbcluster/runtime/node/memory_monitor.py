"""The memory monitor (Ray's): a node manager watches its node's memory and, above
``memory_usage_threshold``, kills one worker to save the node and its other work.

- :func:`read_usage` — the node's memory: its cgroup's use and limit when it runs in
  a cgroup limited below the machine's memory (v2 ``memory.current``/``memory.max``,
  v1 ``memory.usage_in_bytes``/``memory.limit_in_bytes``; the page cache it may drop,
  ``inactive_file`` in ``memory.stat``, not counted), else the machine's (psutil).
  ``memory_monitor_cgroup_dir`` names the directory to read instead (tests fake it).
- :func:`choose` — which worker goes, a pure function (Ray's group-by-owner policy):
  retriable work first (tasks with retries, actors with restarts); of it, the owner
  with the most leased workers here, and its newest lease. That kill is retried unless
  it was the owner's last worker here (some work of every owner must be able to run,
  else retries would loop). Non-retriable work goes only when there is nothing else.
- :class:`MemoryMonitor` — the loop (``memory_monitor_refresh_ms``), one kill at a
  time; :class:`MemoryHandlers` — mixed into the node manager: the monitor's inputs,
  the kill, and ``GetWorkerFailureCause``, by which a lease holder learns why its
  worker died (then its task fails with ``OutOfMemoryError`` or is retried).

"Newest" is the lease granted last: a lease runs one task at a time from its holder.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from nbcluster.runtime.config import RuntimeConfig
from nbcluster.runtime.protocol import node_manager_pb2 as nm_pb2

logger = logging.getLogger(__name__)

_GIB = 1024 ** 3
_CAUSES_KEPT = 1000


@dataclass(frozen=True)
class MemoryUsage:
    """The node's memory in use and its limit, in bytes, and where they were read."""

    used: int
    total: int
    source: str

    @property
    def fraction(self) -> float:
        """``used / total`` (0 when the total is unknown)."""
        return self.used / self.total if self.total > 0 else 0.0

    def describe(self) -> str:
        """``"1.23GiB / 2.00GiB (0.6150)"``."""
        return f"{self.used / _GIB:.2f}GiB / {self.total / _GIB:.2f}GiB ({self.fraction:.4f})"


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


#: The files of a cgroup's memory controller: (limit, usage, the page cache in memory.stat).
_V2 = ("memory.max", "memory.current", "inactive_file")
_V1 = ("memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file")


def _own_cgroup() -> tuple[Path, tuple[str, str, str]] | None:
    """This process's memory cgroup directory and its files (v2, else v1), if any."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "memory":
            return Path("/sys/fs/cgroup/memory") / path.lstrip("/"), _V1
    for line in lines:
        if line.startswith("0::"):
            return Path("/sys/fs/cgroup") / line[3:].lstrip("/"), _V2
    return None


def _cgroup_usage(directory: Path, files: tuple[str, str, str]) -> MemoryUsage | None:
    """A cgroup's use of memory and its limit (None: no readable limit there)."""
    limit = _read_int(directory / files[0])
    current = _read_int(directory / files[1])
    if limit is None or current is None:
        return None
    inactive = 0
    try:
        for line in (directory / "memory.stat").read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == files[2] and value.strip().isdigit():
                inactive = int(value)
    except OSError:
        pass
    return MemoryUsage(max(0, current - inactive), limit, f"cgroup {directory}")


def read_usage(cgroup_dir: str = "") -> MemoryUsage:
    """The node's memory use: ``cgroup_dir``'s (cgroup v2 files), or this process's
    memory cgroup's when it has a limit below the machine's memory, else the
    machine's as psutil sees it (total less available)."""
    vm = psutil.virtual_memory()
    found = (Path(cgroup_dir), _V2) if cgroup_dir else _own_cgroup()
    if found is not None:
        usage = _cgroup_usage(*found)
        if usage is not None and (cgroup_dir or usage.total < vm.total):
            return usage
    return MemoryUsage(vm.total - vm.available, vm.total, "machine")


@dataclass(frozen=True)
class Candidate:
    """A leased worker the monitor may kill."""

    worker_id: bytes
    pid: int
    owner: bytes  # the lease holder's worker id
    retriable: bool
    granted: float  # monotonic time of the lease
    description: str  # "Task f" / "Actor A"


def choose(candidates: Sequence[Candidate]) -> tuple[Candidate, bool] | None:
    """The worker to kill and whether its work may be retried (module docstring)."""
    retriable = [c for c in candidates if c.retriable]
    if retriable:
        groups: dict[bytes, list[Candidate]] = collections.defaultdict(list)
        for c in retriable:
            groups[c.owner].append(c)
        group = max(groups.values(), key=lambda g: (len(g), max(c.granted for c in g)))
        return max(group, key=lambda c: c.granted), len(group) > 1
    if candidates:
        return max(candidates, key=lambda c: c.granted), False
    return None


@dataclass(frozen=True)
class FailureCause:
    """Why a worker died, as told to its lease holder."""

    message: str
    out_of_memory: bool
    retriable: bool


class MemoryMonitor:
    """Reads the node's memory every ``memory_monitor_refresh_ms`` and kills one
    worker at a time above ``memory_usage_threshold`` (waiting for that one to exit
    before choosing another)."""

    def __init__(self, config: RuntimeConfig, candidates: Callable[[], list[Candidate]],
                 kill: Callable[[Candidate, bool, MemoryUsage], None]) -> None:
        self._config = config
        self._candidates = candidates
        self._kill = kill
        self._task: asyncio.Task | None = None
        self._dying: int | None = None  # the pid of the last worker killed
        #: Workers killed so far (for stats and tests).
        self.kills = 0

    def start(self) -> asyncio.Task | None:
        """Start watching (nothing when ``memory_monitor_refresh_ms`` is 0); the
        watching task, for its owner to cancel when it stops."""
        if self._config.memory_monitor_refresh_ms > 0:
            self._task = asyncio.get_running_loop().create_task(self._run())
        return self._task

    async def _run(self) -> None:
        period = self._config.memory_monitor_refresh_ms / 1000
        while True:
            await asyncio.sleep(period)
            if self._dying is None and not self._candidates():
                continue  # nothing it could kill: no need to read (an idle node's most frequent work)
            try:
                self.check(await asyncio.to_thread(read_usage, self._config.memory_monitor_cgroup_dir))
            except Exception:  # noqa: BLE001 - the monitor must outlive one bad reading
                logger.exception("memory monitor: check failed")

    def check(self, usage: MemoryUsage) -> None:
        """One step: kill a worker if ``usage`` is over the threshold and none is dying."""
        if self._dying is not None and _alive(self._dying):
            return
        self._dying = None
        if usage.fraction <= self._config.memory_usage_threshold:
            return
        chosen = choose(self._candidates())
        if chosen is None:
            return
        victim, retriable = chosen
        self._dying = victim.pid
        self.kills += 1
        self._kill(victim, retriable, usage)


def _alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


class MemoryHandlers:
    """Mixed into NodeManager: the memory monitor's inputs and kill, and the failure
    causes lease holders ask for."""

    node_id: bytes
    config: RuntimeConfig
    options: Any
    pool: Any
    _leases: dict[int, Any]
    _tasks: list[asyncio.Task]

    def _start_memory_monitor(self) -> None:
        self._failure_causes: collections.OrderedDict[bytes, FailureCause] = collections.OrderedDict()
        self.memory_monitor = MemoryMonitor(self.config, self._kill_candidates, self._oom_kill)
        task = self.memory_monitor.start()
        if task is not None:
            self._tasks.append(task)  # cancelled with the node manager's other loops

    def _kill_candidates(self) -> list[Candidate]:
        return [
            Candidate(lease.worker.worker_id, lease.worker.pid, lease.holder.worker_id, lease.retriable,
                      lease.granted, lease.description)
            for lease in self._leases.values()
        ]

    def _oom_kill(self, victim: Candidate, retriable: bool, usage: MemoryUsage) -> None:
        threshold = self.config.memory_usage_threshold
        message = (
            f"node {self.node_id.hex()} (IP {self.options.node_ip}) ran low on memory: {usage.describe()} in use "
            f"({usage.source}), over the memory usage threshold of {threshold}; the worker (pid {victim.pid}) of "
            f"{victim.description} was the newest {'retriable ' if victim.retriable else ''}work there and was killed. "
            "Use less memory per task, or ask for memory=... so that fewer run at once on a node"
        )
        logger.warning("memory monitor: %s", message)
        self.record_failure_cause(victim.worker_id, FailureCause(message, True, retriable))
        worker = self.pool.workers.get(victim.worker_id) if self.pool is not None else None
        if worker is not None:
            self.pool.kill(worker, f"out of memory: {usage.describe()} over the threshold {threshold}")

    def record_failure_cause(self, worker_id: bytes, cause: FailureCause) -> None:
        """Remember why a worker is being ended, for its lease holder to ask."""
        self._failure_causes[worker_id] = cause
        while len(self._failure_causes) > _CAUSES_KEPT:
            self._failure_causes.popitem(last=False)

    def GetWorkerFailureCause(self, request: nm_pb2.WorkerFailureCauseRequest, conn: Any) -> nm_pb2.WorkerFailureCauseReply:
        """Why a worker of this node died, when the node manager ended it."""
        cause = self._failure_causes.get(request.worker_id)
        if cause is None:
            return nm_pb2.WorkerFailureCauseReply(found=False)
        return nm_pb2.WorkerFailureCauseReply(found=True, message=cause.message, out_of_memory=cause.out_of_memory,
                                              retriable=cause.retriable)

