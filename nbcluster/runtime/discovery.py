"""Finding a running cluster from this machine, and asking its GCS one question.

Drivers (``init(address=...)``) need a node of the cluster on this machine;
tools (``nbcluster status``, ``nbcluster list``, ``cluster_utils``) only need the
GCS and the token. Both look at this user's session directories under the temp root
(:mod:`nbcluster.runtime.session`), and read only what is this user's alone: the
root and ``session_latest`` (what ``"auto"`` follows) must be, or the lookup fails
with InsecurePathError; any other session that is not is passed over with a warning.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import psutil

from nbcluster.exceptions import (
    AuthenticationError,
    ClusterConnectionError,
    InsecurePathError,
)
from nbcluster.runtime import credentials
from nbcluster.runtime.credentials import given_token
from nbcluster.runtime.private_dir import warn_skipped
from nbcluster.runtime.session import Session, latest_session, sessions, temp_root
from nbcluster.runtime.transport import dial
from nbcluster.runtime.transport.errors import TransportError, public_error


#: How long a head a user named may refuse connections before :func:`something_listens`
#: says that nothing listens there (a head that was just started listens well within it).
REFUSED_GRACE_S = 3.0


@dataclass(frozen=True)
class LocalNode:
    """This machine's node of a cluster, as its session directory describes it."""

    session: Session
    token: str
    #: How this machine reaches the GCS (the head's local socket, or host:port).
    gcs_endpoint: str
    #: A worker node's node manager endpoint; None for the head (ask the GCS).
    node_endpoint: str | None
    #: The cluster's address as other machines use it (host:port).
    gcs_address: str


def _live_node(session: Session) -> LocalNode | None:
    """The node whose session this is, if it still runs; InsecurePathError when a file
    it reads is not this user's alone."""
    try:
        info = session.read_address()
    except (OSError, ValueError):
        return None
    token = given_token() or _read_token(session)
    if info.get("role") == "worker":
        if not psutil.pid_exists(info.get("node_pid", -1)):
            return None
        return LocalNode(session, token, info["gcs_address"], info["node_endpoint"], info["gcs_address"])
    if not psutil.pid_exists(info.get("head_pid", -1)):
        return None
    return LocalNode(session, token, info["local_endpoint"], None, info["gcs_address"])


def _read_token(session: Session) -> str:
    try:
        return session.read_token()
    except (OSError, ValueError):
        return ""


def find_local_node(address: str) -> LocalNode | None:
    """This machine's node of the cluster at ``address`` ("auto": the newest
    cluster started here that still runs); the head's session is preferred over a
    worker's. InsecurePathError when the temp root, or for "auto" ``session_latest``
    or the session it names, is not this user's alone."""
    if address == "auto":
        session = latest_session()
        node = _live_node(session) if session is not None else None
        if node is not None:
            return node
    matches = [node for node in _live_nodes() if address in ("auto", node.gcs_address)]
    if address == "auto":  # the newest cluster's session was not live: the newest that is
        return matches[0] if matches else None
    matches.sort(key=lambda n: n.node_endpoint is not None)
    return matches[0] if matches else None


def _live_nodes() -> Iterator[LocalNode]:
    """This machine's live nodes (under this temp root), newest session first; one
    whose files are not this user's alone is skipped with a warning."""
    for session in reversed(sessions()):
        try:
            node = _live_node(session)
        except InsecurePathError as exc:
            warn_skipped(exc)
            continue
        if node is not None:
            yield node


def local_heads() -> list[LocalNode]:
    """The clusters whose head runs on this machine (under this temp root), newest
    first: those of ``nbcluster start --head``, of ``init()`` and of notebooks."""
    return [node for node in _live_nodes() if node.node_endpoint is None]


def read_token_file(path: str, private: bool = False) -> str:
    """The token in ``path`` (a copy of a head's ``token`` file, which for a TLS cluster
    also carries its CA); ValueError saying what is wrong with it otherwise.
    ``private``: a file nbcluster itself wrote and named (a session's token, the
    Jupyter server's copy), which must be this user's alone (InsecurePathError
    otherwise); a file the user names may be anyone's."""
    try:
        return credentials.read_token_file(path, private=private)
    except OSError as exc:
        raise ValueError(f"cannot read --token-file {path}: {exc.strerror}") from None
    except ValueError:
        raise ValueError(f"--token-file {path} is empty; copy the head's `token` file") from None


