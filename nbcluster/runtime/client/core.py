"""The runtime of a driver in client mode: no node of its own, everything through its
proxy on the head (``runtime/client/proxy.py``).

:class:`ClientCore` offers what the public API, remote functions, actors and the
driver facades use of a :class:`~nbcluster.runtime.core.core_worker.CoreWorker`
(submitting, put/get/wait, cancel, actor handles, the GCS connection, the output
sink), so they run unchanged in either mode. References count here; the proxy holds
one reference per object the client holds, told by ``Hold``/``Release``. Arguments
are packed here as a local driver packs them (``tasks.pack_args``), so the proxy never
unpickles user data; values are read here, large ones in pieces (bounded memory,
no shared memory).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Sequence
from typing import Any

from nbcluster.runtime import ids
from nbcluster.runtime.config import RuntimeConfig
from nbcluster.runtime.core.core_worker import DRIVER, DriverSinks
from nbcluster.runtime.core.generators import ObjectRefGenerator
from nbcluster.runtime.core.loop_thread import LoopThread
from nbcluster.runtime.core.object_ref import ObjectRef
from nbcluster.runtime.core.object_values import ref_id, timeout_error, value_or_raise
from nbcluster.runtime.core.task_env import packed
from nbcluster.runtime.core.tasks import FunctionInfo, TaskOptions, pack_args
from nbcluster.runtime.credentials import driver_token
from nbcluster.runtime.node import transfer
from nbcluster.runtime.client.link import _HOLD, _RELEASE, _SUBMIT, ProxyLink
from nbcluster.runtime.objects.serialization import SerializedObject, deserialize, serialize
from nbcluster.runtime.protocol import client_pb2, common_pb2, gcs_pb2, node_manager_pb2 as nm_pb2
from nbcluster.runtime.transport import framed, methods
from nbcluster.runtime.transport.errors import RemoteError, domain_error

logger = logging.getLogger("nbcluster")

#: Bytes per piece of a large put or get, and pieces in flight at once.
PIECE = 4 << 20
WINDOW = 4


class ClientRefs:
    """How many references to each object this process holds; the proxy is told when
    one appears that it does not hold yet (``Hold``) and when the last goes."""

    def __init__(self, core: "ClientCore") -> None:
        self._core = core
        self.counts: dict[bytes, int] = {}
        self.lock = threading.Lock()
        self.closed = False

    def add(self, object_id: bytes) -> None:
        """A reference made here to an object the proxy holds for this client."""
        with self.lock:
            self.counts[object_id] = self.counts.get(object_id, 0) + 1

    def add_borrowed(self, object_id: bytes, owner: bytes) -> None:
        """A reference unpickled here (nested in a value): held by the proxy from now."""
        with self.lock:
            count = self.counts.get(object_id, 0)
            self.counts[object_id] = count + 1
        if count == 0:
            info = common_pb2.ObjectRefInfo(object_id=object_id, owner=common_pb2.Address.FromString(owner))
            self._core.send(_HOLD, info)

    def release(self, object_id: bytes) -> None:
        """One reference went (``ObjectRef.__del__``); the last one tells the proxy."""
        with self.lock:
            count = self.counts.get(object_id, 0) - 1
            if count > 0:
                self.counts[object_id] = count
                return
            self.counts.pop(object_id, None)
        if not self.closed:
            self._core.send(_RELEASE, object_id)


class ClientCore(LoopThread, DriverSinks):
    """A driver's runtime in client mode (see the module docstring)."""

    mode = DRIVER
    executor = None
    disconnecting = False
    #: No session directory on this machine (a local driver's core has one).
    session = None

    def __init__(self, gcs_address: str, token: str, config: RuntimeConfig, node_address: str) -> None:
        LoopThread.__init__(self)
        DriverSinks.__init__(self)
        self.gcs_address = gcs_address
        #: The head's address as the user gave it.
        self.cluster_address = gcs_address
        self.token = token
        self.config = config
        self.closed = False
        self.ids = ids.IdGenerator()
        self.refs = ClientRefs(self)
        self.submitter = _Tasks(self)
        self.actor_submitter = _Actors(self)
        self.generators = _Generators(self)
        self.gcs: Any = None
        self.task_context = ""
        self.submit_hook: Any = None
        self.job_id = b""
        self.namespace = ""
        self.job_config: Any = None
        self.node_id = b""
        self.node_ip = ""
        self.worker_id = ids.random_id()
        self.address = common_pb2.Address()
        self.address_bytes = b""
        self.inline_threshold = config.inline_threshold
        #: The head node's object port ("host:port"), where large values are read from.
        self.object_address = ""
        self._object_port_error = ""
        dispatcher = framed.Dispatcher()
        dispatcher.register("CoreWorker", self)  # PublishLogs, LeaseWarning
        self.link = ProxyLink(node_address, token, dispatcher, config.client_reconnect_grace_s, config.startup_timeout_s)

    def attached(self, reply: client_pb2.ClientAttachReply) -> None:
        """The proxy's answer to Attach: who this driver is on the cluster."""
        self.job_id = reply.job_id
        self.namespace = reply.namespace
        self.address = reply.address
        self.address_bytes = reply.address.SerializeToString()
        self.node_id = reply.address.node_id
        self.node_ip = reply.node_ip
        self.inline_threshold = reply.inline_threshold or self.inline_threshold

    async def gcs_connection(self) -> Any:
        """The GCS connection (made at connect time)."""
        return self.gcs

    # -- talking to the proxy -----------------------------------------------------------
    def send(self, kind: str, item: Any) -> None:
        """Queue a one-way message to the proxy (any thread)."""
        self.link.queue(kind, item)
        if not self.closed:
            try:
                self.loop.call_soon_threadsafe(self.link.flush)
            except RuntimeError:  # the loop is closed
                pass

    def request(self, method: Any, request: Any, retry: bool = False, timeout: float | None = None) -> Any:
        """Call the proxy from a user thread; domain errors as the local driver raises them."""
        try:
            return self.run_sync(self.link.call(method, request, retry=retry, timeout=timeout))
        except RemoteError as exc:
            raise domain_error(exc) or exc from None

    # -- objects ------------------------------------------------------------------------
    def store_packed(self, object_id: bytes, obj: SerializedObject, for_task: bool = False) -> None:
        """Put a serialized value in the proxy's store under ``object_id`` (blocking),
        in pieces with a few in flight."""
        contained = [ref._id for ref in obj.contained]

        async def send() -> None:
            futures: list[Any] = []
            pieces = list(obj.pieces(PIECE)) if obj.total_size else [(0, memoryview(b""))]
            for index, (offset, piece) in enumerate(pieces):
                request = client_pb2.ClientPutRequest(
                    object_id=object_id, total_size=obj.total_size, offset=offset, data=bytes(piece),
                    last=index == len(pieces) - 1, contained=contained if index == 0 else (), for_task=for_task,
                )
                futures.append(asyncio.ensure_future(self.link.call(methods.ClientProxy.Put, request)))
                if len(futures) >= WINDOW:
                    await futures.pop(0)
            for fut in futures:
                await fut

        try:
            self.run_sync(send())
        except RemoteError as exc:
            raise domain_error(exc) or exc from None

    def put(self, value: Any) -> ObjectRef:
        """Store ``value`` in the cluster (through the proxy); its ObjectRef."""
        if isinstance(value, ObjectRef):
            raise TypeError(
                "put() of an ObjectRef is not allowed: the ref already names a stored value. "
                "Pass the ref itself, or put([ref]) to wrap it."
            )
        oid = ids.object_id(self.ids.next(), 0)
        self.store_packed(oid, serialize(value))
        return self.new_ref(oid)

    def new_ref(self, object_id: bytes, owner: bytes | None = None) -> ObjectRef:
        """An ObjectRef to an object the proxy holds for this client."""
        self.refs.add(object_id)
        return ObjectRef(object_id, owner or self.address_bytes, self)

    def check_ref(self, ref: Any) -> bytes:
        """The id of ``ref``; TypeError if it is not an ObjectRef."""
        return ref_id(ref)

    async def _read(self, item: client_pb2.ClientObject) -> Any:
        """A value the proxy answered with: inline, or read in pieces."""
        if item.HasField("data"):
            return value_or_raise(deserialize(item.data, copy_buffers=True), item.is_error)
        buf = bytearray(item.size)
        view = memoryview(buf)
        if await self._pull(item.object_id, view):
            return value_or_raise(deserialize(buf, copy_buffers=False), item.is_error)
        offsets = list(range(0, item.size, PIECE)) or [0]

        async def piece(offset: int) -> None:
            last = offset == offsets[-1]
            request = client_pb2.ClientReadRequest(object_id=item.object_id, offset=offset, length=PIECE, done=last)
            reply = await self.link.call(methods.ClientProxy.ReadObject, request, retry=True)
            view[offset : offset + len(reply.data)] = reply.data

        for start in range(0, len(offsets), WINDOW):
            await asyncio.gather(*(piece(o) for o in offsets[start : start + WINDOW]))
        return value_or_raise(deserialize(buf, copy_buffers=False), item.is_error)

    async def _pull(self, object_id: bytes, view: memoryview) -> bool:
        """Read a stored object (pinned by the proxy on the head's node) straight from
        that node's object port, as nodes pull objects: far faster than pieces through
        the relay. False when the port cannot be reached (then the relay serves; said
        once) or no longer has it."""
        if not self.object_address or self._object_port_error:
            return False

        async def allocate(size: int) -> memoryview:
            if size != len(view):
                raise ConnectionError(f"the object port sent {size} bytes, the proxy said {len(view)}")
            return view

        request = nm_pb2.PullObjectRequest(object_id=object_id)
        try:
            found = await transfer.pull(self.object_address, driver_token(self.token), request, allocate)
        except (OSError, ConnectionError) as exc:
            self._object_port_error = str(exc)
            logger.warning("the head's object port %s cannot be reached (%s): large values come through the "
                           "relay instead, more slowly", self.object_address, exc)
            return False
        if found:
            done = client_pb2.ClientReadRequest(object_id=object_id, done=True)
            await self.link.call(methods.ClientProxy.ReadObject, done, retry=True)
        return found

    async def _get(self, oids: list[bytes], timeout: float | None) -> list[Any]:
        request = client_pb2.ClientGetRequest(object_ids=oids, timeout=-1.0 if timeout is None else timeout)
        try:
            reply = await self.link.call(methods.ClientProxy.GetObjects, request, retry=True)
        except RemoteError as exc:
            raise domain_error(exc) or exc from None
        if reply.timed_out:
            raise timeout_error(timeout, len(oids), len(oids))
        return [await self._read(item) for item in reply.objects]

    def get(self, refs: Sequence[Any], timeout: float | None) -> list[Any]:
        """The values of ``refs`` (blocking); GetTimeoutError after ``timeout`` seconds."""
        return self.run_sync(self._get([self.check_ref(r) for r in refs], timeout))

    def get_future(self, ref: ObjectRef) -> concurrent.futures.Future:
        """A future of ``ref``'s value."""
        result: concurrent.futures.Future = concurrent.futures.Future()
        inner = asyncio.run_coroutine_threadsafe(self._get([ref._id], None), self.loop)

        def done(fut: concurrent.futures.Future, held: ObjectRef = ref) -> None:  # the ref lives until then
            if fut.exception() is not None:
                result.set_exception(fut.exception())  # type: ignore[arg-type]
            else:
                result.set_result(fut.result()[0])

        inner.add_done_callback(done)
        return result

    def wait_payloads(
        self, oids: Sequence[bytes], num_ready: int, timeout: float | None, others: Sequence[Any] = ()
    ) -> list[bool]:
        """Block until ``num_ready`` of the objects (and streaming generators,
        ``others``) are ready, or the timeout passes."""
        request = client_pb2.ClientWaitRequest(
            object_ids=list(oids), num_returns=num_ready, timeout=-1.0 if timeout is None else timeout,
            generators=[gen._task_id for gen in others],
        )
        return list(self.request(methods.ClientProxy.Wait, request, retry=True).ready)

    # -- cancelling -----------------------------------------------------------------------
    def cancel(self, oid: bytes, force: bool, recursive: bool) -> None:
        """Cancel the task that returns ``oid``."""
        request = client_pb2.ClientCancelRequest(object_id=oid, force=force, recursive=recursive)
        self._cancel(request)

    def cancel_context(self, context: str, force: bool) -> int:
        """Cancel the unfinished tasks submitted with ``context``; how many."""
        return self._cancel(client_pb2.ClientCancelRequest(context=context, force=force, recursive=True))

    def _cancel(self, request: client_pb2.ClientCancelRequest) -> int:
        try:
            return self.run_sync(self.link.call(methods.ClientProxy.Cancel, request)).cancelled
        except RemoteError as exc:
            if exc.code == common_pb2.ERROR_CODE_INVALID_ARGUMENT:
                raise ValueError(exc.message) from None
            raise domain_error(exc) or exc from None

    def shutdown(self) -> None:
        """Detach from the proxy (it releases everything) and stop (idempotent)."""
        if self.closed or self._thread is None:
            return
        self.refs.closed = True
        try:
            self.run_sync(self._stop(), timeout=5.0)
        except Exception:  # noqa: BLE001 - the cluster may be gone
            pass
        self.closed = True
        self.stop_loop()

    async def _stop(self) -> None:
        await self.link.close(detach=True)
        await self.cancel_spawned()
        if self.gcs is not None:
            self.gcs.close()


