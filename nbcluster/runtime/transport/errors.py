"""Errors of the transport layer. The client wrappers translate them, once, into the
public exceptions of :mod:`nbcluster.exceptions`."""

from __future__ import annotations


class TransportError(Exception):
    """Base of transport failures."""


class ConnectionLost(TransportError):
    """The connection closed (or could not be opened) before the call completed."""


class PeerNotTrusted(ConnectionLost):
    """A local endpoint is held by a process of another user: nothing was sent to it
    (no token), nothing it sent was read."""


class RemoteError(TransportError):
    """The peer answered with an error: ``code`` is a ``common_pb2.ErrorCode``."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
