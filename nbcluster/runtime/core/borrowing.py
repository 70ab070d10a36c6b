"""The borrower protocol: how a process tells owners which of their objects it holds.

A process that holds a reference to another process's object is a *borrower*. It
registers with the owner before anything that kept the object alive for it can go
(adds are acknowledged before any remove is sent, and before a task's result leaves
its worker), and tells the owner when its last reference goes. An owner watches its
borrowers' connections: a borrower's borrows end with its process.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Sequence
from typing import Any, Protocol

from nbcluster.runtime.core.references import Entry, ReferenceTable
from nbcluster.runtime.protocol import common_pb2, core_worker_pb2 as cw_pb2
from nbcluster.runtime.transport import methods
from nbcluster.runtime.transport.errors import ConnectionLost, RemoteError

logger = logging.getLogger(__name__)


class _Host(Protocol):
    """What the borrower protocol needs of the core worker."""

    refs: ReferenceTable
    address_bytes: bytes

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task: ...

    def parse_address(self, raw: bytes) -> common_pb2.Address: ...

    def connection_nowait(self, endpoint: str) -> Any: ...

    async def connect_to(self, address: common_pb2.Address) -> Any: ...

    def on_freed(self, oid: bytes, entry: Entry) -> None: ...

    def flush_frees(self) -> None: ...


class Borrowing:
    """This process's side of the borrower protocol, as a borrower and as an owner."""

    def __init__(self, core: _Host) -> None:
        self.core = core
        #: Released borrowed references, by owner, not yet reported.
        self.removes: dict[bytes, list[bytes]] = {}
        self._flush: asyncio.Task | None = None
        #: This process's objects held by other processes, by borrower worker id.
        self._borrowers: dict[bytes, set[bytes]] = {}

    # -- as a borrower --------------------------------------------------------------
    def queue_remove(self, owner: bytes, oid: bytes) -> None:
        """A borrowed reference to ``oid`` went: tell its owner at the next flush."""
        self.removes.setdefault(owner, []).append(oid)

    def flush(self) -> asyncio.Task:
        """Tell owners of new borrows (and wait for their acks), then of released
        ones. Single-flight; returns the task doing it."""
        task = self._flush
        if task is None or task.done():
            task = self._flush = self.core.spawn(self._flush_all())
        return task

    def flushing(self) -> bool:
        """A flush is under way."""
        return self._flush is not None and not self._flush.done()

    async def _flush_all(self) -> None:
        refs = self.core.refs
        while True:
            adds = refs.take_unregistered()
            if adds:
                by_owner: dict[bytes, list[bytes]] = {}
                for oid, owner in adds:
                    by_owner.setdefault(owner, []).append(oid)
                await asyncio.gather(
                    *(self._send(owner, oids, []) for owner, oids in by_owner.items()),
                    return_exceptions=True,
                )
            removes, self.removes = self.removes, {}
            for owner, oids in removes.items():
                self.core.spawn(self._send(owner, [], oids))
            if not self.removes and not refs.unregistered:
                return

    async def _send(
        self, owner: bytes, add: list[bytes], remove: list[bytes], on_behalf_of: common_pb2.Address | None = None
    ) -> None:
        core = self.core
        try:
            conn = await core.connect_to(core.parse_address(owner))
            request = cw_pb2.UpdateBorrowersRequest(add=add, remove=remove, on_behalf_of=on_behalf_of)
            if add:
                await conn.call(methods.CoreWorker.UpdateBorrowers, request)
            else:
                conn.notify(methods.CoreWorker.UpdateBorrowers, request)
        except (ConnectionLost, RemoteError) as exc:
            logger.debug("owner unreachable for borrower update: %s", exc)

    async def register_on_behalf(self, refs: Sequence[tuple[bytes, bytes]], holder: common_pb2.Address) -> None:
        """Make ``holder`` a borrower of ``refs`` (nested in a value it will own)."""
        core = self.core
        by_owner: dict[bytes, list[bytes]] = {}
        for oid, owner in refs:
            if owner == core.address_bytes:
                core.refs.add_borrower(oid, holder.worker_id)
                self._track(oid, holder)
            elif core.parse_address(owner).worker_id != holder.worker_id:
                by_owner.setdefault(owner, []).append(oid)
        await asyncio.gather(
            *(self._send(owner, oids, [], holder) for owner, oids in by_owner.items()),
            return_exceptions=True,
        )

    # -- as an owner ----------------------------------------------------------------
    def on_update(self, request: cw_pb2.UpdateBorrowersRequest, conn: Any) -> None:
        """As an owner: a borrower added or removed references to objects owned here."""
        core = self.core
        borrower = request.on_behalf_of if request.HasField("on_behalf_of") else conn.peer
        for oid in request.add:
            if core.refs.add_borrower(oid, borrower.worker_id):
                self._track(oid, borrower)
        held = self._borrowers.get(borrower.worker_id, set())
        for oid in request.remove:
            held.discard(oid)
            entry = core.refs.remove_borrower(oid, borrower.worker_id)
            if entry is not None:
                core.on_freed(oid, entry)
        core.flush_frees()

    def _track(self, oid: bytes, borrower: common_pb2.Address) -> None:
        held = self._borrowers.get(borrower.worker_id)
        if held is None:
            held = self._borrowers[borrower.worker_id] = set()
            if self.core.connection_nowait(borrower.endpoint) is None:
                # Watch the borrower: its borrows end when its process does.
                task = self.core.spawn(self.core.connect_to(borrower))
                task.add_done_callback(
                    lambda t, w=borrower.worker_id: self.drop(w) if t.cancelled() or t.exception() is not None else None
                )
        held.add(oid)

    def drop(self, worker_id: bytes) -> None:
        """A borrower's process is gone: its borrows end."""
        core = self.core
        for oid in self._borrowers.pop(worker_id, ()):
            entry = core.refs.remove_borrower(oid, worker_id)
            if entry is not None:
                core.on_freed(oid, entry)
        core.flush_frees()
