"""The cluster's event stream, for views that update as things happen (the widgets).

    sub = nbcluster.events.subscribe(on_event, kinds=("NODE_ADDED", "NODE_DEAD"))
    ...
    sub.close()

``on_event`` gets :class:`ClusterEvent` records on the runtime's own thread, in the
order the head numbered them, as they happen; keep it short (hand work to your own
thread or coalesce). One GCS stream serves each subscription; ``close()`` ends it, and
so does ``nbcluster.shutdown()``. Kinds: NODE_ADDED, NODE_DEAD, NODE_STATE (load
reports), JOB_STATE, ACTOR_STATE, AUTOSCALER, TASK_COUNTERS (per-job task counts),
PLACEMENT_GROUP (a group's state changed, or it cannot be placed).

Outside a driver (a server that shows many clusters), :func:`watch` streams one
cluster's events on the caller's own asyncio loop, given its address and token::

    async for event in nbcluster.events.watch("127.0.0.1:6380", token):
        ...
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from nbcluster.exceptions import ClusterConnectionError, NbclusterError
from nbcluster.runtime import discovery
from nbcluster.runtime.driver_core import core_worker
from nbcluster.runtime.protocol import gcs_pb2
from nbcluster.runtime.transport import methods

__all__ = ["KINDS", "ClusterEvent", "Subscription", "subscribe", "watch"]

logger = logging.getLogger(__name__)

#: How long :func:`subscribe` waits for the head to start streaming.
LIVE_TIMEOUT_S = 10.0

KINDS = (
    "NODE_ADDED", "NODE_DEAD", "NODE_STATE", "JOB_STATE", "ACTOR_STATE", "AUTOSCALER", "TASK_COUNTERS",
    "PLACEMENT_GROUP",
)


@dataclass(frozen=True)
class ClusterEvent:
    """One event of the cluster: its number (``seq``, in the head's order), ``kind`` (one
    of :data:`KINDS`), when, a message, and the node, job and details it is about."""

    seq: int
    kind: str
    time: float
    message: str
    node_id: str = ""
    job_id: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    source: str = ""

    @classmethod
    def from_proto(cls, e: gcs_pb2.Event) -> "ClusterEvent":
        """The event a GCS ``Event`` message carries."""
        return cls(
            seq=e.seq,
            kind=gcs_pb2.EventKind.Name(e.kind).removeprefix("EVENT_KIND_"),
            time=e.time,
            message=e.message,
            node_id=e.node_id.hex(),
            job_id=e.job_id.hex(),
            data=json.loads(e.data_json) if e.data_json else {},
            source=e.source,
        )


class Subscription:
    """One stream of events to one callback; ``close()`` ends it."""

    def __init__(self, core: Any) -> None:
        self._core = core
        self._task: asyncio.Task | None = None
        self.closed = False

    @property
    def active(self) -> bool:
        """Whether events still come: not closed, not ended, and the driver connected
        (a shutdown stops the runtime's loop, maybe before the stream's task is done)."""
        return self._task is not None and not self._task.done() and not self._core.closed

    def close(self) -> None:
        """End the stream (an event already on its way may still reach the callback).
        Closing twice is fine."""
        self.closed = True
        if self._task is not None and not self._task.done():
            self._core.loop.call_soon_threadsafe(self._task.cancel)


def subscribe(
    callback: Callable[[ClusterEvent], None],
    kinds: Sequence[str] = (),
    *,
    replay: bool = False,
    on_end: Callable[[str], None] | None = None,
) -> Subscription:
    """Call ``callback`` for each new event of ``kinds`` (all when empty); with
    ``replay``, first for the events the head still keeps. It returns once the head
    streams (replayed events already passed to ``callback``): nothing that happens
    after it returns is missed. ``on_end(reason)`` is called (on the runtime's thread)
    if the stream ends by itself — the head went away — not after ``close()`` or the
    driver's shutdown. ``ClusterConnectionError`` if the head does not start the stream
    within ``LIVE_TIMEOUT_S``."""
    request = _request(kinds, replay)
    core = core_worker()
    sub = Subscription(core)
    live = threading.Event()

    async def pump() -> None:
        reason = "the head ended the stream"
        try:
            async for event in discovery.stream_gcs(core.gcs_connection, methods.Gcs.Watch, request,
                                                    core.gcs_address):
                if event.kind == gcs_pb2.EVENT_KIND_LIVE:
                    live.set()
                    continue
                try:
                    callback(ClusterEvent.from_proto(event))
                except Exception:  # noqa: BLE001 - a view's bug must not end the stream
                    logger.exception("an event subscriber failed")
        except NbclusterError as exc:
            logger.info("event stream ended: %s", exc)
            reason = str(exc) or type(exc).__name__
        finally:
            live.set()  # ended first: on_end says why, the caller need not wait
        if on_end is not None and not (sub.closed or core.closed or core.disconnecting):
            try:
                on_end(reason)
            except Exception:  # noqa: BLE001
                logger.exception("an event subscriber's on_end failed")

    started: asyncio.Future = asyncio.run_coroutine_threadsafe(_spawn(core, pump), core.loop)
    sub._task = started.result(timeout=10)
    if not live.wait(LIVE_TIMEOUT_S):
        sub.close()
        raise ClusterConnectionError(f"the head at {core.gcs_address} did not start the event stream within "
                                     f"{LIVE_TIMEOUT_S:g} s; check that it runs (nbcluster status) and try again")
    return sub


async def _spawn(core: Any, pump: Callable[[], Any]) -> asyncio.Task:
    return core.spawn(pump())


def _request(kinds: Sequence[str], replay: bool, mark_live: bool = True) -> gcs_pb2.WatchRequest:
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        raise ValueError(f"unknown event kinds {unknown}; the kinds are {list(KINDS)}")
    return gcs_pb2.WatchRequest(kinds=[gcs_pb2.EventKind.Value(f"EVENT_KIND_{k}") for k in kinds], replay=replay,
                                mark_live=mark_live)


async def watch(
    address: str, token: str, kinds: Sequence[str] = (), *, replay: bool = False, timeout: float = 10.0
) -> AsyncIterator[ClusterEvent]:
    """The events of the cluster at ``address`` (host:port) as they happen, on the
    running loop, over a connection of their own (no driver needed); closing the
    iterator (``aclose()``, or cancelling its consumer) closes the connection. It ends
    when the head goes away. ``ClusterConnectionError``/``AuthenticationError`` when
    the head cannot be reached or refuses ``token``."""
    request = _request(kinds, replay, mark_live=False)
    endpoint, token = discovery.gcs_target(address, token)
    conn = await discovery.connect_gcs(endpoint, token, timeout=timeout)

    async def opened() -> Any:
        return conn

    try:
        async for event in discovery.stream_gcs(opened, methods.Gcs.Watch, request, address):
            yield ClusterEvent.from_proto(event)
    except NbclusterError as exc:
        logger.info("event stream of %s ended: %s", address, exc)
    finally:
        conn.close()
