"""Transport: one schema (``protocol/``), two carriers.

``unix-abstract:...`` / ``unix:...`` endpoints use the framed carrier (same machine);
``host:port`` addresses use gRPC. :func:`dial` picks the carrier; callers see the same
``call`` / ``call_future`` / ``notify`` / ``stream`` interface either way.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from nbcluster.runtime.protocol import common_pb2
from nbcluster.runtime.transport import framed
from nbcluster.runtime.transport import relay as relays
from nbcluster.runtime.transport.errors import ConnectionLost, PeerNotTrusted, RemoteError, TransportError

__all__ = ["dial", "is_framed", "ConnectionLost", "PeerNotTrusted", "RemoteError", "TransportError"]


def is_framed(address: str) -> bool:
    """A framed-carrier address: a local socket, or a relay route to one."""
    return address.startswith("unix") or address.startswith("relay://")


async def dial(
    address: str,
    token: str,
    *,
    dispatcher: Any = None,
    local: common_pb2.Address | None = None,
    timeout: float = 10.0,
    relay: str | None = None,
    reconnect_wait_s: float = 0.0,
) -> Any:
    """Connect to ``address``, retrying until ``timeout`` while nothing listens yet
    (a process that is still starting). A refused token fails at once.
    ``reconnect_wait_s``: over gRPC, a call made while the server is away waits that
    long for it to be back (the head, which may be restarting).

    ``relay://`` routes reach a process on another machine: through ``relay`` (this
    machine's node manager relay socket) when given, else over gRPC directly."""
    deadline = time.monotonic() + timeout
    if address.startswith("relay://"):
        dispatcher = dispatcher or framed.Dispatcher()
        local = local or common_pb2.Address()
        if relay:
            return await relays.connect_local(relay, address, token, dispatcher, local, timeout)
        return await relays.connect_grpc(address, token, dispatcher, local, timeout)
    if not is_framed(address):
        # Lazy: grpc takes ~20 ms to import, and workers and local drivers never need it.
        from nbcluster.runtime.transport.grpc_carrier import GrpcChannel

        channel = GrpcChannel(address, token, reconnect_wait_s)
        await channel.wait_ready(timeout)
        return channel
    delay = 0.002
    while True:
        try:
            return await framed.connect(
                address,
                token,
                dispatcher or framed.Dispatcher(),
                local or common_pb2.Address(),
                timeout=max(0.1, deadline - time.monotonic()),
            )
        except PeerNotTrusted:
            raise  # another user's socket: waiting will not make it ours
        except ConnectionLost:
            if time.monotonic() + delay >= deadline:
                raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)
