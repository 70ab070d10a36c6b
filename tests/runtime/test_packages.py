"""runtime_env packages: deterministic zips, safe unpacking of untrusted archives, the cache."""

from __future__ import annotations

import importlib
import io
import os
import pickle
import stat
import struct
import sys
import threading
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from nbcluster.exceptions import NbclusterError
from nbcluster.runtime.runtime_env.packages import (
    PREFIX,
    PackageError,
    check_archive,
    ensure_unpacked,
    package_uri,
    parse_uri,
    unpack,
    zip_directory,
)


def make_tree(root: Path, files: dict[str, str | bytes]) -> Path:
    for rel, content in files.items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            content = content.encode()
        target.write_bytes(content)
    return root


def snapshot(root: Path) -> set[str]:
    """Every path under ``root`` (links not followed)."""
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def tree_contents(root: Path) -> dict[str, bytes | None]:
    return {
        p.relative_to(root).as_posix(): (p.read_bytes() if p.is_file() else None) for p in root.rglob("*")
    }


def crafted(*entries: tuple[str, bytes, int | None]) -> bytes:
    """A zip holding ``(name, data, unix mode or None)`` entries, written as given."""
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about duplicate names
        with zipfile.ZipFile(buf, "w") as zf:
            for name, data, mode in entries:
                info = zipfile.ZipInfo(name)
                info.create_system = 3
                if mode is not None:
                    info.external_attr = mode << 16
                zf.writestr(info, data)
    return buf.getvalue()


SAMPLE = {"a.py": "A = 1\n", "sub/b.txt": "bee\n", "sub/deeper/c.bin": b"\x00\x01" * 100}


# -- URIs ------------------------------------------------------------------------------


def test_package_uri_is_content_addressed_and_parses() -> None:
    uri = package_uri(b"one")
    assert uri == package_uri(b"one")
    assert uri != package_uri(b"two")
    protocol, name = parse_uri(uri)
    assert protocol == "gcs"
    assert uri == f"gcs://{name}"
    assert name.startswith(PREFIX) and name.endswith(".zip")
    assert len(name) == len(PREFIX) + 32 + len(".zip")


@pytest.mark.parametrize(
    "uri",
    [
        "",
        "s3://_nbcluster_pkg_" + "0" * 32 + ".zip",
        "gcs://_ray_pkg_" + "0" * 32 + ".zip",
        "gcs://_nbcluster_pkg_" + "0" * 31 + ".zip",
        "gcs://_nbcluster_pkg_" + "G" * 32 + ".zip",
        "gcs://_nbcluster_pkg_../../" + "0" * 26 + ".zip",
        "gcs://_nbcluster_pkg_" + "0" * 32 + ".zip/x",
        "gcs:/_nbcluster_pkg_" + "0" * 32 + ".zip",
    ],
)
def test_parse_uri_rejects_anything_else(uri: str) -> None:
    with pytest.raises(PackageError, match="not a package URI") as info:
        parse_uri(uri)
    assert info.value.entry == uri


def test_package_error_is_in_the_hierarchy_and_pickles() -> None:
    err = PackageError("bad entry 'x'", entry="x")
    assert isinstance(err, NbclusterError) and isinstance(err, ValueError)
    back = pickle.loads(pickle.dumps(err))
    assert (type(back), str(back), back.entry) == (PackageError, "bad entry 'x'", "x")


# -- zipping ---------------------------------------------------------------------------


def test_zip_is_deterministic(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "src", {**SAMPLE, "b/x.txt": "x", "c.txt": "c"})  # walk order != sorted
    (root / "empty").mkdir()
    first = zip_directory(root)
    assert zip_directory(root) == first
    for p in [root, *root.rglob("*")]:
        os.utime(p, (1_700_000_000, 1_700_000_000))
    (root / "sub" / "b.txt").chmod(0o600)  # non-executable permission changes do not count
    again = zip_directory(root)
    assert again == first and package_uri(again) == package_uri(first)

    with zipfile.ZipFile(io.BytesIO(first)) as zf:
        infos = zf.infolist()
    names = [i.filename for i in infos]
    assert names == sorted(names)
    assert set(names) == {
        "a.py", "b/", "b/x.txt", "c.txt", "empty/", "sub/", "sub/b.txt", "sub/deeper/", "sub/deeper/c.bin"
    }
    assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}
    modes = {i.filename: stat.S_IMODE(i.external_attr >> 16) for i in infos}
    assert modes["a.py"] == 0o644 and modes["sub/b.txt"] == 0o644 and modes["sub/"] == 0o755

    (root / "a.py").write_text("A = 2\n")
    assert package_uri(zip_directory(root)) != package_uri(first)


