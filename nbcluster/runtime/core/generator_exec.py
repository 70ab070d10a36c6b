"""Running a streaming generator task in a worker (``num_returns="streaming"``).

Each value the generator yields is stored at once, owned by the caller (inline when
small, else in this node's store), and sent to the caller on the connection the task
came on (``ReportGeneratorItems``, batched per loop turn), before the task's result.
An item that nests refs leaves only once their owners know the caller holds them.

- Backpressure: with ``_generator_backpressure_num_objects=N`` the generator is not
  resumed while N of its items are unconsumed; the caller says how many it took
  (``GeneratorConsumed``).
- Errors: an exception the generator raises becomes the item at that point, and the
  stream ends (the task fails, its completion object stays ``None``). One the task is
  retried on (``retry_exceptions``) fails the task instead, which runs again.
- Cancel: a normal task is interrupted as any task (SIGINT in the main thread); an
  actor's generator stops before it is resumed again (and an async one at its await).
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from nbcluster.exceptions import TaskCancelledError
from nbcluster.runtime import ids
from nbcluster.runtime.core.generator_streams import FIRST_ITEM
from nbcluster.runtime.objects.serialization import serialize
from nbcluster.runtime.protocol import common_pb2, core_worker_pb2 as cw_pb2
from nbcluster.runtime.transport import methods

if TYPE_CHECKING:
    from nbcluster.runtime.core.executor import Executor, Outcome

_OK = cw_pb2.TASK_STATUS_OK
_APP_ERROR = cw_pb2.TASK_STATUS_APP_ERROR
_CANCELLED = cw_pb2.TASK_STATUS_CANCELLED
_NONE = serialize(None).to_bytes()


def none_payload(spec: common_pb2.TaskSpec) -> common_pb2.ObjectPayload:
    """A generator task's completion object when it ended well: ``None``."""
    return common_pb2.ObjectPayload(object_id=ids.object_id(spec.task_id, 1), data=_NONE, size=len(_NONE))


class GeneratorRun:
    """One streaming generator task running here: its items so far, what the caller
    consumed, and the items on their way to it."""

    def __init__(self, executor: "Executor", spec: common_pb2.TaskSpec, conn: Any) -> None:
        self.executor = executor
        self.core = executor.core
        self.spec = spec
        self.conn = conn
        self.limit = spec.generator_backpressure
        #: Items yielded (the next one's number).
        self.count = 0
        #: Items the caller has taken (backpressure).
        self.consumed = 0
        self.cancelled = False
        self._cond = threading.Condition()
        self._wakeup: tuple[asyncio.AbstractEventLoop, asyncio.Future] | None = None
        # loop thread: items to send now, and items waiting for their nested refs
        self._batch: list[common_pb2.ObjectPayload] = []
        self._pending: list[tuple[common_pb2.ObjectPayload, list]] = []
        self._draining: asyncio.Task | None = None

    # -- the executing thread -----------------------------------------------------------
    def put(self, value: Any) -> None:
        """Store a yielded value as the next item and send it to the caller."""
        oid = ids.object_id(self.spec.task_id, FIRST_ITEM + self.count)
        payload, contained = self.executor.store_value(oid, value, self.spec.caller)
        self.count += 1
        self.core.call_soon(self._send, payload, contained)

    def failed(self, exc: BaseException) -> "Outcome":
        """The generator raised ``exc``: the item at this point holds it (or, when
        the task retries on it, the task fails)."""
        ex = self.executor
        if ex.retryable(self.spec, exc):
            return ex.failed(self.spec, exc, _APP_ERROR, skip=1)
        err, text = ex.task_error(self.spec, exc, skip=1)
        payload = ex.error_payload(ids.object_id(self.spec.task_id, FIRST_ITEM + self.count), err)
        self.count += 1
        self.core.call_soon(self._send, payload, [])
        return _APP_ERROR, [none_payload(self.spec)], False, [], text

    def done(self) -> "Outcome":
        """The generator is exhausted (or stopped by a cancel)."""
        if self.cancelled:
            err = TaskCancelledError(self.spec.task_id.hex())
            return _CANCELLED, [self.executor.error_payload(ids.object_id(self.spec.task_id, 1), err)], False, [], "cancelled"
        return _OK, [none_payload(self.spec)], False, [], ""

    def _paused(self) -> bool:
        return self.limit > 0 and not self.cancelled and self.count - self.consumed >= self.limit

    def wait(self) -> None:
        """Backpressure: block while too many items are unconsumed."""
        if self._paused():
            with self._cond:
                while self._paused():
                    self._cond.wait()

    async def wait_async(self) -> None:
        """``wait`` on an event loop (an async actor's, or an async task's)."""
        while self._paused():
            loop = asyncio.get_running_loop()
            fut = loop.create_future()
            self._wakeup = (loop, fut)
            if self._paused():  # not consumed meanwhile
                await fut
            self._wakeup = None

    # -- any thread --------------------------------------------------------------------
    def on_consumed(self, consumed: int) -> None:
        """The caller has taken ``consumed`` items."""
        with self._cond:
            self.consumed = max(self.consumed, consumed)
            self._cond.notify_all()
        self._wake()

    def cancel(self) -> None:
        """Stop the generator before it is resumed again."""
        with self._cond:
            self.cancelled = True
            self._cond.notify_all()
        self._wake()

    def _wake(self) -> None:
        wakeup = self._wakeup
        if wakeup is not None:
            loop, fut = wakeup
            loop.call_soon_threadsafe(lambda: fut.done() or fut.set_result(None))

    # -- loop thread: sending items in order ---------------------------------------------
    def _send(self, payload: common_pb2.ObjectPayload, contained: list) -> None:
        core = self.core
        if self._pending or contained or core.refs.unregistered or core.borrowing.flushing():
            self._pending.append((payload, contained))
            if self._draining is None or self._draining.done():
                self._draining = core.spawn(self._drain())
            return
        self._batch.append(payload)
        if len(self._batch) == 1:
            core.loop.call_soon(self._flush)

    def _flush(self) -> None:
        batch, self._batch = self._batch, []
        if batch and not self.conn.closed:
            notice = cw_pb2.GeneratorItemsNotice(task_id=self.spec.task_id, attempt=self.spec.attempt, items=batch)
            self.conn.notify(methods.CoreWorker.ReportGeneratorItems, notice)

    async def _drain(self) -> None:
        while self._pending:
            payload, contained = self._pending[0]
            await self.executor.registered(contained, self.spec.caller)
            self._pending.pop(0)
            self._batch.append(payload)
            self._flush()

    def then(self, send: Callable[[], None]) -> None:
        """Loop thread: ``send`` (the task's result) once every item has left."""
        draining = self._draining
        if draining is None or draining.done():
            send()
        else:
            draining.add_done_callback(lambda _t: send())


