"""Who is at the other end of a local socket.

Local endpoints are abstract Unix sockets: any user of the machine can see their
names (``/proc/net/unix``), connect to them, or bind a name that is free — a crashed
GCS's, or one a new session is about to take. So both ends check the peer's uid with
``SO_PEERCRED`` before anything else: a server drops a connection from another
user before reading a byte, and a client never sends the cluster token to a socket
another user holds. The kernel fills ``SO_PEERCRED`` at ``connect()``; it cannot be
forged by the peer.
"""

from __future__ import annotations

import os
import socket
import struct
from typing import Any

from nbcluster.runtime.transport.errors import PeerNotTrusted

_UCRED = struct.Struct("3i")  # pid, uid, gid


def peer_credentials(sock: Any) -> tuple[int, int, int]:
    """(pid, uid, gid) of the process at the other end of a connected Unix socket."""
    return _UCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size))


def is_unix(sock: Any) -> bool:
    """Whether ``sock`` is a Unix socket."""
    return sock is not None and getattr(sock, "family", None) == socket.AF_UNIX


def check_same_user(sock: Any, what: str) -> None:
    """Raise :class:`PeerNotTrusted` unless the process at the other end of ``sock``
    (a connected Unix socket) runs as this process's user. ``what`` names the
    endpoint for the message."""
    pid, uid, _ = peer_credentials(sock)
    mine = os.geteuid()
    if uid != mine:
        raise PeerNotTrusted(
            f"{what} is held by another user (uid {uid}, pid {pid}), not by you (uid {mine}); "
            "nothing was sent to it. Another user may have taken the name of a socket of a cluster "
            "that stopped: restart your cluster (its new sockets get new names)."
        )


def check_transport(transport: Any, what: str) -> None:
    """:func:`check_same_user` on an asyncio transport when it is a Unix socket
    (transports over other carriers — a relay's gRPC stream — are checked by theirs)."""
    sock = transport.get_extra_info("socket")
    if is_unix(sock):
        check_same_user(sock, what)
