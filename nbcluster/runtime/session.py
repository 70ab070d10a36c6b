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
        return self.token_file.read_text().strip()

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


def new_session(token: str | None = None, link_latest: bool = True) -> tuple[Session, str]:
    """Create a session directory with a (fresh) token; point session_latest at it
    unless ``link_latest`` is False (a second node started on the same machine)."""
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
    fd = os.open(session.token_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token)
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
