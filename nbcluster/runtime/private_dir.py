"""Directories and files that must be this user's alone, and the one check they pass.

nbcluster finds its clusters through files: a session's ``address.json`` says where
its head listens, its ``token`` what to send there, ``processes.json`` which processes
``nbcluster stop`` ends; object stores live in shared memory. Whoever can write those
can make a driver send its token to them, or unpickle their data as this user. So
before it trusts one, nbcluster checks it with :func:`check_private`: it must be owned
by this user (the effective uid), be what it should be (a directory or a regular file;
never a symbolic link in place of one — ``session_latest`` is the one link, and its
owner is checked), and not be writable by group or others. Anything else raises
:class:`~nbcluster.exceptions.InsecurePathError`, which names the path, the owner and
mode found, and the fix.

- :func:`make_private_dir` makes a root directory (mode 0700, atomically) or checks the
  one that is there (:func:`private_dir`); one of ours that others may write is
  tightened to 0700.
- :func:`read_private` reads a file through a descriptor opened without following
  links and checked with ``fstat``: what is checked is what is read.
- :func:`write_private` replaces a file by one that is 0600 from its first byte.
- :func:`private_entries` lists the private directories in a root; any other entry
  found there is skipped with one warning (:func:`warn_skipped`), not the whole scan.

Callers that read a thing the user asked for (the root, ``session_latest``) let the
error reach the user; callers that scan pass over what is not private.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import stat
from pathlib import Path

from nbcluster.exceptions import InsecurePathError

__all__ = [
    "DIRECTORY",
    "FILE",
    "LINK",
    "check_private",
    "is_private",
    "make_private_dir",
    "private_dir",
    "private_entries",
    "read_private",
    "touch_private",
    "warn_skipped",
    "write_private",
]

logger = logging.getLogger(__name__)

DIRECTORY = "directory"
FILE = "regular file"
LINK = "symbolic link"
_IS_KIND = {DIRECTORY: stat.S_ISDIR, FILE: stat.S_ISREG, LINK: stat.S_ISLNK}
#: Group and others may not write (a link's own mode means nothing).
_WRITABLE_BY_OTHERS = stat.S_IWGRP | stat.S_IWOTH


def check_private(
    path: str | os.PathLike[str], kind: str = DIRECTORY, fix: str = "", st: os.stat_result | None = None
) -> os.stat_result:
    """``path``'s ``lstat`` (or ``st``, an ``lstat``/``fstat`` of it) when it is a
    ``kind`` owned by this user that group and others cannot write; InsecurePathError
    saying what it is instead, with ``fix``. FileNotFoundError when it does not exist."""
    if st is None:
        st = os.lstat(path)
    mode = stat.S_IMODE(st.st_mode)
    if not _IS_KIND[kind](st.st_mode):
        what = "a symbolic link" if stat.S_ISLNK(st.st_mode) else f"not a {kind}"
        raise InsecurePathError(path, f"it is {what}, where nbcluster expects a {kind}", st.st_uid, mode, fix)
    if st.st_uid != os.geteuid():
        problem = f"another user owns it (you are uid {os.geteuid()})"
        raise InsecurePathError(path, problem, st.st_uid, mode, fix)
    if kind != LINK and st.st_mode & _WRITABLE_BY_OTHERS:
        raise InsecurePathError(path, "group or others can write it", st.st_uid, mode, fix)
    return st


def is_private(path: str | os.PathLike[str], kind: str = DIRECTORY) -> bool:
    """Whether ``path`` exists and passes :func:`check_private`."""
    try:
        check_private(path, kind)
    except (OSError, InsecurePathError):
        return False
    return True


def private_dir(path: str | os.PathLike[str], fix: str) -> Path | None:
    """``path``, a directory that is this user's alone; None when it does not exist.
    One of ours that group or others can write is tightened to 0700; one that is
    another user's, or a link, or not a directory raises InsecurePathError."""
    path = Path(path)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    if stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid() and st.st_mode & _WRITABLE_BY_OTHERS:
        os.chmod(path, 0o700)  # a directory (lstat), not a link: nothing to follow
        logger.warning("nbcluster: %s could be written by others (mode %04o); its mode is 0700 now",
                       path, stat.S_IMODE(st.st_mode))
        st = os.lstat(path)
    check_private(path, DIRECTORY, fix, st)
    return path


def make_private_dir(path: str | os.PathLike[str], fix: str) -> Path:
    """:func:`private_dir`, made first (mode 0700) when missing. Made by someone else
    between our look and our ``mkdir``, it is theirs: InsecurePathError."""
    path = Path(path)
    _mkdir(path)
    checked = private_dir(path, fix)
    if checked is None:
        raise FileNotFoundError(f"{path} was removed as it was made")
    return checked


def _mkdir(path: Path) -> None:
    """Make ``path`` 0700 unless something is there already (checked by the caller);
    missing parents are made as ``mkdir -p`` makes them."""
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            os.mkdir(path, 0o700)


def read_private(path: str | os.PathLike[str], fix: str = "") -> str:
    """The text of ``path``, a regular file of this user's that group and others
    cannot write; InsecurePathError otherwise (a link is not followed), OSError when
    it cannot be read."""
    with open(_open_private(path, os.O_RDONLY | os.O_NONBLOCK, fix), encoding="utf-8") as f:
        return f.read()


def touch_private(path: str | os.PathLike[str], fix: str = "") -> Path:
    """``path`` once it is a private regular file: made empty (0600) when missing, for
    a program that then opens it by name (SQLite); InsecurePathError otherwise."""
    os.close(_open_private(path, os.O_RDONLY | os.O_CREAT, fix))
    return Path(path)


def write_private(path: str | os.PathLike[str], text: str) -> None:
    """Replace ``path`` with ``text`` in one step (a temporary file renamed over it):
    a reader never sees half of it, and it is 0600 from the first byte."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = _open_private(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, check=False)
    try:
        os.fchmod(fd, 0o600)  # an old temp file of the same name may have had another mode
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)


def _open_private(path: str | os.PathLike[str], flags: int, fix: str = "", check: bool = True) -> int:
    """A descriptor of ``path`` opened with ``flags``, never through a link (that is
    InsecurePathError), and when ``check`` of a file that passes :func:`check_private`
    (its ``fstat``: what was checked is what is open). A file it makes is 0600
    whatever the umask."""
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            check_private(path, FILE, fix)  # a link: raises, naming its owner
        raise
    try:
        if check:
            check_private(path, FILE, fix, os.fstat(fd))
    except BaseException:
        os.close(fd)
        raise
    return fd


def private_entries(root: Path, pattern: str, fix: str, links: tuple[str, ...] = ()) -> list[Path]:
    """The directories in ``root`` matching ``pattern`` that are this user's alone,
    sorted by name. The links named in ``links`` are passed over; any other entry that
    is not private is skipped with a warning (:func:`warn_skipped`)."""
    found = []
    for path in sorted(root.glob(pattern)):
        if path.name in links:
            continue
        try:
            check_private(path, DIRECTORY, fix)
        except FileNotFoundError:  # gone meanwhile
            continue
        except InsecurePathError as exc:
            warn_skipped(exc)
            continue
        found.append(path)
    return found


_warned: set[str] = set()


def warn_skipped(exc: InsecurePathError) -> None:
    """Log, once a process for each path and problem, that a scan passed over a path
    that is not private."""
    if str(exc) not in _warned:
        _warned.add(str(exc))
        logger.warning("nbcluster: skipped %s: %s", exc.path, exc.detail)
