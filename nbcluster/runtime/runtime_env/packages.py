"""runtime_env packages (``working_dir``, ``py_modules``) as content-addressed zips.

The driver zips a tree with :func:`zip_directory` (deterministic: same tree, same bytes)
and names it :func:`package_uri` (``gcs://_nbcluster_pkg_<sha256[:32]>.zip``, like Ray's
``_ray_pkg_``); a node turns the URI into a directory with :func:`ensure_unpacked`.
Archives are untrusted: :func:`check_archive` refuses traversal, links, special files,
duplicates and zip bombs before anything is written, and :func:`unpack` extracts into a
temporary directory renamed into place atomically, so concurrent unpackers agree.
"""

from __future__ import annotations

import errno
import fnmatch
import hashlib
import io
import os
import re
import shutil
import stat
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from nbcluster.exceptions import NbclusterError

__all__ = [
    "DEFAULT_EXCLUDES", "DEFAULT_MAX_BYTES", "DEFAULT_MAX_ENTRIES", "DEFAULT_MAX_UNPACKED_BYTES", "PREFIX",
    "PROTOCOL", "PackageError", "check_archive", "ensure_unpacked", "package_uri", "parse_uri", "unpack",
    "zip_directory",
]

PROTOCOL = "gcs"
PREFIX = "_nbcluster_pkg_"
DEFAULT_MAX_BYTES = 100 * 1024 * 1024
DEFAULT_MAX_ENTRIES = 20_000
DEFAULT_MAX_UNPACKED_BYTES = 1024 * 1024 * 1024
DEFAULT_EXCLUDES = (".git", "__pycache__", "*.pyc", ".ipynb_checkpoints", ".venv", "node_modules")

_NAME_RE = re.compile(re.escape(PREFIX) + r"[0-9a-f]{32}\.zip")
_DATE = (1980, 1, 1, 0, 0, 0)
_UNIX = 3  # ZipInfo.create_system for Unix
_CHUNK = 1024 * 1024
_KINDS = {stat.S_IFLNK: "a symlink", stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device",
          stat.S_IFIFO: "a FIFO", stat.S_IFSOCK: "a socket"}


class PackageError(NbclusterError, ValueError):
    """A package (a tree to zip, an archive or a URI) is unusable; the message says how to fix it.

    ``entry`` names the offending file, archive entry or URI (``""``: the package as a whole).
    """

    def __init__(self, message: str, entry: str = "") -> None:
        self.entry = entry
        super().__init__(message)

    def __reduce__(self) -> Any:
        return (type(self), (str(self), self.entry))


def package_uri(data: bytes) -> str:
    """The content-addressed URI of a zipped package: ``gcs://_nbcluster_pkg_<hash>.zip``."""
    return f"{PROTOCOL}://{PREFIX}{hashlib.sha256(data).hexdigest()[:32]}.zip"


def parse_uri(uri: str) -> tuple[str, str]:
    """Split a package URI into ``(protocol, name)``; :class:`PackageError` if it is not one."""
    protocol, sep, name = uri.partition("://") if isinstance(uri, str) else ("", "", "")
    if not sep or protocol != PROTOCOL or not _NAME_RE.fullmatch(name):
        raise PackageError(
            f"{uri!r} is not a package URI; expected '{PROTOCOL}://{PREFIX}<32 hex digits>.zip' "
            "as returned by package_uri()", entry=str(uri))
    return protocol, name


def zip_directory(path: str | os.PathLike[str], *, excludes: Sequence[str] = DEFAULT_EXCLUDES,
                  include_parent: bool = False, max_bytes: int = DEFAULT_MAX_BYTES) -> bytes:
    """Zip a directory (or one ``.py`` file) deterministically: the same tree gives the same bytes.

    Entries are sorted, dated 1980-01-01, mode 0o755 (directories, executables) or 0o644.
    ``excludes`` are fnmatch patterns for any path component or the relative path (``"*.csv"``,
    ``"data/raw"``). ``include_parent`` puts the tree under its name, as ``py_modules`` needs
    (``mypkg/`` zips as ``mypkg/...``). Symlinks and special files are refused.
    """
    root = Path(path)
    try:
        st = root.stat()
    except OSError as exc:
        raise PackageError(f"cannot read package source {str(root)!r}: {exc.strerror}", str(root)) from exc
    top = root.name if root.name not in ("", "..") else root.resolve().name
    if stat.S_ISREG(st.st_mode):
        if root.suffix != ".py":
            raise PackageError(f"{str(root)!r} is a file; pass a directory, or a single .py module",
                               str(root))
        members = [(top, root, st)]
    elif stat.S_ISDIR(st.st_mode):
        members = _walk(root, top if include_parent else "", tuple(excludes))
    else:
        raise PackageError(f"{str(root)!r} is not a directory or a .py file", str(root))
    members.sort(key=lambda m: m[0])

    buf = io.BytesIO()
    largest: list[tuple[int, str]] = []
    with zipfile.ZipFile(buf, "w") as zf:
        for arcname, source, st in members:
            if why := _bad_name(arcname, arcname):
                raise PackageError(f"cannot package {str(source)!r}: its name {why}; rename or exclude it",
                                   str(source))
            is_dir = stat.S_ISDIR(st.st_mode)
            info = zipfile.ZipInfo(arcname + "/" if is_dir else arcname, _DATE)
            info.create_system = _UNIX
            mode = 0o755 if is_dir or st.st_mode & stat.S_IXUSR else 0o644
            info.external_attr = ((stat.S_IFDIR if is_dir else stat.S_IFREG) | mode) << 16 | (0x10 * is_dir)
            if is_dir:  # 0x10 above: the MS-DOS directory flag
                zf.writestr(info, b"")
                continue
            info.compress_type = zipfile.ZIP_DEFLATED
            info.file_size = st.st_size  # lets zipfile pick zip64 up front for huge files
            with open(source, "rb") as src, zf.open(info, "w") as dst:
                shutil.copyfileobj(src, dst, _CHUNK)
            largest = sorted([*largest, (st.st_size, arcname)], reverse=True)[:3]
            if buf.tell() > max_bytes:
                break
    if buf.tell() > max_bytes:
        biggest = ", ".join(f"{name} ({n:,} bytes)" for n, name in largest)
        raise PackageError(
            f"package {str(root)!r} zips to over the cap of {max_bytes:,} bytes ({buf.tell():,} bytes "
            f"when stopped; largest files: {biggest}). Exclude large files (excludes=[...])",
            str(root))
    return buf.getvalue()


