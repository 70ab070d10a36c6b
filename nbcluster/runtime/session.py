"""The session directory: ``<root>/session_<timestamp>_<pid>/``.

It holds the cluster token (mode 0600), ``address.json`` (how to reach the head),
``logs/``, ``spill/`` and the GCS database. ``<root>/session_latest`` points at the
newest session, which ``init(address="auto")`` attaches to. The root is
``/tmp/nbcluster`` unless ``NBCLUSTER_TEMP_DIR`` names another.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from nbcluster.runtime import tls
from nbcluster.runtime.credentials import read_token_file, trust, write_token_file

TEMP_DIR_ENV = "NBCLUSTER_TEMP_DIR"
SHM_DIR_ENV = "NBCLUSTER_SHM_DIR"


def temp_root() -> Path:
    return Path(os.environ.get(TEMP_DIR_ENV) or "/tmp/nbcluster")


def shm_root() -> Path:
    return Path(os.environ.get(SHM_DIR_ENV) or "/dev/shm")


def store_dir(node_id: bytes) -> Path:
    """The shared-memory directory of a node's object store."""
    return shm_root() / f"nbcluster-{node_id.hex()[:16]}"


@dataclass(frozen=True)
class Session:
    dir: Path

    @property
    def name(self) -> str:
        return self.dir.name

    @property
    def logs(self) -> Path:
        return self.dir / "logs"

    @property
    def spill(self) -> Path:
        return self.dir / "spill"

    @property
    def token_file(self) -> Path:
        return self.dir / "token"

    @property
    def address_file(self) -> Path:
        return self.dir / "address.json"

    @property
    def gcs_db(self) -> Path:
        return self.dir / "gcs.db"

    def endpoint(self, role: str) -> str:
        """A framed-carrier endpoint name unique to this session (abstract socket:
        nothing on disk, gone when the process is). Both ends check that the other
        runs as the same user (``transport/peer.py``)."""
        return f"unix-abstract:nbcluster/{self.name}/{role}"

    def read_token(self) -> str:
        """The cluster token (and, for a TLS cluster, its CA is trusted for it)."""
        return read_token_file(self.token_file)

    def read_ca(self) -> bytes:
        """The cluster's CA certificate (PEM) when it uses TLS, else b"" (``tls.py``)."""
        return tls.split_token_file(self.token_file.read_bytes())[1]

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
                fd = os.open(self.tls_dir / name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
                with os.fdopen(fd, "wb") as f:
                    f.write(data)

    def read_identity(self) -> tls.Identity | None:
        """This machine's TLS identity kept in the session, if any."""
        ca = self.read_ca()
        try:
            return tls.Identity(ca, (self.tls_dir / "cert.pem").read_bytes(), (self.tls_dir / "key.pem").read_bytes())
        except FileNotFoundError:
            return None

    def read_ca_key(self) -> bytes:
        """The CA's key (the head of a cluster that made its own CA), else b""."""
        try:
            return (self.tls_dir / "ca.key").read_bytes()
        except FileNotFoundError:
            return b""

    def read_address(self) -> dict:
        return json.loads(self.address_file.read_text())

    def write_address(self, info: dict) -> None:
        write_json(self.address_file, info)

    @property
    def rejoined_file(self) -> Path:
        """The ids a node of this session took when it rejoined (one hex id a line)."""
        return self.dir / "rejoined_node_ids"

    def record_rejoin(self, node_id: bytes) -> None:
        """Note the new id of a node that rejoins (its shared memory is named by it),
        before it makes its store, so whoever stops the session can free it."""
        with open(self.rejoined_file, "a") as f:
            f.write(node_id.hex() + "\n")

    def node_ids(self) -> set[str]:
        """Every id (hex) a node of this session had: its address file's, and rejoins'."""
        ids = set()
        try:
            ids.add(self.read_address().get("node_id", ""))
        except (OSError, ValueError):
            pass
        try:
            ids.update(self.rejoined_file.read_text().split())
        except OSError:
            pass
        return {i for i in ids if i}


def write_json(path: Path, info: dict) -> None:
    """Write ``info`` to ``path`` as JSON in one step: a reader never sees half of it."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(info, indent=1))
    os.replace(tmp, path)


def new_session(token: str | None = None, link_latest: bool = True, ca_pem: bytes = b"") -> tuple[Session, str]:
    """Create a session directory with a (fresh) token, and the cluster's CA when it
    uses TLS (both in the ``token`` file); point session_latest at it unless
    ``link_latest`` is False (a second node started on the same machine)."""
    root = temp_root()
    root.mkdir(parents=True, exist_ok=True, mode=0o755)
    now = time.time()
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S", time.localtime(now))
    # The random tail makes the session's socket names (``endpoint``) unguessable, so
    # another user cannot bind them before its processes do.
    base = f"session_{stamp}_{int(now * 1_000_000) % 1_000_000:06d}_{os.getpid()}_{secrets.token_hex(4)}"
    path = root / base
    path.mkdir(mode=0o700)
    session = Session(path)
    session.logs.mkdir()
    session.spill.mkdir()
    token = token or secrets.token_hex(16)
    write_token_file(session.token_file, token, ca_pem)
    trust(token, ca_pem)
    if not link_latest:
        return session, token
    link = root / "session_latest"
    tmp_link = root / f".session_latest.{os.getpid()}"
    try:
        tmp_link.unlink(missing_ok=True)
        tmp_link.symlink_to(base)
        os.replace(tmp_link, link)
    except OSError:
        pass
    return session, token


def latest_session() -> Session | None:
    link = temp_root() / "session_latest"
    try:
        target = link.resolve(strict=True)
    except OSError:
        return None
    return Session(target)


def remove_session(session: Session) -> None:
    """Delete a session directory and, if it pointed there, session_latest."""
    link = session.dir.parent / "session_latest"
    try:
        if link.is_symlink() and os.readlink(link) == session.name:
            link.unlink()
    except OSError:
        pass
    shutil.rmtree(session.dir, ignore_errors=True)
