"""Cluster credentials: the token, the driver credential derived from it, and how
they reach the processes that need them.

Two scopes (``common.proto``: ``Scope``):

- the **cluster token** (random, made at head start, kept in the session's ``token``
  file, mode 0600) may call every method: the head, node managers, job supervisors
  and the operator's CLI hold it;
- the **driver credential** (``d-`` + an HMAC of the cluster token) may do what a
  driver does — tasks, actors, objects, jobs, the state API — but not administer the
  cluster (register or drain nodes, stop the head, change the autoscaler's bounds).
  Drivers, workers and job entrypoints present it, so a credential that leaks from
  user code cannot take the cluster over.

Servers that hold the cluster token accept both; a driver's or worker's own server
(it holds only the driver credential) accepts the driver credential. Everyone who
connects to a driver or worker presents the driver credential.

Credentials never travel in an environment variable (``os.environ`` is printed by
``env``, ``%env``, job logs): a child process gets its credential through an inherited
pipe (``NBCLUSTER_CREDENTIAL_FD``) that it reads once at start-up, and a job's
entrypoint gets a 0600 file in its session (``NBCLUSTER_CREDENTIAL_FILE``) that any
``nbcluster.init()`` under it reads.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import stat

from nbcluster.runtime import envvars
from nbcluster.runtime.private_dir import read_private, write_private
from nbcluster.runtime.protocol import common_pb2
from nbcluster.runtime.tls import join_token_file, split_token_file

#: Variables no runtime process passes on to the processes it starts.
INHERITED_NEVER = frozenset({envvars.TOKEN, envvars.CREDENTIAL_FD, envvars.CREDENTIAL_FILE})

SCOPE_DRIVER = common_pb2.SCOPE_DRIVER
SCOPE_CLUSTER = common_pb2.SCOPE_CLUSTER

_DRIVER_PREFIX = "d-"
_DRIVER_LABEL = b"nbcluster driver credential v1"


def driver_token(token: str) -> str:
    """The driver credential of a cluster token (a driver credential is its own)."""
    if is_driver_token(token):
        return token
    mac = hmac.new(token.encode(), _DRIVER_LABEL, hashlib.sha256).hexdigest()[:40]
    return _DRIVER_PREFIX + mac


def is_driver_token(token: str) -> bool:
    """Whether ``token`` is a driver credential (derived from the cluster token), not the
    cluster token itself."""
    return token.startswith(_DRIVER_PREFIX)


def scope_name(scope: int) -> str:
    """The name of a credential scope in messages: "cluster token" or "driver credential"."""
    return "cluster token" if scope == SCOPE_CLUSTER else "driver credential"


class Verifier:
    """What a server accepts, given the token its process holds: the cluster token
    (scope CLUSTER) and its driver credential (scope DRIVER); only the latter when the
    process holds just a driver credential. Comparisons are constant-time."""

    __slots__ = ("_cluster", "_driver")

    def __init__(self, token: str) -> None:
        self._cluster = None if is_driver_token(token) else token.encode()
        self._driver = driver_token(token).encode()

    def scope_of(self, presented: bytes | str) -> int | None:
        """The scope of ``presented``, or None when it is no credential of this cluster."""
        if isinstance(presented, str):
            presented = presented.encode()
        # Both comparisons always run: the time taken does not tell which one matched.
        driver = hmac.compare_digest(presented, self._driver)
        cluster = self._cluster is not None and hmac.compare_digest(presented, self._cluster)
        if cluster:
            return SCOPE_CLUSTER
        return SCOPE_DRIVER if driver else None


# -- passing a credential to a child process ---------------------------------------
def credential_pipe(token: str) -> tuple[dict[str, str], int]:
    """A pipe holding ``token`` for a child to inherit: (its environment entry, the
    read end to pass with ``pass_fds``, which the caller closes after the spawn)."""
    read, write = os.pipe()
    try:
        os.write(write, token.encode())  # a few dozen bytes: fits the pipe's buffer
    finally:
        os.close(write)
    os.set_inheritable(read, True)
    return {envvars.CREDENTIAL_FD: str(read)}, read


def from_parent() -> str | None:
    """The credential the parent (a runtime process) passed through a pipe, or None.
    The pipe is read once and closed; its variable leaves the environment."""
    fd = os.environ.pop(envvars.CREDENTIAL_FD, None)
    if fd is None:
        return None
    try:
        number = int(fd)
        if not stat.S_ISFIFO(os.fstat(number).st_mode):
            raise ValueError("not a pipe")
    except (OSError, ValueError):  # a copied environment (a process restarted by hand)
        return None
    chunks = []
    with os.fdopen(number, "rb") as pipe:
        while chunk := pipe.read(4096):
            chunks.append(chunk)
    return b"".join(chunks).decode().strip() or None


def given_token() -> str | None:
    """A credential the user or the job gave this process: ``NBCLUSTER_TOKEN``, else a
    job entrypoint's credential file (``NBCLUSTER_CREDENTIAL_FILE``). None: use the
    token of the cluster's session on this machine."""
    token = token_from_env()
    if token:
        return token
    path = os.environ.get(envvars.CREDENTIAL_FILE)
    if not path:
        return None
    try:
        return read_token_file(path)
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read the job's credential file {path} ({envvars.CREDENTIAL_FILE}): {exc}") from None


