"""A cap on connections that have not authenticated yet, for listeners whose accept
loop is ours (the object port, the jobs API).

At most ``per_peer`` unauthenticated connections per peer address and ``total`` in
all are kept. Over a cap, the *oldest* is closed, not the newest: a flood of idle
connections then costs a bounded amount of memory, and a real client — which
authenticates within milliseconds of connecting — always gets through.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nbcluster.runtime.transport.refusals import Refusals


class PreAuthGate:
    """Bounds the connections that have not yet proven the token: at most
    ``per_peer`` per address and ``total`` in all, the oldest closed first."""

    def __init__(self, per_peer: int, total: int, refusals: Refusals) -> None:
        self.per_peer = per_peer
        self.total = total
        self._refusals = refusals
        #: Unauthenticated connections, oldest first: key -> (peer, close, is_closed).
        self._waiting: dict[Any, tuple[str, Callable[[], None], Callable[[], bool]]] = {}

    def __len__(self) -> int:
        return len(self._waiting)

    def admit(self, key: Any, peer: str, close: Callable[[], None],
              is_closed: Callable[[], bool] = lambda: False) -> None:
        """A new connection from ``peer``; ``close()`` ends it if it must go."""
        for old in [k for k, (_, _, gone) in self._waiting.items() if gone()]:
            del self._waiting[old]  # closed without telling us
        mine = [k for k, (p, _, _) in self._waiting.items() if p == peer]
        if len(mine) >= self.per_peer:
            self._evict(mine[0], "too many unauthenticated connections from one address")
        if len(self._waiting) >= self.total:
            self._evict(next(iter(self._waiting)), "too many unauthenticated connections")
        self._waiting[key] = (peer, close, is_closed)

    def authenticated(self, key: Any) -> None:
        """``key`` proved a credential (or closed): it no longer counts."""
        self._waiting.pop(key, None)

    def _evict(self, key: Any, reason: str) -> None:
        peer, close, _ = self._waiting.pop(key)
        self._refusals.note(reason, peer)
        close()
