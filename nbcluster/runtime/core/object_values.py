"""The core worker's object values: storing them (inline or in this node's shared
memory store), reading them, waiting for them (``get``/``wait``/futures), asking
owners about borrowed ones, and objects lost with a node.

A mixin of :class:`~nbcluster.runtime.core.core_worker.CoreWorker`: it uses the
core worker's reference table, node manager connection, arena and loop.
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from nbcluster.exceptions import (
    GetTimeoutError,
    ObjectLostError,
    OwnerDiedError,
    TaskError,
)
from nbcluster.runtime import ids
from nbcluster.runtime.core.object_ref import ObjectRef
from nbcluster.runtime.core.payloads import error_payload
from nbcluster.runtime.objects.serialization import SerializedObject, deserialize, serialize
from nbcluster.runtime.protocol import (
    common_pb2,
    core_worker_pb2 as cw_pb2,
    node_manager_pb2 as nm_pb2,
)
from nbcluster.runtime.transport import methods
from nbcluster.runtime.transport.errors import ConnectionLost, RemoteError, domain_error


def value_or_raise(value: Any, is_error: bool) -> Any:
    """A deserialized value, or (a stored error) raised as ``get`` raises it: a task's
    error as an instance of its cause's class too."""
    if is_error:
        if isinstance(value, TaskError):
            raise value.as_instanceof_cause()
        raise value
    return value


def ref_id(ref: Any) -> bytes:
    """The id of ``ref``; TypeError if it is not an ObjectRef."""
    if not isinstance(ref, ObjectRef):
        raise TypeError(
            f"get() and wait() take ObjectRefs (or lists of them), not {type(ref).__name__}: "
            f"{ref!r:.80}. Pass what .remote() or put() returned."
        )
    return ref._id


def timeout_error(timeout: float | None, waiting: int, total: int) -> GetTimeoutError:
    """What ``get`` raises when ``waiting`` of ``total`` objects are not ready in time."""
    return GetTimeoutError(
        f"get() timed out after {timeout} s: {waiting} of {total} objects not ready. "
        "Raise the timeout, or use wait() to take the ready ones."
    )


#: A wait for at most this many objects rescans them whenever values arrive (cheap for
#: a few, and nothing to set up on the loop thread: a synchronous ``get(f.remote())``
#: is this); a wait for more counts their arrivals instead (``_wait_arrivals``).
SCAN_BELOW = 64


