"""Event pub/sub: the one stream every view of the cluster consumes."""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from nbcluster.runtime.protocol import gcs_pb2

logger = logging.getLogger(__name__)

_WATCHER_QUEUE = 10000


class WatcherFellBehind(Exception):
    """A watcher read too slowly and was dropped; it may watch again from its cursor."""


class EventLog:
    """Numbers events, keeps the newest ``retention`` for replay, fans them out."""

    def __init__(self, retention: int) -> None:
        self._seq = 0
        self._recent: collections.deque[gcs_pb2.Event] = collections.deque(maxlen=retention)
        #: Each watcher's queue and the kinds it asked for (empty: all). Only those are
        #: queued: every node manager watches joins and deaths, and queuing every load
        #: report for each of them made the head's idle work grow as the square of the
        #: number of nodes.
        self._watchers: dict[asyncio.Queue, frozenset[int]] = {}

    def publish(
        self,
        kind: int,
        message: str,
        *,
        node_id: bytes = b"",
        job_id: bytes = b"",
        data: dict[str, Any] | None = None,
        source: str = "gcs",
    ) -> gcs_pb2.Event:
        """Append a new event of ``kind``; returns it."""
        event = gcs_pb2.Event(
            kind=kind,
            time=time.time(),
            message=message,
            node_id=node_id,
            job_id=job_id,
            data_json=json.dumps(data) if data else "",
            source=source,
        )
        return self.append(event)

    def append(self, event: gcs_pb2.Event) -> gcs_pb2.Event:
        """Number ``event`` (and time it if it has no time), keep it, fan it out; returns it."""
        self._seq += 1
        event.seq = self._seq
        if not event.time:
            event.time = time.time()
        self._recent.append(event)
        if event.message:  # load reports and counters carry data only: not worth a log line each
            logger.info("event %d %s: %s", event.seq, gcs_pb2.EventKind.Name(event.kind), event.message)
        for queue, kinds in list(self._watchers.items()):
            if kinds and event.kind not in kinds:
                continue
            if queue.qsize() >= _WATCHER_QUEUE:
                del self._watchers[queue]
                queue.put_nowait(WatcherFellBehind())
            else:
                queue.put_nowait(event)
        return event

    async def watch(self, request: gcs_pb2.WatchRequest) -> AsyncIterator[gcs_pb2.Event]:
        """The events ``request`` asks for: replayed after its cursor if asked, then (if
        asked) an EVENT_KIND_LIVE mark, then live until the log closes
        (WatcherFellBehind if the reader falls too far behind)."""
        kinds = frozenset(request.kinds)
        queue: asyncio.Queue = asyncio.Queue()
        self._watchers[queue] = kinds
        try:
            if request.replay:
                for event in list(self._recent):
                    if event.seq > request.after_seq and (not kinds or event.kind in kinds):
                        yield event
            if request.mark_live:
                yield gcs_pb2.Event(seq=self._seq, kind=gcs_pb2.EVENT_KIND_LIVE, time=time.time())
            while True:
                event = await queue.get()
                if event is None:
                    return
                if isinstance(event, Exception):
                    raise event
                yield event
        finally:
            self._watchers.pop(queue, None)

    def close(self) -> None:
        """End every watch."""
        for queue in list(self._watchers):
            queue.put_nowait(None)
        self._watchers.clear()