def _client_task(core: ClientCore, fn: FunctionInfo, args: tuple, kwargs: dict, options: TaskOptions,
                 context: str) -> client_pb2.ClientTask:
    """A task's wire form, its arguments packed here (large ones put first)."""
    task_id = core.ids.next()
    spec = client_pb2.ClientTask(
        task_id=task_id, resources=options.resources, num_returns=options.num_returns,
        max_retries=options.max_retries, retry_exceptions=options.retry_exceptions,
        retry_exception_types=options.retry_types, name=options.name, context=context,
        returns_kind=options.returns_kind, generator_backpressure=options.backpressure,
        concurrency_group=options.concurrency_group,
    )
    spec.function.function_id = fn.function_id
    spec.function.name = fn.name
    if options.placement is not None:
        spec.placement.strategy = options.placement.strategy
        spec.placement.node_id = options.placement.node_id
        spec.placement.soft = options.placement.soft
        spec.placement.placement_group_id = options.placement.group_id
        spec.placement.placement_group_capture = options.placement.capture
    _pack(core, spec, task_id, fn.name, args, kwargs)
    return spec


def _pack(core: ClientCore, spec: Any, task_id: bytes, name: str, args: tuple, kwargs: dict) -> None:
    packed = pack_args(name, args, kwargs)
    if packed is None:
        obj = serialize(((), {}))
        spec.args.data = obj.to_bytes()
        spec.args.size = obj.total_size
        return
    if packed.obj.total_size > core.inline_threshold:
        args_id = ids.object_id(task_id, 0)
        core.store_packed(args_id, packed.obj, for_task=True)
        spec.args.object_id = args_id  # no data: the proxy reads the object it stored
    else:
        spec.args.data = packed.obj.to_bytes()
    spec.args.size = packed.obj.total_size
    spec.top_refs.extend(packed.top)
    spec.contained.extend(packed.contained)


