"""The ``ssh`` node provider: node managers on your own machines, started over SSH
(Ray's on-prem provider shape)::

    provider: {type: ssh, head_ip: 10.0.0.1, worker_ips: [10.0.0.2, 10.0.0.3]}
    auth: {ssh_user: ubuntu, ssh_private_key: ~/.ssh/id_ed25519}

``worker_ips`` is a pool: each machine runs at most one node. ``launch`` takes the first
free address, connects (host key checked, see ``ssh.py``), runs ``setup_commands`` then
``worker_setup_commands`` there, and starts ``python -m
nbcluster.runtime.autoscaler.ssh_node`` (``ssh_node.py``), which starts the node
manager. The cluster token goes over the channel's stdin, never on a command line.

The SSH channel is the node's lifeline: ``terminate`` closes its stdin (the node
stops, its session directory and shared memory are removed), kills the runner and the
node by pid over SSH if they have not exited after a grace period, then closes the
connection; if the head dies, the connection drops and the nodes stop by themselves.
An address is free again once its node's runner has exited.

``poll_errors`` reports, once each: no free address, an SSH failure (unknown host key,
refused login, no route), a failed setup command (with its output), a runner that
ended before its node started or a node that exited by itself (with its stderr).

The provider keeps an event loop on a thread of its own for its connections, started
at the first launch and stopped by ``close()``. ``node_config`` keys:
``object_store_memory`` (bytes).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import threading
from dataclasses import asdict, dataclass, field
from typing import Any

from nbcluster.runtime.autoscaler.ssh import asyncssh  # imported there, its DSA warning silenced
from nbcluster.runtime.autoscaler.providers import (
    LaunchError,
    LaunchFailed,
    LaunchRequest,
    NodeProvider,
    ProviderNode,
    node_spec,
)
from nbcluster.runtime.autoscaler.ssh import PROVIDER_KEYS, SshError, SshSettings, connect, run_checked, tail
from nbcluster.runtime.autoscaler.ssh_node import MODULE
from nbcluster.runtime.session import Session
from nbcluster.runtime.tls import join_token_file

__all__ = ["SshNodeProvider"]

logger = logging.getLogger(__name__)

#: A node asked to stop whose runner has not exited after this long is killed by pid.
TERMINATE_GRACE_S = 15.0
#: A started runner that has not said it started its node within this long has failed.
START_TIMEOUT_S = 120.0


@dataclass(eq=False)
class _Remote:
    """One node on one machine, and what ending it takes."""

    request: LaunchRequest
    host: str
    conn: Any = None
    process: Any = None
    pids: list[int] = field(default_factory=list)
    future: concurrent.futures.Future | None = None
    terminated: bool = False


class SshNodeProvider(NodeProvider):
    """Nodes on the machines of ``worker_ips``, over SSH (see the module docstring)."""

    options = PROVIDER_KEYS
    NODE_CONFIG_KEYS = frozenset({"object_store_memory"})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.settings = SshSettings.from_config(self.config)
        self._lock = threading.Lock()
        self._nodes: dict[str, _Remote] = {}
        self._seen: set[str] = set()
        self._errors: list[LaunchError] = []
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    # -- the provider interface ------------------------------------------------------
    def launch(self, request: LaunchRequest) -> None:
        """Start a node on the first free machine, in the background; idempotent by request id."""
        with self._lock:
            if request.request_id in self._seen or self._closed:
                return
            self._seen.add(request.request_id)
            try:
                unknown = sorted(set(request.node_config) - self.NODE_CONFIG_KEYS)
                if unknown:
                    raise LaunchFailed(f"node_config of {request.node_type} has keys the ssh provider does not know: "
                                       f"{', '.join(unknown)} (it knows object_store_memory)")
                taken = {n.host for n in self._nodes.values()}
                host = next((ip for ip in self.settings.worker_ips if ip not in taken), None)
                if host is None:
                    pool = ", ".join(self.settings.worker_ips) or "none: provider.worker_ips is empty"
                    raise LaunchFailed(f"no free machine in worker_ips (each runs one node; {pool})")
                spec = node_spec(request, node_ip=host, grpc_port=0)
            except LaunchFailed as exc:
                self._errors.append(LaunchError(request.request_id, request.node_type, str(exc)))
                return
            node = _Remote(request, host)
            self._nodes[request.request_id] = node
            node.future = asyncio.run_coroutine_threadsafe(self._run(node, json.dumps(asdict(spec))), self._ensure_loop())
            logger.info("launching instance=%s type=%s on %s", request.request_id, request.node_type, host)

    def terminate(self, instance_id: str) -> None:
        """Stop the node (module docstring); returns at once, idempotent."""
        with self._lock:
            node = self._nodes.get(instance_id)
            if node is None or node.terminated:
                return
            node.terminated = True
            assert self._loop is not None
            asyncio.run_coroutine_threadsafe(self._stop(node), self._loop)
            logger.info("terminating instance=%s on %s", instance_id, node.host)

    def non_terminated(self) -> list[ProviderNode]:
        """The nodes launched whose runner has not exited (connecting ones too)."""
        with self._lock:
            return [ProviderNode(i, n.request.node_type) for i, n in self._nodes.items()]

    def poll_errors(self) -> list[LaunchError]:
        """Failed launches and nodes that ended by themselves, each once."""
        with self._lock:
            errors, self._errors = self._errors, []
            return errors

    def close(self) -> None:
        """Stop every node and wait for them (bounded), then stop the provider's loop."""
        with self._lock:
            self._closed = True
            nodes = list(self._nodes.values())
        for node in nodes:
            self.terminate(node.request.request_id)
        futures = [n.future for n in nodes if n.future is not None]
        concurrent.futures.wait(futures, timeout=TERMINATE_GRACE_S + 10)
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop.close()
            self._loop = self._thread = None

    # -- on the provider's loop ---------------------------------------------------------
    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
            self._thread = threading.Thread(target=self._loop.run_forever, name="ssh-provider", daemon=True)
            self._thread.start()
        return self._loop

    async def _run(self, node: _Remote, spec: str) -> None:
        """Connect, set up, start the runner and wait for it to end; forget the node then."""
        request = node.request
        try:
            node.conn = await connect(self.settings, node.host)
            for command in (*self.settings.setup_commands, *self.settings.worker_setup_commands):
                if node.terminated:
                    return
                await run_checked(node.conn, command, node.host, "setup command")
            if node.terminated:
                return
            code, stderr = await self._start_runner(node, spec)
            if not node.terminated:
                raise SshError(f"its node on {node.host} ended (exit {code}): {tail(stderr) or '(no output)'}")
        except (SshError, asyncssh.Error, OSError) as exc:
            if not node.terminated:
                message = str(exc) if isinstance(exc, SshError) else f"SSH to {node.host} failed: {exc}"
                logger.warning("instance=%s on %s: %s", request.request_id, node.host, message)
                with self._lock:
                    self._errors.append(LaunchError(request.request_id, request.node_type, message))
        except Exception as exc:  # noqa: BLE001 - a provider bug is a launch failure, reported
            logger.exception("instance=%s on %s failed", request.request_id, node.host)
            with self._lock:
                self._errors.append(LaunchError(request.request_id, request.node_type, f"{type(exc).__name__}: {exc}"))
        finally:
            if node.conn is not None:
                node.conn.close()
            with self._lock:
                self._nodes.pop(request.request_id, None)

    async def _start_runner(self, node: _Remote, spec: str) -> tuple[Any, str]:
        """Run ``ssh_node`` on the machine, hand it the token, wait until it exits;
        (its exit status, its stderr)."""
        cluster = self.cluster
        command = "exec " + self.settings.python_argv(
            MODULE, "--gcs-address", cluster.gcs_address, "--spec", spec, "--config", cluster.config_env
        )
        process = node.process = await node.conn.create_process(command)
        token_file = join_token_file(cluster.token, Session(cluster.session_dir).read_ca()).decode()
        process.stdin.write(json.dumps({"token_file": token_file}) + "\n")  # stdin stays open: the lifeline
        stderr_task = asyncio.ensure_future(process.stderr.read())
        try:
            line = await asyncio.wait_for(process.stdout.readline(), START_TIMEOUT_S)
            try:
                info = json.loads(line)
                node.pids = [int(info["runner_pid"]), int(info["node_pid"])]
                logger.info("instance=%s on %s: node pid=%d", node.request.request_id, node.host, node.pids[1])
            except (ValueError, KeyError, TypeError):
                pass  # it ended before it started a node: its stderr says why
            await process.wait_closed()
        finally:
            if not stderr_task.done():
                process.close()
        stderr = await stderr_task
        return process.exit_status, stderr

    async def _stop(self, node: _Remote) -> None:
        """Close the node's lifeline; kill it by pid if it has not exited in time."""
        if node.process is None:
            if node.future is not None:
                node.future.cancel()  # still connecting or setting up: the runner never starts
            return
        try:
            node.process.stdin.write_eof()
        except (OSError, asyncssh.Error):
            pass
        try:
            await asyncio.wait_for(node.process.wait_closed(), TERMINATE_GRACE_S)
        except asyncio.TimeoutError:
            if node.pids:
                pids = " ".join(map(str, node.pids))
                logger.warning("instance=%s on %s did not stop; killing pids %s", node.request.request_id,
                               node.host, pids)
                try:
                    await node.conn.run(f"kill -KILL {pids}", check=False)
                except (OSError, asyncssh.Error):
                    pass
            node.process.close()
