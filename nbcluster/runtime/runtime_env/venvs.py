"""A node's cached virtual environments for ``runtime_env`` ``pip``/``uv`` packages.

One environment per :class:`~.pip_spec.PipSpec`, named by its hash, under the node's
session directory (``runtime_resources/pip/<hash>/``: ``nbcluster stop`` removes it with
the session). It is made with ``--system-site-packages`` over the interpreter the
workers run, so nbcluster and everything installed on the node stay importable, and
workers put its site-packages first on ``sys.path``.

Concurrency and reuse, all with ``flock`` (so across the node's processes):

- ``<hash>.lock`` is held while an environment is built, checked or removed: the
  first worker builds it, the others wait and then reuse it. A build that failed
  leaves ``<hash>.failed`` (the installer's last lines): the workers that were waiting
  for that build fail with it rather than building again; later ones try afresh.
- a worker using an environment holds a shared lock on its ``.ready`` file for life
  (the kernel drops it when the process ends), and touches it (its last use).
- after each build, unused environments (no shared lock) idle longer than
  ``idle_timeout_s``, or beyond the newest ``cache_size``, are removed (as Ray's URI
  cache does when it adds one).

The installer: ``uv`` when the spec asks for it (missing: :class:`RuntimeEnvSetupError`
saying to install it or use ``pip``); for ``pip``, uv when it is on ``PATH`` (faster),
else ``python -m pip``.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import subprocess
import sys
import sysconfig
import time
from dataclasses import dataclass
from pathlib import Path

from nbcluster.exceptions import RuntimeEnvSetupError
from nbcluster.runtime.runtime_env.pip_spec import PipSpec

__all__ = ["BUILD_LOG", "CACHE_DIR", "Venv", "collect", "ensure_venv"]

logger = logging.getLogger(__name__)

#: Under the session directory: the cached environments.
CACHE_DIR = Path("runtime_resources") / "pip"
_READY = ".ready"
#: In the cache directory: a line per environment built.
BUILD_LOG = "builds.log"
_TAIL_LINES = 20
#: The open ``.ready`` files of the environments this process uses (their shared locks).
_HELD: dict[Path, int] = {}


@dataclass(frozen=True)
class Venv:
    """A ready environment: its directory, site-packages, and whether this call built it."""

    path: Path
    site_packages: Path
    built: bool
    seconds: float


def ensure_venv(session_dir: Path, spec: PipSpec, *, timeout: float | None, cache_size: int = 10,
                idle_timeout_s: float = 600.0) -> Venv:
    """The node's environment for ``spec``, built on first use (once: concurrent callers
    wait for the builder); held in use by this process from now on. Raises
    :class:`RuntimeEnvSetupError` with the installer's message when it cannot be built,
    or when it is not ready within ``timeout`` seconds (None: no limit)."""
    start = time.monotonic()
    deadline = None if timeout is None else start + timeout
    root = session_dir / CACHE_DIR
    root.mkdir(parents=True, exist_ok=True)
    path = root / spec.hash
    with _locked(root / f"{spec.hash}.lock", deadline, spec):
        built = False
        if not (path / _READY).exists():
            failed = root / f"{spec.hash}.failed"
            if failed.exists() and failed.stat().st_mtime >= _wall(start):
                raise RuntimeEnvSetupError(failed.read_text())  # the build we waited for failed
            try:
                _build(path, spec, deadline)
            except RuntimeEnvSetupError as exc:
                failed.write_text(str(exc))
                raise
            failed.unlink(missing_ok=True)
            built = True
        _hold(path / _READY)
    venv = Venv(path, site_packages(path), built, time.monotonic() - start)
    if built:
        collect(root, cache_size=cache_size, idle_timeout_s=idle_timeout_s)
    return venv


def site_packages(path: Path) -> Path:
    """The site-packages directory of the environment at ``path``."""
    return Path(sysconfig.get_path("purelib", vars={"base": str(path), "platbase": str(path)}))


def collect(root: Path, *, cache_size: int, idle_timeout_s: float) -> list[Path]:
    """Remove unused environments idle longer than ``idle_timeout_s`` or beyond the
    newest ``cache_size``; returns those removed. One in use (a process holds its
    shared lock) or being built is never removed."""
    ready = sorted(((_mtime(p), p) for p in root.glob(f"*/{_READY}")), reverse=True)
    removed = []
    now = time.time()
    for rank, (mtime, marker) in enumerate(ready):
        if rank < cache_size and now - mtime <= idle_timeout_s:
            continue
        env = marker.parent
        if _try_remove(root / f"{env.name}.lock", marker):
            removed.append(env)
    if removed:
        logger.info("removed unused runtime_env environments %s", ", ".join(p.name for p in removed))
    return removed


# -- building ------------------------------------------------------------------
def _build(path: Path, spec: PipSpec, deadline: float | None) -> None:
    """Make the environment at ``path`` (removing a partial one first)."""
    shutil.rmtree(path, ignore_errors=True)
    uv = shutil.which("uv")
    if spec.installer == "uv" and uv is None:
        raise RuntimeEnvSetupError("runtime_env 'uv' needs uv on the node's PATH, and it is not there; install "
                                   "uv on the node (pip install uv) or ask for the same packages with 'pip'")
    python = path / "bin" / "python"
    start = time.monotonic()
    if uv is not None:
        _run([uv, "venv", "--quiet", "--system-site-packages", "--python", sys.executable, str(path)],
             "creating the virtualenv", deadline)
        install = [uv, "pip", "install", "--python", str(python)]
        check = [uv, "pip", "check", "--python", str(python)]
    else:
        _run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(path)],
             "creating the virtualenv", deadline)
        install = [sys.executable, "-m", "pip", "--python", str(python), "install", "--disable-pip-version-check"]
        check = [sys.executable, "-m", "pip", "--python", str(python), "check"]
    try:
        _run([*install, *spec.install_options, *spec.packages], "installing " + " ".join(spec.packages), deadline)
        if spec.check:
            _run(check, "checking the installed packages", deadline)
    except RuntimeEnvSetupError:
        shutil.rmtree(path, ignore_errors=True)
        raise
    seconds = time.monotonic() - start
    line = f"{path.name} {spec.installer} via {'uv' if uv else 'pip'} in {seconds:.2f}s: {' '.join(spec.packages)}\n"
    (path / _READY).write_text(line)
    with open(path.parent / BUILD_LOG, "a") as log:  # one line per build, for operators (and tests)
        log.write(line)
    logger.info("built runtime_env environment %s (%s) in %.2fs", path.name, ", ".join(spec.packages), seconds)


def _run(cmd: list[str], what: str, deadline: float | None) -> None:
    timeout = None if deadline is None else max(0.1, deadline - time.monotonic())
    try:
        proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise RuntimeEnvSetupError(f"runtime_env setup timed out while {what} (raise config="
                                   "{'setup_timeout_seconds': ...} for slow installs)") from None
    if proc.returncode != 0:
        lines = (proc.stderr.strip() or proc.stdout.strip()).splitlines()[-_TAIL_LINES:]
        raise RuntimeEnvSetupError(f"runtime_env setup failed while {what} (exit code {proc.returncode}):\n"
                                   + "\n".join(lines))


# -- locks ---------------------------------------------------------------------
class _locked:
    """An exclusive ``flock`` on ``path``, waited for until ``deadline``."""

    def __init__(self, path: Path, deadline: float | None, spec: PipSpec) -> None:
        self.path, self.deadline, self.spec = path, deadline, spec
        self.fd = -1

    def __enter__(self) -> None:
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if self.deadline is not None and time.monotonic() > self.deadline:
                    os.close(self.fd)
                    raise RuntimeEnvSetupError(
                        f"runtime_env setup timed out waiting for another process to build the environment "
                        f"for {', '.join(self.spec.packages)}") from None
                time.sleep(0.05)

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)  # closing releases the lock


def _hold(marker: Path) -> None:
    """Hold a shared lock on an environment's ``.ready`` for this process's life; touch it."""
    if marker not in _HELD:
        fd = os.open(marker, os.O_RDONLY)
        fcntl.flock(fd, fcntl.LOCK_SH)
        _HELD[marker] = fd
    os.utime(marker)


def _try_remove(lock: Path, marker: Path) -> bool:
    """Remove the environment of ``marker`` if nobody builds or uses it (non-blocking)."""
    lock_fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        marker_fd = os.open(marker, os.O_RDONLY)
        try:
            fcntl.flock(marker_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.unlink(marker)  # not ready from now on, whatever happens to the rest
            shutil.rmtree(marker.parent, ignore_errors=True)
            return True
        finally:
            os.close(marker_fd)
    except (BlockingIOError, FileNotFoundError):
        return False
    finally:
        os.close(lock_fd)


def _mtime(path: Path) -> float:
    """When ``path`` last changed (0 when it is gone: removed by another process)."""
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return 0.0


def _wall(monotonic: float) -> float:
    """A ``time.monotonic()`` instant as wall-clock time (to compare with file times)."""
    return time.time() - (time.monotonic() - monotonic)
