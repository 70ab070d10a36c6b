"""``progress()``: tasks grouped by function, like Dask's ``progress``.

    from nbcluster.widgets import progress
    progress()                 # this driver's own job
    progress("0a00000001")     # another job, by its (hex) job id
    progress(refs)             # the tasks behind these ObjectRefs (any job's)

One row per function name: a bar of finished out of total, and counts of pending,
running, finished and failed (failed includes cancelled) tasks. Seeded from
``nbcluster.state.list_tasks`` at start; afterwards TASK_COUNTERS events (through the
shared feed, published at most once a second per job) move it: a job's view takes the
counts the event carries; a view of refs looks its tasks up (``list_tasks(task_ids=)``)
when counters move, and stops listening once all of them have ended.
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Iterable
from typing import Any

import ipywidgets as widgets

import nbcluster
import nbcluster.state
from nbcluster.events import ClusterEvent

from ._display import StaticReprMixin, bar_html, esc
from ._feed import feed

__all__ = ["ProgressWidget", "progress"]

logger = logging.getLogger(__name__)

#: An object id is its task's id and a little-endian index; ``put`` objects have index 0.
_PUT_INDEX = bytes(4)

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
    """Task progress of one job, or of the tasks behind some refs, per function.
    Plain-Python state for tests: ``job_id`` (hex; "" for refs), ``task_ids``,
    ``by_function`` (``{name: {pending, running, finished, failed, total}}``),
    ``unreported`` (tasks the cluster has not heard of yet), ``done``, ``closed``.

    ``open_ended``: more tasks may be added (``add_refs``) until ``seal()``."""

    def __init__(self, job_id: str | None = None, *, refs: Iterable[Any] | None = None, seed: bool = True,
                 open_ended: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.task_ids: dict[str, None] = {}  # an ordered set
        self.unreported = 0
        self.done = False
        self._open_ended = open_ended
        self._seen: dict[str, tuple[str, str]] = {}  # task id -> (name, state) last looked up
        self._lookups = self._applied = 0
        if refs is not None:
            self.job_id = ""
            self.task_ids = dict.fromkeys(_task_ids(refs))
        else:
            if job_id is None:
                job_id = nbcluster.get_runtime_context().get_job_id()
            self.job_id = _normalize_job_id(job_id)
        self.closed = False
        self.frozen = False
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
    @property
    def by_refs(self) -> bool:
        """Whether it follows the tasks behind given refs (not a whole job)."""
        return not self.job_id

    def add_refs(self, refs: Iterable[Any]) -> None:
        """Follow the tasks behind more refs too (shown at the next update)."""
        ids = _task_ids(refs)
        with self._lock:
            self.task_ids.update(dict.fromkeys(ids))
            listen = (self.done and not self.closed and not self.frozen and not self._registered
                      and nbcluster.is_initialized())
            self.done = False
            self._registered = self._registered or listen
        if listen:
            feed.register(self)

    def seal(self) -> None:
        """No more tasks will be added: stop listening once those followed have ended."""
        self._open_ended = False
        if self._registered:
            self._look_up()
            self._render()

    def _seed(self) -> None:
        """Counts from the task table, unless an event came first (it is newer)."""
        if self.by_refs:
            self._look_up()
            return
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

    def _look_up(self) -> None:
        """Refs: the current state of their tasks, from the cluster's task table.

        Called from the cell's thread (``seal``) and the feed's, so a look-up that
        answers after a newer one is dropped. A task the table no longer holds (it keeps
        the most recent ``task_table_size``) keeps the state it was last seen in."""
        with self._lock:
            ids = list(self.task_ids)
            self._lookups += 1
            number = self._lookups
        try:
            tasks = nbcluster.state.list_tasks(task_ids=ids) if ids else []
        except Exception as exc:  # noqa: BLE001 - the next counters try again
            logger.warning("progress of %d tasks: looking them up failed: %s", len(ids), exc)
            return
        unregister = False
        with self._lock:
            if number < self._applied:
                return  # a newer look-up has answered already
            self._applied = number
            for t in tasks:
                self._seen[t.task_id] = (t.name, t.state)
            counts: dict[str, collections.Counter] = {}
            for task_id in ids:
                name, state = self._seen.get(task_id, ("", ""))
                if state:
                    counts.setdefault(name, collections.Counter())[state] += 1
            self.by_function = {name: _row_counts(c) for name, c in sorted(counts.items())}
            self.unreported = len(ids) - sum(sum(c.values()) for c in counts.values())
            ended = sum(row["finished"] + row["failed"] for row in self.by_function.values())
            if not self._open_ended and self.unreported == 0 and ended == len(ids) and not self.done:
                self.done = True
                unregister, self._registered = self._registered, False
        if unregister:  # nothing more will change: stop listening
            feed.unregister(self)

    def _update(self, events: list[ClusterEvent]) -> None:
        """Events from the feed (inside ``hold_sync()``): the last TASK_COUNTERS of
        this job wins (each carries the job's full counts); a view of refs looks its
        tasks up when any job's counters moved."""
        if self.closed or self.frozen:
            return
        if self.by_refs:
            if any(e.kind == "TASK_COUNTERS" for e in events):
                self._look_up()
                self._render()
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
        """Counts over all functions (tasks not reported yet count as pending)."""
        out = dict.fromkeys((*COLUMNS, "total"), 0)
        for row in self.by_function.values():
            for key in out:
                out[key] += row.get(key, 0)
        out["pending"] += self.unreported
        out["total"] += self.unreported
        return out

    # -- view ------------------------------------------------------------------------
    @staticmethod
    def _counts_text(row: dict[str, int]) -> str:
        return " · ".join(f"{row[c]} {c}" for c in COLUMNS)

    def _render(self) -> None:
        if self.closed or self.frozen:
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

    def _subject(self) -> str:
        return f"job {self.job_id}" if self.job_id else f"{len(self.task_ids)} tasks"

    def _header_html(self) -> str:
        t = self.totals
        subject = f"Job <code>{esc(self.job_id)}</code>" if self.job_id else "Tasks"
        return f"{subject}: <b>{t['finished']}/{t['total']}</b> finished" + (
            f" ({t['failed']} failed)" if t["failed"] else "")

    def _text_summary(self) -> str:
        t = self.totals
        lines = [f"<ProgressWidget {self._subject()}: {t['finished']}/{t['total']} tasks finished, "
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

    def freeze(self, note: str = "disconnected") -> None:
        """Stop updating but keep showing the last state, marked with ``note`` (what
        ``%cluster stop``/``disconnect`` do to every live view)."""
        with self._lock:
            if self.closed or self.frozen:
                return
            self.frozen = True
            unregister, self._registered = self._registered, False
        if unregister:
            feed.unregister(self)
        self._header.value += f" <i>({esc(note)})</i>"

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


def _task_ids(refs: Iterable[Any]) -> list[str]:
    out = []
    for ref in refs:
        if not isinstance(ref, nbcluster.ObjectRef):
            raise TypeError(f"progress() follows ObjectRefs (what .remote() returns), not {type(ref).__name__}")
        if ref.binary()[16:20] != _PUT_INDEX:  # a put's object has no task to follow
            out.append(ref.task_id())
    return out


def progress(what: Any = None) -> ProgressWidget:
    """A live view of tasks per function: of a job (its hex id; default: this driver's
    job), or of the tasks behind an ``ObjectRef`` or a list of them (``put`` objects have
    no task and are left out)."""
    if what is None or isinstance(what, (str, bytes, bytearray)):
        return ProgressWidget(what)
    try:
        refs = [what] if isinstance(what, nbcluster.ObjectRef) else list(what)
    except TypeError:
        raise TypeError(f"progress() takes a job id, an ObjectRef or a list of them, not {type(what).__name__}") from None
    return ProgressWidget(refs=refs)
