"""Running tasks in a worker process.

Pushed tasks queue for the worker's main thread, which runs them one at a time in
order; the runtime's loop thread keeps serving I/O meanwhile (so a task can block in
``get``, be cancelled, or submit tasks of its own). The task's ``print`` and
``logging`` output goes to the worker's log files and, prefixed with the function
name and pid, to the job's driver — before the task's result.
"""

from __future__ import annotations

import logging
import os
import queue
import signal
import sys
import threading
import time
import traceback
from typing import TYPE_CHECKING, Any

import cloudpickle

from nbcluster.exceptions import NbclusterSystemError, TaskCancelledError, TaskError
from nbcluster.runtime import ids
from nbcluster.runtime.core.submitter import ArgRef
from nbcluster.runtime.objects.serialization import deserialize, serialize
from nbcluster.runtime.protocol import (
    common_pb2,
    core_worker_pb2 as cw_pb2,
    gcs_pb2,
)
from nbcluster.runtime.transport import methods

if TYPE_CHECKING:
    from nbcluster.runtime.core.core_worker import CoreWorker

logger = logging.getLogger(__name__)

_OK = cw_pb2.TASK_STATUS_OK
_APP_ERROR = cw_pb2.TASK_STATUS_APP_ERROR
_CANCELLED = cw_pb2.TASK_STATUS_CANCELLED
_SYSTEM_ERROR = cw_pb2.TASK_STATUS_SYSTEM_ERROR


class _Output:
    """``sys.stdout``/``sys.stderr`` of a worker: writes through to the log file and
    collects complete lines of the running task for the driver."""

    def __init__(self, executor: "Executor", stream: Any, is_stderr: bool) -> None:
        self._executor = executor
        self._stream = stream
        self._is_stderr = is_stderr
        self._partial = ""
        self.encoding = getattr(stream, "encoding", "utf-8")
        self.errors = getattr(stream, "errors", "strict")

    def write(self, text: str) -> int:
        self._stream.write(text)
        if self._executor.forwarding():
            data = self._partial + text
            lines = data.split("\n")
            self._partial = lines.pop()
            if lines:
                self._executor.add_lines(lines, self._is_stderr)
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        self._stream.flush()

    def end_task(self) -> None:
        if self._partial:
            self._executor.add_lines([self._partial], self._is_stderr)
            self._partial = ""
        self._stream.flush()

    def fileno(self) -> int:
        return self._stream.fileno()

    def isatty(self) -> bool:
        return False

    def writable(self) -> bool:
        return True

    def readable(self) -> bool:
        return False

    def seekable(self) -> bool:
        return False

    @property
    def closed(self) -> bool:
        return False


