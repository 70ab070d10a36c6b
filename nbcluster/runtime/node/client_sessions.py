"""The client-mode proxies a node manager runs: one driver process per client that
has no node of its own (``runtime/client/``), started on the client's request and
ended with its node manager (their lifeline) or when their client is gone for good."""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import subprocess
from dataclasses import dataclass

from nbcluster.runtime import envvars, ids
from nbcluster.runtime.credentials import driver_token
from nbcluster.runtime.procutil import spawn_python
from nbcluster.runtime.protocol import common_pb2
from nbcluster.runtime.protocol import node_manager_pb2 as nm_pb2
from nbcluster.runtime.session import Session
from nbcluster.runtime.transport.errors import RemoteError

logger = logging.getLogger(__name__)


@dataclass(eq=False)
class _Proxy:
    proc: subprocess.Popen
    lifeline: int
    endpoint: str


class ClientSessions:
    """Start, track and end the proxies of client-mode drivers on this node."""

    def __init__(
        self, session: Session, token: str, config_env: str, node_id: bytes, node_endpoint: str, startup_timeout: float
    ) -> None:
        self._session = session
        self._credential = driver_token(token)  # a proxy runs the client's work: no cluster token
        self._config_env = config_env
        self._node_id = node_id
        self._node_endpoint = node_endpoint
        self._startup_timeout = startup_timeout
        self.running: dict[bytes, _Proxy] = {}
        self._ready: dict[bytes, asyncio.Future] = {}

    async def start(self, request: nm_pb2.StartClientSessionRequest, gcs_route: str) -> nm_pb2.StartClientSessionReply:
        """Start a proxy for a client's job; returns once it is connected as a driver."""
        worker_id = ids.random_id()
        read, write = os.pipe()
        try:
            proc = spawn_python(
                "nbcluster.runtime.client.proxy",
                [
                    "--session-dir", str(self._session.dir),
                    "--gcs-address", gcs_route,
                    "--node-endpoint", self._node_endpoint,
                    "--node-id", self._node_id.hex(),
                    "--worker-id", worker_id.hex(),
                    "--lifeline-fd", str(read),
                ],
                log_dir=self._session.logs,
                log_name=f"client-proxy-{worker_id.hex()[:8]}",
                env={
                    envvars.CONFIG: self._config_env,
                    envvars.CLIENT_JOB: base64.b64encode(request.job.SerializeToString()).decode(),
                },
                pass_fds=(read,),
                credential=self._credential,
            )
        except OSError as exc:
            os.close(write)
            raise RemoteError(common_pb2.ERROR_CODE_UNAVAILABLE, f"cannot start a client proxy: {exc}") from None
        finally:
            os.close(read)
        os.set_inheritable(write, False)
        proxy = self.running[worker_id] = _Proxy(proc, write, self._session.endpoint(f"w-{worker_id.hex()[:16]}"))
        ready = self._ready[worker_id] = asyncio.get_running_loop().create_future()
        try:
            await self._await_ready(proxy, ready)
        finally:
            self._ready.pop(worker_id, None)
        logger.info("client proxy pid=%d ready at %s", proc.pid, proxy.endpoint)
        return nm_pb2.StartClientSessionReply(endpoint=proxy.endpoint)

    async def _await_ready(self, proxy: _Proxy, ready: asyncio.Future) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._startup_timeout
        while not ready.done():
            code = proxy.proc.poll()
            if code is not None or loop.time() > deadline:
                why = f"exited with code {code}" if code is not None else f"did not connect within {self._startup_timeout:g} s"
                if code is None:
                    proxy.proc.kill()
                raise RemoteError(
                    common_pb2.ERROR_CODE_UNAVAILABLE,
                    f"the client proxy on the head {why}; see client-proxy-*.err in the head's session logs",
                )
            await asyncio.wait([ready], timeout=0.05)

    def registered(self, worker_id: bytes) -> None:
        """A driver registered with this node: if it is a proxy being started, it is ready."""
        ready = self._ready.get(worker_id)
        if ready is not None and not ready.done():
            ready.set_result(None)

    def reap(self) -> None:
        """Forget proxies that exited (their clients left, or their grace ran out)."""
        for worker_id, proxy in list(self.running.items()):
            if proxy.proc.poll() is not None:
                del self.running[worker_id]
                os.close(proxy.lifeline)

    def shutdown(self) -> list[subprocess.Popen]:
        """The node is going: close every proxy's lifeline; return them to wait for."""
        procs = []
        for proxy in self.running.values():
            os.close(proxy.lifeline)
            procs.append(proxy.proc)
        self.running.clear()
        return procs
