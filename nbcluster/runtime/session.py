"""Session directories, in a root that is this user's alone.

A session is ``<root>/session_<timestamp>_<pid>/``: the cluster token (0600),
``address.json`` (how to reach the head), ``processes.json`` (what ``nbcluster start``
started), ``logs/``, ``spill/`` and the GCS database. ``<root>/session_latest`` is a
link to the newest session's name, which ``init(address="auto")`` attaches to.

The root is per user: ``$XDG_RUNTIME_DIR/nbcluster`` when ``XDG_RUNTIME_DIR`` names a
directory of this user's, else ``/tmp/nbcluster-<uid>``; ``NBCLUSTER_TEMP_DIR`` names
another. Object stores live in shared memory under ``/dev/shm/nbcluster-<uid>/``
(``NBCLUSTER_SHM_DIR`` names another). Both roots are made 0700 and, like every
session directory, ``session_latest`` and every file read from a session, checked to
be this user's alone before they are trusted (:mod:`nbcluster.runtime.private_dir`):
another user's, or one others can write, is refused with
:class:`~nbcluster.exceptions.InsecurePathError`, or skipped with a warning by a scan.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from nbcluster.exceptions import InsecurePathError
from nbcluster.runtime import envvars, tls
from nbcluster.runtime.credentials import parse_token_file, trust, write_token_file
from nbcluster.runtime.private_dir import (
    DIRECTORY,
    LINK,
    check_private,
    is_private,
    make_private_dir,
    private_dir,
    private_entries,
    read_private,
    touch_private,
    write_private,
)

LATEST = "session_latest"
#: What to do about a session path that is not private (ends InsecurePathError's message).
TEMP_FIX = f"Remove it, or set {envvars.TEMP_DIR} to a directory of your own"
SHM_FIX = f"Remove it, or set {envvars.SHM_DIR} to a directory of your own"


def temp_root() -> Path:
    """Where this user's sessions live (named only; :func:`private_temp_root` checks it)."""
    override = os.environ.get(envvars.TEMP_DIR)
    if override:
        return Path(override)
    xdg = os.environ.get(envvars.XDG_RUNTIME_DIR)
    if xdg and os.path.isabs(xdg) and is_private(xdg):
        return Path(xdg) / "nbcluster"
    return Path("/tmp") / f"nbcluster-{os.geteuid()}"


def private_temp_root() -> Path | None:
    """The temp root, checked to be this user's alone; None when it does not exist.
    InsecurePathError when it is not private."""
    return private_dir(temp_root(), TEMP_FIX)


def _default_shm_root() -> Path:
    return Path(f"/dev/shm/nbcluster-{os.geteuid()}")


def shm_root() -> Path:
    """Where this user's object stores live (named only; :func:`store_dir` makes and checks it)."""
    return Path(os.environ.get(envvars.SHM_DIR) or _default_shm_root())


def store_dir(node_id: bytes, create: bool = False) -> Path:
    """The shared-memory directory of a node's object store. ``create``: make it (0700;
    it must be new) in the checked shared-memory root, made first if need be."""
    path = shm_root() / f"nbcluster-{node_id.hex()[:16]}"
    if create:
        try:
            make_private_dir(shm_root(), SHM_FIX)
            path.mkdir(mode=0o700)
        except FileNotFoundError:  # the root was removed as the last store left it: make it again
            make_private_dir(shm_root(), SHM_FIX)
            path.mkdir(mode=0o700)
    return path


def drop_store_dir(path: Path) -> None:
    """Remove a node's store directory, and the default shared-memory root with it once
    no store is left there, so a stopped cluster leaves nothing in ``/dev/shm`` (a root
    the user named with ``NBCLUSTER_SHM_DIR`` stays)."""
    shutil.rmtree(path, ignore_errors=True)
    if path.parent == _default_shm_root() and not os.environ.get(envvars.SHM_DIR):
        with contextlib.suppress(OSError):  # another store is still in it, or it is gone
            path.parent.rmdir()


