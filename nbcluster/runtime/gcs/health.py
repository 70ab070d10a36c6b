"""The GCS's health checks of node managers (as Ray: the first after
``health_check_initial_delay_s``, then every ``health_check_period_s``, each allowed
``health_check_timeout_s``; ``health_check_failure_threshold`` failures in a row and
the node is declared dead). Node managers the head reaches over a local socket are
also watched through that connection."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from nbcluster.runtime.config import RuntimeConfig
from nbcluster.runtime.protocol import gcs_pb2, node_manager_pb2 as nm_pb2
from nbcluster.runtime.transport import methods
from nbcluster.runtime.transport.grpc_carrier import GrpcChannel

logger = logging.getLogger(__name__)


class HealthChecker:
    """Checks the nodes that are not watched through a local socket, and declares
    dead those that fail too many checks in a row."""

    def __init__(
        self,
        config: RuntimeConfig,
        token: str,
        nodes: Callable[[], list[tuple[gcs_pb2.NodeInfo, float]]],
        declare_dead: Callable[[bytes, str], None],
    ) -> None:
        self._config = config
        self._token = token
        self._nodes = nodes  # alive nodes with the monotonic time they registered
        self._declare_dead = declare_dead
        self._failures: dict[bytes, int] = {}
        self._channels: dict[str, Any] = {}
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        """Start checking."""
        self._task = asyncio.get_running_loop().create_task(self._run())

    def stop(self) -> None:
        """Stop checking and close the channels."""
        if self._task is not None:
            self._task.cancel()
        for channel in self._channels.values():
            channel.close()
        self._channels.clear()

    async def _run(self) -> None:
        config = self._config
        while True:
            await asyncio.sleep(config.health_check_period_s)
            now = time.monotonic()
            due = [
                node
                for node, since in self._nodes()
                if node.address and now - since >= config.health_check_initial_delay_s
            ]
            if due:
                await asyncio.gather(*(self._check(node) for node in due))

    async def _check(self, node: gcs_pb2.NodeInfo) -> None:
        channel = self._channels.get(node.address)
        if channel is None:
            channel = self._channels[node.address] = GrpcChannel(node.address, self._token)
        try:
            await channel.call(
                methods.NodeManager.CheckHealth,
                nm_pb2.CheckHealthRequest(node_id=node.node_id),
                timeout=self._config.health_check_timeout_s,
            )
        except Exception as exc:  # noqa: BLE001 - any failure counts
            failures = self._failures.get(node.node_id, 0) + 1
            self._failures[node.node_id] = failures
            logger.warning("node=%s failed health check %d: %s", node.node_id.hex(), failures, exc)
            if failures >= self._config.health_check_failure_threshold:
                self._failures.pop(node.node_id, None)
                self._channels.pop(node.address, None)
                channel.close()
                self._declare_dead(
                    node.node_id, f"it failed {failures} health checks in a row (last: {type(exc).__name__})"
                )
            return
        self._failures.pop(node.node_id, None)
