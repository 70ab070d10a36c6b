"""Reference counting: which objects this process owns or borrows, and how many
references to each it holds.

``local`` counts this process's ObjectRef instances plus the holds the runtime keeps
(arguments of tasks in flight, references nested in objects this process owns). An
owned object is freed when its ``local`` count is zero, no other process borrows it,
and its value has arrived. A borrowed reference whose count reaches zero is dropped,
and its owner told — if it had been told of it.

Counts go up synchronously, in whatever thread creates a reference; they go down on
the runtime's loop thread, which drains a queue that ``ObjectRef.__del__`` feeds (a
``__del__`` can run in any thread, at any allocation). A count seen on the loop is
therefore never below the true count.
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Callable
from typing import Any

from nbcluster.runtime.core.payloads import freed_payload
from nbcluster.runtime.protocol import common_pb2

logger = logging.getLogger(__name__)


class Entry:
    """What this process knows of one object: its counts, owner, value, borrowers."""

    __slots__ = (
        "local",
        "owned",
        "owner",
        "registered",
        "payload",
        "borrowers",
        "contained",
        "callbacks",
        "task",
        "fetching",
        "locations",
    )

    def __init__(self, owned: bool, owner: bytes = b"") -> None:
        self.local = 1
        self.owned = owned
        self.owner = owner  # serialized Address of the owner (borrowed entries)
        self.registered = owned
        self.payload: common_pb2.ObjectPayload | None = None
        self.borrowers: set[bytes] | None = None
        self.contained: list[bytes] | None = None
        self.callbacks: list[Callable[[bytes, common_pb2.ObjectPayload], None]] | None = None
        self.task: Any = None
        self.fetching = False
        self.locations: set[bytes] | None = None  # nodes with a copy besides the first

    def add_location(self, node_id: bytes) -> None:
        """Another node has a copy."""
        if self.locations is None:
            self.locations = set()
        self.locations.add(node_id)

    @property
    def freeable(self) -> bool:
        """No reference remains here or in borrowers, and the value (if owned) has arrived."""
        return self.local <= 0 and not self.borrowers and (self.payload is not None or not self.owned)


class ReferenceTable:
    """This process's objects, owned and borrowed, and their reference counts."""

    def __init__(self, self_address: bytes, wake: Callable[[], None]) -> None:
        self.self_address = self_address
        self.lock = threading.Lock()
        self.entries: dict[bytes, Entry] = {}
        self.unregistered: set[bytes] = set()
        self._decrements: collections.deque[bytes] = collections.deque()
        self._wake = wake
        #: Notified (with ``version`` bumped) whenever values arrive.
        self.ready = threading.Condition(threading.Lock())
        self.version = 0
        self.closed = False

    # -- any thread ---------------------------------------------------------------
    def add_owned(self, object_id: bytes, payload: common_pb2.ObjectPayload | None = None, task: Any = None) -> Entry:
        """Record an object this process owns, with one reference; returns its entry."""
        entry = Entry(owned=True)
        entry.payload = payload
        entry.task = task
        with self.lock:
            self.entries[object_id] = entry
        return entry

    def add_borrowed(self, object_id: bytes, owner: bytes, registered: bool = False) -> None:
        """A reference to ``object_id`` appeared here (unpickled, or nested in a value
        returned to this process: then ``registered``, the executor told the owner)."""
        with self.lock:
            entry = self.entries.get(object_id)
            if entry is not None:
                entry.local += 1
                if registered and not entry.registered:
                    entry.registered = True
                    self.unregistered.discard(object_id)
                return
            owned = owner == self.self_address
            entry = Entry(owned=owned, owner=owner)
            if owned:
                # Our own object, already freed: getting it raises ObjectFreedError.
                entry.payload = freed_payload(object_id)
            elif registered:
                entry.registered = True
            else:
                self.unregistered.add(object_id)
            self.entries[object_id] = entry

    def incref(self, object_id: bytes) -> None:
        """One more reference to a known object (any thread)."""
        with self.lock:
            entry = self.entries.get(object_id)
            if entry is not None:
                entry.local += 1

    def release(self, object_id: bytes) -> None:
        """One reference went away (``ObjectRef.__del__`` or a runtime hold)."""
        if not self.closed:
            self._decrements.append(object_id)
            self._wake()

    def get(self, object_id: bytes) -> Entry | None:
        """The entry of an object, or None."""
        return self.entries.get(object_id)

    # -- loop thread --------------------------------------------------------------
    def drain(self) -> list[tuple[bytes, Entry]]:
        """Apply queued releases; return the entries that are now free, removed."""
        freed: list[tuple[bytes, Entry]] = []
        decrements = self._decrements
        with self.lock:
            while decrements:
                oid = decrements.popleft()
                entry = self.entries.get(oid)
                if entry is None:
                    continue
                entry.local -= 1
                if entry.local <= 0 and entry.freeable:
                    del self.entries[oid]
                    self.unregistered.discard(oid)
                    freed.append((oid, entry))
        return freed

    def set_payload(self, object_id: bytes, payload: common_pb2.ObjectPayload) -> Entry | None:
        """The value of an object arrived. Runs its callbacks; the caller frees the
        entry if it comes back freeable, and calls :meth:`notify_ready`."""
        with self.lock:
            entry = self.entries.get(object_id)
            if entry is None:
                return None
            entry.payload = payload
            callbacks, entry.callbacks = entry.callbacks, None
            if entry.freeable:
                del self.entries[object_id]
        if callbacks:
            for callback in callbacks:
                try:
                    callback(object_id, payload)
                except Exception:  # noqa: BLE001 - one waiter's failure must not starve the rest
                    logger.exception("callback for object=%s failed", object_id.hex())
        return entry

    def remove_borrower(self, object_id: bytes, borrower: bytes) -> Entry | None:
        """Drop one borrower; return the entry if that freed it."""
        with self.lock:
            entry = self.entries.get(object_id)
            if entry is None or not entry.borrowers:
                return None
            entry.borrowers.discard(borrower)
            if entry.freeable:
                del self.entries[object_id]
                return entry
        return None

    def add_borrower(self, object_id: bytes, borrower: bytes) -> bool:
        """Record a borrower of an object owned here; False if it is not owned here."""
        with self.lock:
            entry = self.entries.get(object_id)
            if entry is None or not entry.owned:
                return False
            if entry.borrowers is None:
                entry.borrowers = set()
            entry.borrowers.add(borrower)
            return True

    def notify_ready(self) -> None:
        """Wake the threads waiting for values."""
        with self.ready:
            self.version += 1
            self.ready.notify_all()

    def take_unregistered(self) -> list[tuple[bytes, bytes]]:
        """Borrowed references held here that their owners do not know of yet, as
        (object id, owner); marked registered."""
        out = []
        with self.lock:
            for oid in self.unregistered:
                entry = self.entries.get(oid)
                if entry is not None and entry.local > 0:
                    entry.registered = True
                    out.append((oid, entry.owner))
            self.unregistered.clear()
        return out

    def pending_decrements(self) -> bool:
        """Released references wait to be applied."""
        return bool(self._decrements)

