"""Real pages for tests: a Jupyter server (or JupyterLab) as a child process, and
headless Chromium driven by Playwright.

    with JupyterProcess(lab=True) as server:             # a real `jupyter lab` on a free port
        with chromium() as browser:
            page = browser.new_page()
            page.goto(server.url("lab/tree/quickstart.ipynb"))

A missing browser or Playwright skips the test, and fails it under ``CI`` (CI must run
browser tests: `.ci/run` installs Debian's chromium). Screenshots go to
``ARTIFACTS`` (``test-artifacts/`` at the repository root, or ``$NBCLUSTER_ARTIFACTS``).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil
import pytest

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = Path(os.environ.get("NBCLUSTER_ARTIFACTS", ROOT / "test-artifacts"))
CHROMIUM = os.environ.get("NBCLUSTER_CHROMIUM", "/usr/bin/chromium")
#: How long an expect() without its own timeout waits.
EXPECT_MS = 20_000
#: Chromium's flags for this machine's closed network (no background connections).
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-crash-reporter", "--disable-breakpad",  # no crash handler outliving the browser
]


def _missing(problem: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"browser tests cannot run: {problem} (CI must run them; .ci/run installs chromium)")
    pytest.skip(f"browser tests need {problem}")


def require_browser() -> None:
    """Skip (fail under CI) when Playwright or Chromium is missing."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _missing("the Python package playwright (pip install -e '.[test]')")
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        _missing(f"Chromium at {CHROMIUM} (apt-get install -y chromium)")


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium (Playwright ``Browser``), closed on exit."""
    require_browser()
    from playwright.sync_api import expect, sync_playwright

    # An expect() without a timeout waits 5 s by default, too short on a loaded 2-core
    # machine for anything drawn after a server round trip.
    expect.set_options(timeout=EXPECT_MS)
    with sync_playwright() as pw:  # Playwright gives the browser a fresh profile of its own
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def screenshot(page: Any, name: str) -> Path:
    """Save a full-page screenshot as a test artifact; returns its path."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def kill_all(procs: list[psutil.Process], timeout: float = 10.0) -> None:
    """SIGKILL each of ``procs`` still alive and wait for them."""
    for proc in procs:
        try:
            proc.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(procs, timeout=timeout)


class JupyterProcess:
    """``jupyter server`` (``jupyter lab`` with ``lab=True``, or another ``app``) as a child process on
    127.0.0.1 with a token, its root ``root_dir`` (default: a fresh temp dir) and
    Jupyter's config/data/runtime dirs of its own. Stopped, with every process it
    started, on exit."""

    def __init__(self, *, lab: bool = False, root_dir: Path | None = None, base_url: str = "/",
                 extra_args: list[str] | None = None, env: dict[str, str] | None = None,
                 home: Path | None = None, app: str = "") -> None:
        self.lab = lab
        #: The application module: ``jupyter_server``, ``jupyterlab`` or ``notebook`` (Notebook 7).
        self.app = app or ("jupyterlab" if lab else "jupyter_server")
        self.token = secrets.token_hex(16)
        self.port = free_port()
        self.base_url = "/" + base_url.strip("/") + "/" if base_url.strip("/") else "/"
        self.home = home or Path(tempfile.mkdtemp(prefix="nbc-jupyter-"))
        self._own_home = home is None
        self.root_dir = root_dir or (self.home / "work")
        self.root_dir.mkdir(parents=True, exist_ok=True)
        self.runtime_dir = self.home / "runtime"
        self.extra_args = extra_args or []
        self.env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(self.runtime_dir),
                        JUPYTER_CONFIG_DIR=str(self.home / "config"), **(env or {}))
        self.env.pop("JUPYTER_PLATFORM_DIRS", None)
        self.proc: subprocess.Popen | None = None
        self.log_path = self.home / "server.log"

    def url(self, path: str = "", *, token: bool = True) -> str:
        base = f"http://127.0.0.1:{self.port}{self.base_url}{path.lstrip('/')}"
        if token:
            base += ("&" if "?" in base else "?") + f"token={self.token}"
        return base

    def request(self, method: str, path: str, body: Any = None, timeout: float = 60.0) -> tuple[int, Any]:
        """One REST call with the token; (status, decoded JSON or text)."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url(path, token=False), data=data, method=method,
                                     headers={"Authorization": f"token {self.token}",
                                              "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                status, raw = resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read()
        text = raw.decode(errors="replace")
        try:
            return status, json.loads(text) if text else None
        except ValueError:
            return status, text

    def start(self, timeout: float = 60.0) -> "JupyterProcess":
        argv = [sys.executable, "-m", self.app, "--no-browser", "--ip=127.0.0.1", f"--port={self.port}",
                "--port-retries=0", "--allow-root", f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={self.root_dir}",
                f"--ServerApp.base_url={self.base_url}", "--ServerApp.open_browser=False",
                *self.extra_args]
        log = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(argv, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True, cwd=self.root_dir)
        finally:
            log.close()
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jupyter exited with {self.proc.returncode}:\n{self.log()}")
            try:
                status, _ = self.request("GET", "api/status", timeout=2.0)
                if status == 200:
                    return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"jupyter did not answer within {timeout} s:\n{self.log()}")
            time.sleep(0.1)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-6000:]
        except OSError:
            return ""

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM (Jupyter shuts its kernels down), then SIGKILL of whatever is left of
        the server's process tree."""
        if self.proc is None:
            return
        try:
            tree = [psutil.Process(self.proc.pid), *psutil.Process(self.proc.pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            tree = []
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        _, alive = psutil.wait_procs(tree, timeout=timeout)
        kill_all(alive)
        self.proc = None

    def __enter__(self) -> "JupyterProcess":
        try:
            return self.start()
        except BaseException:
            self.__exit__()
            raise

    def __exit__(self, *exc: Any) -> None:
        self.stop()
        if self._own_home:
            shutil.rmtree(self.home, ignore_errors=True)
