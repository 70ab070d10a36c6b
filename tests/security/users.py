"""Running commands as a second, real Unix user of this machine.

:func:`other_user` (the session fixture of the same name in ``conftest.py``) adds a
system user ``nbc-other-<pid>`` with ``useradd`` and removes it with ``userdel`` when
the run ends, with the processes, directories and shared memory it made. Without root
or the tools it needs, its tests are skipped — and fail under CI, which must run them.

The interpreter may live where that user cannot reach it (pyenv under ``/root``, mode
0700), and so may the checkout or a virtualenv. So each command runs in a mount
namespace of its own (``unshare --mount``): every directory on the way to the
interpreter, ``sys.path``, this checkout and ``PYTHONPATH`` that other users cannot
pass through gets a tmpfs (0755) mounted over it that holds just the path down to
what is needed, and that is bind-mounted back from the real directory (reached through
a descriptor opened before the tmpfs hid it). Then ``setpriv`` drops to the user and
runs the command. Nothing on the host changes; the user shares ``/tmp``, ``/dev/shm``
and the network (abstract Unix sockets too) with root, as a second user does.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterable, Sequence
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parents[2]
#: The commands the harness runs (util-linux and shadow-utils).
TOOLS = ("useradd", "userdel", "unshare", "setpriv", "mount")
#: The umask the user's commands run with: a distribution's default for users with a
#: group of their own, so files nbcluster makes without an explicit mode would be
#: group-writable (and refused) — it must give every file it trusts a mode.
UMASK = 0o002


def require_root_and_tools() -> None:
    """Skip (fail under CI) unless this process can add users and mount namespaces."""
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    problem = None
    if os.geteuid() != 0:
        problem = "adding a user and mount namespaces need root"
    elif missing:
        problem = f"missing commands: {', '.join(missing)}"
    else:
        probe = subprocess.run(["unshare", "--mount", "--propagation", "private", "true"],
                               capture_output=True, text=True, timeout=30)
        if probe.returncode != 0:
            problem = f"`unshare --mount` failed: {probe.stderr.strip()}"
    if problem:
        if os.environ.get("CI"):
            pytest.fail(f"the two-user security tests cannot run: {problem} (CI must run them)")
        pytest.skip(f"the two-user security tests need root, useradd and util-linux: {problem}")


def _parts(path: str) -> tuple[str, ...]:
    return Path(path).parts


def _under(path: str, ancestor: str) -> bool:
    """Whether ``path`` is strictly below ``ancestor``."""
    inner, outer = _parts(path), _parts(ancestor)
    return len(inner) > len(outer) and inner[: len(outer)] == outer


def _closed_to_others(path: str) -> bool:
    return not os.stat(path).st_mode & stat.S_IXOTH


def mount_commands(targets: Iterable[str], cover: dict[str, str] | None = None) -> list[str]:
    """Shell commands that, in a mount namespace of their own, put a tmpfs over each
    directory on the way to ``targets`` that other users cannot pass through, or that
    ``cover`` names (with the tmpfs's mode), and bind each target back into it (see
    the module's docstring); none when nothing is in the way."""
    cover = cover or {}

    def hidden_here(path: str) -> bool:
        return path in cover or not cover and _closed_to_others(path)

    paths = sorted({os.path.realpath(t) for t in targets if os.path.isdir(t)}, key=_parts)
    closed = {p: [a for a in map(str, Path(p).parents) if hidden_here(a)] for p in paths}
    # A target below another one needs no mount of its own unless a closed directory lies between them.
    needed = [p for p in paths if closed[p] and not any(
        _under(p, other) and not any(_under(c, other) for c in closed[p]) for other in paths)]
    hidden = sorted({c for p in needed for c in closed[p]} | set(cover), key=_parts)
    if len(hidden) > 7:  # sh redirects descriptors 3 to 9 only
        raise RuntimeError(f"too many directories to open the way through: {hidden}")
    fds = {h: 3 + i for i, h in enumerate(hidden)}
    lines = [f"exec {fd}<{shlex.quote(h)}" for h, fd in fds.items()]  # the real directories, before any mount
    for path in sorted(set(hidden) | set(needed), key=_parts):
        lines.append(f"mkdir -p {shlex.quote(path)}")
        if path in fds:
            lines.append(f"mount -t tmpfs -o mode={cover.get(path, '0755')} nbc-tests {shlex.quote(path)}")
        else:
            source = max((h for h in hidden if _under(path, h)), key=lambda h: len(_parts(h)))
            real = f"/proc/self/fd/{fds[source]}/{os.path.relpath(path, source)}"
            lines.append(f"mount --no-canonicalize --bind {shlex.quote(real)} {shlex.quote(path)}")
    lines += [f"exec {fd}<&-" for fd in fds.values()]
    return lines


def _readable_by_others(paths: Iterable[str]) -> None:
    for path in {os.path.realpath(p) for p in paths if os.path.isdir(p)}:
        if os.stat(path).st_mode & (stat.S_IROTH | stat.S_IXOTH) != stat.S_IROTH | stat.S_IXOTH:
            raise RuntimeError(f"{path} itself is not readable by other users; the harness can open the way "
                               "to it but not change it (run the tests from a checkout others can read)")


def _python_paths() -> list[str]:
    """What the interpreter and this checkout need to be reachable."""
    paths = [os.path.dirname(os.path.realpath(sys.executable)), sys.prefix, sys.base_prefix, str(ROOT)]
    paths += [p for p in sys.path if p and os.path.isdir(p)]
    paths += [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return paths


class OtherUser:
    """A second Unix user; its commands run as described in the module's docstring."""

    def __init__(self, name: str) -> None:
        entry = pwd.getpwnam(name)
        self.name, self.uid, self.gid = name, entry.pw_uid, entry.pw_gid
        #: Its HOME and a place for files of its own (0700, its).
        self.home = Path(tempfile.mkdtemp(prefix=f"{name}-home-"))
        os.chown(self.home, self.uid, self.gid)
        _readable_by_others(_python_paths())
        self._prelude = "\n".join(["set -e", *mount_commands(_python_paths()), f"umask {UMASK:03o}"])
        self.children: list[subprocess.Popen] = []

    #: Its default roots (no NBCLUSTER_TEMP_DIR, NBCLUSTER_SHM_DIR or XDG_RUNTIME_DIR).
    @property
    def temp_root(self) -> Path:
        return Path(f"/tmp/nbcluster-{self.uid}")

    @property
    def shm_root(self) -> Path:
        return Path(f"/dev/shm/nbcluster-{self.uid}")

    def argv(self, argv: Sequence[str]) -> list[str]:
        drop = f"exec setpriv --reuid={self.uid} --regid={self.gid} --clear-groups -- \"$@\""
        script = f"{self._prelude}\n{drop}"
        return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", *argv]

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        """A clean environment: none of root's nbcluster settings, this checkout first."""
        env = {
            "PATH": os.environ.get("PATH", os.defpath),
            "HOME": str(self.home),
            "LANG": "C.UTF-8",
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONPATH": os.pathsep.join(p for p in [str(ROOT), os.environ.get("PYTHONPATH", "")] if p),
        }
        return {**env, **(extra or {})}

    def python_argv(self, code: str) -> list[str]:
        return self.argv([os.path.realpath(sys.executable), "-c", textwrap.dedent(code)])

    def python(self, code: str, *, env: dict[str, str] | None = None, timeout: float = 90.0,
               check: bool = True) -> subprocess.CompletedProcess:
        """Run ``code`` as this user to completion; fails the test on an error if ``check``."""
        proc = subprocess.run(self.python_argv(code), capture_output=True, text=True, timeout=timeout,
                              env=self.env(env), cwd=self.home)
        if check and proc.returncode != 0:
            pytest.fail(f"{self.name}'s python exited {proc.returncode}\nstdout:\n{proc.stdout}\n"
                        f"stderr:\n{proc.stderr}")
        return proc

    def spawn_python(self, code: str, *, env: dict[str, str] | None = None) -> subprocess.Popen:
        """Start ``code`` as this user, with pipes (stopped by :meth:`close` at the latest)."""
        proc = subprocess.Popen(self.python_argv(code), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=self.env(env), cwd=self.home)
        self.children.append(proc)
        return proc

    def script_argv(self, script: str, *args: str) -> list[str]:
        """A standard-library-only script (an attacker's), isolated from this checkout."""
        return self.argv([os.path.realpath(sys.executable), "-I", "-c", script, *args])

    def run_script(self, script: str, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess:
        """Run :meth:`script_argv` to completion; fails the test on an error."""
        proc = subprocess.run(self.script_argv(script, *args), capture_output=True, text=True, timeout=timeout,
                              env=self.env(), cwd=self.home)
        if proc.returncode != 0:
            pytest.fail(f"{self.name}'s script exited {proc.returncode}\nstderr:\n{proc.stderr}")
        return proc

    def spawn_script(self, script: str, *args: str) -> subprocess.Popen:
        """Start :meth:`script_argv` (stopped by :meth:`close` at the latest); stdout a text pipe."""
        proc = subprocess.Popen(self.script_argv(script, *args), stdout=subprocess.PIPE, text=True,
                                env=self.env(), cwd=self.home)
        self.children.append(proc)
        return proc

    def processes(self) -> list[psutil.Process]:
        """This user's live processes (every one was started by these tests)."""
        found = []
        for proc in psutil.process_iter(["uids", "status"]):
            with contextlib.suppress(psutil.Error):
                if proc.info["uids"].real == self.uid and proc.info["status"] != psutil.STATUS_ZOMBIE:
                    found.append(proc)
        return found

    def close(self) -> None:
        """End its processes and remove what it made (its roots, HOME)."""
        try:
            for child in self.children:
                if child.poll() is None:
                    child.kill()
                child.wait()
                for pipe in (child.stdin, child.stdout, child.stderr):
                    if pipe is not None:
                        pipe.close()
            for proc in self.processes():
                with contextlib.suppress(psutil.Error):
                    proc.send_signal(signal.SIGKILL)
            psutil.wait_procs(self.processes(), timeout=10)
        finally:
            self.remove_own_files()
            shutil.rmtree(self.home, ignore_errors=True)

    def remove_own_files(self) -> None:
        """Its default roots, if they are its (the uid may be a reused one's)."""
        for path in (self.temp_root, self.shm_root):
            with contextlib.suppress(FileNotFoundError):
                if os.lstat(path).st_uid == self.uid:
                    shutil.rmtree(path)


def with_private_tmp(argv: Sequence[str]) -> list[str]:
    """``argv``, run as root in a mount namespace whose ``/tmp`` and ``/dev/shm`` are
    fresh (tmpfs, 1777; the interpreter and this checkout bound back if they live
    there): the default roots (``/tmp/nbcluster-0``...) without touching the host's.
    Commands of :class:`OtherUser` it starts see the same ones."""
    mounts = mount_commands(_python_paths(), cover={"/tmp": "1777", "/dev/shm": "1777"})
    script = "\n".join(["set -e", *mounts, 'exec "$@"'])
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", *argv]


def other_user() -> OtherUser:
    """Add the user (the fixture removes it with :func:`remove_user`)."""
    require_root_and_tools()
    name = f"nbc-other-{os.getpid()}"
    made = subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
                          capture_output=True, text=True, timeout=60)
    if made.returncode != 0:
        pytest.fail(f"useradd {name} failed: {made.stderr.strip()}")
    try:
        user = OtherUser(name)
        user.remove_own_files()  # left by an earlier user of the same (reused) uid
    except BaseException:
        remove_user(name)
        raise
    return user


def remove_user(name: str) -> None:
    subprocess.run(["userdel", name], capture_output=True, text=True, timeout=60, check=True)
