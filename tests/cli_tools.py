"""Running the ``nbcluster`` command as a user would, in a temp root of its own.

Nodes that ``nbcluster start`` starts are detached from the test process, so the
usual leak check cannot see them; :meth:`Machine.close` stops them with ``nbcluster
stop`` and fails the test if any process of the root is left.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Sequence
from pathlib import Path

import psutil
import pytest


def nbcluster_command() -> str:
    """The installed console script (``pip install -e .`` puts it next to python)."""
    script = Path(sys.executable).parent / "nbcluster"
    if not script.exists():
        pytest.fail(f"the `nbcluster` command is not installed next to {sys.executable}; run `pip install -e .`")
    return str(script)


#: Machines not yet closed; their nodes' shared memory is theirs, not a leak.
LIVE: set["Machine"] = set()


class Machine:
    """One machine's view: its own temp root (session dirs) and, optionally, a
    network namespace every command runs in."""

    def __init__(self, name: str = "local", netns: str | None = None, env: dict[str, str] | None = None) -> None:
        LIVE.add(self)
        self.name = name
        self.netns = netns
        self.root = Path(tempfile.mkdtemp(prefix=f"cli-{name}-", dir=os.environ["NBCLUSTER_TEMP_DIR"]))
        self.env = {**os.environ, "NBCLUSTER_TEMP_DIR": str(self.root), **(env or {})}
        self.env.pop("NBCLUSTER_TOKEN", None)
        self.children: list[subprocess.Popen] = []

    def argv(self, argv: Sequence[str]) -> list[str]:
        return ["ip", "netns", "exec", self.netns, *argv] if self.netns else list(argv)

    def run(self, *args: str, check: bool = True, timeout: float = 90.0,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        """``nbcluster ARGS`` to completion; fails the test on a non-zero exit if ``check``."""
        proc = subprocess.run(self.argv([nbcluster_command(), *args]), capture_output=True, text=True,
                              timeout=timeout, env={**self.env, **(env or {})})
        if check and proc.returncode != 0:
            pytest.fail(f"`nbcluster {' '.join(args)}` on {self.name} exited {proc.returncode}\n"
                        f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
        return proc

    def python(self, code: str, *, timeout: float = 120.0, check: bool = True,
               env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        """A driver script run on this machine."""
        proc = subprocess.run(self.argv([sys.executable, "-c", textwrap.dedent(code)]), capture_output=True,
                              text=True, timeout=timeout, env={**self.env, **(env or {})},
                              cwd=str(Path(__file__).parent.parent))
        if check and proc.returncode != 0:
            pytest.fail(f"driver on {self.name} exited {proc.returncode}\nstdout:\n{proc.stdout}\n"
                        f"stderr:\n{proc.stderr}\n{self.log_tail()}")
        return proc

    def spawn_python(self, code: str) -> subprocess.Popen:
        """A driver script started on this machine (stopped by :meth:`close`)."""
        proc = subprocess.Popen(self.argv([sys.executable, "-c", textwrap.dedent(code)]), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=self.env,
                                cwd=str(Path(__file__).parent.parent))
        self.children.append(proc)
        return proc

    def popen(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
        proc = subprocess.Popen(self.argv([nbcluster_command(), *args]), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env={**self.env, **(env or {})})
        self.children.append(proc)
        return proc

    def start_head(self, *args: str) -> str:
        """``nbcluster start --head ARGS``; the head's address."""
        out = self.run("start", "--head", *args).stdout
        match = re.search(r"head node at (\S+) ", out)
        assert match, out
        return match.group(1)

    def token_file(self) -> Path:
        """The token of the first session started here (the head's, on its machine)."""
        return next(p / "token" for p in sorted(self.root.glob("session_*")) if not p.is_symlink())

    def processes(self) -> list[psutil.Process]:
        """Every live process of this machine's nbcluster (by its session dirs), with
        ``info["cmdline"]`` as listed (read it there: a worker may exit meanwhile)."""
        mark = str(self.root)
        found = []
        for proc in psutil.process_iter(["cmdline", "status"]):
            try:
                if proc.info["status"] != psutil.STATUS_ZOMBIE and any(mark in a for a in proc.info["cmdline"] or ()):
                    found.append(proc)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                pass
        return found

    def stores(self) -> set[str]:
        """Shared-memory store names of this machine's nodes."""
        from nbcluster.runtime.session import store_dir

        names = set()
        files = [f for d in self.root.glob("session_*") if not d.is_symlink() for f in d.glob("*.json")]
        for path in files:
            try:
                node_id = json.loads(path.read_text()).get("node_id")
            except (OSError, ValueError):
                continue
            if node_id:
                names.add(store_dir(bytes.fromhex(node_id)).name)
        return names

    def log_tail(self, lines: int = 15) -> str:
        out = []
        for path in sorted(self.root.glob("session_*/logs/*")):
            if path.suffix in (".log", ".err") and path.stat().st_size:
                text = path.read_text(errors="replace").splitlines()[-lines:]
                out.append(f"--- {path.relative_to(self.root)} ---\n" + "\n".join(text))
        return "\n".join(out)

    def _records(self, procs: list[psutil.Process]) -> str:
        """What the sessions' processes.json say, beside the live processes' start times
        (why `stop` did not find them)."""
        live = {}
        for proc in procs:
            try:
                live[proc.pid] = proc.create_time()
            except psutil.NoSuchProcess:
                pass
        sessions = [d for d in self.root.glob("session_*") if not d.is_symlink()]
        records = {d.name: (d / "processes.json").read_text() if (d / "processes.json").exists() else "no processes.json"
                   for d in sessions}
        return f"sessions {records or 'none'}; live start times {live}; boot time now {psutil.boot_time()}"

    def close(self) -> None:
        """Stop everything this machine started; fail if a process survives."""
        LIVE.discard(self)
        for child in self.children:
            if child.poll() is None:
                child.terminate()
        try:
            stop = self.run("stop", "--grace-period", "5", check=False)
            stopped = f"{stop.returncode}: {stop.stdout.strip()} {stop.stderr.strip()}"
        except BaseException as exc:  # noqa: BLE001 - what is left is killed below, then this is reported
            stopped = f"not run: {exc}"
        for child in self.children:
            try:
                child.communicate(timeout=15)
            except subprocess.TimeoutExpired:
                child.kill()
                child.communicate()
        survivors = self.processes()  # what `stop` did not stop, described before it is killed
        found = self._records(survivors) if survivors else ""
        deadline = time.monotonic() + 10
        left = survivors
        while left and time.monotonic() < deadline:
            time.sleep(0.1)
            left = self.processes()
        for proc in left:
            proc.kill()
        from nbcluster.runtime.session import shm_root

        stores = {name for name in self.stores() if (shm_root() / name).exists()}
        for name in stores:
            shutil.rmtree(shm_root() / name, ignore_errors=True)
        shutil.rmtree(self.root, ignore_errors=True)
        if stores:
            pytest.fail(f"shared memory of {self.name}'s nodes outlived `nbcluster stop`: {sorted(stores)}")
        if left:
            pytest.fail(f"processes of {self.name} outlived `nbcluster stop` ({stopped}): {[p.pid for p in left]}; "
                        f"{found}")
        if stopped.startswith("not run"):
            pytest.fail(f"`nbcluster stop` on {self.name}: {stopped}")