def _returns(core: ClientCore, task_id: bytes, num_returns: int) -> list[ObjectRef]:
    return [core.new_ref(ids.object_id(task_id, i)) for i in range(1, num_returns + 1)]


class _Tasks:
    """``core.submitter`` in client mode: tasks go to the proxy."""

    def __init__(self, core: ClientCore) -> None:
        self.core = core
        self._sent: set[bytes] = set()

    def submit(self, fn: FunctionInfo, args: tuple, kwargs: dict, options: TaskOptions, parent: bytes = b"",
               context: str = "") -> list[ObjectRef]:
        """Queue a task; returns its refs."""
        core = self.core
        spec = _client_task(core, fn, args, kwargs, options, context)
        if options.runtime_env:  # its own environment: packages uploaded from here
            spec.runtime_env_json = packed(core, options.runtime_env).to_json()
        if fn.function_id not in self._sent:
            self._sent.add(fn.function_id)
            spec.function.pickled = fn.pickled
        refs = _returns(core, spec.task_id, options.num_returns)
        core.send(_SUBMIT, spec)
        return refs


class _Generators:
    """``core.generators`` in client mode: streaming generators are read through the
    proxy, which holds each item for this client once it is taken."""

    def __init__(self, core: ClientCore) -> None:
        self.core = core

    def generator(self, ref: ObjectRef) -> "ClientObjectRefGenerator":
        """What ``.remote()`` of a streaming task returns (``ref``: its completion object)."""
        return ClientObjectRefGenerator(ref, self.core)


