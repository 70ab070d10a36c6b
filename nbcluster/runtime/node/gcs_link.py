"""A node manager's tie to the GCS.

It registers the node, then reports its load at least every heartbeat interval
(sooner after a change); each reply carries the cluster view every node schedules
with. When the head cannot be reached it retries with backoff and gives up after
``gcs_reconnect_timeout_s`` (the node then shuts down cleanly); registering too. A head
slow to answer (hundreds of node managers starting at once on a few cores) is asked
again, each report allowed twice as long as the last that timed out; a call that times
out leaves the connection up — a busy head is not a broken connection, and redialing
would add a registration and a watch to its load — until several in a row have.
On a new connection it registers again, under the same node id and secret, before it
reports: a restarted head (which recovered this node from its store) takes it back
with its workers, actors and objects. When the GCS answers that this node was
declared dead, the node is *fenced*: it must not go on as itself, and rejoins as a
new node.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable
from typing import Any

from nbcluster.runtime.config import RuntimeConfig
from nbcluster.runtime.protocol import common_pb2, gcs_pb2
from nbcluster.runtime.transport import dial, methods
from nbcluster.runtime.transport.errors import ConnectionLost, RemoteError

logger = logging.getLogger(__name__)


#: The report (and view refresh) interval while lease requests wait for resources.
WAITING_INTERVAL_S = 0.2
#: Calls timing out in a row on one connection before it is dropped and redialed (a
#: head gone without closing it); fewer are a head too busy to answer in time.
TIMEOUTS_BEFORE_REDIAL = 3


class Fenced(Exception):
    """The GCS declared this node dead."""


class GcsLink:
    """The node manager's connection to the GCS: registration, load reports, the
    cluster view, redialing when the connection breaks."""

    def __init__(
        self,
        address: str,
        token: str,
        config: RuntimeConfig,
        node_info: Callable[[], gcs_pb2.NodeInfo],
        on_view: Callable[[list[gcs_pb2.NodeInfo]], None],
        waiting: Callable[[], bool] = lambda: False,
    ) -> None:
        self.address = address
        self._token = token
        self._config = config
        self._node_info = node_info
        self._on_view = on_view
        self._waiting = waiting
        self._conn: Any = None
        #: Proves to the GCS that reports about this node come from this node manager.
        self._secret = secrets.token_bytes(16)
        self.dirty = asyncio.Event()
        self.cluster_info: gcs_pb2.GetClusterInfoReply | None = None
        #: Resources of node types the autoscaler may still add.
        self.launchable: list[common_pb2.ResourceSet] = []
        #: A new connection after the first registration: register again before reporting.
        self._register_again = False
        #: Calls that timed out in a row on the current connection.
        self._timeouts = 0
        #: The cluster view as the GCS last gave it, and its epoch and version: each
        #: report's reply carries only the rows changed since (ReportNodeStateReply).
        self._view: dict[bytes, gcs_pb2.NodeInfo] = {}
        self._view_epoch = 0
        self._view_version = 0

    async def _connection(self) -> Any:
        if self._conn is None or self._conn.closed:
            # The first dial waits for a head still starting; a reconnect is a retry
            # among others, each short.
            timeout = self._config.startup_timeout_s if self.cluster_info is None else 2.0
            self._conn = await dial(self.address, self._token, timeout=timeout)
            self._register_again = self.cluster_info is not None
            self._timeouts = 0
        return self._conn

    async def call(self, method: Any, request: Any, timeout: float | None = 10.0) -> Any:
        """Call the GCS (dialing it if needed)."""
        conn = await self._connection()
        try:
            reply = await conn.call(method, request, timeout=timeout)
        except asyncio.TimeoutError:
            if self._conn is conn:
                self._timeouts += 1
                if self._timeouts >= TIMEOUTS_BEFORE_REDIAL:
                    self._drop(conn)
            raise
        except ConnectionLost:
            self._drop(conn)
            raise
        if self._conn is conn:
            self._timeouts = 0
        return reply

    def _drop(self, conn: Any) -> None:
        if self._conn is conn:
            self._conn = None
            conn.close()

    async def register(self) -> list[gcs_pb2.NodeInfo]:
        """Register the node; the cluster view. A head that does not answer in time is
        asked again (the same node id and secret: a retry, not a second node) until it
        has been unreachable for ``gcs_reconnect_timeout_s``. Raises Fenced when the
        GCS declared the node dead meanwhile."""
        failing_since: float | None = None
        backoff = 0.1
        while True:
            try:
                reply = await self.call(
                    methods.Gcs.RegisterNode,
                    gcs_pb2.RegisterNodeRequest(node=self._node_info(), node_secret=self._secret),
                    timeout=30.0,
                )
                self.cluster_info = await self.call(
                    methods.Gcs.GetClusterInfo, gcs_pb2.GetClusterInfoRequest(), timeout=30.0
                )
                break
            except RemoteError as exc:
                if exc.code == common_pb2.ERROR_CODE_ALREADY_EXISTS and failing_since is not None:
                    raise Fenced(exc.message) from None
                raise
            except (ConnectionLost, asyncio.TimeoutError, OSError) as exc:
                now = time.monotonic()
                if failing_since is None:
                    failing_since = now
                    logger.warning("registering with the GCS at %s failed (%s); retrying", self.address, exc)
                if now - failing_since > self._config.gcs_reconnect_timeout_s:
                    raise
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
        self.launchable = list(reply.launchable)
        self._view = {n.node_id: n for n in reply.nodes}
        return list(reply.nodes)

    def _apply_view(self, reply: gcs_pb2.ReportNodeStateReply) -> list[gcs_pb2.NodeInfo]:
        """The view after ``reply``: its rows laid over the last view (a delta of the
        same GCS run), or in its place."""
        if reply.view_delta and reply.view_epoch == self._view_epoch:
            for node in reply.nodes:
                if node.state == gcs_pb2.NODE_STATE_ALIVE:
                    self._view[node.node_id] = node
                else:
                    self._view.pop(node.node_id, None)
        else:
            self._view = {n.node_id: n for n in reply.nodes}
        self._view_epoch, self._view_version = reply.view_epoch, reply.view_version
        return list(self._view.values())

    async def run(self) -> None:
        """Report until fenced (raises Fenced) or the head is gone for good (returns)."""
        unreachable_since: float | None = None
        unreachable_kind: type | None = None  # each new kind of failure is logged once
        backoff = 0.1
        late = 0  # reports timed out in a row: each next one waits twice as long (up to 8x)
        last_sent, sent_at = b"", 0.0
        while True:
            # While requests wait for a node that may be joining, refresh the view often.
            interval = min(WAITING_INTERVAL_S, self._config.heartbeat_interval_s) if self._waiting() else (
                self._config.heartbeat_interval_s
            )
            try:
                due = max(0.0, interval - (time.monotonic() - sent_at))
                await asyncio.wait_for(self.dirty.wait(), due if unreachable_since is None else backoff)
                await asyncio.sleep(0.1)  # coalesce bursts of changes
            except asyncio.TimeoutError:
                pass
            self.dirty.clear()
            info = self._node_info()
            idle_for, memory_used = info.idle_for_s, info.memory_used
            info.idle_for_s = 0.0  # these move all the time: not a change worth a report
            info.memory_used = 0
            payload = info.SerializeToString(deterministic=True)
            info.idle_for_s, info.memory_used = idle_for, memory_used
            if payload == last_sent and time.monotonic() - sent_at < interval:
                continue  # nothing new to say, and the heartbeat (and view refresh) is not due
            sent_at = time.monotonic()  # an attempt: the next is due an interval later
            timeout = max(2.0, interval * 2) * 2 ** min(late, 3)
            try:
                if self._register_again:
                    await self.call(
                        methods.Gcs.RegisterNode,
                        gcs_pb2.RegisterNodeRequest(node=info, node_secret=self._secret),
                        timeout=timeout,
                    )
                    self._register_again = False
                    logger.info("registered again with the GCS at %s", self.address)
                    unreachable_since = None  # it answers: only a head silent this long is given up on
                reply = await self.call(
                    methods.Gcs.ReportNodeState,
                    gcs_pb2.ReportNodeStateRequest(
                        node=info, node_secret=self._secret, view_epoch=self._view_epoch,
                        view_version=self._view_version,
                    ),
                    timeout=timeout,
                )
                last_sent = payload
            except RemoteError as exc:
                if exc.code in (common_pb2.ERROR_CODE_NOT_FOUND, common_pb2.ERROR_CODE_ALREADY_EXISTS):
                    raise Fenced(exc.message) from None
                logger.warning("reporting to the GCS failed: %s", exc)
                continue
            except (ConnectionLost, asyncio.TimeoutError, OSError) as exc:
                # A head that answers late (starved of CPU) gets longer to answer.
                late = late + 1 if isinstance(exc, asyncio.TimeoutError) else 0
                now = time.monotonic()
                if unreachable_since is None:
                    unreachable_since = now
                if type(exc) is not unreachable_kind:  # e.g. reset, then its name held by another user
                    unreachable_kind = type(exc)
                    logger.warning("the GCS is unreachable (%s); retrying", exc)
                if now - unreachable_since > self._config.gcs_reconnect_timeout_s:
                    logger.error(
                        "the GCS stayed unreachable for %.0f s; shutting down", self._config.gcs_reconnect_timeout_s
                    )
                    return
                backoff = min(backoff * 2, 2.0)
                continue
            late = 0
            if unreachable_since is not None:
                logger.info("the GCS is reachable again")
                unreachable_since, unreachable_kind, backoff = None, None, 0.1
            self.launchable = list(reply.launchable)
            self._on_view(self._apply_view(reply))

    async def watch_deaths(self, on_event: Callable[[gcs_pb2.Event], None]) -> None:
        """Call ``on_event(event)`` whenever a node dies (the GCS's events), before the
        next heartbeat brings the view. Not joins: every node hearing of every join
        made a cluster's start quadratic, and while requests wait for a node the view
        comes every WAITING_INTERVAL_S anyway. Runs until cancelled; a dropped stream
        is reopened with backoff."""
        request = gcs_pb2.WatchRequest(kinds=[gcs_pb2.EVENT_KIND_NODE_DEAD])
        backoff = 0.1
        while True:
            try:
                conn = await self._connection()
                async for event in conn.stream(methods.Gcs.Watch, request):
                    backoff = 0.1
                    on_event(event)
            except (ConnectionLost, RemoteError, asyncio.TimeoutError, OSError) as exc:
                logger.debug("membership watch ended: %s", exc)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 2.0)

    async def unregister(self, reason: str) -> None:
        """Tell the GCS the node is leaving (best effort)."""
        try:
            conn = self._conn
            if conn is not None and not conn.closed:
                await conn.call(
                    methods.Gcs.UnregisterNode,
                    gcs_pb2.UnregisterNodeRequest(node_id=self._node_info().node_id, reason=reason, node_secret=self._secret),
                    timeout=1.0,
                )
        except Exception:  # noqa: BLE001 - the head may be gone already
            pass

    def close(self) -> None:
        """Close the connection."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None