def _walk(root: Path, prefix: str, excludes: tuple[str, ...]) -> list[tuple[str, Path, os.stat_result]]:
    """``(arcname, path, lstat)`` of every kept directory and file under ``root``."""
    out: list[tuple[str, Path, os.stat_result]] = []
    if prefix:
        out.append((prefix, root, root.stat()))
    pending = [(root, "")]
    while pending:
        directory, rel_dir = pending.pop()
        with os.scandir(directory) as it:
            entries = sorted(it, key=lambda e: e.name)
        for entry in entries:
            rel = f"{rel_dir}{entry.name}"
            if any(fnmatch.fnmatchcase(entry.name, p) or fnmatch.fnmatchcase(rel, p) for p in excludes):
                continue
            st = entry.stat(follow_symlinks=False)
            arcname = f"{prefix}/{rel}" if prefix else rel
            if stat.S_ISLNK(st.st_mode):
                raise PackageError(
                    f"{entry.path!r} is a symlink; packages cannot hold links. Replace it with a "
                    "copy of its target, or exclude it (excludes=[...])", entry.path)
            if stat.S_ISDIR(st.st_mode):
                pending.append((Path(entry.path), rel + "/"))
            elif not stat.S_ISREG(st.st_mode):
                raise PackageError(f"{entry.path!r} is not a regular file or directory; exclude it "
                                   "(excludes=[...])", entry.path)
            out.append((arcname, Path(entry.path), st))
    return out


def _bad_name(name: str, raw: str) -> str:
    """Why an archive entry name is unsafe to extract (``""`` when it is fine)."""
    parts = name.rstrip("/").split("/")
    if "\x00" in raw:
        return "contains a NUL byte"
    if "\\" in name:
        return "contains a backslash"
    if name.startswith("/") or re.match(r"[A-Za-z]:", name):
        return "is an absolute path"
    if ".." in parts:
        return "has a '..' component"
    if any(p in ("", ".") for p in parts):
        return "has an empty or '.' component"
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid UTF-8"
    return ""


