"""One event subscriber per kernel process, shared by every live widget.

The runtime calls back on its own loop thread, where a view must not block (a view's
``_update`` may call ``nbcluster.state.list_nodes()``, which waits on that very loop).
So the callback only queues the event and makes sure ONE ``threading.Timer`` is
pending: at once when the last flush was at least ``FLUSH_INTERVAL`` ago, otherwise
when that interval is up. The timer's thread hands the queued events to every view
inside ``view.hold_sync()``. Nothing polls: with no events, no thread runs.

The subscription lives while views are registered; the last ``unregister`` closes it.
When the driver disconnects (``nbcluster.shutdown()``, from code or a magic) every view
is frozen first (:meth:`_Feed.freeze_all`: it keeps its last state, marked
"disconnected"); when the stream ends otherwise (the cluster's head went away) the
views are frozen too, marked so. The next ``register`` starts a new stream.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Protocol

import nbcluster.driver
import nbcluster.events

__all__ = ["FLUSH_INTERVAL", "View", "feed"]

logger = logging.getLogger(__name__)

#: At most this many seconds between flushes (~10 updates a second).
FLUSH_INTERVAL = 0.1


class View(Protocol):
    def _update(self, events: list[nbcluster.events.ClusterEvent]) -> None: ...

    def hold_sync(self) -> Any: ...


class _Feed:
    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._views: list[View] = []
        self._queue: list[nbcluster.events.ClusterEvent] = []
        self._sub: nbcluster.events.Subscription | None = None
        self._timer: threading.Timer | None = None
        self._flushing: threading.Thread | None = None
        self._last_flush = 0.0
        self._hooked = False

    # -- views -------------------------------------------------------------------------
    def register(self, view: View) -> None:
        """Deliver events to ``view`` from now on (subscribing when none is active)."""
        with self._lock:
            if not self._hooked:
                nbcluster.driver.on_disconnect(lambda: self.freeze_all("disconnected"))
                self._hooked = True
            if self._sub is None or not self._sub.active:
                self._queue.clear()
                self._sub = nbcluster.events.subscribe(self._on_event, on_end=self._on_stream_end)
            if view not in self._views:
                self._views.append(view)

    def unregister(self, view: View) -> None:
        """Stop delivering to ``view``; the last one closes the subscription and the timer."""
        with self._lock:
            if view in self._views:
                self._views.remove(view)
            if self._views:
                return
            sub, self._sub = self._sub, None
            timer, self._timer = self._timer, None
            flushing = self._flushing
            self._queue.clear()
        if sub is not None:
            sub.close()
        for thread in (timer, flushing):
            if thread is not None and thread is not threading.current_thread():
                if isinstance(thread, threading.Timer):
                    thread.cancel()
                if thread.ident is not None:
                    thread.join(timeout=10)

    def freeze_all(self, note: str, views: list[View] | None = None) -> None:
        """Freeze every live view (or those of ``views``) that can be (``freeze(note)``:
        it keeps showing its last state): the driver is going away, and with it what
        they follow."""
        for view in self.views if views is None else views:
            freeze = getattr(view, "freeze", None)
            if freeze is not None:
                try:
                    freeze(note)
                except Exception:  # noqa: BLE001 - the others still stop
                    logger.exception("freezing widget %s failed", type(view).__name__)

    @property
    def views(self) -> list[View]:
        with self._lock:
            return list(self._views)

    @property
    def active(self) -> bool:
        """Whether a subscription is running."""
        with self._lock:
            return self._sub is not None and self._sub.active

    # -- events ------------------------------------------------------------------------
    def _on_stream_end(self, reason: str) -> None:
        """On the runtime's loop thread, when the stream ended without a ``close()``:
        freeze the views from another thread (freezing waits for the flush thread,
        which may be waiting on this loop) — those registered now: a view made after a
        reconnect, on a new stream, is not frozen by the old stream's end."""
        threading.Thread(target=self.freeze_all, args=("the cluster went away", self.views),
                         name="nbcluster-widgets-freeze", daemon=True).start()

    def _on_event(self, event: nbcluster.events.ClusterEvent) -> None:
        """On the runtime's loop thread: queue, and schedule one flush."""
        with self._lock:
            if not self._views:
                return
            self._queue.append(event)
            if self._timer is not None:
                return  # a flush is pending; it takes this event too
            wait = max(0.0, FLUSH_INTERVAL - (time.monotonic() - self._last_flush))
            self._timer = threading.Timer(wait, self._flush)
            self._timer.name = "nbcluster-widgets-flush"
            self._timer.daemon = True
            self._timer.start()

    def _flush(self) -> None:
        with self._lock:
            if self._timer is not threading.current_thread():
                return  # cancelled by unregister after it fired
            self._timer = None
            self._flushing = threading.current_thread()
            self._last_flush = time.monotonic()
            events, self._queue = self._queue, []
            views = list(self._views)
        try:
            for view in views:
                if view not in self._views:
                    continue  # closed meanwhile
                try:
                    with view.hold_sync():
                        view._update(events)
                except Exception:  # noqa: BLE001 - one view's bug must not stop the others
                    logger.exception("updating widget %s failed", type(view).__name__)
        finally:
            with self._lock:
                if self._flushing is threading.current_thread():
                    self._flushing = None


#: The kernel's one feed.
feed = _Feed()
