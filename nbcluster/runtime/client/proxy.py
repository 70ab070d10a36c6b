"""A client-mode proxy: the driver of a client that has no node of its own.

``python -m nbcluster.runtime.client.proxy ...``, started by the head's node manager
(``NodeManager.StartClientSession``) with the driver credential in an inherited pipe
and the client's job in ``NBCLUSTER_CLIENT_JOB``. It connects to the cluster as a
driver on that node and serves the ``ClientProxy`` service (``client.proto``) at its
own endpoint, which the client reaches through the node manager's relay.

It owns the client's objects: every reference the client holds is an ObjectRef held
here (``holds``) until the client releases it. Task output and lease warnings go to
the client's connection. When that connection drops, everything is kept for the
job's reconnect grace; then (or on ``Detach``, or when the node manager goes) the
proxy disconnects like any driver, and what it owned is freed.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import logging
import os
import signal
import threading
from pathlib import Path
from typing import Any

from nbcluster.exceptions import NbclusterSystemError, ObjectLostError
from nbcluster.runtime import driver_init, envvars
from nbcluster.runtime.config import RuntimeConfig
from nbcluster.runtime.core.actor_submitter import actor_call, creation_task
from nbcluster.runtime.core.core_worker import CoreWorker
from nbcluster.runtime.core.generators import ObjectRefGenerator
from nbcluster.runtime.core.object_ref import ObjectRef, _rebuild_ref
from nbcluster.runtime.core.tasks import FunctionInfo, Placement, Task, TaskOptions
from nbcluster.runtime.core.task_env import job_config_for
from nbcluster.runtime.runtime_env import RuntimeEnv
from nbcluster.runtime.credentials import from_parent
from nbcluster.runtime.procutil import configure_logging, watch_lifeline
from nbcluster.runtime.protocol import (
    client_pb2,
    common_pb2,
    core_worker_pb2 as cw_pb2,
    node_manager_pb2 as nm_pb2,
)
from nbcluster.runtime.session import Session
from nbcluster.runtime.transport import methods
from nbcluster.runtime.transport.errors import RemoteError

logger = logging.getLogger("nbcluster.client_proxy")

#: The index of a task's first return: a streaming generator's completion object.
_COMPLETION = (1).to_bytes(4, "little")
#: Output batches kept for a client that is away (the oldest go first).
_LOG_BACKLOG = 2000


class _Put:
    """An object the client is putting in pieces."""

    __slots__ = ("size", "contained", "for_task", "buffer", "offset", "created")

    def __init__(self, request: client_pb2.ClientPutRequest, inline: bool, loop: asyncio.AbstractEventLoop) -> None:
        self.size = request.total_size
        self.contained = list(request.contained)
        self.for_task = request.for_task
        self.buffer = bytearray(self.size) if inline else None
        self.offset = -1
        self.created: asyncio.Future = loop.create_future()
        if inline:
            self.created.set_result(None)


class ClientProxy:
    """The ``ClientProxy`` service: the client's requests, served with this
    process's driver (``core``)."""

    def __init__(self, core: CoreWorker, grace_s: float, done: threading.Event) -> None:
        self.core = core
        self.grace_s = grace_s
        self._done = done
        self.client: Any = None
        #: The references the client holds, one ObjectRef each.
        self.holds: dict[bytes, ObjectRef] = {}
        self._functions: dict[bytes, FunctionInfo] = {}
        #: The client's streaming generators, by task id (dropped with their completion ref).
        self._generators: dict[bytes, ObjectRefGenerator] = {}
        self._puts: dict[bytes, _Put] = {}
        #: Stored objects the client is reading: pinned views, with their readers.
        self._reads: dict[bytes, list[Any]] = {}
        self._backlog: collections.deque[tuple[Any, Any]] = collections.deque(maxlen=_LOG_BACKLOG)
        self._grace: asyncio.TimerHandle | None = None
        self._ending = False
        core.dispatcher.register("ClientProxy", self)
        core.log_sink = self._forward_logs
        core.warning_sink = self._forward_warning

    # -- the client's connection ---------------------------------------------------------
    def start_grace(self) -> None:
        """Loop thread: end the session unless a client attaches within the grace."""
        if self._grace is None:
            self._grace = self.core.loop.call_later(self.grace_s, self._expire, "its client did not come back")

    def _expire(self, why: str) -> None:
        self._ending = True
        logger.info("ending the client session: %s", why)
        self._done.set()

    def Attach(self, request: client_pb2.ClientAttachRequest, conn: Any) -> client_pb2.ClientAttachReply:
        """The client (again, after a reconnect): its session's identity."""
        core = self.core
        if request.endpoint != core.endpoint:
            raise RemoteError(common_pb2.ERROR_CODE_INVALID_ARGUMENT, "this is another client's session")
        if self.client is not None and self.client is not conn:
            self.client.close()
        self.client = conn
        if self._grace is not None:
            self._grace.cancel()
            self._grace = None
        conn.on_close(self._lost)
        while self._backlog:
            method, message = self._backlog.popleft()
            conn.notify(method, message)
        return client_pb2.ClientAttachReply(
            job_id=core.job_id, namespace=core.namespace, address=core.address,
            node_ip=core.node_ip, inline_threshold=core.config.inline_threshold,
        )

    def _lost(self, conn: Any) -> None:
        if conn is self.client and not self._ending:
            self.client = None
            logger.info("the client's connection closed; keeping its session for %g s", self.grace_s)
            self.start_grace()

    def Detach(self, request: common_pb2.Empty, conn: Any) -> common_pb2.Empty:
        """The client is done: end the session now."""
        self.core.loop.call_soon(self._expire, "its client detached")
        return common_pb2.Empty()

    def _to_client(self, method: Any, message: Any) -> None:
        client = self.client
        if client is not None and not client.closed:
            client.notify(method, message)
        else:
            self._backlog.append((method, message))

    def _forward_logs(self, batch: cw_pb2.LogBatch) -> None:
        self._to_client(methods.CoreWorker.PublishLogs, batch)

    def _forward_warning(self, message: str) -> None:
        self._to_client(methods.CoreWorker.LeaseWarning, cw_pb2.LeaseWarningNotice(message=message))

    # -- references --------------------------------------------------------------------
    def _hold(self, ref: ObjectRef | None) -> None:
        if ref is not None and ref._id not in self.holds:
            self.holds[ref._id] = ref

    def Hold(self, request: client_pb2.ClientHoldRequest, conn: Any) -> common_pb2.Empty:
        """References that appeared in the client (nested in a value it read)."""
        for info in request.refs:
            if info.object_id not in self.holds:
                self.holds[info.object_id] = _rebuild_ref(info.object_id, info.owner.SerializeToString())
        self.core.borrowing.flush()
        return common_pb2.Empty()

    def Release(self, request: nm_pb2.ObjectIds, conn: Any) -> common_pb2.Empty:
        """References the client no longer holds."""
        for oid in request.object_ids:
            self.holds.pop(oid, None)
            if oid[16:] == _COMPLETION:  # the client's generator (or its completed()) is gone
                self._generators.pop(oid[:16], None)
        return common_pb2.Empty()

    # -- tasks and actors ----------------------------------------------------------------
    def _function(self, spec: common_pb2.FunctionDescriptor) -> FunctionInfo:
        info = self._functions.get(spec.function_id)
        if info is None:
            if not spec.pickled:
                raise RemoteError(common_pb2.ERROR_CODE_INVALID_ARGUMENT, f"unknown function {spec.name}")
            info = self._functions[spec.function_id] = FunctionInfo(spec.function_id, spec.name, spec.pickled)
        return info

    def _args(self, payload: common_pb2.ObjectPayload) -> common_pb2.ObjectPayload:
        """The packed arguments: inline, or the object the client put for them."""
        if payload.HasField("data"):
            return payload
        entry = self.core.refs.get(payload.object_id)
        if entry is None or entry.payload is None:
            raise RemoteError(common_pb2.ERROR_CODE_OBJECT_LOST, "the task's arguments were not stored")
        return entry.payload

    def Submit(self, request: client_pb2.ClientSubmitRequest, conn: Any) -> common_pb2.Empty:
        """Tasks and actor calls, in the client's order."""
        for spec in request.tasks:
            self._submit(spec)
        return common_pb2.Empty()

    def _submit(self, spec: client_pb2.ClientTask) -> None:
        core = self.core
        placement = None
        if spec.HasField("placement"):
            where = spec.placement
            placement = Placement(where.strategy, where.node_id, where.soft, where.placement_group_id,
                                  where.placement_group_capture)
        options = TaskOptions(
            dict(spec.resources), spec.num_returns, spec.max_retries, spec.retry_exceptions,
            spec.retry_exception_types, spec.name, placement, returns_kind=spec.returns_kind,
            backpressure=spec.generator_backpressure, concurrency_group=spec.concurrency_group,
        )
        if spec.actor_id:
            task = actor_call(spec.task_id, spec.actor_id, spec.class_name, spec.method, options, b"", spec.context)
            submitter: Any = core.actor_submitter
        else:
            task = Task(spec.task_id, FunctionInfo(spec.function.function_id, spec.function.name, b""), options)
            task.context = spec.context
            if spec.runtime_env_json:  # the task's own runtime_env, packed by the client
                task.job_config = job_config_for(core, RuntimeEnv.from_json(spec.runtime_env_json))
            submitter = core.submitter
        try:
            if not spec.actor_id:
                task.fn = self._function(spec.function)
            submitter.set_args(task, self._args(spec.args), list(spec.top_refs), list(spec.contained))
        except RemoteError as exc:  # the task fails; its returns say why
            refs = submitter.refuse(task, NbclusterSystemError(exc.message))
        else:
            refs = submitter.queue(task, spec.handle_id) if spec.actor_id else submitter.queue(task)
        for ref in refs:
            self._hold(ref)
        if options.returns_kind == common_pb2.RETURNS_KIND_STREAMING:
            self._generators[spec.task_id] = ObjectRefGenerator(refs[0], core)

    async def CreateActor(
        self, request: client_pb2.ClientCreateActorRequest, conn: Any
    ) -> client_pb2.ClientCreateActorReply:
        """Start an actor for the client (or find the existing one of its name)."""
        core = self.core
        task = creation_task(self._function(request.cls), request.info)
        core.actor_submitter.set_args(task, self._args(request.args), list(request.top_refs), list(request.contained))
        record, ref = await asyncio.to_thread(core.actor_submitter.create_prepared, task, request.get_if_exists)
        self._hold(ref)
        reply = client_pb2.ClientCreateActorReply(actor=record)
        if ref is not None:
            reply.handle.object_id = ref._id
            reply.handle.owner.ParseFromString(ref._owner)
        return reply

    def BorrowActor(self, request: client_pb2.ClientBorrowActorRequest, conn: Any) -> common_pb2.ObjectRefInfo:
        """A handle to another process's actor, held for the client."""
        ref = self.core.actor_submitter.borrow_handle(request.actor)
        self._hold(ref)
        if ref is None:
            return common_pb2.ObjectRefInfo()
        return common_pb2.ObjectRefInfo(object_id=ref._id, owner=common_pb2.Address.FromString(ref._owner))

    async def Cancel(self, request: client_pb2.ClientCancelRequest, conn: Any) -> client_pb2.ClientCancelReply:
        """Cancel a task the client submitted, or every unfinished one of a context."""
        core = self.core
        if request.context:
            count = await asyncio.to_thread(core.cancel_context, request.context, request.force)
            return client_pb2.ClientCancelReply(cancelled=count)
        try:
            core.cancel(request.object_id, request.force, request.recursive)
        except ValueError as exc:
            raise RemoteError(common_pb2.ERROR_CODE_INVALID_ARGUMENT, str(exc)) from None
        return client_pb2.ClientCancelReply(cancelled=1)

    # -- objects -------------------------------------------------------------------------
    async def Put(self, request: client_pb2.ClientPutRequest, conn: Any) -> common_pb2.Empty:
        """A piece of an object the client puts; the last piece stores it."""
        core = self.core
        oid = request.object_id
        put = self._puts.get(oid)
        if put is None:
            inline = request.total_size <= core.config.inline_threshold
            put = self._puts[oid] = _Put(request, inline, core.loop)
            if not inline:
                try:
                    put.offset = await core.create_stored(oid, put.size)
                except BaseException as exc:
                    put.created.set_exception(exc)
                    self._puts.pop(oid, None)
                    raise RemoteError(common_pb2.ERROR_CODE_OBJECT_STORE_FULL, str(exc)) from None
                put.created.set_result(None)
        await put.created
        end = request.offset + len(request.data)
        if end > put.size:
            self._puts.pop(oid, None)
            raise RemoteError(common_pb2.ERROR_CODE_INVALID_ARGUMENT, "a put wrote past its size")
        if put.buffer is not None:
            put.buffer[request.offset : end] = request.data
        else:
            assert core.arena is not None
            core.arena.write_at(put.offset + request.offset, request.data)
        if request.last:
            self._puts.pop(oid, None)
            self._stored(oid, put)
        return common_pb2.Empty()

    def _stored(self, oid: bytes, put: _Put) -> None:
        core = self.core
        if put.buffer is not None:
            payload = common_pb2.ObjectPayload(object_id=oid, data=bytes(put.buffer), size=put.size)
        else:
            payload = core.seal(oid, put.size)
        entry = core.refs.add_owned(oid, payload)  # one reference: the client's, or its task's
        if put.contained:
            entry.contained = put.contained
            for inner in put.contained:
                core.refs.incref(inner)
        if not put.for_task:  # a task's arguments are held by the task (set_args)
            self.holds[oid] = ObjectRef(oid, core.address_bytes, core)

    def _when_ready(self, oid: bytes) -> asyncio.Future:
        fut = self.core.loop.create_future()

        def ready(_oid: bytes, payload: common_pb2.ObjectPayload) -> None:
            if not fut.done():
                fut.set_result(payload)

        if not self.core.when_ready(oid, ready):
            fut.set_exception(RemoteError(
                common_pb2.ERROR_CODE_OBJECT_LOST,
                f"Object {oid.hex()} is unknown to the client's session (freed, or from an earlier session).",
            ))
        return fut

    def _generator(self, task_id: bytes) -> ObjectRefGenerator:
        gen = self._generators.get(task_id)
        if gen is None:
            raise RemoteError(common_pb2.ERROR_CODE_NOT_FOUND, "that generator is unknown to the client's session")
        return gen

    def _next_ready(self, task_id: bytes) -> asyncio.Future:
        stream = self._generator(task_id)._stream
        return asyncio.wrap_future(self.core.generators.waiter(stream))

    async def GeneratorNext(
        self, request: client_pb2.ClientGeneratorNextRequest, conn: Any
    ) -> client_pb2.ClientGeneratorNextReply:
        """The next item of a streaming generator the client submitted (held for it)."""
        gen = self._generator(request.task_id)
        if request.peek:
            return client_pb2.ClientGeneratorNextReply(ready=gen._wait_ready(), finished=gen.is_finished())
        try:
            ref = await gen.__anext__()
        except StopAsyncIteration:
            return client_pb2.ClientGeneratorNextReply(finished=True)
        self._hold(ref)
        return client_pb2.ClientGeneratorNextReply(object_id=ref._id)

    async def Wait(self, request: client_pb2.ClientWaitRequest, conn: Any) -> client_pb2.ClientWaitReply:
        """Which objects (and streaming generators) are ready, once ``num_returns``
        are (or the timeout passed)."""
        futures = [self._when_ready(oid) for oid in request.object_ids]
        futures += [self._next_ready(task_id) for task_id in request.generators]
        timeout = None if request.timeout < 0 else request.timeout
        pending = [f for f in futures if not f.done()]
        loop = self.core.loop
        deadline = None if timeout is None else loop.time() + timeout
        while pending and len(futures) - len(pending) < request.num_returns:
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                break
            _, still = await asyncio.wait(pending, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
            pending = list(still)
        for fut in pending:
            fut.cancel()
        for fut in futures:
            if not fut.cancelled() and fut.exception() is not None:
                raise fut.exception()  # type: ignore[misc]
        return client_pb2.ClientWaitReply(ready=[not f.cancelled() for f in futures])

    async def GetObjects(self, request: client_pb2.ClientGetRequest, conn: Any) -> client_pb2.ClientGetReply:
        """The objects' values: small ones inline, stored ones pinned for ReadObject."""
        futures = [self._when_ready(oid) for oid in request.object_ids]
        timeout = None if request.timeout < 0 else request.timeout
        done, pending = await asyncio.wait(futures, timeout=timeout) if futures else (set(), set())
        if pending:
            for fut in pending:
                fut.cancel()
            return client_pb2.ClientGetReply(timed_out=True)
        payloads = [fut.result() for fut in futures]
        stored = [p for p in payloads if not p.HasField("data")]
        try:
            views = await self.core.pin_views(stored) if stored else {}
        except ObjectLostError as exc:
            raise RemoteError(common_pb2.ERROR_CODE_OBJECT_LOST, str(exc)) from None
        reply = client_pb2.ClientGetReply()
        for payload in payloads:
            item = reply.objects.add(object_id=payload.object_id, size=payload.size, is_error=payload.is_error)
            if payload.HasField("data"):
                item.data = payload.data
            else:
                item.stored = True
                reading = self._reads.setdefault(payload.object_id, [views[payload.object_id], 0])
                reading[1] += 1
        return reply

    def ReadObject(self, request: client_pb2.ClientReadRequest, conn: Any) -> client_pb2.ClientReadReply:
        """A piece of a stored object the client is getting (pinned by GetObjects)."""
        reading = self._reads.get(request.object_id)
        if reading is None:
            raise RemoteError(common_pb2.ERROR_CODE_NOT_FOUND, "that object is not being read")
        data = bytes(reading[0][request.offset : request.offset + request.length])
        if request.done:
            reading[1] -= 1
            if reading[1] <= 0:
                del self._reads[request.object_id]
        return client_pb2.ClientReadReply(data=data)


def main() -> None:
    """The proxy process: connect as the client's driver, serve it, end with it."""
    parser = argparse.ArgumentParser(prog="nbcluster-client-proxy")
    parser.add_argument("--session-dir", required=True)
    parser.add_argument("--gcs-address", required=True)
    parser.add_argument("--node-endpoint", required=True)
    parser.add_argument("--node-id", required=True)
    parser.add_argument("--worker-id", required=True)
    parser.add_argument("--lifeline-fd", type=int, required=True)
    opts = parser.parse_args()
    session = Session(Path(opts.session_dir))
    configure_logging(session.logs / f"client-proxy-{opts.worker_id[:8]}.log")
    token = from_parent()
    if token is None:
        raise SystemExit("a client proxy is started by its node manager, which passes its credential")
    job = nm_pb2.ClientJob.FromString(base64.b64decode(os.environ.pop(envvars.CLIENT_JOB)))
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    proxies: list[ClientProxy] = []
    registration = driver_init.JobRegistration(job.config, dict(job.metadata), job.entrypoint)
    core = driver_init.connect_on_behalf(
        session, token, opts.gcs_address, opts.node_endpoint, bytes.fromhex(opts.node_id),
        bytes.fromhex(opts.worker_id), RuntimeConfig.load(), registration,
        lambda core: proxies.append(ClientProxy(core, job.reconnect_grace_s or 30.0, done)),
    )
    proxy = proxies[0]
    core.call_soon(proxy.start_grace)  # a client that never attaches
    core.call_soon(watch_lifeline, core.loop, opts.lifeline_fd, done.set)
    done.wait()
    driver_init.shutdown()


if __name__ == "__main__":
    main()