def test_excludes(tmp_path: Path) -> None:
    root = make_tree(
        tmp_path / "src",
        {
            "keep.py": "",
            "sub/keep.txt": "",
            ".git/HEAD": "ref",
            "__pycache__/m.cpython-311.pyc": "",
            "sub/stale.pyc": "",
            "node_modules/x/index.js": "",
            ".venv/bin/python": "",
            "data/raw/big.csv": "1,2",
            "data/small.csv": "1",
        },
    )
    os.symlink("/usr/bin/python3", root / ".venv" / "bin" / "python3")  # excluded: not refused
    default = zipfile.ZipFile(io.BytesIO(zip_directory(root))).namelist()
    assert sorted(default) == [
        "data/",
        "data/raw/",
        "data/raw/big.csv",
        "data/small.csv",
        "keep.py",
        "sub/",
        "sub/keep.txt",
    ]
    custom = zipfile.ZipFile(io.BytesIO(zip_directory(root, excludes=[".*", "*.pyc", "data/raw", "x"])))
    names = custom.namelist()
    assert "data/small.csv" in names and "node_modules/" in names and "__pycache__/" in names
    assert not any(n.startswith(("data/raw", ".git", ".venv")) or n.endswith(".pyc") for n in names)


def test_include_parent_makes_an_importable_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pkg = f"nbc_pkgtest_{os.getpid()}"
    make_tree(tmp_path / "src" / pkg, {"__init__.py": "", "sub.py": "VALUE = 42\n"})
    data = zip_directory(tmp_path / "src" / pkg, include_parent=True)
    names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    assert names and all(n.startswith(f"{pkg}/") for n in names)

    dest = unpack(data, tmp_path / "cache" / "pkg")
    monkeypatch.syspath_prepend(str(dest))
    try:
        assert importlib.import_module(f"{pkg}.sub").VALUE == 42
    finally:
        for name in [m for m in sys.modules if m == pkg or m.startswith(pkg + ".")]:
            del sys.modules[name]


def test_single_py_file_and_other_files(tmp_path: Path) -> None:
    make_tree(tmp_path, {"mod.py": "X = 1\n", "notes.txt": "hi"})
    data = zip_directory(tmp_path / "mod.py", include_parent=True)
    assert zipfile.ZipFile(io.BytesIO(data)).namelist() == ["mod.py"]
    assert (unpack(data, tmp_path / "out") / "mod.py").read_text() == "X = 1\n"
    with pytest.raises(PackageError, match="notes.txt"):
        zip_directory(tmp_path / "notes.txt")
    with pytest.raises(PackageError, match="missing"):
        zip_directory(tmp_path / "missing")


def test_round_trip_and_modes(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "src", {**SAMPLE, "run.sh": "#!/bin/sh\necho hi\n", "secret": "s"})
    (root / "empty").mkdir()
    (root / "run.sh").chmod(0o700)
    (root / "secret").chmod(0o600)
    data = zip_directory(root)
    modes = {i.filename: i.external_attr >> 16 for i in zipfile.ZipFile(io.BytesIO(data)).infolist()}
    assert modes["run.sh"] == stat.S_IFREG | 0o755 and modes["secret"] == stat.S_IFREG | 0o644

    dest = unpack(data, tmp_path / "out")
    assert tree_contents(dest) == tree_contents(root)
    assert stat.S_IMODE((dest / "run.sh").stat().st_mode) == 0o755
    assert stat.S_IMODE((dest / "secret").stat().st_mode) == 0o644
    assert stat.S_IMODE((dest / "a.py").stat().st_mode) == 0o644
    assert stat.S_IMODE((dest / "sub").stat().st_mode) == 0o755
    assert stat.S_IMODE(dest.stat().st_mode) == 0o755


def test_symlink_in_source_is_refused(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "src", SAMPLE)
    os.symlink(root / "a.py", root / "sub" / "alias.py")
    with pytest.raises(PackageError, match=r"alias\.py.*symlink.*copy") as info:
        zip_directory(root)
    assert info.value.entry.endswith("alias.py")


