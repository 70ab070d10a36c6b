"""Real OpenSSH servers in network namespaces, for the ssh node provider's tests.

:class:`SshKeys` makes a user key pair (its public half in an ``authorized_keys``);
:func:`start_sshd` runs ``/usr/sbin/sshd`` with a config of its own in a temp dir
(a generated host key, ``AuthorizedKeysFile`` there, ``UsePAM no``, root login by key
only, ``SetEnv`` for the variables the test's "machine" needs), listening on the
host's address, port 22, inside its namespace. sshd daemonizes itself, so its
per-connection processes are not the test process's children; :meth:`Sshd.close` ends
the daemon (and what runs under it) by the pid in its pid file.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

SSHD = "/usr/sbin/sshd"


def require_sshd() -> None:
    """Skip (fail under CI) without OpenSSH's server and client."""
    missing = [name for name, path in (("sshd", SSHD), ("ssh-keygen", shutil.which("ssh-keygen")))
               if not path or not os.path.exists(path)]
    if missing:
        problem = f"{', '.join(missing)} not installed (apt-get install -y openssh-server)"
        if os.environ.get("CI"):
            pytest.fail(f"the SSH tests cannot run: {problem} (CI must run them)")
        pytest.skip(f"the SSH tests need OpenSSH: {problem}")


def _keygen(path: Path) -> str:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "nbcluster-test", "-f", str(path)],
                   check=True, capture_output=True)
    return Path(f"{path}.pub").read_text().strip()


class SshKeys:
    """A user key pair, and the ``authorized_keys`` file that lets it in."""

    def __init__(self, root: Path) -> None:
        self.dir = root / "user-keys"
        self.dir.mkdir(mode=0o700)
        self.private_key = self.dir / "id_ed25519"
        self.authorized_keys = self.dir / "authorized_keys"
        self.authorized_keys.write_text(_keygen(self.private_key) + "\n")


@dataclass
class Sshd:
    """One running sshd: where it listens, its host key line, its pid."""

    name: str
    netns: str
    ip: str
    dir: Path
    pid: int

    def known_hosts_line(self) -> str:
        """This server's line for a known_hosts file."""
        key = (self.dir / "host_key.pub").read_text().split()
        return f"{self.ip} {key[0]} {key[1]}"

    def log(self) -> str:
        path = self.dir / "sshd.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def close(self) -> None:
        """End the daemon and every process under it (sessions, what they started)."""
        try:
            daemon = psutil.Process(self.pid)
            procs = [daemon, *daemon.children(recursive=True)]
        except psutil.NoSuchProcess:
            return
        for proc in procs:
            try:
                proc.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(procs, timeout=10)


def start_sshd(name: str, netns: str, ip: str, root: Path, keys: SshKeys, env: dict[str, str]) -> Sshd:
    """Start sshd in ``netns`` on ``ip``:22 (see the module docstring); returns once it listens."""
    folder = root / f"sshd-{name}"
    folder.mkdir(mode=0o700)
    _keygen(folder / "host_key")
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # its privilege-separation directory
    set_env = " ".join(f"{k}={v}" for k, v in env.items())
    config = folder / "sshd_config"
    config.write_text(f"""\
ListenAddress {ip}
Port 22
HostKey {folder / 'host_key'}
PidFile {folder / 'sshd.pid'}
AuthorizedKeysFile {keys.authorized_keys}
UsePAM no
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
StrictModes no
SetEnv {set_env}
Subsystem sftp internal-sftp
LogLevel VERBOSE
""")
    started = subprocess.run(["ip", "netns", "exec", netns, SSHD, "-f", str(config), "-E", str(folder / "sshd.log")],
                             capture_output=True, text=True, timeout=30)
    if started.returncode != 0:
        raise RuntimeError(f"sshd on {name} did not start: {started.stderr.strip()}")
    pid_file = folder / "sshd.pid"
    deadline = time.monotonic() + 20
    while not (pid_file.exists() and pid_file.read_text().strip()):
        if time.monotonic() > deadline:
            raise RuntimeError(f"sshd on {name} wrote no pid file: {(folder / 'sshd.log').read_text()}")
        time.sleep(0.05)
    return Sshd(name, netns, ip, folder, int(pid_file.read_text()))
