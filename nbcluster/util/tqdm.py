"""``tqdm``: progress bars for tasks and actors, shown by their driver (as Ray's
``ray.experimental.tqdm_ray``).

    from nbcluster.util.tqdm import tqdm

    @nbcluster.remote
    def train(shard):
        for batch in tqdm(load(shard), desc=f"shard {shard}"):
            ...

Each bar's state is sent to the driver as data (not text), at most ten times a second
and once more when it closes; the driver merges the bars of all its tasks and actors
into one view: a widget under the cell that submitted the work in a notebook, one line
on stderr in a script. A bar made in the driver itself joins the same view. The class
takes tqdm's common arguments and methods; tqdm need not be installed.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

import nbcluster  # noqa: F401 - the public API's import order first
from nbcluster.runtime.core.progress import ProgressState, report

__all__ = ["tqdm"]

#: Seconds between two states of one bar sent to the driver.
MIN_INTERVAL = 0.1

_ids = itertools.count(1)
_ids_lock = threading.Lock()


def _next_id() -> str:
    with _ids_lock:
        return f"{os.getpid()}-{next(_ids)}"


class tqdm:  # noqa: N801 - tqdm's name
    """A progress bar whose state goes to the driver (see the module docstring).

    ``tqdm(iterable=None, desc=None, total=None, position=None, unit="it", leave=True,
    disable=False)``; extra tqdm keyword arguments (``ncols``, ``file`` ...) are accepted
    and ignored."""

    def __init__(self, iterable: Iterable[Any] | None = None, desc: str | None = None, total: float | None = None,
                 position: int | None = None, unit: str = "it", leave: bool = True, disable: bool = False,
                 initial: float = 0, **_ignored: Any) -> None:
        if total is None and iterable is not None:
            try:
                total = len(iterable)  # type: ignore[arg-type]
            except (TypeError, AttributeError):
                total = None
        self.iterable = iterable
        self.desc = desc or ""
        self.total = total
        self.n = initial
        self.pos = position or 0
        self.unit = unit
        self.leave = leave
        self.disable = disable
        self.closed = False
        self._id = _next_id()
        self._start = time.monotonic()
        self._sent_at = 0.0
        self._lock = threading.Lock()
        self._send(force=True)

    # -- tqdm's interface ------------------------------------------------------------
    def __iter__(self) -> Iterator[Any]:
        if self.iterable is None:
            raise TypeError("this tqdm was made without an iterable")
        try:
            for item in self.iterable:
                yield item
                self.update(1)
        finally:
            self.close()

    def __len__(self) -> int:
        return int(self.total or 0)

    def __enter__(self) -> "tqdm":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def update(self, n: float = 1) -> None:
        """Move the bar on by ``n``."""
        self.n += n
        self._send()

    def set_description(self, desc: str | None = None, refresh: bool = True) -> None:
        """A new label for the bar."""
        self.desc = desc or ""
        self._send(force=refresh)

    def set_postfix(self, *args: Any, **kwargs: Any) -> None:
        """Accepted for tqdm compatibility; not shown."""

    def reset(self, total: float | None = None) -> None:
        """Back to 0 (with a new total when given)."""
        self.n = 0
        if total is not None:
            self.total = total
        self._start = time.monotonic()
        self._send(force=True)

    def refresh(self) -> None:
        """Send the bar's state now."""
        self._send(force=True)

    def close(self) -> None:
        """The bar's last state: the driver keeps it shown (``leave=True``) or drops it."""
        if self.closed:
            return
        self.closed = True
        self._send(force=True)

    @property
    def format_dict(self) -> dict[str, Any]:
        """The bar's numbers, as tqdm names them."""
        return {"n": self.n, "total": self.total, "desc": self.desc, "unit": self.unit,
                "elapsed": time.monotonic() - self._start}

    def __repr__(self) -> str:
        total = f"/{self.total}" if self.total else ""
        return f"{self.desc + ': ' if self.desc else ''}{self.n}{total}"

    # -- to the driver -----------------------------------------------------------------
    def _send(self, force: bool = False) -> None:
        if self.disable:
            return
        now = time.monotonic()
        with self._lock:
            if not force and now - self._sent_at < MIN_INTERVAL:
                return
            self._sent_at = now
        report(ProgressState(bar_id=self._id, desc=self.desc, n=float(self.n), total=float(self.total or 0),
                             unit=self.unit, position=self.pos, closed=self.closed, elapsed=now - self._start,
                             drop=self.closed and not self.leave))
