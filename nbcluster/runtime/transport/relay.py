"""Framed connections between machines, carried through node managers.

A process is reachable on its own machine at a framed endpoint (an abstract Unix
socket). From another machine it is reached through its node manager's gRPC
``Relay`` stream, which pipes bytes to that endpoint — so the framed protocol
(HELLO with the token, frames) runs end to end, and each machine exposes one port.

Two ways in:
- a process on a node (workers never import grpc) connects to its *own* node
  manager's relay socket and names the target in a preamble; that node manager opens
  the gRPC stream to the target's node manager;
- a process with gRPC and no node manager of its own (the GCS, a driver off the
  cluster) opens the gRPC stream itself.

A route names the target: ``relay://<node manager host:port>#<endpoint>``.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import AsyncIterator, Callable
from typing import Any

from nbcluster.runtime.credentials import Verifier
from nbcluster.runtime.protocol import common_pb2, node_manager_pb2 as nm_pb2
from nbcluster.runtime.transport import framed, methods, peer
from nbcluster.runtime.transport.errors import ConnectionLost, PeerNotTrusted
from nbcluster.runtime.transport.refusals import Refusals

logger = logging.getLogger(__name__)

PREFIX = "relay://"
_LEN = struct.Struct("<I")
_CHUNK = 1 << 20
#: What a relay reads ahead from a local socket: enough for whole chunks (asyncio's
#: default, 64 KiB, cut large transfers into many small gRPC messages).
_BUFFER = 4 * _CHUNK
#: Targets a node manager relays to: framed endpoints of this runtime only.
ALLOWED_TARGET = "unix-abstract:nbcluster/"


def route(node_address: str, endpoint: str) -> str:
    """The relay route to ``endpoint`` on the node whose node manager is at ``node_address``."""
    return f"{PREFIX}{node_address}#{endpoint}"


def parse_route(address: str) -> tuple[str, str]:
    """(node manager address, endpoint) of a relay route; ValueError if it is not one."""
    via, _, target = address[len(PREFIX) :].partition("#")
    if not via or not target:
        raise ValueError(f"not a relay route: {address!r}")
    return via, target


def socket_of(node_endpoint: str) -> str:
    """The relay socket of the node manager serving ``node_endpoint``."""
    return node_endpoint + "/relay"


# -- client side -----------------------------------------------------------------------
async def connect_local(
    relay_endpoint: str,
    address: str,
    token: str,
    dispatcher: framed.Dispatcher,
    local: common_pb2.Address,
    timeout: float,
) -> framed.Connection:
    """Through this machine's node manager (no grpc in this process)."""
    via, target = parse_route(address)
    body = nm_pb2.RelayPreamble(token=token, via=via, target=target).SerializeToString()
    preamble = _LEN.pack(len(body)) + body
    return await framed.open_unix(
        relay_endpoint, lambda: framed.Connection(dispatcher, token, local, server=False, preamble=preamble),
        timeout, f"cannot reach {address} through {relay_endpoint}",
    )


async def connect_grpc(
    address: str,
    token: str,
    dispatcher: framed.Dispatcher,
    local: common_pb2.Address,
    timeout: float,
    channel: Any = None,
) -> framed.Connection:
    """Straight to the target's node manager over gRPC."""
    # Lazy: grpc takes ~20 ms to import, and workers and local drivers never need it.
    from nbcluster.runtime.transport.grpc_carrier import GrpcChannel

    via, target = parse_route(address)
    owned = channel is None
    channel = channel or GrpcChannel(via, token)
    loop = asyncio.get_running_loop()
    conn = framed.Connection(dispatcher, token, local, server=False)
    calls: list[Any] = []

    async def open_stream() -> None:
        calls.append(channel.open_stream(methods.NodeManager.Relay))
        await calls[0].write(nm_pb2.RelayChunk(target=target))
        transport = _StreamTransport(calls[0], conn, loop, on_close=channel.close if owned else None)
        conn.connection_made(transport)  # type: ignore[arg-type]
        await conn.ready

    try:
        await asyncio.wait_for(open_stream(), timeout)  # (asyncio.timeout() needs Python 3.11)
    except BaseException as exc:  # a failure, or the caller cancelled: nothing half-open stays
        conn.close()
        for call in calls:  # a shared channel stays open: its stream must end too
            call.cancel()
        if owned:
            channel.close()
        if isinstance(exc, (OSError, asyncio.TimeoutError, ConnectionLost)):
            raise ConnectionLost(f"cannot reach {address}: {str(exc) or 'timed out'}") from exc
        if isinstance(exc, Exception):  # grpc errors
            raise ConnectionLost(f"cannot reach {address}: {exc}") from exc
        raise
    return conn


