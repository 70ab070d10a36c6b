"""The GCS's health checks of node managers (as Ray: every ``health_check_period_s``,
each allowed ``health_check_timeout_s``; ``health_check_failure_threshold`` failures in
a row and the node is declared dead). Node managers the head reaches over a local
socket are also watched through that connection.

A node manager's own calls (its load reports, at least every heartbeat) are proof of
life too. That makes four departures from Ray, all for a head with hundreds of node
managers on few cores (``benchmarks/scale.py``, docs/architecture.md), none of which
delays the verdict on a node that died — it sends nothing, and its port refuses:

- Checks begin ``health_check_initial_delay_s`` after the node started (its first load
  report; ``startup_timeout_s`` after it registered if none comes), not after it
  registered: a node manager still starting may be starved of CPU for many seconds.
- A node heard from within the last period (and heartbeat interval) is not checked:
  at steady state the checks cost the head nothing. Checks of a node that died begin
  once it has been silent that long.
- A node that reported after the first failed check of a run began is alive: its
  checks were late, not unanswered. Its run of failures starts over.
- A check that timed out is not counted when the head itself noticed the timeout
  late — its own loop was starved, so the node's silence proves nothing. And a round
  of checks that took long is followed by as long a pause.
"""

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


def noticed_late(elapsed: float, timeout: float) -> bool:
    """Whether a call given ``timeout`` that failed after ``elapsed`` seconds was
    noticed too late to blame the callee: the caller's loop did not run in time."""
    return elapsed - timeout > max(0.25, 0.5 * timeout)


class HealthChecker:
    """Checks the nodes that are not watched through a local socket, and declares
    dead those that fail too many checks in a row."""

    def __init__(
        self,
        config: RuntimeConfig,
        token: str,
        nodes: Callable[[], list[tuple[gcs_pb2.NodeInfo, float, float]]],
        declare_dead: Callable[[bytes, str], None],
    ) -> None:
        self._config = config
        self._token = token
        # Alive nodes, with the monotonic times they started and were last heard from.
        self._nodes = nodes
        self._declare_dead = declare_dead
        self._failures: dict[bytes, int] = {}
        #: When the first check of each node's current run of failures began.
        self._failing_since: dict[bytes, float] = {}
        self._channels: dict[str, Any] = {}
        self._task: asyncio.Task | None = None
        #: Checks not counted because the head noticed their timeout late (for tests).
        self.inconclusive = 0

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
        took = 0.0
        while True:
            # A round that took long (a head starved of CPU notices its replies late)
            # is followed by as long a pause: checks must not take all of its CPU.
            await asyncio.sleep(max(config.health_check_period_s, took))
            now = time.monotonic()
            # Silent for a period, and longer than a heartbeat (reports come that often).
            silence = max(config.health_check_period_s, config.heartbeat_interval_s)
            due = [
                node
                for node, since, heard in self._nodes()
                if node.address
                and now - since >= config.health_check_initial_delay_s
                and (now - heard >= silence or node.node_id in self._failures)
            ]
            took = 0.0
            if due:
                late = sum(await asyncio.gather(*(self._check(node) for node in due)))
                took = time.monotonic() - now
                if late:
                    logger.warning(
                        "health checks of %d of %d nodes timed out while this head was starved of CPU: not counted",
                        late, len(due),
                    )

    async def _check(self, node: gcs_pb2.NodeInfo) -> bool:
        """Check one node; whether its check was inconclusive (the head was late)."""
        channel = self._channels.get(node.address)
        if channel is None:
            channel = self._channels[node.address] = GrpcChannel(node.address, self._token)
        timeout = self._config.health_check_timeout_s
        started = time.monotonic()
        try:
            await channel.call(
                methods.NodeManager.CheckHealth, nm_pb2.CheckHealthRequest(node_id=node.node_id), timeout=timeout
            )
        except asyncio.TimeoutError as exc:
            if noticed_late(time.monotonic() - started, timeout):
                self.inconclusive += 1
                return True
            self._failed(node, channel, exc, started)
            return False
        except Exception as exc:  # noqa: BLE001 - any other failure counts
            self._failed(node, channel, exc, started)
            return False
        self._failures.pop(node.node_id, None)
        self._failing_since.pop(node.node_id, None)
        return False

    def _failed(self, node: gcs_pb2.NodeInfo, channel: Any, exc: Exception, started: float) -> None:
        nid = node.node_id
        failures = self._failures.get(nid, 0) + 1
        self._failures[nid] = failures
        since = self._failing_since.setdefault(nid, started)
        logger.warning("node=%s failed health check %d: %s", nid.hex(), failures, exc)
        if failures < self._config.health_check_failure_threshold:
            return
        self._failures.pop(nid, None)
        self._failing_since.pop(nid, None)
        heard = next((h for n, _, h in self._nodes() if n.node_id == nid), 0.0)
        if heard > since:
            logger.warning(
                "node=%s failed %d health checks in a row but reported %.1f s ago: slow, not dead",
                nid.hex(), failures, time.monotonic() - heard,
            )
            return
        self._channels.pop(node.address, None)
        channel.close()
        self._declare_dead(nid, f"it failed {failures} health checks in a row (last: {type(exc).__name__})")
