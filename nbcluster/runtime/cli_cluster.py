"""``nbcluster up/down/attach/exec/submit`` for clusters on your own machines
(``provider: type: ssh``, as ``ray up`` with Ray's on-prem YAML).

``up``: when ``head_ip`` is this machine, runs ``setup_commands`` and
``head_setup_commands`` here and starts the head (``nbcluster start --head``, listening
on ``head_ip``); otherwise connects to ``head_ip`` over SSH, runs them there, copies the
YAML (and the key and known_hosts it names, into ``~/.nbcluster/clusters/NAME/``, mode
0700, as Ray copies its bootstrap key) and runs ``nbcluster up`` there. The head's
autoscaler then starts workers on ``worker_ips`` (``ssh_provider.py``).

``down``: stops the head the same way (its autoscaler stops the workers), then asks
every worker machine over SSH to end any node of this cluster still running
(``ssh_node --stop``), so no process is left on any host.

``attach`` execs ``ssh`` to the head; ``exec`` runs a shell command on the head;
``submit`` copies a script there and runs it with the head's ``python`` (a driver on
the head joins the cluster with ``nbcluster.init(address="auto")``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from nbcluster.runtime.detached import CliError

__all__ = ["add_cluster_commands", "down", "up"]

#: On the head machine, under the user's home, per cluster: the YAML, key and
#: known_hosts ``up`` copied there, and scripts ``submit`` runs.
REMOTE_DIR = ".nbcluster/clusters"


def _settings(config: Any) -> Any:
    # Lazy: asyncssh takes ~0.1 s to import; only commands for ssh clusters need it.
    from nbcluster.runtime.autoscaler.ssh import SshSettings

    return SshSettings.from_config(config.provider)


def _run_local(commands: Sequence[str], what: str) -> None:
    for command in commands:
        done = subprocess.run(command, shell=True, capture_output=True, text=True)
        if done.returncode != 0:
            output = (done.stdout + done.stderr).strip() or "(no output)"
            raise CliError(f"{what} `{command}` failed on this machine (exit {done.returncode}): {output}")


def _ssh(coro_fn: Callable[..., Any], *args: Any) -> Any:
    """Run an SSH coroutine to completion; SshError becomes CliError."""
    from nbcluster.runtime.autoscaler.ssh import SshError

    try:
        return asyncio.run(coro_fn(*args))
    except SshError as exc:
        raise CliError(str(exc)) from None


async def _remote_dir(conn: Any, config: Any, host: str) -> str:
    """The cluster's directory on the head (absolute, made with mode 0700)."""
    from nbcluster.runtime.autoscaler.ssh import run_checked

    home = (await run_checked(conn, 'printf %s "$HOME"', host)).strip()
    folder = f"{home}/{REMOTE_DIR}/{config.cluster_name}"
    await run_checked(conn, f"umask 077 && mkdir -p {shlex.quote(folder)} && chmod 700 {shlex.quote(folder)}", host)
    return folder


def up(opts: argparse.Namespace, config: Any, start_here: Callable[[str], int]) -> int:
    """``nbcluster up`` of an ssh cluster (module docstring); ``start_here(node_ip)``
    starts the head on this machine."""
    from nbcluster.runtime.autoscaler.ssh import is_this_machine

    settings = _settings(config)
    if config.ignored_keys:
        print(f"Note: keys not used by nbcluster: {', '.join(config.ignored_keys)}", file=sys.stderr)
    commands = (*settings.setup_commands, *settings.head_setup_commands)
    if not is_this_machine(settings.head_ip):
        code = _ssh(_up_remote, opts, config, settings, commands)  # the head's `up` says the rest
        if code == 0:
            print(f"\nFrom this machine:  nbcluster exec {opts.config} 'nbcluster status'    "
                  f"nbcluster attach {opts.config}    nbcluster down {opts.config}")
        return code
    if not getattr(opts, "setup_done", False):
        _run_local(commands, "setup command")
    code = start_here(settings.head_ip)
    if code == 0:
        workers = ", ".join(settings.worker_ips) or "none"
        print(f"Worker machines (one node each, started over SSH as demand needs them): {workers}")
    return code


