"""Errors of the transport layer, and the one place they become the public
exceptions of :mod:`nbcluster.exceptions` (:func:`public_error`, :func:`domain_error`).

Inside the runtime, code catches these to retry or fail over; what reaches a user is
mapped here, by the error code the peer answered with (never by its message).
"""

from __future__ import annotations

from collections.abc import Callable

from nbcluster.exceptions import (
    AuthenticationError,
    ClusterConnectionError,
    NbclusterError,
    ObjectStoreFullError,
    PermissionDeniedError,
)
from nbcluster.runtime.protocol import common_pb2


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


#: Error codes with a public meaning: the exception each becomes (given the error and
#: the endpoint that answered).
_PUBLIC: dict[int, Callable[[RemoteError, str], Exception]] = {
    common_pb2.ERROR_CODE_UNAUTHENTICATED:
        lambda exc, endpoint: AuthenticationError(f"the cluster at {endpoint} refused the token: {exc.message}"),
    common_pb2.ERROR_CODE_PERMISSION_DENIED: lambda exc, _: PermissionDeniedError(exc.message),
    common_pb2.ERROR_CODE_OBJECT_STORE_FULL: lambda exc, _: ObjectStoreFullError(exc.message),
    common_pb2.ERROR_CODE_ALREADY_EXISTS: lambda exc, _: ValueError(exc.message),  # a taken actor name, as Ray
}


def domain_error(exc: RemoteError, endpoint: str = "") -> Exception | None:
    """The public exception for an error code with a public meaning (a refused
    credential, a full object store, a taken name); None for any other code."""
    make = _PUBLIC.get(exc.code)
    return make(exc, endpoint) if make is not None else None


def public_error(exc: TransportError, endpoint: str, *, connecting: bool = False) -> Exception:
    """The public exception for a transport failure talking to ``endpoint``:
    :func:`domain_error`'s when the code has one; ClusterConnectionError when the peer
    could not be reached, the connection dropped, or (``connecting``) it refused the
    connection; otherwise NbclusterError with the peer's message."""
    if isinstance(exc, RemoteError):
        mapped = domain_error(exc, endpoint)
        if mapped is not None:
            return mapped
        if connecting:
            return ClusterConnectionError(f"the cluster at {endpoint} refused the connection: {exc.message}")
        return NbclusterError(exc.message)
    return ClusterConnectionError(f"cannot reach the cluster's head at {endpoint}: {exc}")
