"""``clusters/{name}/events``: a cluster's live events as server-sent events.

Each connected client gets one GCS ``Watch`` stream of its own
(:func:`nbcluster.events.watch`) on the server's loop. The response starts with
``event: snapshot`` (the Cluster JSON), then one ``event: KIND`` per cluster event
(``data`` is the :class:`~nbcluster.events.ClusterEvent` as JSON), with a ``:
keepalive`` comment when nothing happened for :attr:`EventsHandler.keepalive_s`. It
ends when the client leaves, when the cluster is deleted (``event: deleted``) or the
server stops, and when the head goes away (``event: unreachable``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
from typing import Any, ClassVar

from jupyter_server.auth.decorator import authorized
from tornado import web
from tornado.iostream import StreamClosedError

from nbcluster import events
from nbcluster.exceptions import NbclusterError
from nbcluster.server_ext.handlers import NbclusterAPIHandler, domain_errors

__all__ = ["EventsHandler"]


class EventsHandler(NbclusterAPIHandler):
    """``GET clusters/{name}/events[?replay=1]`` as ``text/event-stream``."""

    keepalive_s = 15.0
    _track_activity = False  # a page left open is not activity
    #: The handlers streaming now (for diagnostics and tests).
    streams: ClassVar[set["EventsHandler"]] = set()

    def initialize(self, *args: Any, **kwargs: Any) -> None:
        super().initialize(*args, **kwargs)
        self._left = asyncio.Event()

    def on_connection_close(self) -> None:
        self._left.set()

    def _event(self, kind: str, data: Any) -> None:
        self.write(f"event: {kind}\ndata: {json.dumps(data)}\n\n")

    async def _pump(self, stream: Any) -> None:
        async for event in stream:
            self._event(event.kind, dataclasses.asdict(event))
            await self.flush()

    @web.authenticated
    @authorized
    @domain_errors
    async def get(self, name: str) -> None:
        replay = self.get_argument("replay", "0").lower() in ("1", "true", "yes")
        address, token, gone = self.manager.connection(name)
        snapshot = await self.manager.get(name)
        self.set_header("Content-Type", "text/event-stream; charset=utf-8")
        self.set_header("Cache-Control", "no-cache")
        self.set_header("X-Accel-Buffering", "no")  # proxies: do not buffer the stream
        stream = events.watch(address, token, replay=replay)
        self.streams.add(self)
        pump = asyncio.ensure_future(self._pump(stream))
        left = asyncio.ensure_future(self._left.wait())
        deleted = asyncio.ensure_future(gone.wait())
        try:
            self._event("snapshot", snapshot)
            await self.flush()
            while True:
                done, _ = await asyncio.wait({pump, left, deleted}, timeout=self.keepalive_s,
                                             return_when=asyncio.FIRST_COMPLETED)
                if left in done:
                    return
                if deleted in done:
                    self._event("deleted", {"name": name})
                    break
                if pump in done:
                    error = pump.exception()
                    if isinstance(error, NbclusterError):
                        self._event("unreachable", {"name": name, "message": str(error)})
                    elif error is not None:
                        raise error
                    else:
                        self._event("unreachable", {"name": name, "message": "the head closed the stream"})
                    break
                if not done:
                    self.write(": keepalive\n\n")
                    await self.flush()
            self.finish(set_content_type="text/event-stream; charset=utf-8")
        except StreamClosedError:
            return  # the client left while we wrote
        finally:
            for task in (pump, left, deleted):
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await pump
            await stream.aclose()
            await asyncio.gather(left, deleted, return_exceptions=True)
            self.streams.discard(self)
