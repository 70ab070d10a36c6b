"""``clusters/{name}/events``: a cluster's live events as server-sent events; ``events``:
the list of clusters, sent again whenever it changes, and the clusters running on this
machine that the server does not know yet (``local``), sent again whenever they change.

Each connected client gets one GCS ``Watch`` stream of its own
(:func:`nbcluster.events.watch`) on the server's loop. The response starts with
``event: snapshot`` (the Cluster JSON), then one ``event: KIND`` per cluster event
(``data`` is the :class:`~nbcluster.events.ClusterEvent` as JSON), with a ``:
keepalive`` comment when nothing happened for :attr:`EventsHandler.keepalive_s`. It
ends when the client leaves, when the cluster is deleted (``event: deleted``) or the
server stops, and when the head goes away (``event: unreachable``): it closes the
stream, or — since a head that hangs keeps its connections open — it does not answer
the manager's :meth:`~nbcluster.server_ext.manager.ClusterManager.ping` after a
keepalive within ``ping_timeout_s``, which marks the cluster unreachable too.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator
from typing import Any, ClassVar

from jupyter_server.auth.decorator import authorized
from tornado import web
from tornado.iostream import StreamClosedError

from nbcluster import events
from nbcluster.exceptions import NbclusterError
from nbcluster.server_ext.base import domain_errors
from nbcluster.server_ext.models import ClusterConflict
from nbcluster.server_ext.sse import SseHandler

__all__ = ["ClusterListEventsHandler", "EventsHandler"]


class EventsHandler(SseHandler):
    """``GET clusters/{name}/events[?replay=1]`` as ``text/event-stream``."""

    #: The handlers streaming now (for diagnostics and tests).
    streams: ClassVar[set["EventsHandler"]] = set()

    @web.authenticated
    @authorized
    @domain_errors
    async def get(self, name: str) -> None:
        """Stream the cluster's events (``?replay=1``: the head's kept events first)."""
        replay = self.get_argument("replay", "0").lower() in ("1", "true", "yes")
        address, token, gone = self.manager.connection(name)
        snapshot = await self.manager.get(name)
        self.start_stream()
        stream = events.watch(address, token, replay=replay)

        async def items() -> AsyncIterator[tuple[str, Any]]:
            async for event in stream:
                yield event.kind, dataclasses.asdict(event)

        self.streams.add(self)
        try:
            self.send_event("snapshot", snapshot)
            await self.flush()
            try:
                how = await self.relay(items(), stop=gone, check=lambda: self.manager.ping(name))
            except NbclusterError as exc:
                self.send_event("unreachable", {"name": name, "message": str(exc)})
            else:
                if how == "left":
                    return
                if how == "stopped":
                    self.send_event("deleted", {"name": name})
                else:
                    self.send_event("unreachable", {"name": name, "message": "the head closed the stream"})
            self.finish(set_content_type="text/event-stream; charset=utf-8")
        except StreamClosedError:
            return  # the client left while we wrote
        finally:
            await stream.aclose()
            self.streams.discard(self)


class ClusterListEventsHandler(SseHandler):
    """``GET events``: ``event: clusters`` with ``{"clusters": [Cluster...]}`` now and
    after each change of the list (a cluster made, attached, deleted, or its status), and
    ``event: local`` with ``{"clusters": [...]}`` (as ``GET local``) now and whenever the
    clusters running on this machine that the server does not know change — a notebook,
    script or ``nbcluster start --head`` started or stopped one; the server looks every
    :attr:`local_poll_s` while the stream is open. Until the client leaves or the server
    stops."""

    #: Seconds between two looks for clusters on this machine (a notebook's shows this soon).
    local_poll_s = 1.0

    @web.authenticated
    @authorized
    @domain_errors
    async def get(self) -> None:
        """Stream the list of clusters and those on this machine: once now, then after each change."""
        self.start_stream()
        try:
            if await self.relay(self._items(), stop=self.manager.closing) != "left":
                self.finish(set_content_type="text/event-stream; charset=utf-8")
        except StreamClosedError:
            pass  # the client left while we wrote

    async def _items(self) -> AsyncIterator[tuple[str, Any]]:
        changes = self.manager.changes()
        change: asyncio.Future | None = None
        seen: Any = None
        try:
            while True:
                if change is None:
                    change = asyncio.ensure_future(anext(changes))
                done, _ = await asyncio.wait({change}, timeout=self.local_poll_s)
                if change in done:
                    change.result()
                    change = None
                    yield "clusters", {"clusters": await self.manager.list_clusters()}
                local = await self._local()
                if local != seen:
                    seen = local
                    yield "local", local
        finally:
            if change is not None:
                change.cancel()
                with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                    await change
            await changes.aclose()

    async def _local(self) -> dict[str, Any]:
        try:
            return {"clusters": await self.manager.local()}
        except ClusterConflict as exc:  # this user's session root is not theirs alone
            return {"clusters": [], "message": str(exc)}