class Executor:
    def __init__(self, core: "CoreWorker") -> None:
        self.core = core
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._functions: dict[bytes, Any] = {}
        self._pickled: dict[bytes, bytes] = {}
        self._cancelled: set[bytes] = set()
        self._cancel_requested: bytes | None = None
        self.current_task_id: bytes | None = None
        self._current_source = ""
        self._current_context = ""
        self._main_ident = threading.main_thread().ident
        self._lines: list[tuple[str, str, bool, str]] = []
        self._lines_lock = threading.Lock()
        self._flush_scheduled = False
        self._stdout: _Output | None = None
        self._stderr: _Output | None = None
        self._results: dict[Any, list[cw_pb2.TaskResult]] = {}

    # -- setup --------------------------------------------------------------------------
    def install(self) -> None:
        """Capture output and make SIGINT the in-task cancel signal (main thread)."""
        self._stdout = _Output(self, sys.stdout, False)
        self._stderr = _Output(self, sys.stderr, True)
        sys.stdout = self._stdout  # type: ignore[assignment]
        sys.stderr = self._stderr  # type: ignore[assignment]
        signal.signal(signal.SIGINT, self._on_sigint)

    def _on_sigint(self, signum: int, frame: Any) -> None:
        if self._cancel_requested is not None and self._cancel_requested == self.current_task_id:
            raise KeyboardInterrupt("task cancelled")

    def in_task(self) -> bool:
        return self.current_task_id is not None

    def idle(self) -> bool:
        """No pushed task waits to run."""
        return self._queue.empty()

    # -- loop thread: incoming work ---------------------------------------------------
    def push(self, request: cw_pb2.PushTasksRequest, conn: Any) -> None:
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
            self._queue.put(("task", spec, conn))

    def cancel(self, task_id: bytes, force: bool) -> bool:
        if task_id == self.current_task_id:
            if force:
                logger.info("force-cancelling task=%s: exiting", task_id.hex())
                os._exit(1)
            self._cancel_requested = task_id
            signal.pthread_kill(self._main_ident, signal.SIGINT)
            return True
        self._cancelled.add(task_id)
        return True

    # -- main thread ------------------------------------------------------------------------
    def run(self) -> None:
        while True:
            kind, item, conn = self._queue.get()
            if kind == "job":
                self._bind_job(item)
                continue
            try:
                self._run_task(item, conn)
            except KeyboardInterrupt:
                # A cancel signal that arrived just after its task ended.
                continue

    def _bind_job(self, request: cw_pb2.PushTasksRequest) -> None:
        core = self.core
        if core.job_id:
            if core.job_id != request.job_id:
                logger.error("pushed job=%s but bound to job=%s", request.job_id.hex(), core.job_id.hex())
            return
        config: gcs_pb2.JobConfig = request.job_config
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
        os.environ.update(config.env_vars)
        logger.info("bound to job=%s", request.job_id.hex())

    def _run_task(self, spec: cw_pb2.TaskSpec, conn: Any) -> None:
        task_id = spec.task_id
        if task_id in self._cancelled:
            self._cancelled.discard(task_id)
            self._finish(spec, conn, _CANCELLED, self._error_returns(spec, TaskCancelledError(task_id.hex())), 0.0, False, [])
            return
        name = spec.function.name
        self._current_source = name.rsplit(".", 1)[-1]
        self._current_context = spec.context
        self.current_task_id = task_id
        start = time.perf_counter()
        status, retryable = _OK, False
        contained: list[tuple[bytes, bytes]] = []
        try:
            try:
                fn = self._load_function(spec.function)
                args, kwargs = self._load_args(spec)
            except TaskError as exc:  # an argument is the error of an upstream task
                status, returns = _APP_ERROR, self._error_returns(spec, exc)
            except Exception as exc:  # noqa: BLE001
                err = TaskError(name, _format_exc(exc), _picklable(exc), os.getpid(), self.core.node_ip)
                status, returns = _SYSTEM_ERROR, self._error_returns(spec, err)
            else:
                try:
                    value = fn(*args, **kwargs)
                    del args, kwargs
                    returns, contained = self._store_returns(spec, value)
                except Exception as exc:  # noqa: BLE001
                    status = _APP_ERROR
                    retryable = self._retryable(spec, exc)
                    err = TaskError(name, _format_exc(exc, skip=1), _picklable(exc), os.getpid(), self.core.node_ip)
                    returns = self._error_returns(spec, err)
        except KeyboardInterrupt:
            if self._cancel_requested != task_id:
                raise
            status, contained = _CANCELLED, []
            returns = self._error_returns(spec, TaskCancelledError(task_id.hex()))
        finally:
            self.current_task_id = None
            self._cancel_requested = None
        duration = time.perf_counter() - start
        self._finish(spec, conn, status, returns, duration, retryable, contained)

    def _load_function(self, desc: cw_pb2.FunctionDescriptor) -> Any:
        fn = self._functions.get(desc.function_id)
        if fn is None:
            pickled = self._pickled.get(desc.function_id)
            if pickled is None:
                raise NbclusterSystemError(f"the definition of {desc.name} never reached this worker")
            fn = cloudpickle.loads(pickled)
            self._functions[desc.function_id] = fn
            del self._pickled[desc.function_id]
        return fn

    def _load_args(self, spec: cw_pb2.TaskSpec) -> tuple[tuple, dict]:
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

    def _retryable(self, spec: cw_pb2.TaskSpec, exc: Exception) -> bool:
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
        self, spec: cw_pb2.TaskSpec, value: Any
    ) -> tuple[list[common_pb2.ObjectPayload], list[tuple[bytes, bytes]]]:
        n = spec.num_returns
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
        caller = spec.caller
        core = self.core
        payloads: list[common_pb2.ObjectPayload] = []
        contained: list[tuple[bytes, bytes]] = []
        try:
            for index, item in enumerate(values, start=1):
                oid = ids.object_id(spec.task_id, index)
                obj = serialize(item)
                payload = core.store(oid, obj, owner=caller)
                payloads.append(payload)
                for ref in obj.contained:
                    payload.contained.add(object_id=ref._id, owner=core.parse_address(ref._owner))
                    contained.append((ref._id, ref._owner))
                    core.refs.incref(ref._id)  # held until the caller is registered
        except BaseException:
            # The task reports an error instead: undo what was stored for it.
            core.free_stored([p.object_id for p in payloads if not p.HasField("data")])
            for oid, _owner in contained:
                core.refs.release(oid)
            raise
        return payloads, contained

    def _error_returns(self, spec: cw_pb2.TaskSpec, err: BaseException) -> list[common_pb2.ObjectPayload]:
        from nbcluster.runtime.core.core_worker import error_payload

        try:
            template = error_payload(b"", err)
        except Exception:  # noqa: BLE001 - the cause itself cannot be pickled
            if isinstance(err, TaskError):
                err = TaskError(err.function_name, err.traceback_str, None, err.pid, err.node_ip)
            template = error_payload(b"", err)
        out = []
        for index in range(1, max(spec.num_returns, 0) + 1):
            payload = common_pb2.ObjectPayload()
            payload.CopyFrom(template)
            payload.object_id = ids.object_id(spec.task_id, index)
            out.append(payload)
        return out

    def _finish(
        self,
        spec: cw_pb2.TaskSpec,
        conn: Any,
        status: int,
        returns: list[common_pb2.ObjectPayload],
        duration: float,
        retryable: bool,
        contained: list[tuple[bytes, bytes]],
    ) -> None:
        for stream in (self._stdout, self._stderr):
            if stream is not None:
                stream.end_task()
        result = cw_pb2.TaskResult(
            task_id=spec.task_id,
            status=status,
            returns=returns,
            retryable=retryable,
            duration=duration,
            pid=os.getpid(),
        )
        self.core.call_soon(self._send_result, result, conn, contained, spec.caller)

    # -- loop thread: results and output ----------------------------------------------
    def _send_result(self, result: cw_pb2.TaskResult, conn: Any, contained: list, caller: Any) -> None:
        core = self.core
        self._flush_lines()
        core.process_releases()
        if contained or core.refs.unregistered or core.borrowing.flushing():
            core.spawn(self._send_after_registering(result, conn, contained, caller))
        else:
            self._queue_result(result, conn)

    async def _send_after_registering(self, result: Any, conn: Any, contained: list, caller: Any) -> None:
        core = self.core
        if contained:
            await core.borrowing.register_on_behalf(contained, caller)
            for oid, _owner in contained:
                core.refs.release(oid)
        if core.refs.unregistered or core.borrowing.flushing():
            await core.borrowing.flush()  # registrations acknowledged before the result
        self._queue_result(result, conn)

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

    def forwarding(self) -> bool:
        config = self.core.job_config
        return self.current_task_id is not None and (config is None or config.log_to_driver)

    def add_lines(self, lines: list[str], is_stderr: bool) -> None:
        with self._lines_lock:
            for line in lines:
                self._lines.append((self._current_source, self._current_context, is_stderr, line))
            schedule = not self._flush_scheduled
            self._flush_scheduled = True
        if schedule:
            self.core.call_soon(self._schedule_flush)

    def _schedule_flush(self) -> None:
        self.core.loop.call_later(0.05, self._flush_lines)

    def _flush_lines(self) -> None:
        with self._lines_lock:
            lines, self._lines = self._lines, []
            self._flush_scheduled = False
        if not lines:
            return
        driver = self.core.driver_address
        if driver is None:
            return
        batches: dict[tuple[str, str], cw_pb2.LogBatch] = {}
        for source, context, is_stderr, text in lines:
            batch = batches.get((source, context))
            if batch is None:
                batch = batches[(source, context)] = cw_pb2.LogBatch(
                    source=source, pid=os.getpid(), node_ip=self.core.node_ip, context=context
                )
            batch.lines.add(text=text, is_stderr=is_stderr)
        conn = self.core.connection_nowait(driver.endpoint)
        if conn is not None:
            for batch in batches.values():
                conn.notify(methods.CoreWorker.PublishLogs, batch)
        else:
            self.core.spawn(self._send_lines(driver, list(batches.values())))

    async def _send_lines(self, driver: Any, batches: list) -> None:
        try:
            conn = await self.core.connect_to(driver)
        except Exception:  # noqa: BLE001 - the driver has gone; output stays in the log file
            return
        for batch in batches:
            conn.notify(methods.CoreWorker.PublishLogs, batch)


def _format_exc(exc: BaseException, skip: int = 0) -> str:
    tb = exc.__traceback__
    for _ in range(skip):
        if tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb))


def _picklable(exc: BaseException) -> BaseException | None:
    """``exc`` if it survives pickling (so the driver can raise its class), else None."""
    try:
        cloudpickle.loads(cloudpickle.dumps(exc))
    except Exception:  # noqa: BLE001
        return None
    exc.__traceback__ = None
    return exc
