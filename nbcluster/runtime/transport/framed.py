"""The framed carrier: protobuf messages, length-prefixed, over a Unix socket.

The same-machine carrier beside gRPC (docs/architecture.md): the same messages (the one
schema of ``protocol/``), a different carrier. A gRPC message costs ~100 µs of Python
CPU; a frame here costs a struct header and one ``write``. Frames written in one loop
iteration leave in one system call.

Frame: ``<u32 payload length><u8 kind><u32 call id><u16 method index><payload>``.

Before a byte is read or written, both ends check that the other runs as the same
user (``peer.py``). The first frame a client sends is HELLO, whose payload starts with
the raw credential (``<u16 length><token>``) followed by a serialized :class:`Hello`.
The server checks the credential (``credentials.Verifier``) before it parses anything —
the Hello message included — and answers a bad one with an ERROR frame
(UNAUTHENTICATED) and a closed connection. The credential's scope bounds what the peer
may call: a method that needs the cluster token, called with a driver credential, is
answered PERMISSION_DENIED.

Connections are symmetric: once open, either end may call methods the other end
serves. Every method of a connection runs on the event loop that owns it.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import struct
from collections.abc import AsyncIterator, Callable
from typing import Any

from nbcluster.runtime.credentials import SCOPE_DRIVER, Verifier, scope_name
from nbcluster.runtime.protocol import common_pb2
from nbcluster.runtime.transport import peer
from nbcluster.runtime.transport.errors import ConnectionLost, PeerNotTrusted, RemoteError
from nbcluster.runtime.transport.methods import PROTOCOL_DIGEST, TABLE, Method, methods_of, permission_message
from nbcluster.runtime.transport.refusals import Refusals

logger = logging.getLogger(__name__)

HEADER = struct.Struct("<IBIH")
HEADER_SIZE = HEADER.size
_TOKEN_LEN = struct.Struct("<H")
MAX_FRAME = 1 << 30
MAX_HELLO = 1 << 16
HELLO_TIMEOUT = 10.0

HELLO, HELLO_OK, REQUEST, NOTIFY, REPLY, ERROR, ITEM, END, CANCEL = range(1, 10)

Code = common_pb2.ErrorCode


class Handler:
    """A served method: ``fn(request, conn)`` returning the reply, an awaitable of
    it, or (streaming methods) an async iterator of replies."""

    __slots__ = ("fn", "method", "is_async", "is_stream")

    def __init__(self, fn: Callable[..., Any], method: Method) -> None:
        self.fn = fn
        self.method = method
        self.is_async = inspect.iscoroutinefunction(fn)
        self.is_stream = inspect.isasyncgenfunction(fn)
        if method.server_streaming and not self.is_stream:
            raise TypeError(f"{method!r} streams: its handler must be an async generator")


class Dispatcher:
    """Which local object serves which method."""

    def __init__(self) -> None:
        self.handlers: list[Handler | None] = [None] * len(TABLE)
        #: Calls received, by method index (introspection and tests).
        self.served: list[int] = [0] * len(TABLE)

    def register(self, service: str, impl: object) -> None:
        """Serve every method of ``service`` that ``impl`` has a method for."""
        for method in methods_of(service):
            fn = getattr(impl, method.name, None)
            if fn is not None and not method.client_streaming:
                self.handlers[method.index] = Handler(fn, method)


def parse_endpoint(endpoint: str) -> str:
    """The socket path of a framed endpoint (``unix-abstract:NAME`` or ``unix:PATH``)."""
    if endpoint.startswith("unix-abstract:"):
        return "\0" + endpoint[len("unix-abstract:") :]
    if endpoint.startswith("unix:"):
        return endpoint[len("unix:") :]
    raise ValueError(f"not a framed-carrier endpoint: {endpoint!r}")


class Connection(asyncio.Protocol):
    """One framed connection; see the module docstring."""

    def __init__(
        self,
        dispatcher: Dispatcher,
        token: str,
        local: common_pb2.Address,
        *,
        server: bool,
        preamble: bytes = b"",
        verifier: Verifier | None = None,
        refusals: Refusals | None = None,
    ) -> None:
        self._dispatcher = dispatcher
        self._preamble = preamble
        self._token = token.encode()
        self._verifier = verifier or (Verifier(token) if server else None)
        self._refusals = refusals or Refusals("local socket", log=logger)
        #: What the peer may call here: the scope of the credential it presented (server
        #: side); a server we dialed may call back only what a driver may.
        self.scope = SCOPE_DRIVER
        self._local = local
        self._server = server
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._buf = bytearray()
        self._out: list[bytes] = []
        self._flush_scheduled = False
        self._next_call = 0
        self._pending: dict[int, tuple[Method, asyncio.Future]] = {}
        self._streams: dict[int, tuple[Method, asyncio.Queue]] = {}
        self._running: dict[int, asyncio.Task] = {}
        self._authenticated = False
        self.ready: asyncio.Future = self._loop.create_future()
        self.closed = False
        self.close_reason: str = ""
        self.peer: common_pb2.Address | None = None
        #: Per-connection data for the services (which client this is, its leases...).
        self.state: dict[str, Any] = {}
        self._on_close: list[Callable[[Connection], None]] = []
        self._hello_timer: asyncio.TimerHandle | None = None
        #: The endpoint this connection was opened to or accepted on (for messages).
        self.endpoint = ""

    # -- asyncio.Protocol -------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Check the peer is this user's process, then start reading."""
        self._transport = transport  # type: ignore[assignment]
        try:  # another user's process: before a byte is read or sent (peer.py)
            peer.check_transport(transport, self.endpoint or "the peer of a local connection")
        except PeerNotTrusted as exc:
            if self._server:
                self._refusals.note(str(exc))
            elif not self.ready.done():
                self.ready.set_exception(exc)  # open_unix awaits it
            self._abort(str(exc))
            return
        if self._server:
            self._hello_timer = self._loop.call_later(HELLO_TIMEOUT, self._hello_timeout)
        else:
            if self._preamble:  # for a relay, before the protocol starts
                self._out.append(self._preamble)
            hello = common_pb2.Hello(protocol=PROTOCOL_DIGEST, peer=self._local)
            body = _TOKEN_LEN.pack(len(self._token)) + self._token + hello.SerializeToString()
            self._send(HELLO, 0, 0, body)

    def data_received(self, data: bytes) -> None:
        """Handle the complete frames in the buffer."""
        buf = self._buf
        buf += data
        pos = 0
        end = len(buf)
        try:
            while end - pos >= HEADER_SIZE:
                size, kind, call_id, method = HEADER.unpack_from(buf, pos)
                if not self._authenticated:
                    allowed = (HELLO,) if self._server else (HELLO_OK, ERROR)
                    if kind not in allowed or size > MAX_HELLO:
                        self._fail_handshake("the first frame must be a HELLO")
                        return
                elif size > MAX_FRAME:
                    self._abort(f"frame of {size} bytes exceeds the limit")
                    return
                stop = pos + HEADER_SIZE + size
                if stop > end:
                    break
                payload = bytes(buf[pos + HEADER_SIZE : stop])
                pos = stop
                self._on_frame(kind, call_id, method, payload)
                if self.closed:
                    return
        finally:
            if pos:
                del buf[:pos]

    def connection_lost(self, exc: Exception | None) -> None:
        """The socket closed: fail the calls in flight, run the close callbacks."""
        self._closed(self.close_reason or (str(exc) if exc else "connection closed"))

    # -- frames -----------------------------------------------------------------
    def _on_frame(self, kind: int, call_id: int, index: int, payload: bytes) -> None:
        if kind == REPLY:
            entry = self._pending.pop(call_id, None)
            if entry is not None and not entry[1].done():
                entry[1].set_result(entry[0].reply.FromString(payload))
        elif kind == NOTIFY or kind == REQUEST:
            self._on_call(kind, call_id, index, payload)
        elif kind == ITEM:
            stream = self._streams.get(call_id)
            if stream is not None:
                stream[1].put_nowait(stream[0].reply.FromString(payload))
        elif kind == END:
            stream = self._streams.pop(call_id, None)
            if stream is not None:
                stream[1].put_nowait(None)
        elif kind == ERROR:
            err = common_pb2.RpcError.FromString(payload)
            if not self._authenticated:
                self.close_reason = err.message
                if not self.ready.done():
                    self.ready.set_exception(RemoteError(err.code, err.message))
                self.close()
                return
            exc = RemoteError(err.code, err.message)
            entry = self._pending.pop(call_id, None)
            if entry is not None and not entry[1].done():
                entry[1].set_exception(exc)
            stream = self._streams.pop(call_id, None)
            if stream is not None:
                stream[1].put_nowait(exc)
        elif kind == CANCEL:
            task = self._running.pop(call_id, None)
            if task is not None:
                task.cancel()
        elif kind == HELLO:
            self._on_hello(payload)
        elif kind == HELLO_OK:
            if self._server or self._authenticated:
                self._abort("unexpected HELLO_OK")
                return
            self.peer = common_pb2.HelloReply.FromString(payload).peer
            self._authenticated = True
            if not self.ready.done():
                self.ready.set_result(self)

    def _on_hello(self, payload: bytes) -> None:
        if not self._server or self._authenticated:
            self._abort("unexpected HELLO")
            return
        if len(payload) < _TOKEN_LEN.size:
            self._fail_handshake("malformed HELLO")
            return
        (n,) = _TOKEN_LEN.unpack_from(payload)
        assert self._verifier is not None
        scope = self._verifier.scope_of(payload[_TOKEN_LEN.size : _TOKEN_LEN.size + n])
        if scope is None:
            self._fail_handshake(
                "invalid or missing cluster token: use the head's token file (--token-file, init(token_file=...))",
                Code.ERROR_CODE_UNAUTHENTICATED,
            )
            return
        self.scope = scope
        hello = common_pb2.Hello.FromString(payload[_TOKEN_LEN.size + n :])
        if hello.protocol != PROTOCOL_DIGEST:
            self._fail_handshake(
                f"protocol mismatch (peer {hello.protocol}, here {PROTOCOL_DIGEST}): "
                "run the same nbcluster version on both ends",
                Code.ERROR_CODE_VERSION_MISMATCH,
            )
            return
        self.peer = hello.peer
        self._authenticated = True
        if self._hello_timer is not None:
            self._hello_timer.cancel()
            self._hello_timer = None
        self._send(HELLO_OK, 0, 0, common_pb2.HelloReply(peer=self._local).SerializeToString())
        if not self.ready.done():
            self.ready.set_result(self)

    def _hello_timeout(self) -> None:
        if not self._authenticated and not self.closed:
            self._abort(f"no HELLO within {HELLO_TIMEOUT:g} s")

    def _fail_handshake(self, message: str, code: int = Code.ERROR_CODE_UNAUTHENTICATED) -> None:
        self._refusals.note(message)
        self._send(ERROR, 0, 0, common_pb2.RpcError(code=code, message=message).SerializeToString())
        self._flush()
        self._abort(message)

    def _on_call(self, kind: int, call_id: int, index: int, payload: bytes) -> None:
        handler = self._dispatcher.handlers[index] if index < len(TABLE) else None
        if handler is not None and handler.method.scope > self.scope:
            self._refusals.note(f"{handler.method.path} needs the cluster token, the peer has a "
                                f"{scope_name(self.scope)}")
            if kind == REQUEST:
                self._send_error(call_id, Code.ERROR_CODE_PERMISSION_DENIED, permission_message(handler.method))
            return
        if handler is not None:
            self._dispatcher.served[index] += 1
        else:
            if kind == REQUEST:
                name = TABLE[index].path if index < len(TABLE) else f"#{index}"
                self._send_error(call_id, Code.ERROR_CODE_UNIMPLEMENTED, f"{name} is not served here")
            return
        try:
            request = handler.method.request.FromString(payload)
        except Exception as exc:  # noqa: BLE001 - a malformed frame must not kill the connection
            if kind == REQUEST:
                self._send_error(call_id, Code.ERROR_CODE_INVALID_ARGUMENT, f"malformed request: {exc}")
            return
        if handler.is_stream:
            task = self._loop.create_task(self._run_stream(handler, request, call_id))
            self._track(call_id, task)
            return
        try:
            result = handler.fn(request, self)
        except Exception as exc:  # noqa: BLE001
            self._reply_exception(kind, call_id, handler, exc)
            return
        if inspect.isawaitable(result):
            task = self._loop.create_task(self._await_reply(kind, call_id, handler, result))
            if kind == REQUEST:
                self._track(call_id, task)
        elif kind == REQUEST:
            self._send(REPLY, call_id, 0, result.SerializeToString())

    def _track(self, call_id: int, task: asyncio.Task) -> None:
        self._running[call_id] = task
        task.add_done_callback(lambda t, c=call_id: self._running.pop(c, None) if self._running.get(c) is t else None)

    async def _await_reply(self, kind: int, call_id: int, handler: Handler, result: Any) -> None:
        try:
            reply = await result
        except asyncio.CancelledError:
            return
        except Exception as exc:  # noqa: BLE001
            self._reply_exception(kind, call_id, handler, exc)
            return
        if kind == REQUEST and not self.closed:
            self._send(REPLY, call_id, 0, reply.SerializeToString())

    async def _run_stream(self, handler: Handler, request: Any, call_id: int) -> None:
        try:
            async for item in handler.fn(request, self):
                if self.closed:
                    return
                self._send(ITEM, call_id, 0, item.SerializeToString())
        except asyncio.CancelledError:
            return
        except Exception as exc:  # noqa: BLE001
            self._reply_exception(REQUEST, call_id, handler, exc)
            return
        self._send(END, call_id, 0, b"")

    def _reply_exception(self, kind: int, call_id: int, handler: Handler, exc: Exception) -> None:
        if isinstance(exc, RemoteError):
            code, message = exc.code, exc.message
        else:
            logger.exception("%s failed", handler.method.path)
            code, message = Code.ERROR_CODE_INTERNAL, f"{type(exc).__name__}: {exc}"
        if kind == REQUEST and not self.closed:
            self._send_error(call_id, code, message)

    def _send_error(self, call_id: int, code: int, message: str) -> None:
        self._send(ERROR, call_id, 0, common_pb2.RpcError(code=code, message=message).SerializeToString())

    # -- sending ----------------------------------------------------------------
    def _send(self, kind: int, call_id: int, index: int, payload: bytes) -> None:
        if self.closed:
            return
        self._out.append(HEADER.pack(len(payload), kind, call_id, index))
        self._out.append(payload)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        out, self._out = self._out, []
        if out and self._transport is not None and not self.closed:
            self._transport.write(b"".join(out))

    def _new_call_id(self) -> int:
        self._next_call = (self._next_call + 1) & 0xFFFFFFFF or 1
        return self._next_call

    def call_future(self, method: Method, request: Any) -> asyncio.Future:
        """Send a request; the future resolves to the reply (or raises RemoteError /
        ConnectionLost). Cheaper than :meth:`call` on hot paths: no coroutine."""
        fut = self._loop.create_future()
        if self.closed:
            fut.set_exception(ConnectionLost(self.close_reason or "connection closed"))
            return fut
        call_id = self._new_call_id()
        self._pending[call_id] = (method, fut)
        self._send(REQUEST, call_id, method.index, request.SerializeToString())
        return fut

    async def call(self, method: Method, request: Any, timeout: float | None = None) -> Any:
        """Call ``method`` on the peer and return its reply."""
        fut = self.call_future(method, request)
        if timeout is None:
            return await fut
        try:
            return await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            self._cancel_call(fut)
            raise

    def _cancel_call(self, fut: asyncio.Future) -> None:
        for call_id, (_, f) in list(self._pending.items()):
            if f is fut:
                del self._pending[call_id]
                self._send(CANCEL, call_id, 0, b"")

    def notify(self, method: Method, request: Any) -> None:
        """Send a one-way message; nothing answers it."""
        self._send(NOTIFY, 0, method.index, request.SerializeToString())

    async def stream(self, method: Method, request: Any) -> AsyncIterator[Any]:
        """Call a server-streaming method; yields replies until the server ends."""
        if self.closed:
            raise ConnectionLost(self.close_reason or "connection closed")
        call_id = self._new_call_id()
        queue: asyncio.Queue = asyncio.Queue()
        self._streams[call_id] = (method, queue)
        self._send(REQUEST, call_id, method.index, request.SerializeToString())
        try:
            while True:
                item = await queue.get()
                if item is None:
                    return
                if isinstance(item, Exception):
                    raise item
                yield item
        finally:
            if self._streams.pop(call_id, None) is not None:
                self._send(CANCEL, call_id, 0, b"")

    # -- closing ----------------------------------------------------------------
    def on_close(self, callback: Callable[["Connection"], None]) -> None:
        """Run ``callback(conn)`` once when the connection closes (now, if closed)."""
        if self.closed:
            callback(self)
        else:
            self._on_close.append(callback)

    def close(self) -> None:
        """Flush and close the connection."""
        if self._transport is not None and not self.closed:
            self._flush()
            self._transport.close()
        self._closed(self.close_reason or "closed locally")

    def _abort(self, reason: str) -> None:
        self.close_reason = reason
        if self._transport is not None:
            self._transport.close()
        self._closed(reason)

    def _closed(self, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        self.close_reason = self.close_reason or reason
        if self._hello_timer is not None:
            self._hello_timer.cancel()
            self._hello_timer = None
        self._out.clear()
        exc = ConnectionLost(self.close_reason)
        if not self.ready.done():
            self.ready.set_exception(exc)
            self.ready.exception()  # mark retrieved
        for _, fut in self._pending.values():
            if not fut.done():
                fut.set_exception(exc)
        self._pending.clear()
        for _, queue in self._streams.values():
            queue.put_nowait(exc)
        self._streams.clear()
        for task in self._running.values():
            task.cancel()
        self._running.clear()
        callbacks, self._on_close = self._on_close, []
        for callback in callbacks:
            try:
                callback(self)
            except Exception:  # noqa: BLE001
                logger.exception("on_close callback failed")


async def connect(
    endpoint: str,
    token: str,
    dispatcher: Dispatcher,
    local: common_pb2.Address,
    timeout: float = 10.0,
) -> Connection:
    """Open an authenticated connection to a framed endpoint."""
    return await open_unix(endpoint, lambda: Connection(dispatcher, token, local, server=False), timeout,
                           f"cannot connect to {endpoint}")


async def open_unix(endpoint: str, make: Callable[[], Connection], timeout: float, failure: str) -> Connection:
    """A client :class:`Connection` (from ``make``) on the unix socket ``endpoint``,
    once its handshake is done; ``ConnectionLost`` starting with ``failure`` when it
    cannot be made in ``timeout``. A connection whose handshake did not finish —
    timed out, refused, or the caller cancelled — is closed, never left open."""
    conn: Connection | None = None

    def factory() -> Connection:
        made = make()
        made.endpoint = endpoint
        return made

    async def connect() -> None:
        nonlocal conn
        _, conn = await asyncio.get_running_loop().create_unix_connection(factory, parse_endpoint(endpoint))
        await conn.ready

    try:
        await asyncio.wait_for(connect(), timeout)  # (asyncio.timeout() needs Python 3.11)
    except BaseException as exc:
        if conn is not None:
            conn.close()
        if isinstance(exc, PeerNotTrusted):
            raise
        if isinstance(exc, (OSError, asyncio.TimeoutError)):
            raise ConnectionLost(f"{failure}: {str(exc) or 'timed out'}") from exc
        raise
    return conn


class FramedServer:
    """Serves a dispatcher on a framed endpoint. ``start()`` returns once listening."""

    def __init__(
        self,
        endpoint: str,
        token: str,
        dispatcher: Dispatcher,
        local: common_pb2.Address,
        on_connection: Callable[[Connection], None] | None = None,
    ) -> None:
        self.endpoint = endpoint
        self._token = token
        self._verifier = Verifier(token)
        self.refusals = Refusals(f"local socket {endpoint}", log=logger)
        self._dispatcher = dispatcher
        self._local = local
        self._on_connection = on_connection
        self._server: asyncio.AbstractServer | None = None
        self.connections: set[Connection] = set()

    def _factory(self) -> Connection:
        conn = Connection(self._dispatcher, self._token, self._local, server=True, verifier=self._verifier,
                          refusals=self.refusals)
        conn.endpoint = self.endpoint
        self.connections.add(conn)
        conn.on_close(self.connections.discard)
        if self._on_connection is not None:
            conn.ready.add_done_callback(
                lambda f: self._on_connection(conn) if not f.cancelled() and f.exception() is None else None
            )
        return conn

    async def start(self) -> None:
        """Listen on the endpoint."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_unix_server(self._factory, parse_endpoint(self.endpoint))

    async def stop(self) -> None:
        """Stop listening and close every connection."""
        if self._server is not None:
            self._server.close()
        for conn in list(self.connections):
            conn.close()
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