def check_address(address: str) -> None:
    """ValueError unless ``address`` is "auto" or host:port."""
    if address != "auto" and (":" not in address or not address.rsplit(":", 1)[1].isdigit()):
        raise ValueError(f"address must be 'auto' or 'host:port', got {address!r}")


def no_cluster_message() -> str:
    """The message for "no cluster runs on this machine", saying where it looked and how to
    start one."""
    return (
        f"No running nbcluster cluster found on this machine (looked in {temp_root()}). "
        "Start one with `nbcluster start --head` (or nbcluster.init() in another process), or pass its address."
    )


def gcs_target(address: str | None, token: str | None = None) -> tuple[str, str]:
    """(endpoint, token) of the GCS of the cluster at ``address`` (None or "auto":
    the newest on this machine). A cluster with no node here is reached at its
    address with ``token``, else the token from ``NBCLUSTER_TOKEN``. A given
    ``token`` is always the one sent (a wrong one is refused, also locally)."""
    address = address or "auto"
    check_address(address)
    node = find_local_node(address)
    if node is not None:
        return node.gcs_endpoint, token or node.token
    if address == "auto":
        raise ClusterConnectionError(no_cluster_message())
    token = token or given_token()
    if not token:
        raise AuthenticationError(
            f"Talking to the cluster at {address} needs its token: set NBCLUSTER_TOKEN to the contents "
            "of the `token` file in the head's session directory."
        )
    return address, token


def call_gcs(target: tuple[str, str], method: Any, request: Any, timeout: float = 30.0) -> Any:
    """One request to the GCS at ``target`` (from :func:`gcs_target`) on a
    connection of its own, from any thread, also inside a running event loop.
    Transport failures are raised as :func:`public_error` maps them."""
    endpoint, token = target

    async def call() -> Any:
        conn = await connect_gcs(endpoint, token, timeout=min(timeout, 10.0))
        try:
            return await conn.call(method, request, timeout=timeout)
        except TransportError as exc:
            raise public_error(exc, endpoint) from None
        finally:
            conn.close()

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, call()).result()


async def connect_gcs(endpoint: str, token: str, timeout: float = 10.0) -> Any:
    """A connection of its own to the GCS at ``endpoint`` (a local socket or
    host:port), on the running loop; the caller closes it. A failure to connect
    raises ClusterConnectionError, or AuthenticationError when the token is refused."""
    try:
        return await dial(endpoint, token, timeout=timeout)
    except TransportError as exc:
        raise public_error(exc, endpoint, connecting=True) from None


async def stream_gcs(
    connect: Callable[[], Awaitable[Any]], method: Any, request: Any, endpoint: str
) -> AsyncIterator[Any]:
    """The replies of a streaming GCS ``method`` on the connection ``connect()``
    returns, as they come; a transport failure, also while connecting, raises as
    :func:`public_error` maps it (``endpoint`` names the cluster in its message)."""
    try:
        conn = await connect()
        async for reply in conn.stream(method, request):
            yield reply
    except TransportError as exc:
        raise public_error(exc, endpoint) from None


async def something_listens(address: str, grace_s: float = REFUSED_GRACE_S) -> None:
    """Before dialling the head a user named (client mode, a node joining):
    ClusterConnectionError at once when ``address``'s host says no (no route), or when
    nothing listens on its port for ``grace_s`` (connection refused): a wrong address
    is told in seconds, not after the startup timeout. A host that does not answer is
    left to the connection's own timeout (a firewall may drop, a slow network delay)."""
    host, port = address.rsplit(":", 1)
    deadline = time.monotonic() + grace_s
    while True:
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host.strip("[]"), int(port)),
                                               max(0.1, deadline - time.monotonic()))
        except asyncio.TimeoutError:
            return
        except ConnectionRefusedError:
            if time.monotonic() >= deadline:
                raise ClusterConnectionError(
                    f"cannot reach the cluster's head at {address}: nothing listens there (connection refused "
                    f"for {grace_s:g} s). Check the host and port: the head's `nbcluster status` prints its address."
                ) from None
            await asyncio.sleep(0.2)
            continue
        except OSError as exc:
            raise ClusterConnectionError(f"cannot reach the cluster's head at {address}: "
                                         f"{exc.strerror or exc}") from None
        writer.close()
        return
