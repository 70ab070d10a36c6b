"""The driver prints the autoscaler's decisions as they happen, as Ray does:

    (autoscaler +12s) Adding 2 nodes of type cpu_worker for 4 pending tasks {CPU: 1}

The offset counts from the driver's ``init()``. On by default; ``init(...,
autoscaler_events=False)`` or ``NBCLUSTER_AUTOSCALER_EVENTS=0`` turns it off.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Callable
from typing import Any

from nbcluster.runtime.protocol import gcs_pb2
from nbcluster.runtime.transport import methods
from nbcluster.runtime.transport.errors import ConnectionLost, RemoteError

logger = logging.getLogger(__name__)



def format_event(event: gcs_pb2.Event, since: float) -> str:
    """An autoscaler event as the line printed for it (time since ``since``)."""
    return f"(autoscaler +{max(0.0, event.time - since):.0f}s) {event.message}"


async def print_events(gcs: Any, since: float | None = None, write: Callable[[str], Any] | None = None) -> None:
    """Print autoscaler events from the GCS stream until the connection ends."""
    since = time.time() if since is None else since
    write = write or (lambda line: print(line, file=sys.stderr, flush=True))
    request = gcs_pb2.WatchRequest(kinds=[gcs_pb2.EVENT_KIND_AUTOSCALER])
    try:
        async for event in gcs.stream(methods.Gcs.Watch, request):
            write(format_event(event, since))
    except (ConnectionLost, RemoteError, asyncio.CancelledError):
        return
