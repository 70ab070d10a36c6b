"""Moving objects between nodes: each node manager's object port (as Ray's object
manager port).

A puller connects, sends the cluster token and a ``PullObjectRequest`` (protobuf),
and reads the object's size (8 bytes; -1: not here) and then its bytes. The sender
``sendfile()``s them from its arena; the receiver ``recv_into()``s its own arena:
no copy in user space, and only the sockets' buffers in flight. The token is
checked before anything else is read, as on the other carriers.

Why not the gRPC stream DESIGN.md names: measured here (2 cores, loopback), a gRPC
Python stream of 4 MiB messages moves ~0.8 GB/s, the receiver busy in gRPC's reads
and copies; BENCHMARKS.md asks for >= 1 GB/s. The blocking socket work runs in the
default executor's threads; pinning and allocating stay on the node's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import os
import socket
import struct
from collections.abc import Awaitable, Callable

from nbcluster.runtime.protocol import node_manager_pb2 as nm_pb2

logger = logging.getLogger(__name__)

_HEADER = struct.Struct("<HI")  # token length, request length
_SIZE = struct.Struct("<q")  # the object's size, -1 when this node does not have it
_MAX_TOKEN = 1024
_MAX_REQUEST = 64 * 1024
#: A transfer that makes no progress this long fails (its node is gone or cut off).
IO_TIMEOUT_S = 30.0

#: (offset in the arena, size, release) of a pinned object, or None.
Lookup = Callable[[nm_pb2.PullObjectRequest], Awaitable[tuple[int, int, Callable[[], None]] | None]]


def _blocking_with_timeouts(sock: socket.socket) -> None:
    """A blocking socket (``sendfile`` needs one) whose calls fail after
    IO_TIMEOUT_S without progress (kernel timeouts, not Python's)."""
    sock.setblocking(True)
    timeval = struct.pack("ll", int(IO_TIMEOUT_S), int(IO_TIMEOUT_S % 1 * 1_000_000))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeval)


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray(n)
    view = memoryview(buf)
    while view:
        got = sock.recv_into(view)
        if not got:
            raise ConnectionError("the peer closed the connection")
        view = view[got:]
    return bytes(buf)


class TransferServer:
    """Serves this node's objects to other nodes on ``host:port``."""

    def __init__(self, host: str, port: int, token: str, arena_fd: int, lookup: Lookup) -> None:
        self._host = host
        self._port = port
        self._token = token.encode()
        self._fd = arena_fd
        self._lookup = lookup
        self._listener: socket.socket | None = None
        self._task: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._serving: dict[socket.socket, asyncio.Task] = {}
        self.port = 0

    async def start(self) -> int:
        self._loop = asyncio.get_running_loop()
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind((self._host, self._port))
        except OSError as exc:
            listener.close()
            raise OSError(f"cannot listen on {self._host}:{self._port} for objects: {exc.strerror}") from None
        listener.listen(64)
        listener.setblocking(False)
        self._listener = listener
        self.port = listener.getsockname()[1]
        self._task = self._loop.create_task(self._accept_loop())
        return self.port

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._listener is not None:
            self._listener.close()
        for conn in list(self._serving):  # ends their threads' blocking calls
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if self._serving:
            await asyncio.wait(list(self._serving.values()), timeout=5.0)

    async def _accept_loop(self) -> None:
        assert self._loop is not None and self._listener is not None
        while True:
            conn, _ = await self._loop.sock_accept(self._listener)
            _blocking_with_timeouts(conn)
            self._serving[conn] = self._loop.create_task(self._serve(conn))

    async def _serve(self, conn: socket.socket) -> None:
        assert self._loop is not None
        try:
            request = await asyncio.to_thread(self._read_request, conn)
            if request is None:
                return
            found = await self._lookup(request)
            if found is None:
                await asyncio.to_thread(conn.sendall, _SIZE.pack(-1))
                return
            offset, size, release = found
            try:
                await asyncio.to_thread(self._send, conn, offset, size)
            finally:
                release()
        except (OSError, ConnectionError) as exc:
            logger.info("object transfer to a peer ended: %s", exc)
        finally:
            self._serving.pop(conn, None)
            conn.close()

    def _read_request(self, conn: socket.socket) -> nm_pb2.PullObjectRequest | None:
        token_len, request_len = _HEADER.unpack(_recv_exact(conn, _HEADER.size))
        if token_len > _MAX_TOKEN or request_len > _MAX_REQUEST:
            logger.warning("refused an object request: malformed header")
            return None
        if not hmac.compare_digest(_recv_exact(conn, token_len), self._token):
            logger.warning("refused an object request: bad or missing token")
            return None
        return nm_pb2.PullObjectRequest.FromString(_recv_exact(conn, request_len))

    def _send(self, conn: socket.socket, offset: int, size: int) -> None:
        conn.sendall(_SIZE.pack(size))
        sent = 0
        while sent < size:
            n = os.sendfile(conn.fileno(), self._fd, offset + sent, size - sent)
            if n == 0:
                raise ConnectionError("sendfile made no progress")
            sent += n


async def pull(
    address: str,
    token: str,
    request: nm_pb2.PullObjectRequest,
    allocate: Callable[[int], Awaitable[memoryview]],
) -> bool:
    """Fetch an object from the node whose object port is ``address`` into the
    memory ``allocate(size)`` returns. False if that node does not have it."""
    host, _, port = address.rpartition(":")
    sock = await asyncio.to_thread(_request, host, int(port), token, request)
    try:
        (size,) = _SIZE.unpack(await asyncio.to_thread(_recv_exact, sock, _SIZE.size))
        if size < 0:
            return False
        view = await allocate(size)
        try:
            await asyncio.to_thread(_receive, sock, view)
        finally:
            view.release()
        return True
    finally:
        sock.close()


def _request(host: str, port: int, token: str, request: nm_pb2.PullObjectRequest) -> socket.socket:
    sock = socket.create_connection((host, port), timeout=IO_TIMEOUT_S)
    try:
        body = request.SerializeToString()
        raw_token = token.encode()
        sock.sendall(_HEADER.pack(len(raw_token), len(body)) + raw_token + body)
    except BaseException:
        sock.close()
        raise
    return sock


def _receive(sock: socket.socket, view: memoryview) -> None:
    while view:
        got = sock.recv_into(view)
        if not got:
            raise ConnectionError(f"the sending node closed the connection with {len(view)} bytes to go")
        view = view[got:]

