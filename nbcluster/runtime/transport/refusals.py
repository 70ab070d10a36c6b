"""Logging refused connections without letting a flood fill the log.

Each listener keeps one :class:`Refusals`. The first refusal of each reason is logged
as it happens (with the peer), later ones are counted and summed up at most every
``interval`` seconds: "refused 4812 connections on the object port in the last 10 s
(4810 bad or missing token, 2 timed out before authenticating)".
"""

from __future__ import annotations

import logging
import time
from collections import Counter

logger = logging.getLogger(__name__)


class Refusals:
    """One listener's refused connections: the first of each reason logged, the
    rest summed up every ``interval`` seconds (see the module docstring)."""

    def __init__(self, listener: str, interval: float = 10.0, log: logging.Logger = logger) -> None:
        self.listener = listener
        self.interval = interval
        self._log = log
        self._first: set[str] = set()
        self._counts: Counter[str] = Counter()
        self._since = time.monotonic()
        #: Every refusal so far, by reason (tests and statistics).
        self.total: Counter[str] = Counter()

    def note(self, reason: str, peer: str = "") -> None:
        """One refused connection or call."""
        self.total[reason] += 1
        if reason not in self._first:
            self._first.add(reason)
            self._log.warning("refused a connection on the %s%s: %s", self.listener,
                              f" from {peer}" if peer else "", reason)
            return
        self._counts[reason] += 1
        now = time.monotonic()
        if now - self._since >= self.interval:
            parts = ", ".join(f"{n} {r}" for r, n in self._counts.most_common())
            self._log.warning("refused %d connections on the %s in the last %.0f s (%s)",
                              sum(self._counts.values()), self.listener, now - self._since, parts)
            self._counts.clear()
            self._since = now
