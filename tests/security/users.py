"""A second real Unix user for attack tests (CI runs as root and makes one).

The attacker's scripts need only the standard library, so they run on the system
Python (``/usr/bin/python3``), which every user can execute, as that user
(``setpriv``). The user is made for the test run and removed after it.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

SYSTEM_PYTHON = "/usr/bin/python3"


def _missing() -> str | None:
    if os.geteuid() != 0:
        return "making a second user needs root"
    for tool in ("useradd", "userdel", "setpriv"):
        if shutil.which(tool) is None:
            return f"`{tool}` is not installed"
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        return f"{SYSTEM_PYTHON} (the attacker's interpreter) is missing"
    return None


@dataclass(frozen=True)
class OtherUser:
    name: str
    uid: int
    gid: int

    def _argv(self, script: str, args: tuple[str, ...]) -> list[str]:
        return ["setpriv", f"--reuid={self.uid}", f"--regid={self.gid}", "--clear-groups", "--",
                SYSTEM_PYTHON, "-I", "-c", script, *args]

    def run_system_python(self, script: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        """Run ``script`` as this user and wait for it."""
        return subprocess.run(self._argv(script, args), capture_output=True, text=True, timeout=timeout,
                              check=True, cwd="/", env={"PATH": "/usr/bin:/bin"})

    def popen_system_python(self, script: str, *args: str) -> subprocess.Popen:
        """Start ``script`` as this user; its stdout is a text pipe."""
        return subprocess.Popen(self._argv(script, args), stdout=subprocess.PIPE, text=True, cwd="/",
                                env={"PATH": "/usr/bin:/bin"})


@pytest.fixture(scope="session")
def other_user() -> Iterator[OtherUser]:
    problem = _missing()
    if problem:
        if os.environ.get("CI"):
            pytest.fail(f"the two-user security tests cannot run: {problem} (CI must run them)")
        pytest.skip(f"the two-user security tests need a second user: {problem}")
    name = f"nbc-other-{os.getpid() % 100000}"
    subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
                   check=True, capture_output=True, timeout=60)
    try:
        entry = pwd.getpwnam(name)
        yield OtherUser(name, entry.pw_uid, entry.pw_gid)
    finally:
        subprocess.run(["userdel", name], capture_output=True, timeout=60)