def check_archive(data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES, max_entries: int = DEFAULT_MAX_ENTRIES,
                  max_unpacked: int = DEFAULT_MAX_UNPACKED_BYTES) -> None:
    """Validate an untrusted archive, writing nothing; the error names the offending entry.

    Refuses corrupt data; more than ``max_bytes`` zipped, ``max_entries`` entries or
    ``max_unpacked`` bytes unzipped (zip bombs); absolute names, ``..``, empty components,
    backslashes, NUL bytes; links, devices, FIFOs, sockets; encrypted and duplicate entries.
    """
    if len(data) > max_bytes:
        raise PackageError(f"package archive is {len(data):,} bytes, over the cap of {max_bytes:,}; "
                           "exclude large files when zipping it")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError) as exc:
        raise PackageError(f"package archive is not a valid zip file ({exc}); re-upload it") from exc
    if len(infos) > max_entries:
        raise PackageError(
            f"package archive has {len(infos):,} entries, over the cap of {max_entries:,} (first entry "
            f"past the cap: {infos[max_entries].orig_filename!r}); exclude files when zipping it",
            infos[max_entries].orig_filename)
    total = 0
    seen: set[str] = set()  # every entry
    files: set[str] = set()
    dirs: set[str] = set()  # explicit and implied
    for info in infos:
        raw = info.orig_filename
        if why := _bad_name(info.filename, raw):
            raise PackageError(f"package entry {raw!r} {why}; entries must be relative paths inside the "
                               "package. Rebuild the package with zip_directory()", raw)
        parts = info.filename.rstrip("/").split("/")
        kind = stat.S_IFMT(info.external_attr >> 16) if info.create_system == _UNIX else 0
        if kind in _KINDS:
            raise PackageError(f"package entry {raw!r} is {_KINDS[kind]}; packages may hold only "
                               "regular files and directories (replace links with copies)", raw)
        if kind and kind != (stat.S_IFDIR if info.is_dir() else stat.S_IFREG):
            raise PackageError(f"package entry {raw!r}: its file type does not match its name", raw)
        if info.flag_bits & 0x1:
            raise PackageError(f"package entry {raw!r} is encrypted; zip it without a password", raw)
        total += info.file_size
        if total > max_unpacked:
            raise PackageError(
                f"package entry {raw!r} brings the unpacked size to {total:,} bytes, over the cap of "
                f"{max_unpacked:,} bytes; exclude large files when zipping it", raw)
        key = "/".join(parts)
        if key in seen or (key in dirs and not info.is_dir()):
            raise PackageError(f"package entry {raw!r} appears twice (or as both file and directory); "
                               "rebuild the package with zip_directory()", raw)
        seen.add(key)
        (dirs if info.is_dir() else files).add(key)
        for i in range(1, len(parts)):
            parent = "/".join(parts[:i])
            if parent in files:
                raise PackageError(f"package entry {raw!r} is inside {parent!r}, which is a file", raw)
            dirs.add(parent)


def unpack(data: bytes, dest: str | os.PathLike[str], *, max_bytes: int = DEFAULT_MAX_BYTES,
           max_entries: int = DEFAULT_MAX_ENTRIES, max_unpacked: int = DEFAULT_MAX_UNPACKED_BYTES) -> Path:
    """Extract an archive to ``dest`` atomically and race-safely; returns ``dest``.

    After :func:`check_archive` (with these limits), files (0o644, or 0o755 if executable)
    go into a fresh temporary directory next to ``dest``, renamed to ``dest`` at the end; if
    ``dest`` exists (another process won) it is returned as is. Nothing is written elsewhere;
    the temporary directory is removed on any error.
    """
    dest = Path(dest)
    check_archive(data, max_bytes=max_bytes, max_entries=max_entries, max_unpacked=max_unpacked)
    if dest.is_dir():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=dest.parent))
    try:
        _extract(data, tmp, max_unpacked)
        os.chmod(tmp, 0o755)
        try:
            os.rename(tmp, dest)
        except OSError as exc:
            if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY) or not dest.is_dir():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def _extract(data: bytes, tmp: Path, max_unpacked: int) -> None:
    """Write every entry of a checked archive under ``tmp``; never follows a link."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    written = 0
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        for info in zf.infolist():
            parts = info.filename.rstrip("/").split("/")
            for i in range(1, len(parts) + info.is_dir()):
                _mkdir(tmp.joinpath(*parts[:i]))
            if info.is_dir():
                continue
            exe = info.create_system == _UNIX and info.external_attr >> 16 & stat.S_IXUSR
            mode = 0o755 if exe else 0o644
            fd = os.open(tmp.joinpath(*parts), flags, mode)
            with os.fdopen(fd, "wb") as dst:
                if hasattr(os, "fchmod"):
                    os.fchmod(fd, mode)
                try:
                    with zf.open(info) as src:
                        while chunk := src.read(_CHUNK):
                            written += len(chunk)
                            if written > max_unpacked:
                                raise PackageError(f"package entry {info.filename!r} unpacks past the "
                                                   f"cap of {max_unpacked:,} bytes", info.filename)
                            dst.write(chunk)
                except (zipfile.BadZipFile, EOFError, zlib.error, NotImplementedError) as exc:
                    raise PackageError(f"package entry {info.filename!r} is corrupt ({exc}); "
                                       "re-upload the package", info.filename) from exc


def _mkdir(path: Path) -> None:
    """Make one directory (mode 0o755) unless it exists as a real directory (not a link)."""
    if not (path.exists() and stat.S_ISDIR(os.lstat(path).st_mode)):
        os.mkdir(path)
        os.chmod(path, 0o755)


def ensure_unpacked(uri: str, cache_dir: str | os.PathLike[str], fetch: Callable[[str], bytes]) -> Path:
    """The directory holding package ``uri``, fetching and unpacking it on first use.

    ``dest`` is ``cache_dir/<name without .zip>``; when it exists ``fetch`` is not
    called. The fetched bytes must hash to ``uri`` (:class:`PackageError` otherwise).
    """
    _, name = parse_uri(uri)
    dest = Path(cache_dir) / name.removesuffix(".zip")
    if dest.is_dir():
        return dest
    data = fetch(uri)
    if package_uri(data) != uri:
        raise PackageError(f"package content does not match its URI {uri!r} (got {package_uri(data)!r}); "
                           "the upload was corrupted or the wrong bytes were stored, upload it again", uri)
    return unpack(data, dest)