class ObjectValues:
    """Putting, storing, reading and waiting for the values of objects."""

    def store(self, object_id: bytes, obj: SerializedObject, owner: common_pb2.Address | None = None) -> common_pb2.ObjectPayload:
        """Make a payload for a serialized value: inline when small, else written to
        this node's shared-memory store. Called from user threads."""
        if obj.total_size <= self.config.inline_threshold:
            return common_pb2.ObjectPayload(
                object_id=object_id, data=obj.to_bytes(), size=obj.total_size, is_error=obj.is_error
            )
        assert self.arena is not None
        offset = self.run_sync(self.create_stored(object_id, obj.total_size, owner))
        self.arena.write(offset, obj)
        return self.seal(object_id, obj.total_size, obj.is_error)

    async def create_stored(self, object_id: bytes, size: int, owner: common_pb2.Address | None = None) -> int:
        """Loop thread: make room for an object of ``size`` bytes in this node's store,
        to be written in pieces (``arena.write_at``) and then ``seal``ed; its offset."""
        assert self.nm is not None
        try:
            reply = await self.nm.call(
                methods.NodeManager.CreateObject,
                nm_pb2.CreateObjectRequest(object_id=object_id, size=size, owner=owner or self.address),
            )
        except RemoteError as exc:
            raise domain_error(exc) or exc from None
        return reply.offset

    def seal(self, object_id: bytes, size: int, is_error: bool = False) -> common_pb2.ObjectPayload:
        """An object written after ``create_stored`` is complete: its payload."""
        self._seals.append(object_id)
        self.wake()
        return common_pb2.ObjectPayload(object_id=object_id, node_id=self.node_id, size=size, is_error=is_error)

    def put(self, value: Any) -> ObjectRef:
        """Store ``value``; returns an ObjectRef owned by this process. TypeError for an ObjectRef."""
        if isinstance(value, ObjectRef):
            raise TypeError(
                "put() of an ObjectRef is not allowed: the ref already names a stored value. "
                "Pass the ref itself, or put([ref]) to wrap it."
            )
        obj = serialize(value)
        oid = ids.object_id(self.ids.next(), 0)
        payload = self.store(oid, obj)
        entry = self.refs.add_owned(oid, payload)
        if obj.contained:
            entry.contained = [ref._id for ref in obj.contained]
            for ref in obj.contained:
                self.refs.incref(ref._id)
        return ObjectRef(oid, self.address_bytes, self)

    def read(self, payload: common_pb2.ObjectPayload) -> Any:
        """The value of a payload; raises if it holds an error."""
        return self.read_many([payload])[0]

    def read_many(self, payloads: Sequence[common_pb2.ObjectPayload]) -> list[Any]:
        """Values of payloads, in order; raises the first error one holds. Objects in
        shared memory are pinned with one request for all of them (pulled first from
        the nodes that hold them, when those are other nodes)."""
        shared = [p for p in payloads if not p.HasField("data")]
        views = self._pin_views(shared) if shared else {}
        values = []
        for payload in payloads:
            if payload.HasField("data"):
                value = deserialize(payload.data, copy_buffers=True)
            else:
                value = deserialize(views[payload.object_id], copy_buffers=False)
            values.append(value_or_raise(value, payload.is_error))
        return values

    def _pin_views(self, payloads: Sequence[common_pb2.ObjectPayload]) -> dict[bytes, memoryview]:
        """Pin objects in this node's arena (restoring spilled ones, pulling remote
        ones) and map them."""
        return self.run_sync(self.pin_views(payloads))

    async def pin_views(self, payloads: Sequence[common_pb2.ObjectPayload]) -> dict[bytes, memoryview]:
        """``_pin_views`` on the loop: each view keeps its object pinned while it lives;
        ObjectLostError when one is gone."""
        assert self.arena is not None
        oids = [p.object_id for p in payloads]
        for payload in payloads:
            if payload.node_id in self.dead_nodes:
                raise self._lost_error(payload.object_id, payload.node_id)
        hints = [p.node_id if p.node_id != self.node_id else b"" for p in payloads]
        reply = await self._get_objects(oids, hints)
        views = {}
        lost = []
        for payload, offset, size, missing in zip(payloads, reply.offsets, reply.sizes, reply.missing):
            oid = payload.object_id
            if missing:
                lost.append(payload)
                continue
            # every pinned object gets a view, so its pin is released with it
            views[oid] = self.arena.view(offset, size, lambda oid=oid: self._unpin(oid))
            if payload.node_id and payload.node_id != self.node_id:
                self.call_soon(self._copied_here, oid)
        if lost:
            raise self._lost_error(lost[0].object_id, lost[0].node_id)
        return views

    def _lost_error(self, oid: bytes, node_id: bytes) -> ObjectLostError:
        if node_id and node_id != self.node_id:
            where = f"node {node_id.hex()}, which is dead" if node_id in self.dead_nodes else f"node {node_id.hex()}"
            return ObjectLostError(
                oid.hex(), f"Object {oid.hex()} is lost: its only copy was on {where}, and it cannot be rebuilt."
            )
        return ObjectLostError(oid.hex(), f"Object {oid.hex()} is no longer in the object store.")

    def _copied_here(self, oid: bytes) -> None:
        """Tell the object's owner this node now has a copy too."""
        entry = self.refs.get(oid)
        if entry is None:
            return
        if entry.owned:
            entry.add_location(self.node_id)
            return
        request = cw_pb2.ObjectLocationsRequest(object_id=oid, node_id=self.node_id)

        async def tell() -> None:
            try:
                conn = await self.connect_to(self.parse_address(entry.owner))
                conn.notify(methods.CoreWorker.AddObjectLocation, request)
            except (ConnectionLost, RemoteError):
                pass

        self.spawn(tell())

    def AddObjectLocation(self, request: cw_pb2.ObjectLocationsRequest, conn: Any) -> common_pb2.Empty:
        """Another node now has a copy of an object owned here; with ``moved_from``,
        its primary copy (a draining node handed it off): read and freed there now."""
        entry = self.refs.get(request.object_id)
        if entry is None or not entry.owned:
            return common_pb2.Empty()
        payload = entry.payload
        if request.moved_from and payload is not None and payload.node_id == request.moved_from:
            moved = common_pb2.ObjectPayload()
            moved.CopyFrom(payload)
            moved.node_id = request.node_id
            entry.payload = moved
            if entry.locations:
                entry.locations.discard(request.node_id)
        else:
            entry.add_location(request.node_id)
        return common_pb2.Empty()

    def objects_lost_with(self, node_id: bytes) -> None:
        """Owned objects stored on a dead node: served from a copy if one exists
        elsewhere, else rebuilt by the task that made them, else lost."""
        lost = []
        with self.refs.lock:
            entries = list(self.refs.entries.items())
        for oid, entry in entries:
            payload = entry.payload
            if payload is None or payload.node_id != node_id:
                continue
            if not entry.owned:
                entry.payload = None  # ask the owner again: it knows of copies and rebuilds
                entry.fetching = False
                continue
            copies = [n for n in (entry.locations or ()) if n != node_id and n not in self.dead_nodes]
            if copies:
                moved = common_pb2.ObjectPayload()
                moved.CopyFrom(payload)
                moved.node_id = copies[0]
                entry.payload = moved
            elif not self.submitter.reconstruct(oid, entry):
                lost.append(oid)
        for oid in lost:
            self.refs.set_payload(oid, error_payload(oid, self._lost_error(oid, node_id)))
        if lost:
            self.refs.notify_ready()

    def free_stored(self, oids: list[bytes]) -> None:
        """Free objects this process stored for someone else that will never learn
        of them (a task that failed after storing some of its returns)."""
        if oids:
            self._frees.extend((self.node_id, oid) for oid in oids)
            self.wake()

    def free_copy(self, node_id: bytes, oid: bytes) -> None:
        """Free one stored copy of an object that nobody will read (any thread)."""
        self._frees.append((node_id, oid))
        self.wake()

    def _unpin(self, oid: bytes) -> None:
        if not self.closed:
            self._releases.append(oid)
            self.wake()

    async def _get_objects(self, oids: list[bytes], hints: list[bytes]) -> nm_pb2.GetObjectsReply:
        assert self.nm is not None
        self._flush_object_notices()
        try:
            return await self.nm.call(
                methods.NodeManager.GetObjects, nm_pb2.GetObjectsRequest(object_ids=oids, node_hints=hints)
            )
        except RemoteError as exc:
            raise domain_error(exc) or exc from None

    def check_ref(self, ref: Any) -> bytes:
        """The id of ``ref``; TypeError if it is not an ObjectRef."""
        return ref_id(ref)

    def _fetch_missing(self, oids: Sequence[bytes]) -> None:
        """Ask owners for the status of borrowed objects not yet known here."""
        wanted = []
        for oid in oids:
            entry = self.refs.get(oid)
            if entry is not None and not entry.owned and entry.payload is None and not entry.fetching:
                entry.fetching = True
                wanted.append(oid)
        if wanted:
            self.call_soon(self._start_fetches, wanted)

    def _start_fetches(self, oids: list[bytes]) -> None:
        for oid in oids:
            self.spawn(self.fetch_status(oid))

    async def fetch_status(self, oid: bytes) -> None:
        """Ask a borrowed object's owner for its value (or the error that stands for it)."""
        entry = self.refs.get(oid)
        if entry is None:
            return
        owner = self.parse_address(entry.owner)
        try:
            conn = await self.connect_to(owner)
            reply = await conn.call(methods.CoreWorker.GetObjectStatus, cw_pb2.GetObjectStatusRequest(object_id=oid))
            payload = reply.payload
        except ConnectionLost as exc:
            payload = error_payload(
                oid,
                OwnerDiedError(
                    oid.hex(),
                    f"Object {oid.hex()} is lost: its owner (the process that created it, "
                    f"worker {ids.short(owner.worker_id)}) has exited ({exc}).",
                ),
            )
        except RemoteError as exc:
            payload = error_payload(oid, ObjectLostError(oid.hex(), exc.message))
        entry.fetching = False
        self.refs.set_payload(oid, payload)
        self.refs.notify_ready()

    async def GetObjectStatus(self, request: cw_pb2.GetObjectStatusRequest, conn: Any) -> cw_pb2.GetObjectStatusReply:
        """An object owned here: its payload, once it has one."""
        oid = request.object_id
        entry = self.refs.get(oid)
        if entry is None or not entry.owned:
            raise RemoteError(
                common_pb2.ERROR_CODE_OBJECT_LOST,
                f"Object {oid.hex()} is not known to its owner (it was freed, or its owner restarted).",
            )
        if entry.payload is None:
            fut = self.loop.create_future()
            if entry.callbacks is None:
                entry.callbacks = []
            entry.callbacks.append(lambda _oid, payload: fut.done() or fut.set_result(payload))
            payload = await fut
        else:
            payload = entry.payload
        return cw_pb2.GetObjectStatusReply(payload=payload)

    def _blocked(self) -> Callable[[], None] | None:
        """In a worker running a task: tell the node manager this worker is blocked
        (its CPU is free for others); returns the call that undoes it."""
        if self.executor is None or not self.executor.in_task() or self.nm is None:
            return None
        nm = self.nm
        self.call_soon(nm.notify, methods.NodeManager.NotifyBlocked, nm_pb2.BlockedNotice(blocked=True))
        return lambda: self.call_soon(
            nm.notify, methods.NodeManager.NotifyBlocked, nm_pb2.BlockedNotice(blocked=False)
        )

    def wait_payloads(
        self, oids: Sequence[bytes], num_ready: int, timeout: float | None, others: Sequence[Any] = ()
    ) -> list[bool]:
        """Block until at least ``num_ready`` of the objects have values (or the
        timeout passes); return which are ready. ``others``: streaming generators,
        ready when ``next()`` would not block, flagged after the objects."""
        entries = self.refs.entries
        ready = [(e := entries.get(oid)) is not None and e.payload is not None for oid in oids]
        if others:
            ready += [gen._wait_ready() for gen in others]
        if sum(ready) >= num_ready:
            return ready
        missing = [oid for oid, r in zip(oids, ready) if not r]
        for oid in missing:
            if oid not in entries:
                raise ObjectLostError(oid.hex(), f"Object {oid.hex()} is unknown here (freed, or from an earlier session).")
        self._fetch_missing(missing)

        def enough() -> bool:
            ready[:] = [(e := entries.get(oid)) is not None and e.payload is not None for oid in oids]
            if others:
                ready.extend(gen._wait_ready() for gen in others)
            return sum(ready) >= num_ready

        executor = self.executor
        if executor is not None and timeout is None:  # in a task: run what it waits for here, while it would wait
            while executor.run_children_inline(missing):
                if enough():
                    return ready
                missing = [oid for oid, r in zip(oids, ready) if not r]
        if others or len(missing) <= SCAN_BELOW:
            self.wait_until(enough, timeout)
        else:
            self._wait_arrivals(missing, num_ready - (len(oids) - len(missing)), timeout)
            enough()
        return ready

    def _wait_arrivals(self, missing: list[bytes], wanted: int, timeout: float | None) -> None:
        """Block until ``wanted`` of the ``missing`` objects have values (or the
        timeout passes), counting arrivals with a callback on each object: the cost
        is one step per object, not a scan of all of them per batch of results (a
        ``get`` of 100,000 refs drained at a fifth of the speed of 10,000)."""
        lock = threading.Lock()
        arrived = threading.Event()
        count = [0]
        registered: list[bytes] = []

        def one(_oid: bytes, _payload: common_pb2.ObjectPayload) -> None:
            with lock:
                count[0] += 1
                if count[0] >= wanted:
                    arrived.set()

        def register() -> None:
            for oid in missing:
                if self.when_ready(oid, one):
                    registered.append(oid)
                else:
                    one(oid, None)  # type: ignore[arg-type]  # freed meanwhile: no longer waited for

        def unregister() -> None:
            for oid in registered:
                entry = self.refs.get(oid)
                if entry is not None and entry.callbacks and one in entry.callbacks:
                    entry.callbacks.remove(one)

        self.call_soon(register)
        deadline = None if timeout is None else time.monotonic() + timeout
        unblock = self._blocked()
        try:
            while not arrived.is_set():
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    break
                if self.closed:
                    raise RuntimeError("the runtime shut down while waiting")
                arrived.wait(1.0 if remaining is None else min(remaining, 1.0))
        finally:
            if unblock is not None:
                unblock()
            if not arrived.is_set() and not self.closed:
                self.call_soon(unregister)

    def wait_until(self, check: Callable[[], bool], timeout: float | None) -> bool:
        """Block until ``check()`` holds, asked again whenever values arrive (False:
        the timeout passed first). In a task, the worker's CPU is free meanwhile."""
        deadline = None if timeout is None else time.monotonic() + timeout
        unblock = self._blocked()
        try:
            cond = self.refs.ready
            while True:
                with cond:
                    version = self.refs.version
                    if check():
                        return True
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        return False
                    if self.closed:
                        raise RuntimeError("the runtime shut down while waiting")
                    if self.refs.version == version:
                        cond.wait(remaining if remaining is None else min(remaining, 1.0))
        finally:
            if unblock is not None:
                unblock()

    def get(self, refs: Sequence[Any], timeout: float | None) -> list[Any]:
        """The values of ``refs`` (blocking); GetTimeoutError after ``timeout`` seconds."""
        oids = [self.check_ref(r) for r in refs]
        deadline = None if timeout is None else time.monotonic() + timeout
        entries = self.refs.entries
        while True:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready = self.wait_payloads(oids, len(oids), remaining)
            if not all(ready):
                raise timeout_error(timeout, sum(1 for r in ready if not r), len(oids))
            payloads = [entries[oid].payload for oid in oids]
            try:
                return self.read_many(payloads)
            except ObjectLostError:
                # A node holding some of them is unreachable: once the cluster declares
                # it dead, those objects are served from a copy, rebuilt, or lost for good.
                elsewhere = {p.node_id for p in payloads if p.node_id and p.node_id != self.node_id}
                if not elsewhere or elsewhere <= self.dead_nodes or not self._await_verdict(elsewhere, deadline):
                    raise

    def _await_verdict(self, nodes: set[bytes], deadline: float | None) -> bool:
        """Wait until the GCS declares ``nodes`` dead (True), or for as long as
        that could take (False: they are alive, the objects are simply gone)."""
        config = self.config
        bound = (
            config.health_check_initial_delay_s
            + config.health_check_period_s * (config.health_check_failure_threshold + 1)
            + config.health_check_timeout_s
            + 2 * config.heartbeat_interval_s
        )
        limit = time.monotonic() + bound
        if deadline is not None:
            limit = min(limit, deadline)
        while time.monotonic() < limit:
            if nodes <= self.dead_nodes:
                return True
            time.sleep(0.05)
        return nodes <= self.dead_nodes

    def get_future(self, ref: ObjectRef) -> concurrent.futures.Future:
        """A future of ``ref``'s value, resolved from the loop thread."""
        result: concurrent.futures.Future = concurrent.futures.Future()
        oid = ref._id
        # The future holds the ref until it resolves: ``await f.remote()`` drops the
        # only other reference before the loop has registered for its value.
        result.add_done_callback(lambda _f, held=ref: None)

        def resolve(_oid: bytes, payload: common_pb2.ObjectPayload) -> None:
            def read() -> None:
                try:
                    result.set_result(self.read(payload))
                except BaseException as exc:  # noqa: BLE001
                    result.set_exception(exc)

            if payload.HasField("data"):
                read()
            else:  # reading a stored object may need the loop: not on the loop thread
                threading.Thread(target=read, daemon=True).start()

        def register() -> None:
            if not self.when_ready(oid, resolve):
                result.set_exception(ObjectLostError(oid.hex(), f"Object {oid.hex()} is unknown here."))

        self.call_soon(register)
        return result

    def when_ready(self, oid: bytes, callback: Callable[[bytes, common_pb2.ObjectPayload], None]) -> bool:
        """Loop thread: call ``callback(oid, payload)`` once the object has a value (now,
        if it has one), asking a borrowed object's owner; False if it is unknown here."""
        entry = self.refs.get(oid)
        if entry is None:
            return False
        if entry.payload is not None:
            callback(oid, entry.payload)
            return True
        if entry.callbacks is None:
            entry.callbacks = []
        entry.callbacks.append(callback)
        if not entry.owned and not entry.fetching:
            entry.fetching = True
            self.spawn(self.fetch_status(oid))
        return True

