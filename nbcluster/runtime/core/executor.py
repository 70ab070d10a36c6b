"""Running tasks and actor calls in a worker process.

Pushed tasks queue for the worker's main thread, which runs them one at a time in
order; the runtime's loop thread keeps serving I/O meanwhile (so a task can block in
``get``, be cancelled, or submit tasks of its own). A worker that hosts a concurrent
actor runs its calls on a thread pool or an event loop instead (see actor_host). Results
go back after the task's output and the references they contain are registered.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import logging
import os
import queue
import signal
import sys
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import cloudpickle

from nbcluster.exceptions import NbclusterSystemError, RuntimeEnvSetupError, TaskCancelledError, TaskError
from nbcluster.runtime import ids
from nbcluster.runtime.core import gpus
from nbcluster.runtime.core.actor_host import ActorExit, ActorHost
from nbcluster.runtime.core.generator_exec import GeneratorRun, none_payload, run_streaming, run_streaming_async
from nbcluster.runtime.core.output import OutputForwarder
from nbcluster.runtime.core.payloads import error_payload, format_exc, task_error
from nbcluster.runtime.core.tasks import ArgRef, fill_spec
from nbcluster.runtime.objects.serialization import deserialize, serialize
from nbcluster.runtime.protocol import common_pb2, core_worker_pb2 as cw_pb2
from nbcluster.runtime.runtime_env import RuntimeEnv, setup as runtime_env
from nbcluster.runtime.transport import methods

if TYPE_CHECKING:
    from nbcluster.runtime.core.core_worker import CoreWorker

logger = logging.getLogger(__name__)

_OK = cw_pb2.TASK_STATUS_OK
_APP_ERROR = cw_pb2.TASK_STATUS_APP_ERROR
_CANCELLED = cw_pb2.TASK_STATUS_CANCELLED
_SYSTEM_ERROR = cw_pb2.TASK_STATUS_SYSTEM_ERROR
_CREATION = common_pb2.TASK_KIND_ACTOR_CREATION
_ACTOR_TASK = common_pb2.TASK_KIND_ACTOR_TASK
_STREAMING = common_pb2.RETURNS_KIND_STREAMING
_DYNAMIC = common_pb2.RETURNS_KIND_DYNAMIC

#: The task the current thread (or coroutine) is running.
_CURRENT_TASK: contextvars.ContextVar[bytes | None] = contextvars.ContextVar("nbcluster_task", default=None)
#: (status, returns, retryable, contained refs, error text)
Outcome = tuple[int, list[common_pb2.ObjectPayload], bool, list[tuple[bytes, bytes]], str]


class Executor:
    """Runs the tasks and actor calls pushed to this worker, and sends their results back."""

    def __init__(self, core: "CoreWorker") -> None:
        self.core = core
        #: Set when the job's runtime_env could not be set up here: its tasks fail with it.
        self.env_error: Exception | None = None
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._functions: dict[bytes, Any] = {}
        self._pickled: dict[bytes, bytes] = {}
        self._cancelled: set[bytes] = set()
        self._cancel_requested: bytes | None = None
        #: Children run inline now; a non-recursive cancel of their parent waits for them.
        self._inline = 0
        self._deferred_cancel: bytes | None = None
        self._main_task: bytes | None = None
        self._main_ident = threading.main_thread().ident
        self._results: dict[Any, list[cw_pb2.TaskResult]] = {}
        self.output = OutputForwarder(core, self._forwarding)
        #: Set once this worker hosts an actor.
        self.actor: ActorHost | None = None
        #: The placement group of the running task or of the hosted actor (b"": none), and
        #: whether what it submits goes there too.
        self.placement_group: tuple[bytes, bool] = (b"", False)
        #: Streaming generator tasks running here, by task id.
        self.streams: dict[bytes, GeneratorRun] = {}

    # -- setup --------------------------------------------------------------------------
    def install(self) -> None:
        """Capture output and make SIGINT the in-task cancel signal (main thread)."""
        self.output.install()
        signal.signal(signal.SIGINT, self._on_sigint)

    def _on_sigint(self, signum: int, frame: Any) -> None:
        if self._cancel_requested is not None and self._cancel_requested == self._main_task:
            raise KeyboardInterrupt("task cancelled")

    @property
    def current_task_id(self) -> bytes | None:
        """The id of the task the calling thread (or coroutine) runs; None outside tasks."""
        return _CURRENT_TASK.get()

    def in_task(self) -> bool:
        """The calling thread (or coroutine) runs a task."""
        return _CURRENT_TASK.get() is not None

    def idle(self) -> bool:
        """No pushed task waits to run."""
        return self._queue.empty()

    def _forwarding(self) -> bool:
        config = self.core.job_config
        if config is not None and not config.log_to_driver:
            return False
        return self.actor is not None or _CURRENT_TASK.get() is not None

    # -- loop thread: incoming work ---------------------------------------------------
    def push(self, request: cw_pb2.PushTasksRequest, conn: Any) -> None:
        """Loop thread: queue pushed tasks (an actor's calls may go to its host directly)."""
        if request.HasField("job_config"):
            self._queue.put(("job", request, conn))
        for spec in request.tasks:
            desc = spec.function
            if desc.pickled:
                # Kept apart from the task: a cancelled task must not take its
                # function's definition with it.
                if desc.function_id not in self._functions:
                    self._pickled[desc.function_id] = desc.pickled
                desc.ClearField("pickled")
            if spec.kind == _ACTOR_TASK and self.actor is not None and self.actor.dispatch(spec, conn):
                continue
            self._queue.put(("task", spec, conn))

    def cancel(self, task_id: bytes, force: bool, recursive: bool = True) -> bool:
        """Cancel a queued or running task (``force``: exit the worker; not ``recursive``:
        a child it runs inline finishes first); False if it cannot be."""
        actor = self.actor
        if actor is not None and actor.running(task_id):
            return actor.cancel(task_id)
        run = self.streams.get(task_id)
        if run is not None and actor is not None:  # an actor's generator stops between items
            run.cancel()
            return True
        if task_id == self._main_task:
            if actor is not None:
                return False  # a running synchronous actor call is not interrupted (as Ray)
            if force:
                logger.info("force-cancelling task=%s: exiting", task_id.hex())
                os._exit(1)
            if self._inline and not recursive:
                self._deferred_cancel = task_id
                return True
            self._cancel_requested = task_id
            signal.pthread_kill(self._main_ident, signal.SIGINT)
            return True
        if len(self._cancelled) > 10000:  # ids of calls that had finished, never taken
            self._cancelled.clear()
        self._cancelled.add(task_id)
        return True

    def take_cancelled(self, task_id: bytes) -> bool:
        """True once if ``task_id`` was cancelled before it started."""
        if task_id in self._cancelled:
            self._cancelled.discard(task_id)
            return True
        return False

    # -- main thread ------------------------------------------------------------------------
    def run(self) -> None:
        """Main thread: run queued tasks one at a time, forever."""
        while True:
            kind, item, conn = self._queue.get()
            if kind == "job":
                self._bind_job(item)
                continue
            self._main_task = item.task_id
            try:
                self.run_task(item, conn)
            except KeyboardInterrupt:
                continue  # a cancel signal that arrived just after its task ended
            except ActorExit:
                assert self.actor is not None
                self.actor.exit("it exited by calling exit_actor()")
            finally:
                self._main_task = self._deferred_cancel = None
                self._cancel_requested = None

    def _bind_job(self, request: cw_pb2.PushTasksRequest) -> None:
        core = self.core
        if core.job_id:
            if core.job_id != request.job_id:
                logger.error("pushed job=%s but bound to job=%s", request.job_id.hex(), core.job_id.hex())
            return
        config: common_pb2.JobConfig = request.job_config
        core.job_id = request.job_id
        core.job_config = config
        core.namespace = config.namespace
        if request.HasField("driver"):
            core.driver_address = request.driver
        for path in reversed(config.sys_path):
            if path not in sys.path:
                sys.path.insert(0, path)
        if config.cwd and os.path.isdir(config.cwd):
            os.chdir(config.cwd)
        env = RuntimeEnv.from_json(config.runtime_env_json)
        os.environ.update(env.env_vars)
        if env.working_dir or env.py_modules or env.pip:
            self._setup_env(env)
        logger.info("bound to job=%s", request.job_id.hex())

    def _setup_env(self, env: RuntimeEnv) -> None:
        """The job's runtime_env set up on this node (runtime_env/setup.py) and activated
        here; a failure fails the tasks sent to this worker, the node and others go on."""
        core = self.core

        async def prepare() -> runtime_env.Prepared:
            gcs = await core.gcs_connection()
            return await runtime_env.prepare(gcs, core.session.dir, env, core.config)

        try:
            prepared = core.run_sync(prepare(), timeout=runtime_env.setup_timeout(env))
        except RuntimeEnvSetupError as exc:
            logger.error("runtime_env setup failed: %s", exc)
            self.env_error = exc
            return
        except Exception as exc:  # noqa: BLE001 - reported on every task of the job
            logger.exception("runtime_env setup failed")
            self.env_error = RuntimeEnvSetupError(f"the runtime_env could not be set up on this node: {exc}")
            return
        runtime_env.activate(prepared)

    # -- running a task (main thread, or an actor's pool thread) -------------------------
    def enter_task(self, spec: common_pb2.TaskSpec) -> tuple[contextvars.Token, tuple[bytes, bool]]:
        """Mark the calling context as running ``spec``; returns the token for leave_task."""
        if self.actor is None:
            self.output.source = spec.function.name.rsplit(".", 1)[-1]
        self.output.context = spec.context
        outer = self.placement_group
        gpus.enter(spec)
        if spec.kind != _ACTOR_TASK:  # an actor's calls run in the group its creation named
            self.placement_group = (spec.placement_group_id, spec.placement_group_capture)
        return _CURRENT_TASK.set(spec.task_id), outer

    def leave_task(self, token: tuple[contextvars.Token, tuple[bytes, bool]]) -> None:
        """Undo enter_task (a child run inline gives its parent's placement group back)."""
        _CURRENT_TASK.reset(token[0])
        if self.actor is None:
            self.placement_group = token[1]

    def run_task(self, spec: common_pb2.TaskSpec, conn: Any) -> None:
        """Run one task or actor call and send its result."""
        if self.take_cancelled(spec.task_id):
            self.report_cancelled(spec, conn)
            return
        token = self.enter_task(spec)
        start = time.perf_counter()
        try:
            outcome = self._invoke(spec, conn)
        finally:
            self.leave_task(token)
        self.finish(spec, conn, *outcome, duration=time.perf_counter() - start)

    def run_children_inline(self, oids: Sequence[bytes]) -> bool:
        """In a task about to block on ``oids``: run here the first of them that this
        process submitted and no worker has taken yet (a normal task, arguments ready),
        instead of waiting for a new worker to start for it; False if there is none.
        Only a normal task's main thread does this (an actor's calls keep theirs; an
        async task's coroutine too, as its child may be one)."""
        core = self.core
        if (self.actor is not None or threading.get_ident() != self._main_ident or not self.in_task()
                or asyncio._get_running_loop() is not None):
            return False
        task = next((t for oid in oids if (t := core.run_sync(_on_loop(core.submitter.take_queued, oid)))), None)
        if task is None:
            return False
        spec = common_pb2.TaskSpec()
        fill_spec(spec, task, core)
        if task.fn.function_id not in self._functions:
            self._pickled.setdefault(task.fn.function_id, task.fn.pickled)
        source, context = self.output.source, self.output.context
        token = self.enter_task(spec)
        start, self._inline = time.perf_counter(), self._inline + 1
        try:
            status, returns, retryable, contained, error = self._invoke(spec, None)
        except BaseException:  # the parent was cancelled (or exits): so is its inline child
            cancelled = self._error_returns(spec, TaskCancelledError(spec.task_id.hex()))
            result = cw_pb2.TaskResult(task_id=spec.task_id, status=_CANCELLED, returns=cancelled)
            core.call_soon(core.submitter.finish_inline, task, result, [])
            raise
        finally:
            self._inline -= 1
            self.leave_task(token)
            self.output.source, self.output.context = source, context
        result = cw_pb2.TaskResult(task_id=spec.task_id, status=status, returns=returns, retryable=retryable,
                                   duration=time.perf_counter() - start, pid=os.getpid(), error_message=error,
                                   attempt=spec.attempt)
        core.call_soon(core.submitter.finish_inline, task, result, contained)
        if not self._inline and self._deferred_cancel and self._deferred_cancel == self._main_task:
            self._cancel_requested, self._deferred_cancel = self._deferred_cancel, None
            raise KeyboardInterrupt("task cancelled")  # the parent's cancel, held while its child ran
        return True

    def _invoke(self, spec: common_pb2.TaskSpec, conn: Any) -> Outcome:
        try:
            try:
                if self.env_error is not None:
                    raise self.env_error
                fn = self._callable(spec, conn)
                args, kwargs = self._load_args(spec)
            except TaskError as exc:  # an argument is the error of an upstream task
                return self.failed(spec, exc, _APP_ERROR)
            except Exception as exc:  # noqa: BLE001
                return self.failed(spec, exc, _SYSTEM_ERROR)
            try:
                value = fn(*args, **kwargs)
                del args, kwargs
                if inspect.iscoroutine(value):  # an ``async def`` task runs on a loop of its own
                    value = asyncio.run(value)
                if spec.returns_kind == _STREAMING:
                    return run_streaming(self, spec, conn, value)
                return self._succeeded(spec, value)
            except ActorExit:
                raise
            except KeyboardInterrupt:
                if self._cancel_requested is not None and self._cancel_requested in (spec.task_id, self._main_task):
                    raise  # this task's cancel, or (a child run inline) its parent's
                return self.failed(spec, KeyboardInterrupt("raised by the task"), _APP_ERROR)
            except SystemExit as exc:
                if self.actor is not None or spec.kind == _CREATION:
                    raise ActorExit() from exc  # sys.exit() in an actor ends it, as exit_actor()
                return self.failed(spec, exc, _APP_ERROR, skip=1)
            except BaseException as exc:  # noqa: BLE001 - any other escape is the task's error
                return self.failed(spec, exc, _APP_ERROR, skip=1)
        except KeyboardInterrupt:
            if self._cancel_requested != spec.task_id or spec.task_id != self._main_task:
                raise
            return _CANCELLED, self._error_returns(spec, TaskCancelledError(spec.task_id.hex())), False, [], "cancelled"

    async def invoke_async(self, spec: common_pb2.TaskSpec, method: Any, conn: Any) -> Outcome:
        """An async actor's call, on the actor's loop."""
        try:
            args, kwargs = self._load_args(spec)
        except TaskError as exc:
            return self.failed(spec, exc, _APP_ERROR)
        except Exception as exc:  # noqa: BLE001
            return self.failed(spec, exc, _SYSTEM_ERROR)
        try:
            value = method(*args, **kwargs)
            if hasattr(value, "__await__"):
                value = await value
            del args, kwargs
            if spec.returns_kind == _STREAMING:
                return await run_streaming_async(self, spec, conn, value)
            if spec.returns_kind == _DYNAMIC and inspect.isasyncgen(value):
                value = [item async for item in value]
            return self._succeeded(spec, value)
        except (asyncio.CancelledError, ActorExit):
            raise
        except SystemExit as exc:
            raise ActorExit() from exc
        except BaseException as exc:  # noqa: BLE001 - KeyboardInterrupt and the like: the call's error
            return self.failed(spec, exc, _APP_ERROR, skip=1)

    def _callable(self, spec: common_pb2.TaskSpec, conn: Any) -> Any:
        if spec.kind == _ACTOR_TASK:
            if self.actor is None:
                raise NbclusterSystemError("an actor call reached a worker that hosts no actor")
            return self.actor.method_for(spec)
        fn = self._load_function(spec.function)
        if spec.kind == _CREATION:
            return lambda *args, **kwargs: self._create_actor(spec, conn, fn, args, kwargs)
        return fn

    def _create_actor(self, spec: common_pb2.TaskSpec, conn: Any, cls: type, args: tuple, kwargs: dict) -> None:
        self.output.source = spec.class_name
        instance = cls(*args, **kwargs)
        self.actor = ActorHost(self, spec, instance, conn)
        logger.info("hosting actor=%s (%s, %s)", spec.actor_id.hex(), spec.class_name, self.actor.mode)

    def _load_function(self, desc: common_pb2.FunctionDescriptor) -> Any:
        fn = self._functions.get(desc.function_id)
        if fn is None:
            pickled = self._pickled.get(desc.function_id)
            if pickled is None:
                raise NbclusterSystemError(f"the definition of {desc.name} never reached this worker")
            fn = cloudpickle.loads(pickled)
            self._functions[desc.function_id] = fn
            del self._pickled[desc.function_id]
        return fn

    def _load_args(self, spec: common_pb2.TaskSpec) -> tuple[tuple, dict]:
        core = self.core
        payload = spec.args
        if payload.HasField("data"):
            args, kwargs = deserialize(payload.data, copy_buffers=True)
        else:
            args, kwargs = core.read(payload)
        if spec.resolved_refs:
            values = core.read_many(spec.resolved_refs)
            args = tuple(values[a.index] if type(a) is ArgRef else a for a in args)
            kwargs = {k: values[v.index] if type(v) is ArgRef else v for k, v in kwargs.items()}
        return args, kwargs

    def _succeeded(self, spec: common_pb2.TaskSpec, value: Any) -> Outcome:
        try:
            returns, contained = self._store_returns(spec, value)
        except Exception as exc:  # noqa: BLE001 - e.g. an unpicklable or mis-shaped result
            return self.failed(spec, exc, _APP_ERROR)
        return _OK, returns, False, contained, ""

    def failed(self, spec: common_pb2.TaskSpec, exc: BaseException, status: int, skip: int = 0) -> Outcome:
        """The outcome of a task that raised ``exc`` (``skip``: traceback entries to leave out)."""
        err, text = self.task_error(spec, exc, skip)
        retryable = status == _APP_ERROR and self.retryable(spec, exc)
        return status, self._error_returns(spec, err), retryable, [], text

    def task_error(self, spec: common_pb2.TaskSpec, exc: BaseException, skip: int = 0) -> tuple[BaseException, str]:
        """The error a task's raising ``exc`` stands as for its caller, and its text."""
        if isinstance(exc, TaskError):  # propagated as it is
            return exc, str(exc)
        text = format_exc(exc, skip)
        return task_error(spec.function.name, text, exc, self.core.node_ip, self.actor), text

    def retryable(self, spec: common_pb2.TaskSpec, exc: BaseException) -> bool:
        """The task is retried when it raises ``exc`` (``retry_exceptions``)."""
        if not spec.retry_exceptions:
            return False
        if not spec.retry_exception_types:
            return True
        try:
            types = cloudpickle.loads(spec.retry_exception_types)
        except Exception:  # noqa: BLE001
            return False
        return isinstance(exc, types)

    def _store_returns(
        self, spec: common_pb2.TaskSpec, value: Any
    ) -> tuple[list[common_pb2.ObjectPayload], list[tuple[bytes, bytes]]]:
        n = spec.num_returns
        if spec.returns_kind == _DYNAMIC:  # the items, then the return that will hold their refs
            payloads, contained = self._store_values(spec, value, 2)
            return [none_payload(spec), *payloads], contained
        if n == 1:
            values = [value]
        elif n == 0:
            values = []
        else:
            if not isinstance(value, (tuple, list)) or len(value) != n:
                got = f"a {type(value).__name__} of length {len(value)}" if isinstance(value, (tuple, list)) else f"a {type(value).__name__}"
                raise ValueError(
                    f"{spec.function.name} was declared with num_returns={n}, so it must return a "
                    f"tuple or list of {n} values; it returned {got}."
                )
            values = list(value)
        return self._store_values(spec, values, 1)

    def _store_values(
        self, spec: common_pb2.TaskSpec, values: Any, start: int
    ) -> tuple[list[common_pb2.ObjectPayload], list[tuple[bytes, bytes]]]:
        """Store ``values`` as the task's objects ``start``, ``start + 1``, ...; on an
        error, undo what was stored."""
        core = self.core
        payloads: list[common_pb2.ObjectPayload] = []
        contained: list[tuple[bytes, bytes]] = []
        try:
            for index, item in enumerate(values, start=start):
                payload, held = self.store_value(ids.object_id(spec.task_id, index), item, spec.caller)
                payloads.append(payload)
                contained.extend(held)
        except BaseException:
            # The task reports an error instead: undo what was stored for it.
            core.free_stored([p.object_id for p in payloads if not p.HasField("data")])
            for oid, _owner in contained:
                core.refs.release(oid)
            raise
        return payloads, contained

    def store_value(
        self, oid: bytes, value: Any, caller: common_pb2.Address
    ) -> tuple[common_pb2.ObjectPayload, list[tuple[bytes, bytes]]]:
        """Store one value owned by ``caller`` (inline, or in this node's store); the
        refs it nests are held here until the caller is registered as their borrower."""
        core = self.core
        obj = serialize(value)
        payload = core.store(oid, obj, owner=caller)
        contained = []
        for ref in obj.contained:
            payload.contained.add(object_id=ref._id, owner=core.parse_address(ref._owner))
            contained.append((ref._id, ref._owner))
            core.refs.incref(ref._id)  # held until the caller is registered
        return payload, contained

    def error_payload(self, oid: bytes, err: BaseException) -> common_pb2.ObjectPayload:
        """A payload holding ``err`` (its cause dropped when that cannot be pickled)."""
        try:
            return error_payload(oid, err)
        except Exception:  # noqa: BLE001 - the cause itself cannot be pickled
            if isinstance(err, TaskError):
                err = TaskError(err.function_name, err.traceback_str, None, err.pid, err.node_ip)
            return error_payload(oid, err)

    def _error_returns(self, spec: common_pb2.TaskSpec, err: BaseException) -> list[common_pb2.ObjectPayload]:
        template = self.error_payload(b"", err)
        out = []
        for index in range(1, max(spec.num_returns, 0) + 1):
            payload = common_pb2.ObjectPayload()
            payload.CopyFrom(template)
            payload.object_id = ids.object_id(spec.task_id, index)
            out.append(payload)
        return out

    def start_stream(self, spec: common_pb2.TaskSpec, conn: Any) -> GeneratorRun:
        """A streaming generator task starts here: its run (found by cancel and by
        the caller's consumed notices until its result leaves)."""
        run = self.streams[spec.task_id] = GeneratorRun(self, spec, conn)
        return run

    def on_consumed(self, request: cw_pb2.GeneratorConsumedNotice) -> None:
        """The caller has taken items of a streaming task running here."""
        run = self.streams.get(request.task_id)
        if run is not None:
            run.on_consumed(request.consumed)

    def report_cancelled(self, spec: common_pb2.TaskSpec, conn: Any) -> None:
        """Send a cancelled result for a task that did not run."""
        returns = self._error_returns(spec, TaskCancelledError(spec.task_id.hex()))
        self.finish(spec, conn, _CANCELLED, returns, False, [], "cancelled", duration=0.0)

    def finish(
        self,
        spec: common_pb2.TaskSpec,
        conn: Any,
        status: int,
        returns: list[common_pb2.ObjectPayload],
        retryable: bool,
        contained: list[tuple[bytes, bytes]],
        error: str,
        *,
        duration: float,
    ) -> None:
        """Send a task's result to its caller once its output is out and nested refs registered."""
        self.output.end_task()
        result = cw_pb2.TaskResult(
            task_id=spec.task_id,
            status=status,
            returns=returns,
            retryable=retryable,
            duration=duration,
            pid=os.getpid(),
            error_message=error,
            attempt=spec.attempt,
        )
        self.core.loop.call_soon_threadsafe(self._send_result, result, conn, contained, spec.caller)

    # -- loop thread: results ------------------------------------------------------------
    def _send_result(self, result: cw_pb2.TaskResult, conn: Any, contained: list, caller: Any) -> None:
        core = self.core
        if self.streams:
            run = self.streams.pop(result.task_id, None)
            if run is not None:  # a generator's result follows its items
                run.then(lambda: self._send_result(result, conn, contained, caller))
                return
        self.output.flush()
        core.process_releases()
        if contained or core.refs.unregistered or core.borrowing.flushing():
            core.spawn(self._send_after_registering(result, conn, contained, caller))
        else:
            self._queue_result(result, conn)

    async def _send_after_registering(self, result: Any, conn: Any, contained: list, caller: Any) -> None:
        await self.registered(contained, caller)
        self._queue_result(result, conn)

    async def registered(self, contained: list, caller: Any) -> None:
        """Make ``caller`` a borrower of the refs a value it will own nests (and have
        every pending registration acknowledged) before the value leaves."""
        core = self.core
        if contained:
            await core.borrowing.register_on_behalf(contained, caller)
            for oid, _owner in contained:
                core.refs.release(oid)
        if core.refs.unregistered or core.borrowing.flushing():
            await core.borrowing.flush()  # registrations acknowledged before the result

    def _queue_result(self, result: cw_pb2.TaskResult, conn: Any) -> None:
        """Results that finish while the loop is busy leave in one message."""
        batch = self._results.get(conn)
        if batch is None:
            batch = self._results[conn] = []
            self.core.loop.call_soon(self._send_results, conn)
        batch.append(result)

    def _send_results(self, conn: Any) -> None:
        batch = self._results.pop(conn, None)
        if batch:
            conn.notify(methods.CoreWorker.ReportTaskResults, cw_pb2.TaskResultsNotice(results=batch))


async def _on_loop(fn: Any, *args: Any) -> Any:
    return fn(*args)

