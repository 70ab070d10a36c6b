"""A worker that hosts an actor: the instance, and how its calls run.

- synchronous actor (``max_concurrency=1``): calls run on the main thread, one at a
  time, in the order they arrive (one caller's calls arrive in submission order);
- threaded actor (``max_concurrency=N``): calls run on a pool of N threads;
- async actor (any ``async def`` method): calls run as coroutines on the actor's own
  event loop, at most ``max_concurrency`` (default 1000) at once; a running call
  can be cancelled.

Concurrency groups (``concurrency_groups={"io": 2}``, as Ray): each group has its own
limit — a pool of that many threads (a synchronous class with groups is threaded), or
a semaphore on the event loop. A call runs in the group its caller chose
(``.options(concurrency_group=...)``), else the one its method declares
(``@nbcluster.method(concurrency_group=...)``), else the default group, whose limit is
``max_concurrency``.

``exit_actor()`` tells the GCS the actor is ending on purpose, runs atexit handlers,
and ends the process.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import inspect
import logging
import os
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

from nbcluster.runtime.protocol import common_pb2, gcs_pb2
from nbcluster.runtime.transport import methods

if TYPE_CHECKING:
    from nbcluster.runtime.core.executor import Executor

logger = logging.getLogger(__name__)


class ActorExit(BaseException):
    """Raised by ``exit_actor()``; a BaseException so user ``except Exception`` lets it by."""


def _ready() -> bool:
    return True


class ActorHost:
    """The actor a worker hosts: its instance, and how its calls run (in order, on a
    thread pool, or on an event loop)."""

    def __init__(self, executor: "Executor", spec: common_pb2.TaskSpec, instance: Any, creator: Any) -> None:
        self.executor = executor
        self.actor_id = spec.actor_id
        self.class_name = spec.class_name
        self.instance = instance
        self._creator = creator  # the GCS's connection: where intentional exits are reported
        groups = dict(spec.concurrency_groups)
        threaded = spec.max_concurrency > 1 or bool(groups)
        self.mode = "async" if spec.is_async else ("threaded" if threaded else "sync")
        #: Concurrency group -> its limit ("" the default group).
        self.limits = {**groups, "": spec.max_concurrency or (1000 if spec.is_async else 1)}
        #: Method name -> the concurrency group it was declared in ("": none).
        self._method_groups: dict[str, str] = {}
        self._pools: dict[str, concurrent.futures.ThreadPoolExecutor] = {}
        self._semaphores: dict[str, asyncio.Semaphore] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._running: dict[bytes, asyncio.Task] = {}
        if self.mode == "threaded":
            for group, limit in self.limits.items():
                name = f"actor-{group}" if group else "actor"
                self._pools[group] = concurrent.futures.ThreadPoolExecutor(limit, thread_name_prefix=name)
        elif self.mode == "async":
            self._loop = asyncio.new_event_loop()
            ready = threading.Event()
            threading.Thread(target=self._run_loop, args=(ready,), name="actor-loop", daemon=True).start()
            ready.wait()

    def _run_loop(self, ready: threading.Event) -> None:
        loop = self._loop
        assert loop is not None
        asyncio.set_event_loop(loop)
        self._semaphores = {group: asyncio.Semaphore(limit) for group, limit in self.limits.items()}
        loop.call_soon(ready.set)
        loop.run_forever()

    def method(self, name: str) -> Any:
        """The instance's method ``name``; AttributeError naming the class if it has none."""
        if name == "__ray_ready__":  # every actor has it (as Ray): answers once the actor is up
            return _ready
        try:
            return getattr(self.instance, name)
        except AttributeError:
            raise AttributeError(f"'{self.class_name}' actor has no method '{name}'") from None

    def described(self) -> dict[str, Any]:
        """How error messages name this actor: its id, and its ``__repr__`` when the class
        defines one (as Ray's ``repr=`` in a task error)."""
        found: dict[str, Any] = {"actor_id": self.actor_id.hex()}
        if type(self.instance).__repr__ is not object.__repr__:
            try:
                found["actor_repr"] = repr(self.instance)[:200]
            except Exception:  # noqa: BLE001 - a broken __repr__ must not hide the real error
                pass
        return found

    def group_of(self, spec: common_pb2.TaskSpec) -> str:
        """The concurrency group a call asks for (its caller's choice, else its method's)."""
        group = spec.concurrency_group
        if not group:
            group = self._method_groups.get(spec.method)
            if group is None:  # looked up once per method
                fn = getattr(type(self.instance), spec.method, None)
                group = self._method_groups[spec.method] = getattr(fn, "__nbcluster_concurrency_group__", "")
        return group

    def method_for(self, spec: common_pb2.TaskSpec) -> Any:
        """The method a call runs; ValueError when its concurrency group is not one of
        the actor's (the call runs in the default group and fails with it)."""
        group = self.group_of(spec)
        if group not in self.limits:
            known = ", ".join(sorted(g for g in self.limits if g)) or "none"
            raise ValueError(f"'{self.class_name}' actor has no concurrency group {group!r} (its groups: {known})")
        return self.method(spec.method)

    def dispatch(self, spec: common_pb2.TaskSpec, conn: Any) -> bool:
        """Run an actor call off the main thread when the actor is concurrent;
        False when it belongs on the main thread's queue (synchronous actor)."""
        if self.mode == "threaded":
            pool = self._pools.get(self.group_of(spec)) or self._pools[""]
            pool.submit(self._run_threaded, spec, conn)
            return True
        if self.mode == "async":
            assert self._loop is not None
            asyncio.run_coroutine_threadsafe(self._run_async(spec, conn), self._loop)
            return True
        return False

    def _run_threaded(self, spec: common_pb2.TaskSpec, conn: Any) -> None:
        try:
            self.executor.run_task(spec, conn)
        except ActorExit:
            self.exit("it exited by calling exit_actor()")
        except BaseException:  # noqa: BLE001 - a pool thread must not die silently
            logger.exception("actor call failed unexpectedly")

    async def _run_async(self, spec: common_pb2.TaskSpec, conn: Any) -> None:
        ex = self.executor
        task = asyncio.current_task()
        assert task is not None
        self._running[spec.task_id] = task
        try:
            if ex.take_cancelled(spec.task_id):
                ex.report_cancelled(spec, conn)
                return
            semaphore = self._semaphores.get(self.group_of(spec)) or self._semaphores[""]
            try:
                method = self.method_for(spec)
            except (ValueError, AttributeError) as exc:
                method = _raiser(exc)
            async with semaphore:
                token = ex.enter_task(spec)
                start = time.perf_counter()
                try:
                    outcome = await ex.invoke_async(spec, method, conn)
                finally:
                    ex.leave_task(token)
                ex.finish(spec, conn, *outcome, duration=time.perf_counter() - start)
        except asyncio.CancelledError:
            ex.report_cancelled(spec, conn)
        except ActorExit:
            self.exit("it exited by calling exit_actor()")
        finally:
            self._running.pop(spec.task_id, None)

    def cancel(self, task_id: bytes) -> bool:
        """Cancel a running async call (synchronous calls cannot be interrupted)."""
        task = self._running.get(task_id)
        if task is None or self._loop is None:
            return False
        self._loop.call_soon_threadsafe(task.cancel)
        return True

    def running(self, task_id: bytes) -> bool:
        """The call ``task_id`` is running now."""
        return task_id in self._running

    def exit(self, reason: str) -> None:
        """End the actor on purpose: not restarted; queued calls fail."""
        core = self.executor.core
        logger.info("actor=%s exiting: %s", self.actor_id.hex(), reason)
        try:
            core.run_sync(
                self._creator.call(
                    methods.Gcs.ReportActorExit,
                    gcs_pb2.ReportActorExitRequest(actor_id=self.actor_id, reason=reason),
                    timeout=5.0,
                ),
                timeout=10.0,
            )
        except Exception:  # noqa: BLE001 - the GCS then sees an unexpected death
            logger.exception("could not report the exit to the GCS")
        try:
            atexit._run_exitfuncs()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(0)


def _raiser(exc: BaseException) -> Any:
    def fail(*args: Any, **kwargs: Any) -> Any:
        raise exc

    return fail


def is_async_class(cls: type) -> bool:
    """The class has a coroutine (or async generator) method, so its actor runs an event loop."""
    return any(
        inspect.iscoroutinefunction(member) or inspect.isasyncgenfunction(member)
        for _, member in inspect.getmembers(cls, predicate=inspect.isfunction)
    )
