"""Moving objects between nodes: each node manager's object port (as Ray's object
manager port).

A puller connects, sends the credential and a ``PullObjectRequest`` (protobuf), and
reads the object's size (8 bytes; -1: not here) and then its bytes. Without TLS the
sender ``sendfile()``s them from its arena and the receiver ``recv_into()``s its own
arena: no copy in user space, and only the sockets' buffers in flight. With TLS
(``tls.py``) the same bytes go through an encrypted socket, sent from the arena's
mapping.

Work before authentication is bounded, so idle or slow connections cannot starve
real transfers: the TLS handshake and the request header are read on the event loop
(never on a thread) within ``PREAUTH_TIMEOUT_S``, into buffers of a fixed size; at
most ``MAX_PREAUTH_PER_PEER`` unauthenticated connections per address and
``MAX_PREAUTH_TOTAL`` in all are kept — a new one closes the oldest, so a puller that
authenticates within milliseconds always gets through a flood. Only authenticated
transfers take one of ``SEND_THREADS`` threads of the port's own.

Why not a gRPC stream (docs/architecture.md, "Departures"): measured here (2 cores, loopback), a gRPC
Python stream of 4 MiB messages moves ~0.8 GB/s, the receiver busy in gRPC's reads
and copies; the benchmark target is >= 1 GB/s.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import socket
import ssl
import struct
from collections.abc import Awaitable, Callable

from google.protobuf.message import DecodeError

from nbcluster.runtime import tls
from nbcluster.runtime.credentials import Verifier, ca_for
from nbcluster.runtime.protocol import node_manager_pb2 as nm_pb2
from nbcluster.runtime.transport.preauth import PreAuthGate
from nbcluster.runtime.transport.refusals import Refusals

logger = logging.getLogger(__name__)

_HEADER = struct.Struct("<HI")  # token length, request length
_SIZE = struct.Struct("<q")  # the object's size, -1 when this node does not have it
_MAX_TOKEN = 1024
_MAX_REQUEST = 64 * 1024
#: A transfer that makes no progress this long fails (its node is gone or cut off).
IO_TIMEOUT_S = 30.0
#: The TLS handshake and the request header must arrive within this.
PREAUTH_TIMEOUT_S = 5.0
#: Unauthenticated connections kept per peer address and in all (the oldest goes).
MAX_PREAUTH_PER_PEER = 8
MAX_PREAUTH_TOTAL = 64
#: Threads that send authenticated transfers.
SEND_THREADS = 4
#: A TLS send writes the arena's bytes in pieces of this size.
_TLS_PIECE = 1 << 20

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


class _Refused(Exception):
    """An unauthenticated connection is dropped (the reason is noted, not raised on)."""


class TransferServer:
    """Serves this node's objects to other nodes on ``host:port``."""

    def __init__(
        self,
        host: str,
        port: int,
        token: str,
        arena_fd: int,
        view: Callable[[int, int], memoryview],
        lookup: Lookup,
        identity: tls.Identity | None = None,
    ) -> None:
        self._host = host
        self._port = port
        self._verifier = Verifier(token)
        self._fd = arena_fd
        self._view = view
        self._lookup = lookup
        self._tls = identity.server_context() if identity is not None else None
        self._listener: socket.socket | None = None
        self._task: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._serving: dict[socket.socket, asyncio.Task] = {}
        self._senders = concurrent.futures.ThreadPoolExecutor(SEND_THREADS, thread_name_prefix="nbcluster-transfer")
        self.refusals = Refusals("object port", log=logger)
        self._gate = PreAuthGate(MAX_PREAUTH_PER_PEER, MAX_PREAUTH_TOTAL, self.refusals)
        self.port = 0

    async def start(self) -> int:
        """Listen; returns the port."""
        self._loop = asyncio.get_running_loop()
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind((self._host, self._port))
        except OSError as exc:
            listener.close()
            raise OSError(f"cannot listen on {self._host}:{self._port} for objects: {exc.strerror}") from None
        listener.listen(256)
        listener.setblocking(False)
        self._listener = listener
        self.port = listener.getsockname()[1]
        self._task = self._loop.create_task(self._accept_loop())
        return self.port

    async def stop(self) -> None:
        """Stop listening and end the transfers in flight."""
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
        self._senders.shutdown(wait=False, cancel_futures=True)

    @property
    def unauthenticated(self) -> int:
        """Connections that have not authenticated yet (introspection and tests)."""
        return len(self._gate)

    async def _accept_loop(self) -> None:
        assert self._loop is not None and self._listener is not None
        while True:
            conn, peer = await self._loop.sock_accept(self._listener)
            conn.setblocking(False)
            task = self._serving[conn] = self._loop.create_task(self._serve(conn, peer[0]))
            self._gate.admit(conn, peer[0], task.cancel)

    async def _serve(self, conn: socket.socket, peer: str) -> None:
        held = [conn]  # the socket, or the TLS socket that took it over
        try:
            try:
                request = await asyncio.wait_for(self._authenticate(held), PREAUTH_TIMEOUT_S)
            except asyncio.TimeoutError:
                self.refusals.note(f"no TLS handshake and request within {PREAUTH_TIMEOUT_S:g} s", peer)
                return
            except _Refused as exc:
                self.refusals.note(str(exc), peer)
                return
            except (OSError, ConnectionError) as exc:
                self.refusals.note(f"closed before authenticating ({type(exc).__name__})", peer)
                return
            finally:
                self._gate.authenticated(conn)
            sock = held[0]
            found = await self._lookup(request)
            loop = asyncio.get_running_loop()
            if found is None:
                await loop.run_in_executor(self._senders, self._send_missing, sock)
                return
            offset, size, release = found
            try:
                await loop.run_in_executor(self._senders, self._send, sock, offset, size)
            finally:
                release()
        except asyncio.CancelledError:
            pass
        except (OSError, ConnectionError) as exc:
            logger.info("object transfer to %s ended: %s", peer, exc)
        finally:
            self._serving.pop(conn, None)
            self._gate.authenticated(conn)
            held[0].close()

    # -- before authentication: on the loop, non-blocking, bounded ------------------------
    async def _authenticate(self, held: list[socket.socket]) -> nm_pb2.PullObjectRequest:
        sock = held[0]
        if self._tls is not None:
            sock = held[0] = self._tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
            await self._handshake(sock)  # type: ignore[arg-type]
        token_len, request_len = _HEADER.unpack(await self._recv(sock, _HEADER.size))
        if token_len > _MAX_TOKEN or request_len > _MAX_REQUEST:
            raise _Refused("malformed header")
        if self._verifier.scope_of(await self._recv(sock, token_len)) is None:
            raise _Refused("bad or missing token")
        try:
            return nm_pb2.PullObjectRequest.FromString(await self._recv(sock, request_len))
        except DecodeError:
            raise _Refused("malformed request") from None

    async def _handshake(self, sock: ssl.SSLSocket) -> None:
        while True:
            try:
                sock.do_handshake()
                return
            except ssl.SSLWantReadError:
                await self._ready(sock, write=False)
            except ssl.SSLWantWriteError:
                await self._ready(sock, write=True)
            except ssl.SSLError as exc:
                raise _Refused(f"TLS handshake failed ({exc.reason or exc})") from None

    async def _recv(self, sock: socket.socket, n: int) -> bytes:
        buf = bytearray(n)
        view = memoryview(buf)
        got = 0
        while got < n:
            try:
                k = sock.recv_into(view[got:])
            except (BlockingIOError, ssl.SSLWantReadError):
                await self._ready(sock, write=False)
                continue
            if not k:
                raise ConnectionError("the peer closed the connection")
            got += k
        return bytes(buf)

    async def _ready(self, sock: socket.socket, write: bool) -> None:
        assert self._loop is not None
        loop, fd = self._loop, sock.fileno()
        ready = loop.create_future()
        add, remove = (loop.add_writer, loop.remove_writer) if write else (loop.add_reader, loop.remove_reader)
        add(fd, lambda: ready.done() or ready.set_result(None))
        try:
            await ready
        finally:
            remove(fd)

    # -- after authentication: a sender thread ----------------------------------------------
    def _send_missing(self, sock: socket.socket) -> None:
        self._blocking(sock)
        sock.sendall(_SIZE.pack(-1))

    def _send(self, sock: socket.socket, offset: int, size: int) -> None:
        self._blocking(sock)
        sock.sendall(_SIZE.pack(size))
        if isinstance(sock, ssl.SSLSocket):
            view = self._view(offset, size)
            try:
                for start in range(0, size, _TLS_PIECE):
                    sock.sendall(view[start : start + _TLS_PIECE])
            finally:
                view.release()
            return
        sent = 0
        while sent < size:
            n = os.sendfile(sock.fileno(), self._fd, offset + sent, size - sent)
            if n == 0:
                raise ConnectionError("sendfile made no progress")
            sent += n

    @staticmethod
    def _blocking(sock: socket.socket) -> None:
        if isinstance(sock, ssl.SSLSocket):
            sock.settimeout(IO_TIMEOUT_S)
        else:
            _blocking_with_timeouts(sock)


async def pull(
    address: str,
    token: str,
    request: nm_pb2.PullObjectRequest,
    allocate: Callable[[int], Awaitable[memoryview]],
) -> bool:
    """Fetch an object from the node whose object port is ``address`` into the
    memory ``allocate(size)`` returns. False if that node does not have it. With TLS
    when ``token`` is of a TLS cluster (its CA pinned)."""
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
        ca = ca_for(token)
        if ca:
            sock = tls.client_context(ca).wrap_socket(sock, server_hostname=host)
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