def run_streaming(executor: "Executor", spec: common_pb2.TaskSpec, conn: Any, value: Any) -> "Outcome":
    """Drive a generator (the task's or method's return value) to its end, in this thread."""
    if inspect.isasyncgen(value):
        return asyncio.run(run_streaming_async(executor, spec, conn, value))
    run = executor.start_stream(spec, conn)
    try:
        iterator = iter(value)
    except TypeError as exc:
        return run.failed(TypeError(f"{spec.function.name} has num_returns='streaming' but returned no generator: {exc}"))
    try:
        while not run.cancelled:
            try:
                item = next(iterator)
                run.put(item)
            except StopIteration:
                break
            except Exception as exc:  # noqa: BLE001 - the task's error, at this item
                return run.failed(exc)
            run.wait()
        return run.done()
    finally:
        _close(iterator)


async def run_streaming_async(executor: "Executor", spec: common_pb2.TaskSpec, conn: Any, value: Any) -> "Outcome":
    """``run_streaming`` on an event loop: an async generator (or a plain one)."""
    run = executor.start_stream(spec, conn)
    agen = value if inspect.isasyncgen(value) else None
    try:
        iterator = None if agen is not None else iter(value)
    except TypeError as exc:
        return run.failed(TypeError(f"{spec.function.name} has num_returns='streaming' but returned no generator: {exc}"))
    try:
        while not run.cancelled:
            try:
                item = await agen.__anext__() if agen is not None else next(iterator)  # type: ignore[arg-type]
                run.put(item)
            except (StopIteration, StopAsyncIteration):
                break
            except Exception as exc:  # noqa: BLE001
                return run.failed(exc)
            await run.wait_async()
        return run.done()
    finally:
        if agen is not None:
            await _aclose(agen)
        else:
            _close(iterator)


def _close(iterator: Any) -> None:
    close = getattr(iterator, "close", None)
    if close is not None:
        try:
            close()
        except Exception:  # noqa: BLE001 - a generator that raises while closing: ignored
            pass


async def _aclose(agen: Any) -> None:
    try:
        await agen.aclose()
    except Exception:  # noqa: BLE001
        pass
