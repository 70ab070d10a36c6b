"""SSH to the machines of a cluster YAML with ``provider: type: ssh`` (Ray's on-prem
shape): the settings, connecting with the host key checked, running commands.

Host keys are always checked, against ``auth.ssh_known_hosts`` when given, else
``~/.ssh/known_hosts``: a host whose key is not there (or differs) is refused with a
message that names it and says how to add it. Checking cannot be turned off.
``~/.ssh/config`` is not read: the YAML says everything (user, key, port).

Connections use `asyncssh <https://asyncssh.readthedocs.io>`_; callers run them on an
event loop of their own (the node provider on its thread, the CLI with ``asyncio.run``).
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import shlex
import socket
import warnings
from dataclasses import dataclass
from typing import Any

import psutil

with warnings.catch_warnings():
    # asyncssh still loads DSA support, which cryptography >= 51 deprecates on import;
    # nbcluster never uses DSA keys, and the warning would reach every `nbcluster up`.
    warnings.filterwarnings("ignore", message="DSA is deprecated", category=Warning)
    import asyncssh

from nbcluster.exceptions import AutoscalerConfigError
from nbcluster.runtime.autoscaler.config import ProviderConfig

__all__ = ["PROVIDER_KEYS", "SshError", "SshSettings", "connect", "is_this_machine", "run_checked", "tail"]

#: The ``provider:`` keys of type ssh: Ray's on-prem ``head_ip`` and ``worker_ips``, and
#: ``python``, the interpreter (with nbcluster installed) on the machines.
PROVIDER_KEYS = frozenset({"head_ip", "worker_ips", "python"})
#: The ``auth:`` keys: Ray's ``ssh_user`` and ``ssh_private_key``; ``ssh_known_hosts``
#: (a known_hosts file to check host keys with) and ``ssh_port`` are nbcluster's.
AUTH_KEYS = ("ssh_user", "ssh_private_key", "ssh_known_hosts", "ssh_port")
CONNECT_TIMEOUT_S = 20.0
#: How much of a failed command's output a message quotes.
TAIL_CHARS = 2000


class SshError(Exception):
    """Connecting or running a command over SSH failed; the message says where and why."""


def tail(text: str, limit: int = TAIL_CHARS) -> str:
    """The end of ``text`` (a command's output), stripped."""
    text = text.strip()
    return text if len(text) <= limit else "…" + text[-limit:]


def _config_error(key: str, what: str) -> AutoscalerConfigError:
    return AutoscalerConfigError(f"{key}: {what}", key=key)


def _ip(value: Any, key: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _config_error(key, f"must be a host name or IP address, got {value!r}")
    return value.strip()


@dataclass(frozen=True)
class SshSettings:
    """What connecting to the machines of an ssh cluster takes, read from its config."""

    head_ip: str
    worker_ips: tuple[str, ...]
    user: str
    private_key: str | None
    known_hosts: str
    port: int = 22
    #: The interpreter on the machines, as shell words (e.g. ``/opt/venv/bin/python``).
    python: str = "python3"
    setup_commands: tuple[str, ...] = ()
    head_setup_commands: tuple[str, ...] = ()
    worker_setup_commands: tuple[str, ...] = ()

    @classmethod
    def from_config(cls, provider: ProviderConfig) -> SshSettings:
        """Check ``provider`` (type ssh) and its ``auth``; AutoscalerConfigError naming a
        missing, unknown or bad key."""
        opts, auth = provider.options, provider.auth
        for key in sorted(set(opts) - PROVIDER_KEYS):
            raise _config_error(f"provider.{key}",
                                f"unknown key for node provider 'ssh' (it takes {', '.join(sorted(PROVIDER_KEYS))}); "
                                "remove it")
        for key in sorted(set(auth) - set(AUTH_KEYS)):
            raise _config_error(f"auth.{key}", f"unknown key (the ssh provider takes {', '.join(AUTH_KEYS)}); remove it")
        if "head_ip" not in opts:
            raise _config_error("provider.head_ip", "required key missing; add the head machine's address")
        workers = opts.get("worker_ips", [])
        if not isinstance(workers, list):
            raise _config_error("provider.worker_ips", f"must be a list of addresses, got {workers!r}")
        worker_ips = tuple(_ip(w, f"provider.worker_ips[{i}]") for i, w in enumerate(workers))
        if len(set(worker_ips)) != len(worker_ips):
            raise _config_error("provider.worker_ips", "lists an address twice; each machine runs one node")
        user = auth.get("ssh_user")
        if not isinstance(user, str) or not user:
            raise _config_error("auth.ssh_user", "required with provider type ssh: the user to log in as")
        key, known = auth.get("ssh_private_key"), auth.get("ssh_known_hosts", "~/.ssh/known_hosts")
        for name, value in (("ssh_private_key", key), ("ssh_known_hosts", known)):
            if value is not None and (not isinstance(value, str) or not value):
                raise _config_error(f"auth.{name}", f"must be a file path, got {value!r}")
        port = auth.get("ssh_port", 22)
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            raise _config_error("auth.ssh_port", f"must be a port number, got {port!r}")
        python = opts.get("python", "python3")
        if not isinstance(python, str) or not shlex.split(python):
            raise _config_error("provider.python", f"must be the interpreter's path, got {python!r}")
        return cls(
            head_ip=_ip(opts["head_ip"], "provider.head_ip"), worker_ips=worker_ips, user=user,
            private_key=os.path.expanduser(key) if key else None, known_hosts=os.path.expanduser(known),
            port=port, python=python, setup_commands=provider.setup_commands,
            head_setup_commands=provider.head_setup_commands, worker_setup_commands=provider.worker_setup_commands,
        )

    def python_argv(self, module: str, *args: str) -> str:
        """The shell command ``python -m module args`` on a machine (args quoted)."""
        return shlex.join([*shlex.split(self.python), "-m", module, *args])

    def ssh_argv(self, host: str, command: str | None = None) -> list[str]:
        """The OpenSSH client's argv for an interactive session (or ``command``) on
        ``host``, with the same user, key and host-key checking."""
        argv = ["ssh", "-p", str(self.port), "-o", "StrictHostKeyChecking=yes",
                "-o", f"UserKnownHostsFile={self.known_hosts}", "-o", "IdentitiesOnly=yes" if self.private_key else
                "IdentitiesOnly=no"]
        if self.private_key:
            argv += ["-i", self.private_key]
        argv += ["-tt" if command is None else "-T", f"{self.user}@{host}"]
        return argv + ([command] if command is not None else [])


async def connect(settings: SshSettings, host: str) -> asyncssh.SSHClientConnection:
    """A connection to ``host`` as ``settings.user``; SshError saying why not (an
    unknown host key, a refused key, no route ...)."""
    where = f"{settings.user}@{host}:{settings.port}"
    if not os.path.exists(settings.known_hosts):
        raise SshError(f"cannot check the SSH host key of {host}: {settings.known_hosts} does not exist. Add the "
                       f"host's key (check its fingerprint first): ssh-keyscan -p {settings.port} {host} >> "
                       f"{settings.known_hosts}, or name a known_hosts file with auth.ssh_known_hosts")
    try:
        return await asyncssh.connect(
            host, port=settings.port, username=settings.user, known_hosts=settings.known_hosts,
            client_keys=[settings.private_key] if settings.private_key else (), config=None,
            connect_timeout=CONNECT_TIMEOUT_S, login_timeout=CONNECT_TIMEOUT_S,
        )
    except asyncssh.HostKeyNotVerifiable as exc:
        raise SshError(
            f"the SSH host key of {host} is not trusted ({exc.reason}): it is not in {settings.known_hosts}, or "
            f"differs from the key there. If the machine is the one you mean, check its key's fingerprint and add "
            f"it: ssh-keyscan -p {settings.port} {host} >> {settings.known_hosts} (or name another file with "
            "auth.ssh_known_hosts)"
        ) from None
    except asyncssh.PermissionDenied as exc:
        key = settings.private_key or "the default keys (~/.ssh/id_*, the agent)"
        raise SshError(f"{where} refused the login with {key} ({exc.reason}); add its public key to that "
                       "user's authorized_keys, or set auth.ssh_private_key") from None
    except (OSError, asyncssh.Error, asyncio.TimeoutError) as exc:
        why = getattr(exc, "reason", "") or str(exc) or type(exc).__name__
        raise SshError(f"cannot connect to {where} over SSH: {why}") from None


async def run_checked(conn: asyncssh.SSHClientConnection, command: str, host: str, what: str = "command",
                      stdin: str | None = None) -> str:
    """Run ``command`` on ``host``; its output (stdout then stderr). SshError quoting
    the output when it fails."""
    result = await conn.run(command, check=False, input=stdin)
    output = f"{result.stdout or ''}{result.stderr or ''}"
    if result.exit_status != 0:
        code = result.exit_status if result.exit_status is not None else f"signal {result.exit_signal}"
        raise SshError(f"{what} `{command}` failed on {host} (exit {code}): {tail(output) or '(no output)'}")
    return output


def is_this_machine(host: str) -> bool:
    """Whether ``host`` names an address of this machine (loopback, or an interface's)."""
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except OSError:
        return False
    mine = {a.address.split("%")[0] for addrs in psutil.net_if_addrs().values() for a in addrs}
    return any(ipaddress.ip_address(a).is_loopback or a in mine for a in addresses)