def test_fifo_in_source_is_refused(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "src", SAMPLE)
    os.mkfifo(root / "pipe")
    with pytest.raises(PackageError, match="pipe.*not a regular file"):
        zip_directory(root)


def test_zipped_size_cap(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "src", {"small.py": "", "big.bin": os.urandom(200_000)})
    with pytest.raises(PackageError, match=r"cap of 100,000 bytes.*big\.bin.*[Ee]xclude"):
        zip_directory(root, max_bytes=100_000)
    data = zip_directory(root)
    with pytest.raises(PackageError, match="over the cap of 100,000"):
        check_archive(data, max_bytes=100_000)


# -- untrusted archives ----------------------------------------------------------------


def _with_nul_name() -> bytes:
    data = crafted(("aXb.txt", b"x", None))
    return data.replace(b"aXb.txt", b"a\x00b.txt")


def _lying_size() -> bytes:
    """An entry that declares 10 bytes but inflates to 5 MB."""
    data = bytearray(crafted(("bomb.bin", b"\x00" * 5_000_000, None)))
    local, central = data.find(b"PK\x03\x04"), data.find(b"PK\x01\x02")
    struct.pack_into("<I", data, local + 22, 10)
    struct.pack_into("<I", data, central + 24, 10)
    return bytes(data)


def _encrypted() -> bytes:
    data = bytearray(crafted(("secret.txt", b"x", None)))
    for sig, off in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        pos = data.find(sig) + off
        struct.pack_into("<H", data, pos, struct.unpack_from("<H", data, pos)[0] | 1)
    return bytes(data)