def write_token_file(path: os.PathLike[str] | str, token: str, ca_pem: bytes = b"") -> None:
    """Write a token file (the token, then the CA of a TLS cluster), readable by this
    user only."""
    write_private(path, join_token_file(token, ca_pem).decode())


# -- the cluster's CA, by token ----------------------------------------------------------
#: The CA (PEM) of each TLS cluster this process holds a token of, under the token and
#: its driver credential: a dial with a token uses TLS pinned to that cluster's CA.
_CA_BY_TOKEN: dict[str, bytes] = {}


def read_token_file(path: os.PathLike[str] | str, private: bool = False) -> str:
    """The token in a token file (a session's ``token``, or a copy of it). When the
    cluster uses TLS the file also holds its CA certificate, which is remembered for
    the token (:func:`ca_for`). ``private``: a file nbcluster wrote and named, which
    must be this user's alone (InsecurePathError otherwise); a file the user names may
    be anyone's. OSError when unreadable; ValueError when empty."""
    if private:
        data = read_private(path, "Remove it").encode()
    else:
        with open(path, "rb") as f:
            data = f.read()
    return parse_token_file(data, str(path))


def parse_token_file(data: bytes, where: str) -> str:
    """The token of a token file's bytes; its CA (if any) trusted for it."""
    token, ca_pem = split_token_file(data)
    if not token:
        raise ValueError(f"{where} holds no token; copy the head's `token` file")
    trust(token, ca_pem)
    return token


def trust(token: str, ca_pem: bytes) -> None:
    """Dial the cluster of ``token`` (and of its driver credential) with TLS pinned to
    ``ca_pem`` (nothing when b"")."""
    if ca_pem:
        _CA_BY_TOKEN[token] = _CA_BY_TOKEN[driver_token(token)] = ca_pem


def ca_for(token: str) -> bytes:
    """The CA to verify the servers of ``token``'s cluster with; b"": no TLS."""
    return _CA_BY_TOKEN.get(token, b"")


def token_from_env() -> str | None:
    """``NBCLUSTER_TOKEN`` when the user set it (the runtime's processes do not pass
    it on: ``procutil.spawn`` leaves it out of their children's environment)."""
    raw = os.environ.get(envvars.TOKEN, "").strip()
    # A token file's contents (with a TLS cluster's CA after the token), as
    # NBCLUSTER_TOKEN=$(cat token) gives it: the token, its CA trusted.
    return parse_token_file(raw.encode(), envvars.TOKEN) if raw else None
