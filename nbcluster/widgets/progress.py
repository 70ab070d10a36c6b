"""``progress()``: one job's tasks grouped by function, like Dask's ``progress``.

    from nbcluster.widgets import progress
    progress()                 # this driver's own job
    progress("0a00000001")     # another job, by its (hex) job id

One row per function name: a bar of finished out of total, and counts of pending,
running, finished and failed (failed includes cancelled) tasks. Seeded from
``nbcluster.state.list_tasks`` at start; afterwards only TASK_COUNTERS events (through
the shared feed, published at most once a second per job) change it.
"""

from __future__ import annotations

import collections
import logging
import threading
from typing import Any

import ipywidgets as widgets

import nbcluster
import nbcluster.state
from nbcluster.events import ClusterEvent

from ._display import StaticReprMixin, bar_html, esc
from ._feed import feed

__all__ = ["ProgressWidget", "progress"]

logger = logging.getLogger(__name__)

#: The counts each row shows, in order.
COLUMNS = ("pending", "running", "finished", "failed")


def _normalize_job_id(job_id: Any) -> str:
    """Job ids as events carry them: lower-case hex, no ``0x``."""
    if isinstance(job_id, (bytes, bytearray)):
        return bytes(job_id).hex()
    text = str(job_id).strip().lower()
    return text[2:] if text.startswith("0x") else text


def _row_counts(states: dict[str, Any]) -> dict[str, int]:
    """A function's ``{state: count}`` as ``{pending, running, finished, failed, total}``."""
    n = {str(k).upper(): int(v) for k, v in states.items()}
    total = sum(n.values())
    running = n.get("RUNNING", 0)
    finished = n.get("FINISHED", 0)
    failed = n.get("FAILED", 0) + n.get("CANCELLED", 0)
    return {
        "pending": max(0, total - running - finished - failed),
        "running": running,
        "finished": finished,
        "failed": failed,
        "total": total,
    }


class ProgressWidget(StaticReprMixin, widgets.VBox):
    """Task progress of one job, per function. Plain-Python state for tests:
    ``job_id`` (hex), ``by_function`` (``{name: {pending, running, finished, failed,
    total}}``), ``closed``."""

    def __init__(self, job_id: str | None = None, *, seed: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if job_id is None:
            job_id = nbcluster.get_runtime_context().get_job_id()
        self.job_id = _normalize_job_id(job_id)
        self.closed = False
        self.by_function: dict[str, dict[str, int]] = {}
        self._lock = threading.Lock()
        self._got_event = False
        self._header = widgets.HTML()
        self._rows: dict[str, tuple[widgets.IntProgress, widgets.HTML, widgets.HBox]] = {}
        self._box = widgets.VBox()
        self.children = [self._header, self._box]
        self._registered = False
        if nbcluster.is_initialized():
            feed.register(self)
            self._registered = True
            if seed:
                self._seed()
        self._render()

    # -- state -----------------------------------------------------------------------
    def _seed(self) -> None:
        """Counts from the task table, unless an event came first (it is newer)."""
        try:
            tasks = nbcluster.state.list_tasks(job_id=self.job_id)
        except Exception as exc:  # noqa: BLE001 - the events fill it in anyway
            logger.warning("progress of job=%s: listing its tasks failed: %s", self.job_id, exc)
            return
        counts: dict[str, collections.Counter] = {}
        for t in tasks:
            counts.setdefault(t.name, collections.Counter())[t.state] += 1
        with self._lock:
            if not self._got_event:
                self.by_function = {name: _row_counts(c) for name, c in sorted(counts.items())}

    def _update(self, events: list[ClusterEvent]) -> None:
        """Events from the feed (inside ``hold_sync()``): the last TASK_COUNTERS of
        this job wins (each carries the job's full counts)."""
        if self.closed:
            return
        latest = None
        for e in events:
            if e.kind == "TASK_COUNTERS" and _normalize_job_id(e.job_id) == self.job_id:
                latest = e
        if latest is None:
            return
        by_function = latest.data.get("by_function") or {}
        with self._lock:
            self._got_event = True
            self.by_function = {name: _row_counts(states) for name, states in sorted(by_function.items())}
        self._render()

    @property
    def totals(self) -> dict[str, int]:
        out = dict.fromkeys((*COLUMNS, "total"), 0)
        for row in self.by_function.values():
            for key in out:
                out[key] += row.get(key, 0)
        return out

    # -- view ------------------------------------------------------------------------
    @staticmethod
    def _counts_text(row: dict[str, int]) -> str:
        return " · ".join(f"{row[c]} {c}" for c in COLUMNS)

    def _render(self) -> None:
        if self.closed:
            return
        self._header.value = self._header_html()
        for name, row in self.by_function.items():
            parts = self._rows.get(name)
            if parts is None:
                bar = widgets.IntProgress(min=0, max=1, value=0, description=name[-30:],
                                          style={"description_width": "initial"},
                                          layout=widgets.Layout(width="50%"))
                label = widgets.HTML()
                parts = (bar, label, widgets.HBox([bar, label]))
                self._rows[name] = parts
            bar, label, _ = parts
            bar.max = max(row["total"], 1)
            bar.value = min(row["finished"], bar.max)
            bar.bar_style = ("danger" if row["failed"] else
                             "success" if row["total"] and row["finished"] >= row["total"] else "info")
            bar.tooltip = name
            label.value = f"<span>{row['finished']}/{row['total']} — {esc(self._counts_text(row))}</span>"
        rows = tuple(self._rows[name][2] for name in self.by_function if name in self._rows)
        if tuple(self._box.children) != rows:
            self._box.children = rows

    @property
    def bars(self) -> dict[str, widgets.IntProgress]:
        """The progress bar of each function (for tests)."""
        return {name: parts[0] for name, parts in self._rows.items()}

    def _header_html(self) -> str:
        t = self.totals
        return f"Job <code>{esc(self.job_id)}</code>: <b>{t['finished']}/{t['total']}</b> tasks finished"

    def _text_summary(self) -> str:
        t = self.totals
        lines = [f"<ProgressWidget job {self.job_id}: {t['finished']}/{t['total']} tasks finished, "
                 f"{t['running']} running, {t['pending']} pending, {t['failed']} failed>"]
        for name, row in self.by_function.items():
            lines.append(f"  {name}: {row['finished']}/{row['total']} ({self._counts_text(row)})")
        return "\n".join(lines)

    def _static_html(self) -> str:
        rows = "".join(
            f"<tr><td><code>{esc(name)}</code></td>"
            f"<td>{bar_html(row['finished'], row['total'], '%d/%d' % (row['finished'], row['total']))}</td>"
            + "".join(f"<td>{row[c]}</td>" for c in COLUMNS)
            + "</tr>"
            for name, row in self.by_function.items()
        )
        head = "<tr><th>function</th><th>progress</th>" + "".join(f"<th>{c}</th>" for c in COLUMNS) + "</tr>"
        body = f"<table>{head}{rows}</table>" if rows else "<div><i>no tasks yet</i></div>"
        return f"<div>{self._header_html()}{body}</div>"

    def close(self) -> None:
        """Stop the updates, and close this widget and its parts."""
        if getattr(self, "_header", None) is not None and not self.closed:
            self.closed = True
            if self._registered:
                feed.unregister(self)
            for bar, label, box in self._rows.values():
                bar.close()
                label.close()
                box.close()
            for child in self.children:
                child.close()
        super().close()
        self._keep_static_repr()


def progress(job_id: str | None = None) -> ProgressWidget:
    """A live view of a job's tasks per function (default: this driver's job)."""
    return ProgressWidget(job_id)