async def _up_remote(opts: Any, config: Any, settings: Any, commands: Sequence[str]) -> int:
    from nbcluster.runtime.autoscaler.ssh import connect, run_checked

    host = settings.head_ip
    async with await connect(settings, host) as conn:
        for command in commands:
            await run_checked(conn, command, host, "setup command")
        remote_yaml = await _copy_config(conn, config, settings, host)
        args = ["up", remote_yaml, "--port", str(opts.port), "--setup-done"]
        if opts.system_config:
            args += ["--system-config", opts.system_config]
        return await _stream(conn, settings.python_argv("nbcluster.runtime.cli", *args))


async def _copy_config(conn: Any, config: Any, settings: Any, host: str) -> str:
    """Write the YAML (and the files it names) to the head; the YAML's path there."""
    import yaml

    from nbcluster.runtime.autoscaler.ssh import run_checked

    folder = await _remote_dir(conn, config, host)
    data = config.to_dict()
    auth = data.setdefault("auth", {})
    for key, path in (("ssh_private_key", settings.private_key), ("ssh_known_hosts", settings.known_hosts)):
        if path:
            remote = f"{folder}/{key}"
            await run_checked(conn, f"umask 077 && cat > {shlex.quote(remote)}", host, stdin=Path(path).read_text())
            auth[key] = remote
    remote_yaml = f"{folder}/cluster.yaml"
    await run_checked(conn, f"umask 077 && cat > {shlex.quote(remote_yaml)}", host, stdin=yaml.safe_dump(data))
    return remote_yaml


async def _stream(conn: Any, command: str, stdin: str | None = None) -> int:
    """Run ``command``, its output to ours as it comes; its exit status."""
    process = await conn.create_process(command, stdin=subprocess.DEVNULL if stdin is None else subprocess.PIPE)
    if stdin is not None:
        process.stdin.write(stdin)
        process.stdin.write_eof()

    async def pump(stream: Any, out: Any) -> None:
        while chunk := await stream.read(4096):
            out.write(chunk)
            out.flush()

    await asyncio.gather(pump(process.stdout, sys.stdout), pump(process.stderr, sys.stderr))
    await process.wait_closed()
    status = process.exit_status
    return 255 if status is None else status


def down(opts: Any, config: Any, stop_here: Callable[[], int]) -> int:
    """``nbcluster down`` of an ssh cluster (module docstring); ``stop_here()`` stops
    the head when it runs on this machine."""
    from nbcluster.runtime.autoscaler.ssh import is_this_machine

    settings = _settings(config)
    if is_this_machine(settings.head_ip):
        code = stop_here()
    else:
        code = _ssh(_down_remote, config, settings)
    return _ssh(_sweep, settings) or code


async def _down_remote(config: Any, settings: Any) -> int:
    from nbcluster.runtime.autoscaler.ssh import connect

    async with await connect(settings, settings.head_ip) as conn:
        remote_yaml = shlex.quote(f"{await _remote_dir(conn, config, settings.head_ip)}/cluster.yaml")
        down = settings.python_argv("nbcluster.runtime.cli", "down", remote_yaml)
        missing = shlex.quote(f"Cluster {config.cluster_name} is not running on {settings.head_ip}.")
        return await _stream(conn, f"if test -f {remote_yaml}; then {down}; else echo {missing}; fi")


async def _sweep(settings: Any) -> int:
    """End any node of this cluster left on the worker machines; 1 if one could not be reached."""
    from nbcluster.runtime.autoscaler.ssh import SshError, connect, run_checked

    async def one(host: str) -> str | None:
        try:
            async with await connect(settings, host) as conn:
                out = await run_checked(conn, settings.python_argv(
                    "nbcluster.runtime.autoscaler.ssh_node", "--stop", settings.head_ip), host)
                if not out.startswith("stopped 0 "):
                    print(f"{host}: {out.strip()}")
        except SshError as exc:
            return f"{host}: {exc}"
        return None

    problems = [p for p in await asyncio.gather(*(one(h) for h in settings.worker_ips)) if p]
    for problem in problems:
        print(f"Warning: could not check for nodes left on {problem}", file=sys.stderr)
    return 1 if problems else 0


