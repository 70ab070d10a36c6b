"""The node manager's worker processes: starting, binding to jobs, idling, reaping.

A worker starts unbound ("generic"); its first lease binds it to that lease's job and
runtime environment for the rest of its life, as in Ray. The pool keeps ``base_size``
workers idle or starting so the first task does not pay interpreter start-up.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from nbcluster.runtime import ids
from nbcluster.runtime.node.worker_template import ForkedProcess, WorkerTemplate
from nbcluster.runtime.procutil import lower_priority, spawn_python
from nbcluster.runtime.states import WORKER_TRANSITIONS, StateMachine, WorkerState

logger = logging.getLogger(__name__)

WORKER_MODULE = "nbcluster.runtime.core.worker_main"
#: Worker processes starting at once, at most (each takes a core for a few hundred ms).
MAX_STARTING = max(4, 2 * (os.cpu_count() or 1))


def runqueue_wait(pid: int | None) -> float:
    """Seconds process ``pid`` (its main thread) has spent runnable but waiting for a
    CPU (Linux's ``/proc/PID/schedstat``); 0 where that is not known."""
    if pid is None:
        return 0.0
    try:
        with open(f"/proc/{pid}/schedstat") as f:
            return int(f.read().split()[1]) / 1e9
    except (OSError, ValueError, IndexError):
        return 0.0


class Worker:
    """A worker process of this node and its state."""

    __slots__ = (
        "worker_id",
        "proc",
        "machine",
        "conn",
        "endpoint",
        "job_id",
        "env_hash",
        "lease",
        "started",
        "idle_since",
        "blocked",
        "retiring",
        "hosts_actor",
    )

    def __init__(self, worker_id: bytes, proc: subprocess.Popen | ForkedProcess) -> None:
        self.worker_id = worker_id
        self.proc = proc
        self.machine = StateMachine(WORKER_TRANSITIONS, WorkerState.STARTING)
        self.conn = None
        self.endpoint = ""
        self.job_id = b""
        self.env_hash = ""
        self.lease = None
        self.started = time.monotonic()
        self.idle_since = time.monotonic()
        self.blocked = False
        self.retiring = False
        #: Leased for an actor (its worker for life): not counted against the task cap.
        self.hosts_actor = False

    @property
    def state(self) -> WorkerState:
        """The worker's state."""
        return self.machine.state

    @property
    def pid(self) -> int | None:
        """The worker's process id (None while a template forks it)."""
        return self.proc.pid

    def __repr__(self) -> str:
        return f"<Worker {ids.short(self.worker_id)} pid={self.pid} {self.state.name}>"


class WorkerPool:
    """The node's worker processes: started ahead, leased, reused, retired when idle."""

    def __init__(
        self,
        *,
        base_size: int,
        spawn_args: list[str],
        log_dir: Path,
        env: dict[str, str],
        credential: str,
        idle_timeout: float,
        start_timeout: float,
        on_dead: Callable[[Worker, str], None],
        max_task_workers: int = 1 << 30,
        niceness: int = 0,
        start_method: str = "spawn",
    ) -> None:
        self.base_size = base_size
        self._spawn_args = spawn_args
        self._log_dir = log_dir
        self._env = env
        self._credential = credential
        self._idle_timeout = idle_timeout
        self._start_timeout = start_timeout
        self._on_dead = on_dead
        #: The hard cap: task workers (not hosting actors) not blocked in ``get``.
        self.max_task_workers = max_task_workers
        #: The nice value workers run at (config.worker_niceness).
        self.niceness = niceness
        #: start_method "fork": workers are forked from this (worker_template.py).
        self.template = (
            WorkerTemplate(spawn_args, log_dir=log_dir, env=env, credential=credential, niceness=niceness)
            if start_method == "fork"
            else None
        )
        self.workers: dict[bytes, Worker] = {}
        self.startup_failures = 0
        self.last_failure_log = ""

    # -- starting -----------------------------------------------------------------
    def start_worker(self) -> Worker:
        """Start a worker process, forked from the template or spawned (STARTING
        until it registers)."""
        worker_id = ids.random_id()
        proc: subprocess.Popen | ForkedProcess
        if self.template is not None:
            proc = self.template.fork(worker_id)  # its niceness is set as it is forked
        else:
            proc = spawn_python(
                WORKER_MODULE,
                [*self._spawn_args, "--worker-id", worker_id.hex()],
                log_dir=self._log_dir,
                log_name=f"worker-{worker_id.hex()[:12]}",
                env=self._env,
                credential=self._credential,
            )
            if self.niceness:
                lower_priority(proc.pid, self.niceness)
        worker = Worker(worker_id, proc)
        self.workers[worker_id] = worker
        logger.info("started worker=%s%s", worker_id.hex()[:12], f" pid={proc.pid}" if proc.pid else " (forking)")
        return worker

    def registered(self, worker_id: bytes, conn: object, endpoint: str) -> Worker | None:
        """A worker connected: IDLE now; None if it is unknown or not starting."""
        worker = self.workers.get(worker_id)
        if worker is None or worker.state is not WorkerState.STARTING:
            return None
        worker.conn = conn
        worker.endpoint = endpoint
        worker.machine.transition(WorkerState.IDLE)
        worker.idle_since = time.monotonic()
        self.startup_failures = 0
        return worker

    def starting(self) -> int:
        """How many workers are starting."""
        return sum(1 for w in self.workers.values() if w.state is WorkerState.STARTING)

    def idle(self) -> list[Worker]:
        """The idle workers (not being retired)."""
        return [w for w in self.workers.values() if w.state is WorkerState.IDLE and not w.retiring]

    def pop_idle(self, job_id: bytes, env_hash: str, fresh: bool = False) -> Worker | None:
        """An idle worker for the job: one bound to it (unless ``fresh`` is asked
        for), else an unbound one, which is bound to the job from now on."""
        generic = None
        for worker in self.workers.values():
            if worker.state is not WorkerState.IDLE or worker.retiring:
                continue
            if not fresh and worker.job_id == job_id and worker.env_hash == env_hash:
                return worker
            if not worker.job_id and generic is None:
                generic = worker
        if generic is not None:
            generic.job_id = job_id
            generic.env_hash = env_hash
        return generic

    def task_room(self) -> int:
        """How many more task workers may start under the cap: workers blocked in ``get``
        and actors' workers do not count, so nested gets never wait on the cap."""
        busy = sum(1 for w in self.workers.values() if not w.hosts_actor and not w.blocked)
        return max(0, self.max_task_workers - busy)

    def ensure(self, wanted: int) -> None:
        """Start workers until ``wanted`` more than the idle ones are on their way,
        and keep ``base_size`` idle or starting (as far as the task cap allows)."""
        starting = self.starting()
        idle = len(self.idle())
        target = max(wanted, min(self.base_size - idle, self.task_room()))
        # At most MAX_STARTING at once (as Ray's maximum_startup_concurrency): 200 actors
        # asked for together must not start 200 interpreters that all miss their deadline.
        # More start as these register (registering schedules again).
        for _ in range(max(0, min(target, MAX_STARTING) - starting)):
            self.start_worker()

    # -- ending -------------------------------------------------------------------
    def kill(self, worker: Worker, reason: str) -> None:
        """Kill a worker's process; it is dead."""
        if worker.state is WorkerState.DEAD:
            return
        logger.info("killing %r: %s", worker, reason)
        try:
            worker.proc.kill()
        except ProcessLookupError:
            pass
        self.dead(worker, reason)

    def dead(self, worker: Worker, reason: str) -> None:
        """Record a worker as dead (its process or connection went)."""
        if worker.state is WorkerState.DEAD:
            return
        was_starting = worker.state is WorkerState.STARTING
        worker.machine.transition(WorkerState.DEAD)
        self.workers.pop(worker.worker_id, None)
        if was_starting:
            self.startup_failures += 1
            failure_log = worker.proc.failure_log if isinstance(worker.proc, ForkedProcess) else None
            self.last_failure_log = failure_log or str(self._log_dir / f"worker-{worker.worker_id.hex()[:12]}.err")
        asyncio.get_running_loop().create_task(self._reap(worker))
        self._on_dead(worker, reason)

    async def _reap(self, worker: Worker) -> None:
        deadline = time.monotonic() + 2.0
        while worker.proc.poll() is None:
            if time.monotonic() > deadline:
                worker.proc.kill()
                deadline = time.monotonic() + 5.0
            await asyncio.sleep(0.02)
        logger.info("worker=%s pid=%d exited with %s", worker.worker_id.hex()[:12], worker.pid, worker.proc.returncode)

    def maintain(self) -> list[Worker]:
        """Periodic: notice workers that died before connecting, give up on slow
        starters; return the idle workers beyond the base size to retire (marked
        retiring, so no lease picks them meanwhile)."""
        now = time.monotonic()
        for worker in list(self.workers.values()):
            if worker.state is WorkerState.STARTING:
                if worker.proc.poll() is not None:
                    self.dead(worker, f"exited with code {worker.proc.returncode} while starting")
                elif now - worker.started > self._start_timeout and (
                    now - worker.started - runqueue_wait(worker.pid) > self._start_timeout
                ):  # a worker waiting for a CPU (a low priority on a busy machine) is slow, not stuck
                    self.kill(worker, "did not connect in time")
        idle = sorted(self.idle(), key=lambda w: w.idle_since)
        retire = [w for w in idle[: max(0, len(idle) - self.base_size)] if now - w.idle_since > self._idle_timeout]
        for worker in retire:
            worker.retiring = True
        return retire

    def kill_idle_of_job(self, job_id: bytes, reason: str) -> None:
        """Kill the idle workers of ``job_id``."""
        for worker in list(self.workers.values()):
            if worker.job_id == job_id and worker.state is WorkerState.IDLE:
                self.kill(worker, reason)

    def shutdown(self) -> list[subprocess.Popen | ForkedProcess]:
        """SIGTERM every worker (and the worker template) and forget them; their
        processes, to wait for."""
        procs: list[subprocess.Popen | ForkedProcess] = []
        for worker in list(self.workers.values()):
            procs.append(worker.proc)
            if worker.proc.poll() is None:
                try:
                    worker.proc.terminate()
                except ProcessLookupError:
                    pass
        self.workers.clear()
        template = self.template.stop() if self.template is not None else None
        return procs + ([template] if template is not None else [])