class ClientObjectRefGenerator(ObjectRefGenerator):
    """An ObjectRefGenerator in client mode: ``next()`` asks the proxy, which waits
    for the item and holds it for this client."""

    def __init__(self, ref: ObjectRef, core: ClientCore) -> None:  # noqa: D107 - as the base
        self._ref = ref
        self._core = core
        self._task_id = ref._id[:16]

    def _ask(self, peek: bool) -> Any:
        request = client_pb2.ClientGeneratorNextRequest(task_id=self._task_id, peek=peek)
        return self._core.link.call(methods.ClientProxy.GeneratorNext, request)

    def _item(self, reply: client_pb2.ClientGeneratorNextReply, stop: type[Exception]) -> ObjectRef:
        if not reply.object_id:
            raise stop
        return self._core.new_ref(reply.object_id)

    def __next__(self) -> ObjectRef:
        """The next item's ref, once the task has yielded it; StopIteration at the end."""
        return self._item(self._core.run_sync(self._ask(False)), StopIteration)

    async def __anext__(self) -> ObjectRef:
        """``__next__`` without blocking the event loop; StopAsyncIteration at the end."""
        future = asyncio.run_coroutine_threadsafe(self._ask(False), self._core.loop)
        return self._item(await asyncio.wrap_future(future), StopAsyncIteration)

    def next_ready(self) -> bool:
        """``next()`` would return a ref at once (False once it would stop)."""
        reply = self._core.run_sync(self._ask(True))
        return reply.ready and not reply.finished

    def is_finished(self) -> bool:
        """The task has finished and every ref was taken: ``next()`` stops."""
        return self._core.run_sync(self._ask(True)).finished

    def __del__(self) -> None:
        pass  # the proxy lets go of its generator when the completion ref is released