def remove_store(node_id: bytes) -> None:
    """Free a node's shared memory, if its node could not (killed, or failed to start);
    never in a shared-memory root that is not this user's alone."""
    if is_private(shm_root()):
        drop_store_dir(store_dir(node_id))


@dataclass(frozen=True)
class Session:
    """A session directory: logs, spill, token, address and the GCS database."""

    dir: Path

    @property
    def name(self) -> str:
        """The directory's name."""
        return self.dir.name

    @property
    def logs(self) -> Path:
        """The processes' log directory."""
        return self.dir / "logs"

    @property
    def spill(self) -> Path:
        """Where objects are spilled."""
        return self.dir / "spill"

    @property
    def token_file(self) -> Path:
        """The cluster token's file."""
        return self.dir / "token"

    @property
    def address_file(self) -> Path:
        """``address.json``: where the head serves."""
        return self.dir / "address.json"

    @property
    def gcs_db(self) -> Path:
        """The GCS's SQLite database."""
        return self.dir / "gcs.db"

    def endpoint(self, role: str) -> str:
        """A framed-carrier endpoint name unique to this session (abstract socket:
        nothing on disk, gone when the process is). Both ends check that the other
        runs as the same user (``transport/peer.py``)."""
        return f"unix-abstract:nbcluster/{self.name}/{role}"

    def read_file(self, path: Path) -> str:
        """The text of a file of this session, once the session directory and the file
        are checked to be this user's alone (InsecurePathError otherwise)."""
        check_private(self.dir, DIRECTORY, TEMP_FIX)
        return read_private(path, TEMP_FIX)

    def private_file(self, path: Path) -> Path:
        """``path`` in this session, checked (and made 0600 if missing) for a program
        that opens it by name (the GCS database)."""
        check_private(self.dir, DIRECTORY, TEMP_FIX)
        return touch_private(path, TEMP_FIX)

    def read_token(self) -> str:
        """The cluster token (and, for a TLS cluster, its CA is trusted for it)."""
        return parse_token_file(self.read_file(self.token_file).encode(), str(self.token_file))

    def read_ca(self) -> bytes:
        """The cluster's CA certificate (PEM) when it uses TLS, else b"" (``tls.py``)."""
        return tls.split_token_file(self.read_file(self.token_file).encode())[1]

    @property
    def tls_dir(self) -> Path:
        """``ca.key`` (the head's CA key), ``cert.pem`` and ``key.pem`` (this machine's
        certificate and key, when made at start or given by the user)."""
        return self.dir / "tls"

    def write_identity(self, identity: tls.Identity, ca_key: bytes = b"") -> None:
        """Keep this machine's TLS certificate and key (and the CA's key, on the head)."""
        self.tls_dir.mkdir(mode=0o700, exist_ok=True)
        for name, data in (("cert.pem", identity.cert_pem), ("key.pem", identity.key_pem), ("ca.key", ca_key)):
            if data:
                write_private(self.tls_dir / name, data.decode())

    def read_identity(self) -> tls.Identity | None:
        """This machine's TLS identity kept in the session, if any."""
        ca = self.read_ca()
        try:
            cert, key = (self.read_file(self.tls_dir / n).encode() for n in ("cert.pem", "key.pem"))
        except FileNotFoundError:
            return None
        return tls.Identity(ca, cert, key)

    def read_ca_key(self) -> bytes:
        """The CA's key (the head of a cluster that made its own CA), else b""."""
        try:
            return self.read_file(self.tls_dir / "ca.key").encode()
        except FileNotFoundError:
            return b""

    def read_address(self) -> dict:
        """The contents of ``address.json``."""
        return json.loads(self.read_file(self.address_file))

    def write_address(self, info: dict) -> None:
        """Write ``address.json``."""
        write_json(self.address_file, info)

    @property
    def rejoined_file(self) -> Path:
        """The ids a node of this session took when it rejoined (one hex id a line)."""
        return self.dir / "rejoined_node_ids"

    def record_rejoin(self, node_id: bytes) -> None:
        """Note the new id of a node that rejoins (its shared memory is named by it),
        before it makes its store, so whoever stops the session can free it."""
        fd = os.open(self.rejoined_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "a") as f:
            f.write(node_id.hex() + "\n")

    def node_ids(self) -> set[str]:
        """Every id (hex) a node of this session had: its address file's, and rejoins'."""
        ids = set()
        try:
            ids.add(self.read_address().get("node_id", ""))
        except (OSError, ValueError):
            pass
        try:
            ids.update(self.read_file(self.rejoined_file).split())
        except OSError:
            pass
        return {i for i in ids if i}

    def remove_stores(self, node_id: str = "") -> None:
        """Free the shared memory its nodes could not (killed, or a rejoin's new id);
        call only once its node processes are gone. ``node_id`` (hex) adds one the
        session may no longer name."""
        for nid in {node_id} | self.node_ids():
            if nid:
                remove_store(bytes.fromhex(nid))


