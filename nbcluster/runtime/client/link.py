"""The client's connection to its proxy (client mode), opened by the client.

The client asks the head's node manager for a proxy (``StartClientSession``), then
opens a framed connection to it through that node manager's ``Relay`` stream and
attaches. One-way messages (submissions, holds, releases) queue in an outbox that
is written before every call, so the proxy sees them in the order the client made
them. When the connection drops, the link dials the same proxy again until the
reconnect grace runs out; calls made meanwhile wait for it, and an idempotent call
(get, wait, read) that was in flight is made again.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable
from typing import Any

from nbcluster.exceptions import ClusterConnectionError
from nbcluster.runtime.credentials import driver_token
from nbcluster.runtime.protocol import client_pb2, common_pb2, node_manager_pb2 as nm_pb2
from nbcluster.runtime.transport import framed, methods
from nbcluster.runtime.transport import relay as relays
from nbcluster.runtime.transport.errors import ConnectionLost, TransportError

logger = logging.getLogger("nbcluster")

#: Messages the outbox merges when several of one kind are queued in a row.
_SUBMIT, _HOLD, _RELEASE = "submit", "hold", "release"


class ProxyLink:
    """The connection to this client's proxy: open, attach, reconnect, send."""

    def __init__(self, node_address: str, token: str, dispatcher: framed.Dispatcher, grace_s: float,
                 timeout: float) -> None:
        self.node_address = node_address
        self._credential = driver_token(token)  # what a proxy (a driver) accepts
        self._dispatcher = dispatcher
        self.grace_s = grace_s
        self._timeout = timeout
        self.endpoint = ""
        self.conn: Any = None
        self.attached: client_pb2.ClientAttachReply | None = None
        self._outbox: collections.deque[tuple[str, Any]] = collections.deque()
        self._up = asyncio.Event()
        #: Why the session is over (None while it lasts).
        self.ended: str | None = None
        self.closing = False
        self._reconnect: asyncio.Task | None = None
        #: Called (on the loop) when the session ends for good.
        self.on_end: Callable[[str], None] | None = None

    # -- opening ----------------------------------------------------------------------
    async def open(self, job: nm_pb2.ClientJob) -> client_pb2.ClientAttachReply:
        """Start the proxy on the head's node and attach to it."""
        from nbcluster.runtime.transport.grpc_carrier import GrpcChannel

        channel = GrpcChannel(self.node_address, self._credential)
        try:
            await channel.wait_ready(self._timeout)
            reply = await channel.call(
                methods.NodeManager.StartClientSession, nm_pb2.StartClientSessionRequest(job=job),
                timeout=self._timeout + 30.0,
            )
        finally:
            channel.close()
        self.endpoint = reply.endpoint
        return await self._attach()

    async def _attach(self) -> client_pb2.ClientAttachReply:
        route = relays.route(self.node_address, self.endpoint)
        conn = await relays.connect_grpc(route, self._credential, self._dispatcher, common_pb2.Address(), self._timeout)
        try:
            reply = await conn.call(methods.ClientProxy.Attach, client_pb2.ClientAttachRequest(endpoint=self.endpoint),
                                    timeout=self._timeout)
        except BaseException:
            conn.close()
            raise
        self.conn = conn
        self.attached = reply
        conn.on_close(self._lost)
        self._up.set()
        self.flush()
        return reply

    def _lost(self, conn: Any) -> None:
        if conn is not self.conn or self.closing:
            return
        self.conn = None
        self._up.clear()
        logger.warning("lost the connection to the cluster (%s); reconnecting for up to %g s",
                       conn.close_reason or "closed", self.grace_s)
        self._reconnect = asyncio.get_running_loop().create_task(self._redial())

    async def _redial(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.grace_s
        error: Exception | None = None
        while loop.time() < deadline and not self.closing:
            try:
                await self._attach()
                logger.warning("reconnected to the cluster")
                return
            except (TransportError, asyncio.TimeoutError, OSError) as exc:
                error = exc
            await asyncio.sleep(min(1.0, max(0.0, deadline - loop.time())))
        self._end(f"the connection to the cluster was lost and could not be made again within {self.grace_s:g} s "
                  f"({error or 'closed'})")

    def _end(self, why: str) -> None:
        if self.ended is None:
            self.ended = why
            self._up.set()  # wake the waiting calls: they raise
            if self.on_end is not None:
                self.on_end(why)

    # -- sending ----------------------------------------------------------------------
    def queue(self, kind: str, item: Any) -> None:
        """Queue a one-way message (any thread); written by the next ``flush``."""
        self._outbox.append((kind, item))

    def flush(self) -> None:
        """Loop thread: write the queued messages, merging runs of one kind."""
        conn = self.conn
        if conn is None or conn.closed:
            return
        out = self._outbox
        while out:
            kind, item = out.popleft()
            items = [item]
            while out and out[0][0] == kind:
                items.append(out.popleft()[1])
            if kind == _SUBMIT:
                conn.notify(methods.ClientProxy.Submit, client_pb2.ClientSubmitRequest(tasks=items))
            elif kind == _HOLD:
                conn.notify(methods.ClientProxy.Hold, client_pb2.ClientHoldRequest(refs=items))
            else:
                conn.notify(methods.ClientProxy.Release, nm_pb2.ObjectIds(object_ids=items))

    async def call(self, method: Any, request: Any, *, retry: bool = False, timeout: float | None = None) -> Any:
        """Call the proxy (after the queued messages). While the connection is being
        made again, wait for it; ``retry``: make the call again if it was in flight
        when the connection dropped. ClusterConnectionError once the session is over."""
        while True:
            await self._up.wait()
            if self.ended is not None:
                raise ClusterConnectionError(f"nbcluster is not connected: {self.ended}. Call nbcluster.init() again.")
            conn = self.conn
            if conn is None or conn.closed:  # dropped; the reconnect is about to start
                await asyncio.sleep(0.05)
                continue
            self.flush()
            try:
                return await conn.call(method, request, timeout=timeout)
            except ConnectionLost:
                if not retry or self.closing:
                    raise ClusterConnectionError(
                        "the connection to the cluster dropped during this call; its outcome is unknown"
                    ) from None

    async def close(self, detach: bool) -> None:
        """End the session (``detach``: tell the proxy to release everything now)."""
        self.closing = True
        if self._reconnect is not None:
            self._reconnect.cancel()
        conn = self.conn
        if conn is not None and not conn.closed:
            self.flush()
            if detach:
                try:
                    await conn.call(methods.ClientProxy.Detach, common_pb2.Empty(), timeout=2.0)
                except (TransportError, asyncio.TimeoutError):
                    pass
            conn.close()
        self._end("this driver disconnected (nbcluster.shutdown())")