def _bad_crc() -> bytes:
    """A valid directory but corrupt compressed data: found only while extracting."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("first.txt", b"fine")
        zf.writestr("payload.txt", b"A" * 1000)
    return buf.getvalue().replace(b"A" * 1000, b"A" * 500 + b"B" * 500)


EVIL: dict[str, tuple[Callable[[Path], bytes], str, dict[str, int]]] = {
    "dotdot": (lambda t: crafted(("ok.txt", b"", None), ("../evil", b"x", None)), "../evil", {}),
    "absolute": (lambda t: crafted((str(t / "abs_target"), b"x", None)), "abs_target.*absolute", {}),
    "nested-dotdot": (lambda t: crafted(("a/../../b", b"x", None)), "a/../../b", {}),
    "backslash": (lambda t: crafted(("a\\..\\..\\b", b"x", None)), "a.*backslash", {}),
    "drive": (lambda t: crafted(("C:/windows/x", b"x", None)), "C:/windows/x", {}),
    "empty-component": (lambda t: crafted(("a//b", b"x", None)), "a//b", {}),
    "nul": (lambda t: _with_nul_name(), r"a\\x00b\.txt.*NUL", {}),
    "symlink": (lambda t: crafted(("link", b"/etc/passwd", stat.S_IFLNK | 0o777)), "link.*symlink", {}),
    "device": (lambda t: crafted(("dev", b"", stat.S_IFCHR | 0o644)), "dev.*device", {}),
    "fifo": (lambda t: crafted(("fifo", b"", stat.S_IFIFO | 0o644)), "fifo.*FIFO", {}),
    "duplicate": (lambda t: crafted(("x.txt", b"1", None), ("x.txt", b"2", None)), "x.txt.*twice", {}),
    "file-as-dir": (lambda t: crafted(("a", b"1", None), ("a/b", b"2", None)), "a/b", {}),
    "dir-as-file": (lambda t: crafted(("a/b", b"1", None), ("a", b"2", None)), "'a'.*both file and dir", {}),
    "too-many": (
        lambda t: crafted(*((f"f{i:02d}", b"", None) for i in range(12))),
        "12 entries.*f10",
        {"max_entries": 10},
    ),
    "bomb": (
        lambda t: _deflated("zeros.bin", 20_000_000),
        "zeros.bin.*20,000,000.*cap of 10,000,000",
        {"max_unpacked": 10_000_000},
    ),
    "lying-size": (lambda t: _lying_size(), "bomb.bin", {}),
    "encrypted": (lambda t: _encrypted(), "secret.txt.*encrypted", {}),
    "bad-crc": (lambda t: _bad_crc(), "payload.txt.*corrupt", {}),
    "not-a-zip": (lambda t: b"this is not a zip file", "not a valid zip", {}),
    "truncated": (lambda t: zip_directory(make_tree(t / "src", SAMPLE))[:-30], "not a valid zip", {}),
}


def _deflated(name: str, size: int) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf, zf.open(name, "w") as dst:
        for _ in range(size // 1_000_000):
            dst.write(bytes(1_000_000))
    assert len(buf.getvalue()) < 100_000
    return buf.getvalue()


@pytest.mark.parametrize("case", list(EVIL))
def test_bad_archive_is_refused_and_nothing_is_written(tmp_path: Path, case: str) -> None:
    build, pattern, limits = EVIL[case]
    data = build(tmp_path)
    cache = tmp_path / "cache"
    cache.mkdir()
    before = snapshot(tmp_path)
    with pytest.raises(PackageError, match=pattern):
        unpack(data, cache / "pkg", **limits)
    assert not (cache / "pkg").exists()
    assert snapshot(tmp_path) == before  # no temp dir left, nothing outside
    if case not in ("bad-crc", "lying-size"):  # these are found only by decompressing
        with pytest.raises(PackageError, match=pattern):
            check_archive(data, **limits)


def test_archives_zipped_elsewhere_are_accepted(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:  # no dir entries, DOS attributes
        info = zipfile.ZipInfo("pkg/mod.py")
        info.create_system = 0
        zf.writestr(info, "X = 1\n")
        zf.writestr("pkg/", b"")
    dest = unpack(buf.getvalue(), tmp_path / "out")
    assert (dest / "pkg" / "mod.py").read_text() == "X = 1\n"


# -- unpacking and the cache -----------------------------------------------------------


def test_unpack_is_idempotent(tmp_path: Path) -> None:
    data = zip_directory(make_tree(tmp_path / "src", SAMPLE))
    dest = unpack(data, tmp_path / "out")
    (dest / "marker").write_text("kept")
    assert unpack(data, dest) == dest
    assert (dest / "marker").read_text() == "kept"
    assert sorted(p.name for p in (tmp_path / "out").parent.iterdir()) == ["out", "src"]


def test_concurrent_unpack_of_one_package(tmp_path: Path) -> None:
    files = {f"d{i % 10}/f{i}.txt": f"{i}\n" * 50 for i in range(300)}
    src = make_tree(tmp_path / "src", files)
    data = zip_directory(src)
    cache = tmp_path / "cache"
    dest = cache / "pkg"
    barrier = threading.Barrier(4)
    results: list[Path] = []
    errors: list[BaseException] = []

    def worker() -> None:
        barrier.wait()
        try:
            results.append(unpack(data, dest))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert results == [dest] * 4
    assert [p.name for p in cache.iterdir()] == ["pkg"]  # no leftover temp dirs
    assert tree_contents(dest) == tree_contents(src)


def test_ensure_unpacked_fetches_once(tmp_path: Path) -> None:
    data = zip_directory(make_tree(tmp_path / "src", SAMPLE))
    uri = package_uri(data)
    calls: list[str] = []

    def fetch(u: str) -> bytes:
        calls.append(u)
        return data

    dest = ensure_unpacked(uri, tmp_path / "cache", fetch)
    assert dest == tmp_path / "cache" / parse_uri(uri)[1].removesuffix(".zip")
    assert (dest / "sub" / "b.txt").read_text() == "bee\n"
    assert ensure_unpacked(uri, tmp_path / "cache", fetch) == dest
    assert calls == [uri]


def test_ensure_unpacked_refuses_a_mismatched_payload(tmp_path: Path) -> None:
    data = zip_directory(make_tree(tmp_path / "src", SAMPLE))
    other = zip_directory(make_tree(tmp_path / "other", {"x.py": ""}))
    uri = package_uri(data)
    with pytest.raises(PackageError, match="content does not match its URI") as info:
        ensure_unpacked(uri, tmp_path / "cache", lambda u: other)
    assert info.value.entry == uri
    assert not (tmp_path / "cache").exists() or list((tmp_path / "cache").iterdir()) == []

    def never(u: str) -> bytes:
        raise AssertionError("fetch called for a bad URI")

    with pytest.raises(PackageError, match="not a package URI"):
        ensure_unpacked("gcs://../../etc.zip", tmp_path / "cache", never)