def write_json(path: Path, info: dict) -> None:
    """Write ``info`` to ``path`` as JSON in one step (0600): a reader never sees half of it."""
    write_private(path, json.dumps(info, indent=1))


def new_session(token: str | None = None, link_latest: bool = True, ca_pem: bytes = b"") -> tuple[Session, str]:
    """Create a session directory with a (fresh) token, and the cluster's CA when it
    uses TLS (both in the ``token`` file); point session_latest at it unless
    ``link_latest`` is False (a second node started on the same machine). Both
    roots, the sessions' and shared memory's (where the session's nodes put their
    stores), are made or checked first: InsecurePathError when one is not private."""
    make_private_dir(shm_root(), SHM_FIX)
    root = make_private_dir(temp_root(), TEMP_FIX)
    now = time.time()
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S", time.localtime(now))
    # The random tail makes the session's socket names (``endpoint``) unguessable, so
    # another user cannot bind them before its processes do.
    base = f"session_{stamp}_{int(now * 1_000_000) % 1_000_000:06d}_{os.getpid()}_{secrets.token_hex(4)}"
    path = root / base
    path.mkdir(mode=0o700)
    session = Session(path)
    session.logs.mkdir(mode=0o700)
    session.spill.mkdir(mode=0o700)
    token = token or secrets.token_hex(16)
    write_token_file(session.token_file, token, ca_pem)
    trust(token, ca_pem)
    if not link_latest:
        return session, token
    link = root / LATEST
    tmp_link = root / f".{LATEST}.{os.getpid()}"
    try:
        tmp_link.unlink(missing_ok=True)
        tmp_link.symlink_to(base)
        os.replace(tmp_link, link)  # whatever was there: the root is ours
    except OSError:
        pass
    return session, token


def latest_session() -> Session | None:
    """The session ``session_latest`` names; None when there is none (or it is gone).
    InsecurePathError when the root, the link or the session is not this user's
    alone, or the link points anywhere but at a name in the root."""
    root = private_temp_root()
    if root is None:
        return None
    link = root / LATEST
    try:
        check_private(link, LINK, TEMP_FIX)
        target = os.readlink(link)
    except FileNotFoundError:
        return None
    if not target or "/" in target or target in (".", ".."):
        raise InsecurePathError(link, f"it points at {target!r}, not at a session directory's name in {root}",
                                fix=TEMP_FIX)
    session = Session(root / target)
    try:
        check_private(session.dir, DIRECTORY, TEMP_FIX)
    except FileNotFoundError:
        return None
    return session


def sessions() -> list[Session]:
    """This user's sessions in the temp root, oldest first. InsecurePathError when the
    root is not private; an entry in it that is not is skipped with a warning."""
    root = private_temp_root()
    if root is None:
        return []
    return [Session(path) for path in private_entries(root, "session_*", TEMP_FIX, links=(LATEST,))]


def remove_session(session: Session) -> None:
    """Delete a session directory and, if it pointed there, session_latest."""
    link = session.dir.parent / LATEST
    try:
        if link.is_symlink() and os.readlink(link) == session.name:
            link.unlink()
    except OSError:
        pass
    shutil.rmtree(session.dir, ignore_errors=True)