class _Actors:
    """``core.actor_submitter`` in client mode: actors through the proxy."""

    def __init__(self, core: ClientCore) -> None:
        self.core = core

    def submit(self, actor_id: bytes, class_name: str, method: str, args: tuple, kwargs: dict,
               options: TaskOptions, handle_ref: ObjectRef | None, parent: bytes = b"",
               context: str = "") -> list[ObjectRef]:
        """Queue a call of ``method`` on the actor; returns its refs."""
        core = self.core
        fn = FunctionInfo(b"", f"{class_name}.{method}", b"")
        spec = _client_task(core, fn, args, kwargs, options, context)
        spec.actor_id = actor_id
        spec.class_name = class_name
        spec.method = method
        if handle_ref is not None:
            spec.handle_id = handle_ref._id
        refs = _returns(core, spec.task_id, options.num_returns)
        core.send(_SUBMIT, spec)
        return refs

    def create(self, cls: FunctionInfo, args: tuple, kwargs: dict, info: gcs_pb2.ActorInfo,
               get_if_exists: bool) -> tuple[gcs_pb2.ActorInfo, ObjectRef | None]:
        """Start an actor (through the proxy); its record and handle reference."""
        core = self.core
        request = client_pb2.ClientCreateActorRequest(info=info, get_if_exists=get_if_exists)
        request.cls.function_id = cls.function_id
        request.cls.name = cls.name
        request.cls.pickled = cls.pickled
        _pack(core, request, info.actor_id, cls.name, args, kwargs)
        reply = core.request(methods.ClientProxy.CreateActor, request)
        return reply.actor, self._handle(reply.handle)

    def borrow_handle(self, info: gcs_pb2.ActorInfo) -> ObjectRef | None:
        """A reference to another process's actor handle object, held by the proxy."""
        reply = self.core.request(methods.ClientProxy.BorrowActor, client_pb2.ClientBorrowActorRequest(actor=info))
        return self._handle(reply)

    def _handle(self, info: common_pb2.ObjectRefInfo) -> ObjectRef | None:
        if not info.object_id:
            return None
        return self.core.new_ref(info.object_id, info.owner.SerializeToString())