def _head_here(config: Any) -> bool:
    """Whether the cluster's head runs on this machine (any provider but ssh, or ssh
    with ``head_ip`` an address of this machine)."""
    if config.provider.type != "ssh":
        return True
    from nbcluster.runtime.autoscaler.ssh import is_this_machine

    return is_this_machine(_settings(config).head_ip)


def _load(path: str) -> Any:
    # Lazy: yaml and the config's schema are for the commands that read a cluster YAML.
    from nbcluster.runtime.autoscaler.config import load_config

    return load_config(path)


def cmd_attach(opts: argparse.Namespace, execvp: Callable[[str, list[str]], Any] = os.execvp) -> int:
    """``nbcluster attach``: an interactive ``ssh`` to the head (replaces this process)."""
    config = _load(opts.config)
    if config.provider.type != "ssh":
        raise CliError(f"the head of a {config.provider.type!r} cluster runs on this machine: nothing to attach to")
    settings = _settings(config)
    argv = settings.ssh_argv(settings.head_ip)
    execvp(argv[0], argv)
    return 0


def cmd_exec(opts: argparse.Namespace) -> int:
    """``nbcluster exec``: run a shell command on the head; its exit status."""
    config = _load(opts.config)
    if _head_here(config):
        return subprocess.run(opts.command, shell=True).returncode
    return _ssh(_exec_remote, config, opts.command, None)


async def _exec_remote(config: Any, command: str, script: Path | None, args: Sequence[str] = ()) -> int:
    from nbcluster.runtime.autoscaler.ssh import connect

    settings = _settings(config)
    async with await connect(settings, settings.head_ip) as conn:
        if script is None:
            return await _stream(conn, command)
        remote = f"{await _remote_dir(conn, config, settings.head_ip)}/{script.name}"
        command = (f"umask 077 && cat > {shlex.quote(remote)} && "
                   + shlex.join([*shlex.split(settings.python), remote, *args]) + " </dev/null")
        return await _stream(conn, command, script.read_text())


def cmd_submit(opts: argparse.Namespace) -> int:
    """``nbcluster submit``: run a Python script on the head (copied there first when
    the head is another machine); its exit status."""
    config = _load(opts.config)
    script = Path(opts.script)
    if not script.is_file():
        raise CliError(f"{script} is not a file")
    if _head_here(config):
        python = shlex.split(_settings(config).python) if config.provider.type == "ssh" else [sys.executable]
        return subprocess.run([*python, str(script), *opts.args]).returncode
    return _ssh(_exec_remote, config, "", script, opts.args)


def add_cluster_commands(commands: Any) -> None:
    """The ``attach``, ``exec`` and ``submit`` subcommands."""
    attach = commands.add_parser("attach", help="log in to the head of a cluster YAML over SSH",
                                 description="An interactive ssh session on the head (provider type ssh).")
    attach.add_argument("config", help="the cluster YAML")
    attach.set_defaults(func=cmd_attach)
    run = commands.add_parser("exec", help="run a shell command on the head of a cluster YAML",
                              description="Run COMMAND with the shell on the head (over SSH when the head is "
                                          "another machine); exits with its status.")
    run.add_argument("config", help="the cluster YAML")
    run.add_argument("command", help="the shell command, quoted as one argument")
    run.set_defaults(func=cmd_exec)
    submit = commands.add_parser("submit", help="run a Python script on the head of a cluster YAML",
                                 description="Copy SCRIPT to the head and run it there with the cluster's python; "
                                             "nbcluster.init(address='auto') in it joins the cluster.")
    submit.add_argument("config", help="the cluster YAML")
    submit.add_argument("script", help="the Python script")
    submit.add_argument("args", nargs=argparse.REMAINDER, help="arguments for the script")
    submit.set_defaults(func=cmd_submit)