class _StreamTransport:
    """The part of asyncio.Transport a framed Connection uses, over a gRPC stream."""

    def __init__(self, call: Any, protocol: framed.Connection, loop: asyncio.AbstractEventLoop,
                 on_close: Callable[[], None] | None = None) -> None:
        self._call = call
        self._protocol = protocol
        self._closing = False
        self._queue: asyncio.Queue = asyncio.Queue()
        self._on_close = on_close
        self._reader = loop.create_task(self._read())
        self._writer = loop.create_task(self._write())

    async def _read(self) -> None:
        import grpc.aio

        error: Exception | None = None
        try:
            while True:
                chunk = await self._call.read()
                if chunk is grpc.aio.EOF:
                    break
                self._protocol.data_received(chunk.data)
        except asyncio.CancelledError:
            return
        except Exception as exc:  # noqa: BLE001 - the stream broke
            error = exc
        self._finish(error)

    async def _write(self) -> None:
        try:
            while True:
                data = await self._queue.get()
                if data is None:
                    await self._call.done_writing()
                    return
                await self._call.write(nm_pb2.RelayChunk(data=data))
        except asyncio.CancelledError:
            return
        except Exception as exc:  # noqa: BLE001
            self._finish(exc)

    def write(self, data: bytes) -> None:
        if not self._closing:
            self._queue.put_nowait(bytes(data))

    def is_closing(self) -> bool:
        return self._closing

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default

    def close(self) -> None:
        self._finish(None)

    def _finish(self, error: Exception | None) -> None:
        if self._closing:
            return
        self._closing = True
        self._call.cancel()
        for task in (self._reader, self._writer):
            if task is not asyncio.current_task():
                task.cancel()
        if self._on_close is not None:
            self._on_close()
        self._protocol.connection_lost(error)


# -- node manager side ------------------------------------------------------------------
async def serve(requests: Any, ctx: Any) -> AsyncIterator[nm_pb2.RelayChunk]:
    """The gRPC ``Relay`` method: pipe the stream to a framed endpoint on this node."""
    first = await requests.__anext__()
    target = first.target
    if not target.startswith(ALLOWED_TARGET):
        logger.warning("refused to relay to %r", target)
        return
    try:
        reader, writer = await asyncio.open_unix_connection(framed.parse_endpoint(target), limit=_BUFFER)
    except OSError as exc:
        logger.info("relay target %s unreachable: %s", target, exc)
        return
    try:  # the stream carries the caller's token: never to another user's socket
        peer.check_transport(writer.transport, f"relay target {target}")
    except PeerNotTrusted as exc:
        logger.warning("refused to relay: %s", exc)
        writer.close()
        return
    if first.data:
        writer.write(first.data)

    async def upstream() -> None:
        try:
            async for chunk in requests:
                writer.write(chunk.data)
                await writer.drain()
        finally:
            writer.close()

    pump = asyncio.get_running_loop().create_task(upstream())
    try:
        while True:
            data = await reader.read(_CHUNK)
            if not data:
                return
            yield nm_pb2.RelayChunk(data=data)
    finally:
        pump.cancel()
        writer.close()


class LocalRelay:
    """The node manager's relay socket for processes on its machine."""

    def __init__(self, endpoint: str, token: str, channel: Callable[[str], Any]) -> None:
        self.endpoint = endpoint
        self._verifier = Verifier(token)
        self.refusals = Refusals("relay socket", log=logger)
        self._channel = channel
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task] = set()

    async def start(self) -> None:
        """Listen on the relay socket."""
        self._server = await asyncio.start_unix_server(self._accept, framed.parse_endpoint(self.endpoint))

    async def stop(self) -> None:
        """Stop listening and end the relayed connections."""
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            peer.check_transport(writer.transport, "a client of the relay socket")
            await self._pipe(reader, writer)
        except PeerNotTrusted as exc:
            self.refusals.note(str(exc))
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        except Exception:  # noqa: BLE001
            logger.exception("relay failed")
        finally:
            self._tasks.discard(task)
            writer.close()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        (size,) = _LEN.unpack(await asyncio.wait_for(reader.readexactly(_LEN.size), 10.0))
        if size > 1 << 16:
            return
        preamble = nm_pb2.RelayPreamble.FromString(await reader.readexactly(size))
        if self._verifier.scope_of(preamble.token) is None:
            self.refusals.note("bad or missing token")
            return
        import grpc.aio

        call = self._channel(preamble.via).open_stream(methods.NodeManager.Relay)
        await call.write(nm_pb2.RelayChunk(target=preamble.target))

        async def upstream() -> None:
            while True:
                data = await reader.read(_CHUNK)
                if not data:
                    await call.done_writing()
                    return
                await call.write(nm_pb2.RelayChunk(data=data))

        async def downstream() -> None:
            while True:
                chunk = await call.read()
                if chunk is grpc.aio.EOF:
                    return
                writer.write(chunk.data)
                await writer.drain()

        up = asyncio.get_running_loop().create_task(upstream())
        try:
            await downstream()
        finally:
            up.cancel()
            call.cancel()
