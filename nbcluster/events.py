"""The cluster's event stream, for views that update as things happen (the widgets).

    sub = nbcluster.events.subscribe(on_event, kinds=("NODE_ADDED", "NODE_DEAD"))
    ...
    sub.close()

``on_event`` gets :class:`ClusterEvent` records on the runtime's own thread, in the
order the head numbered them, as they happen; keep it short (hand work to your own
thread or coalesce). One GCS stream serves each subscription; ``close()`` ends it, and
so does ``nbcluster.shutdown()``. Kinds: NODE_ADDED, NODE_DEAD, NODE_STATE (load
reports), JOB_STATE, ACTOR_STATE, AUTOSCALER, TASK_COUNTERS (per-job task counts).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from nbcluster.runtime import api
from nbcluster.runtime.protocol import gcs_pb2
from nbcluster.runtime.transport import methods
from nbcluster.runtime.transport.errors import ConnectionLost, RemoteError

__all__ = ["KINDS", "ClusterEvent", "Subscription", "subscribe"]

logger = logging.getLogger(__name__)

KINDS = ("NODE_ADDED", "NODE_DEAD", "NODE_STATE", "JOB_STATE", "ACTOR_STATE", "AUTOSCALER", "TASK_COUNTERS")


@dataclass(frozen=True)
class ClusterEvent:
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

    def __init__(self, task: asyncio.Task, core: Any) -> None:
        self._task = task
        self._core = core

    @property
    def active(self) -> bool:
        return not self._task.done()

    def close(self) -> None:
        if not self._task.done():
            self._core.loop.call_soon_threadsafe(self._task.cancel)


def subscribe(
    callback: Callable[[ClusterEvent], None],
    kinds: Sequence[str] = (),
    *,
    replay: bool = False,
) -> Subscription:
    """Call ``callback`` for each new event of ``kinds`` (all when empty); with
    ``replay``, first for the events the head still keeps."""
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        raise ValueError(f"unknown event kinds {unknown}; the kinds are {list(KINDS)}")
    core = api._core()
    request = gcs_pb2.WatchRequest(
        kinds=[gcs_pb2.EventKind.Value(f"EVENT_KIND_{k}") for k in kinds], replay=replay
    )

    async def pump() -> None:
        try:
            gcs = await core.gcs_connection()
            async for event in gcs.stream(methods.Gcs.Watch, request):
                try:
                    callback(ClusterEvent.from_proto(event))
                except Exception:  # noqa: BLE001 - a view's bug must not end the stream
                    logger.exception("an event subscriber failed")
        except (ConnectionLost, RemoteError) as exc:
            logger.info("event stream ended: %s", exc)

    started: asyncio.Future = asyncio.run_coroutine_threadsafe(_spawn(core, pump), core.loop)
    return Subscription(started.result(timeout=10), core)


async def _spawn(core: Any, pump: Callable[[], Any]) -> asyncio.Task:
    return core.spawn(pump())
