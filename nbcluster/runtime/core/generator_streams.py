"""The owner's side of generator tasks: the items a streaming generator yields, as
they arrive, and the refs a dynamic generator returns.

A streaming task (``num_returns="streaming"``) has one return, its *completion*
object (index 1: ``None``, or the error that ended the task), and yields items with
indices 2, 3, ... The executing worker stores each item as it is yielded (owned by
the caller, as any return: small ones inline, large ones in that node's store) and
sends it here before the task's result (``GeneratorItemsNotice``). Each item's entry
holds one reference for the stream until the consumer takes it with ``next()``; then
the ObjectRef handed out holds it. The stream ends when the completion object gets its
value. A retried attempt runs the generator again: items it yields again (an index
already here) are dropped, so a deterministic generator resumes where it was (as Ray).

Backpressure (``_generator_backpressure_num_objects``): the worker pauses while that
many items are unconsumed; this side tells it how many were taken
(``GeneratorConsumedNotice``), after each ``next()`` and each batch of items.
"""

from __future__ import annotations

import concurrent.futures
import logging
import struct
from typing import TYPE_CHECKING, Any

from nbcluster.runtime.core.generators import DynamicObjectRefGenerator, ObjectRefGenerator
from nbcluster.runtime.core.object_ref import ObjectRef
from nbcluster.runtime.core.tasks import Task, adopt_contained
from nbcluster.runtime.objects.serialization import serialize
from nbcluster.runtime.protocol import common_pb2, core_worker_pb2 as cw_pb2
from nbcluster.runtime.transport import methods

if TYPE_CHECKING:
    from nbcluster.runtime.core.core_worker import CoreWorker

logger = logging.getLogger(__name__)

#: Index of a generator's first item (1 is its completion object).
FIRST_ITEM = 2
#: Consumed count sent when the consumer is gone: the worker never pauses again.
_ALL = 1 << 62
_INDEX = struct.Struct("<I")


def item_number(object_id: bytes) -> int:
    """The 0-based position of a generator item in its stream."""
    return _INDEX.unpack_from(object_id, len(object_id) - 4)[0] - FIRST_ITEM


def _set(fut: concurrent.futures.Future) -> None:
    try:
        fut.set_result(None)
    except concurrent.futures.InvalidStateError:  # set by the other thread meanwhile
        pass


class Stream:
    """One streaming generator task's items on the owner's side."""

    __slots__ = ("task", "completion", "items", "read", "ended", "dropped", "conn", "waiters")

    def __init__(self, task: Task) -> None:
        self.task = task
        #: The completion object's id: its value ends the stream.
        self.completion = task.return_ids[0]
        #: Ids of the items received, in order (their payloads are in the ref table).
        self.items: list[bytes] = []
        #: Items handed to the consumer.
        self.read = 0
        self.ended = False
        #: The consumer (its ObjectRefGenerator) is gone.
        self.dropped = False
        #: The connection the current attempt's items come on.
        self.conn: Any = None
        #: Futures of ``__anext__`` callers, set when something arrives.
        self.waiters: list[concurrent.futures.Future] = []

    def next_ready(self) -> bool:
        """``next()`` would not block: an item is waiting, or the stream has ended."""
        return self.read < len(self.items) or self.ended


