"""Progress of a ``get`` or ``wait``: ``nbcluster.get(refs, progress=True)``.

An :class:`Arrivals` counts the refs whose values arrive while the call blocks — a
callback on each object in a driver, a poll of the proxy in client mode — and shows
the count as a progress bar: a :class:`~nbcluster.runtime.core.progress.ProgressState`
sent to the driver's own log sink, where it joins the bars that tasks report
(``nbcluster.util.tqdm``): one merged line on stderr in a script, a widget under the
cell in a notebook (the kernel extension's progress handler). A callable
``progress(done, total)`` is called instead, once for each arrival. Nothing of this
runs when ``progress`` is false.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from nbcluster.runtime.core.progress import ProgressState, report

__all__ = ["Arrivals", "ProgressArg"]

logger = logging.getLogger(__name__)

#: What ``get``/``wait`` take as ``progress``.
ProgressArg = bool | Callable[[int, int], None]

#: Seconds between two states of the bar (as ``nbcluster.util.tqdm``).
MIN_INTERVAL = 0.1

#: Seconds between two polls of the proxy (client mode).
POLL_INTERVAL = 0.2

_ids = itertools.count(1)


class Arrivals:
    """Counts arrivals among ``oids`` until :meth:`close` (see the module docstring).
    ``total``: how many the call waits for (``num_returns`` for ``wait``)."""

    def __init__(self, core: Any, oids: Sequence[bytes], total: int, progress: ProgressArg, desc: str) -> None:
        if not (progress is True or callable(progress)):
            raise TypeError(f"progress must be True, False or a function progress(done, total), not {progress!r}")
        self._core = core
        self._oids = list(oids)
        self.total = total
        self.done = 0
        self._callback = progress if callable(progress) else None
        self._desc = desc
        self._id = f"{desc}-{os.getpid()}-{next(_ids)}"
        self._lock = threading.Lock()
        self._closed = False
        self._start = time.monotonic()
        self._sent_at = 0.0
        self._registered: list[bytes] = []
        self._poller: threading.Thread | None = None
        self._show(force=True)
        if hasattr(core, "when_ready"):
            core.call_soon(self._register)
        else:  # client mode: the proxy tells which are ready
            self._poller = threading.Thread(target=self._poll, name="nbcluster-arrivals", daemon=True)
            self._poller.start()

    # -- counting ------------------------------------------------------------------------
    def _register(self) -> None:
        """Loop thread: a callback on each object (called at once for those ready)."""
        for oid in self._oids:
            if self._closed:
                return
            if self._core.when_ready(oid, self._one):
                self._registered.append(oid)

    def _one(self, _oid: bytes = b"", _payload: Any = None) -> None:
        self._arrived(1)

    def _poll(self) -> None:
        remaining = list(dict.fromkeys(self._oids))
        while remaining and not self._closed:
            try:
                flags = self._core.wait_payloads(remaining, len(remaining), POLL_INTERVAL)
            except Exception:  # noqa: BLE001 - the call itself reports what went wrong
                logger.debug("polling for arrivals failed", exc_info=True)
                return
            ready = {oid for oid, flag in zip(remaining, flags) if flag}
            remaining = [oid for oid in remaining if oid not in ready]
            self._arrived(sum(1 for oid in self._oids if oid in ready))

    def _arrived(self, count: int) -> None:
        for _ in range(count):
            with self._lock:
                if self._closed or self.done >= self.total:
                    return
                self.done += 1
                done = self.done
            if self._callback is not None:
                try:
                    self._callback(done, self.total)
                except Exception:  # noqa: BLE001 - on the runtime's thread: logged, never raised
                    logger.exception("the progress callback of %s failed", self._desc)
        self._show()

    # -- showing ---------------------------------------------------------------------------
    def _show(self, force: bool = False, closed: bool = False) -> None:
        if self._callback is not None:
            return
        now = time.monotonic()
        with self._lock:
            if self._closed or (not force and now - self._sent_at < MIN_INTERVAL):
                return
            self._sent_at = now
            self._closed = closed
            done = self.done
        report(ProgressState(bar_id=self._id, desc=self._desc, n=float(done), total=float(self.total), unit="refs",
                             position=0, closed=closed, elapsed=now - self._start))

    def close(self, done: int | None = None) -> None:
        """The call returned (``done``: how many it found ready): the bar's last state;
        no more counting."""
        if done is not None:
            self._arrived(max(0, done - self.done))
        self._show(force=True, closed=True)
        self._closed = True
        if self._registered:
            self._core.call_soon(self._unregister)

    def _unregister(self) -> None:
        """Loop thread: drop the callbacks of objects that never arrived."""
        for oid in self._registered:
            entry = self._core.refs.get(oid)
            if entry is not None and entry.callbacks and self._one in entry.callbacks:
                entry.callbacks.remove(self._one)
