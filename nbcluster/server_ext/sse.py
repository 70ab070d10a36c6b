"""Server-sent events for the API's live streams (a cluster's events, a job's log).

:class:`SseHandler` writes ``event: KIND`` / ``data: JSON`` records as an async source
yields them, a ``: keepalive`` comment when nothing happened for ``keepalive_s`` (so
proxies keep the connection), and stops when the source ends, the client leaves, a
``stop`` event is set, or a ``check`` run each keepalive period fails — whichever comes
first — always closing the source.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from nbcluster.server_ext.base import NbclusterAPIHandler

__all__ = ["SseHandler"]


class SseHandler(NbclusterAPIHandler):
    """Base of the handlers that answer with a server-sent event stream (see the module
    docstring)."""

    keepalive_s = 15.0
    _track_activity = False  # a page left open is not activity

    def initialize(self, *args: Any, **kwargs: Any) -> None:
        """Set up the handler; it notices when the client leaves."""
        super().initialize(*args, **kwargs)
        self._left = asyncio.Event()

    def on_connection_close(self) -> None:
        """The client left: end the stream."""
        self._left.set()

    def start_stream(self) -> None:
        """Send the headers of an event stream (not cached, not buffered by proxies)."""
        self.set_header("Content-Type", "text/event-stream; charset=utf-8")
        self.set_header("Cache-Control", "no-cache")
        self.set_header("X-Accel-Buffering", "no")  # proxies: do not buffer the stream

    def send_event(self, kind: str, data: Any) -> None:
        """Write one ``event: kind`` record with ``data`` as JSON (sent at the next flush)."""
        self.write(f"event: {kind}\ndata: {json.dumps(data)}\n\n")

    async def relay(self, source: AsyncIterator[tuple[str, Any]], stop: asyncio.Event | None = None,
                    check: Callable[[], Awaitable[Any]] | None = None) -> str:
        """Send ``(kind, data)`` items of ``source`` as events until it ends
        (``"ended"``), the client leaves (``"left"``) or ``stop`` is set
        (``"stopped"``); an exception of the source is raised. ``check`` runs after each
        keepalive (one at a time, beside the source): a source that is quiet because its
        far end hangs never ends by itself, so what ``check`` raises ends the relay and
        is raised. The source is closed either way. Raises tornado's
        ``StreamClosedError`` when the client left while being written to."""

        async def pump() -> None:
            async for kind, data in source:
                self.send_event(kind, data)
                await self.flush()

        pumping = asyncio.ensure_future(pump())
        left = asyncio.ensure_future(self._left.wait())
        stopped = asyncio.ensure_future((stop or asyncio.Event()).wait())
        checking: asyncio.Future | None = None
        try:
            while True:
                waiting = {pumping, left, stopped} | ({checking} if checking is not None else set())
                done, _ = await asyncio.wait(waiting, timeout=self.keepalive_s, return_when=asyncio.FIRST_COMPLETED)
                if left in done:
                    return "left"
                if stopped in done:
                    return "stopped"
                if pumping in done:
                    pumping.result()  # raises what the source raised
                    return "ended"
                if checking is not None and checking in done:
                    checking, finished = None, checking
                    finished.result()  # raises what the check raised
                    continue
                self.write(": keepalive\n\n")
                await self.flush()
                if check is not None and checking is None:
                    checking = asyncio.ensure_future(check())
        finally:
            for task in (pumping, left, stopped, checking):
                if task is not None:
                    task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await pumping
            if checking is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await checking
            aclose = getattr(source, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()
            await asyncio.gather(left, stopped, return_exceptions=True)