class GeneratorStreams:
    """This process's streams of generator items (one per streaming task it submitted)."""

    def __init__(self, core: "CoreWorker") -> None:
        self.core = core
        self.streams: dict[bytes, Stream] = {}

    # -- caller's thread ------------------------------------------------------------
    def open(self, task: Task) -> None:
        """A streaming task is being submitted (before it can run): its stream."""
        stream = Stream(task)
        self.streams[task.task_id] = stream
        entry = self.core.refs.get(stream.completion)
        if entry is not None:  # nothing else knows the entry yet
            entry.callbacks = [lambda _oid, _payload: self._ended(stream)]

    def generator(self, ref: ObjectRef) -> ObjectRefGenerator:
        """What ``.remote()`` of a streaming task returns (``ref``: its completion object)."""
        return ObjectRefGenerator(ref, self.core)

    def take(self, stream: Stream) -> ObjectRef:
        """The next item (``next_ready`` must hold and an item be waiting); the ref
        takes over the stream's reference to it."""
        oid = stream.items[stream.read]
        stream.read += 1
        core = self.core
        if stream.task.options.backpressure:
            core.call_soon(self._tell_consumed, stream)
        return ObjectRef(oid, core.address_bytes, core)

    def waiter(self, stream: Stream) -> concurrent.futures.Future:
        """A future set when the stream changes (an item arrives, or it ends)."""
        fut: concurrent.futures.Future = concurrent.futures.Future()
        stream.waiters.append(fut)
        if stream.next_ready():  # arrived meanwhile
            _set(fut)
        return fut

    def drop(self, stream: Stream) -> None:
        """Any thread: the consumer is gone; its unconsumed items are released."""
        self.core.call_soon(self._drop, stream)

    # -- loop thread ------------------------------------------------------------------
    def _drop(self, stream: Stream) -> None:
        stream.dropped = True
        refs = self.core.refs
        for oid in stream.items[stream.read :]:
            refs.release(oid)
        stream.read = len(stream.items)
        if stream.task.options.backpressure:
            self._tell_consumed(stream)
        if stream.ended:
            self.streams.pop(stream.task.task_id, None)

    def _ended(self, stream: Stream) -> None:
        stream.ended = True
        self._wake(stream)
        if stream.dropped:
            self.streams.pop(stream.task.task_id, None)

    def _wake(self, stream: Stream) -> None:
        waiters, stream.waiters = stream.waiters, []
        for fut in waiters:
            _set(fut)

    def _tell_consumed(self, stream: Stream) -> None:
        conn = stream.conn
        if conn is not None and not conn.closed and not stream.ended:
            consumed = _ALL if stream.dropped else stream.read
            notice = cw_pb2.GeneratorConsumedNotice(task_id=stream.task.task_id, consumed=consumed)
            conn.notify(methods.CoreWorker.GeneratorConsumed, notice)

    def on_items(self, request: cw_pb2.GeneratorItemsNotice, conn: Any) -> None:
        """Items a streaming task yielded (from the worker running it)."""
        stream = self.streams.get(request.task_id)
        if stream is None or stream.ended or request.attempt != stream.task.attempt:
            self._discard(request.items)  # late, from an attempt given up on
            return
        stream.conn = conn
        refs = self.core.refs
        extra = []
        for payload in request.items:
            number = item_number(payload.object_id)
            if number != len(stream.items):  # yielded again by a retried attempt
                extra.append(payload)
                continue
            entry = refs.add_owned(payload.object_id, payload)
            if payload.contained:
                adopt_contained(refs, entry, payload)
            stream.items.append(payload.object_id)
            if stream.dropped:
                refs.release(payload.object_id)
                stream.read += 1
        if extra:
            self._discard(extra)
        if stream.task.options.backpressure:
            self._tell_consumed(stream)
        self._wake(stream)
        refs.notify_ready()

    def _discard(self, payloads: Any) -> None:
        """Items nobody will read: free their stored copies (unless that copy is the
        one kept: a retry on the same node replaced it) and their nested refs."""
        core = self.core
        refs = core.refs
        for payload in payloads:
            if payload.contained:
                adopt_contained(refs, None, payload)
            if payload.HasField("data") or not payload.node_id:
                continue
            kept = refs.get(payload.object_id)
            if kept is not None and kept.payload is not None and kept.payload.node_id == payload.node_id:
                continue
            core.free_copy(payload.node_id, payload.object_id)

    # -- dynamic generators ---------------------------------------------------------
    def dynamic_returns(self, task: Task, returns: Any) -> list[common_pb2.ObjectPayload]:
        """A dynamic generator's result: its items (after its return) become objects
        owned here, held by its return, whose value is a DynamicObjectRefGenerator."""
        core = self.core
        refs = core.refs
        items = []
        for payload in returns[1:]:
            entry = refs.add_owned(payload.object_id, payload)
            if payload.contained:
                adopt_contained(refs, entry, payload)
            items.append(payload.object_id)
        value = DynamicObjectRefGenerator([ObjectRef(oid, core.address_bytes, None) for oid in items])
        data = serialize(value).to_bytes()
        head = common_pb2.ObjectPayload(object_id=returns[0].object_id, data=data, size=len(data))
        entry = refs.get(task.return_ids[0])
        if entry is not None:
            entry.contained = items  # each item's one reference, released with the return
        else:
            for oid in items:
                refs.release(oid)
        return [head]
