"""``ClusterWidget``: nodes, autoscaler decisions and jobs, live from the event stream.

Built once from ``nbcluster.state`` snapshots; afterwards only events change it
(through the shared feed, at most ~10 times a second, inside ``hold_sync()``):
NODE_ADDED/NODE_DEAD reload the node list once per flush, NODE_STATE updates one row
from the event alone, AUTOSCALER appends to the timeline and reloads the autoscaler
state once per flush (as do node events, and load reports while nodes are pending or
stopping or demand is shown: a node reports when its queue drains, so the pending
demand empties within a report of the last task ending), JOB_STATE and TASK_COUNTERS
update the jobs panel (a job's state, and its name: a notebook's driver is named by its
notebook, whose path follows renames — the Jupyter server extension updates the job).
"""

from __future__ import annotations

import os
from typing import Any

import ipywidgets as widgets

import nbcluster
import nbcluster.state
from nbcluster.autoscaler import set_worker_bounds
from nbcluster.events import ClusterEvent
from nbcluster.state import AutoscalerState, JobState, NodeState

from . import _render
from ._display import StaticReprMixin
from ._feed import feed

__all__ = ["ClusterWidget"]

#: Autoscaler sentences kept in ``timeline``.
TIMELINE_LENGTH = 50
#: Jobs shown in the jobs panel (the most recent).
JOBS_SHOWN = 20


def _node_row(n: NodeState) -> dict[str, Any]:
    cpu_total = n.resources_total.get("CPU", 0.0)
    gpu_total = n.resources_total.get("GPU", 0.0)
    return {
        "node_id": n.node_id,
        "short_id": n.node_id[:8],
        "address": n.address or n.node_ip,
        "node_type": n.node_type or ("head" if n.is_head else "worker"),
        "state": n.state,
        "is_head": n.is_head,
        "draining": n.draining,
        "start_time": n.start_time,
        "cpu_total": cpu_total,
        "cpu_used": cpu_total - n.resources_available.get("CPU", cpu_total),
        "gpu_total": gpu_total,
        "gpu_used": gpu_total - n.resources_available.get("GPU", gpu_total),
        "object_store_used": n.object_store_used,
        "object_store_capacity": n.object_store_capacity,
        "memory_used": n.memory_used,
        "memory_total": n.memory_total,
        "hostname": n.hostname or n.node_ip,
        "tasks_running": n.tasks_running,
    }


def _entrypoint(entrypoint: str, metadata: dict[str, str]) -> str:
    """What a job runs; a notebook's driver by its notebook (or kernel), not the
    kernel's command line."""
    if metadata.get("notebook_path"):  # Lab gives kernels the absolute path: the file's name says enough
        return os.path.basename(metadata["notebook_path"]) or metadata["notebook_path"]
    return f"kernel {metadata['kernel_id'][:8]}" if metadata.get("kernel_id") else entrypoint


def _job_row(j: JobState) -> dict[str, Any]:
    return {
        "job_id": j.job_id,
        "display_id": j.submission_id or j.job_id,
        "type": j.type,
        "status": j.status,
        "entrypoint": _entrypoint(j.entrypoint, j.metadata),
        "start_time": j.start_time,
        "end_time": j.end_time,
    }


class ClusterWidget(StaticReprMixin, widgets.VBox):
    """The cluster this process is connected to, updated as things happen.

    Plain-Python views of what it shows, for tests and scripts: ``node_rows``,
    ``timeline`` (the autoscaler's sentences, oldest first), ``job_progress``
    (job id → (finished, total) tasks), ``jobs`` and ``autoscaler``."""

    def __init__(self, **kwargs: Any) -> None:
        if not nbcluster.is_initialized():
            raise RuntimeError("not connected to a cluster: call nbcluster.init() first")
        super().__init__(**kwargs)
        self.node_rows: list[dict[str, Any]] = []
        self.timeline: list[str] = []
        self.job_progress: dict[str, tuple[int, int]] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        self.autoscaler: AutoscalerState | None = None
        self.closed = False
        self.frozen = False
        self._timeline_seen: set[tuple[float, str]] = set()
        self._job_rows: dict[str, widgets.HBox] = {}
        self._address = ""
        self._header = widgets.HTML()
        self._nodes = widgets.HTML()
        self._autoscaler = widgets.HTML()
        # Adapt controls (clusters with an autoscaler): a worker type's min and max.
        self._type = widgets.Dropdown(description="type", layout=widgets.Layout(width="220px"))
        self._min = widgets.BoundedIntText(description="min", min=0, max=10_000, layout=widgets.Layout(width="150px"))
        self._max = widgets.BoundedIntText(description="max", min=0, max=10_000, layout=widgets.Layout(width="150px"))
        self._apply = widgets.Button(description="Adapt", icon="sliders")
        self._apply.on_click(self._on_adapt)
        self._type.observe(self._on_type, names="value")
        self.adapt_message = ""
        self._bounds_shown: tuple[str, int, int] | None = None  # (type, min, max) last put in the fields
        self._adapt_note = widgets.HTML()
        self._controls = widgets.HBox([self._type, self._min, self._max, self._apply, self._adapt_note])
        self._jobs_box = widgets.VBox()
        self.children = [
            self._header, self._nodes, self._autoscaler, self._controls, widgets.HTML("<b>Jobs</b>"), self._jobs_box,
        ]
        # Stable CSS classes for styling and for browser tests.
        self.add_class("nbc-cluster")
        for part, name in ((self._header, "header"), (self._nodes, "nodes"), (self._autoscaler, "autoscaler"),
                           (self._controls, "controls"), (self._jobs_box, "jobs")):
            part.add_class(f"nbc-cluster-{name}")
        feed.register(self)  # first, so nothing between the snapshots and the stream is missed
        try:
            self._load_nodes()
            self._load_autoscaler()
            for job in nbcluster.state.list_jobs():
                self.jobs[job.job_id] = _job_row(job)
                # A job whose tasks all ended before this view registered gets no further
                # TASK_COUNTERS event; one that came meanwhile is newer and wins.
                if job.progress:
                    self.job_progress.setdefault(job.job_id, (job.progress["finished"], job.progress["submitted"]))
            self._render()
        except BaseException:
            self.close()
            raise

    # -- snapshots -------------------------------------------------------------------
    def _load_nodes(self) -> None:
        self.node_rows = [_node_row(n) for n in nbcluster.state.list_nodes()]
        head = next((r for r in self.node_rows if r["is_head"] and r["state"] == "ALIVE"), None)
        if head is not None:
            self._address = head["address"]

    def _load_autoscaler(self) -> None:
        self.autoscaler = nbcluster.state.get_autoscaler_state()
        for event in self.autoscaler.events:
            self._add_sentence(event.time, event.message)

    def _add_sentence(self, when: float, message: str) -> None:
        key = (when, message)
        if key in self._timeline_seen:
            return
        self._timeline_seen.add(key)
        self.timeline.append(message)
        del self.timeline[:-TIMELINE_LENGTH]

    # -- events ----------------------------------------------------------------------
    def _update(self, events: list[ClusterEvent]) -> None:
        """Apply a batch of events (called by the feed, inside ``hold_sync()``)."""
        if self.closed or self.frozen:
            return
        reload_nodes = reload_autoscaler = False
        for e in events:
            if e.kind in ("NODE_ADDED", "NODE_DEAD"):
                reload_nodes = True
                reload_autoscaler = bool(self.autoscaler and self.autoscaler.enabled)
            elif e.kind == "NODE_STATE":
                self._apply_load(e)
                # Launches and removals finish without an autoscaler event of their
                # own: while one is under way, load reports also reload its state.
                reload_autoscaler = reload_autoscaler or self._autoscaler_in_transition()
            elif e.kind == "AUTOSCALER":
                self._add_sentence(e.time, e.message)
                reload_autoscaler = True
            elif e.kind == "JOB_STATE":
                self._apply_job(e)
            elif e.kind == "TASK_COUNTERS":
                self.job_progress[e.job_id] = (int(e.data.get("finished", 0)), int(e.data.get("total", 0)))
        if reload_nodes:
            self._load_nodes()
        if reload_autoscaler:
            self._load_autoscaler()
        if not self.closed:
            self._render()

    def _autoscaler_in_transition(self) -> bool:
        """Whether load reports may change what the autoscaler view shows: a launch or
        removal under way, or demand shown (it drains without an autoscaler event)."""
        state = self.autoscaler
        return bool(state and state.enabled and (state.demand or any(t.pending or t.stopping for t in state.node_types)))

    def _apply_load(self, e: ClusterEvent) -> None:
        row = next((r for r in self.node_rows if r["node_id"] == e.node_id), None)
        if row is None:
            return  # its NODE_ADDED reloads the list
        available = e.data.get("available", {})
        row["cpu_used"] = row["cpu_total"] - float(available.get("CPU", row["cpu_total"]))
        row["gpu_used"] = row["gpu_total"] - float(available.get("GPU", row["gpu_total"]))
        row["object_store_used"] = int(e.data.get("object_store_used", row["object_store_used"]))
        row["memory_used"] = int(e.data.get("memory_used", row["memory_used"]))
        row["memory_total"] = int(e.data.get("memory_total", row["memory_total"]))
        row["tasks_running"] = int(e.data.get("tasks_running", row["tasks_running"]))

    def _apply_job(self, e: ClusterEvent) -> None:
        status = str(e.data.get("state", ""))
        job = self.jobs.setdefault(e.job_id, {
            "job_id": e.job_id,
            "display_id": e.data.get("submission_id") or e.job_id,
            "type": str(e.data.get("type", "")).removeprefix("JOB_TYPE_"),
            "start_time": e.time,
            "end_time": 0.0,
        })
        job["status"] = status
        # Every JOB_STATE event carries the job's metadata: a renamed notebook's driver shows its new name.
        job["entrypoint"] = _entrypoint(str(e.data.get("entrypoint", "")), e.data.get("metadata") or {})
        if status in ("SUCCEEDED", "FAILED", "STOPPED"):
            job["end_time"] = job["end_time"] or e.time

    # -- view ------------------------------------------------------------------------
    def _start_time(self) -> float:
        return next((r["start_time"] for r in self.node_rows if r["is_head"]), 0.0)

    def _shown_jobs(self) -> list[dict[str, Any]]:
        return sorted(self.jobs.values(), key=lambda j: j["start_time"])[-JOBS_SHOWN:]

    def _render(self) -> None:
        if self.frozen:  # a flush under way when it froze must not redraw over the note
            return
        self._header.value = _render.header_html(self._address, self._start_time(), self.node_rows)
        self._nodes.value = _render.nodes_html(self.node_rows)
        enabled = self.autoscaler is not None and self.autoscaler.enabled
        self._autoscaler.value = _render.autoscaler_html(self.autoscaler, self.timeline)
        self._autoscaler.layout.display = None if enabled else "none"
        self._sync_controls()
        shown = self._shown_jobs()
        for job in shown:
            job_id = job["job_id"]
            if job_id not in self._job_rows:
                bar = widgets.IntProgress(min=0, max=1, value=0, bar_style="info")
                self._job_rows[job_id] = widgets.HBox([widgets.HTML(), bar])
            label, bar = self._job_rows[job_id].children
            finished, total = self.job_progress.get(job_id, (0, 0))
            bar.max = max(total, 1)
            bar.value = min(finished, bar.max)
            bar.description = f"{finished}/{total}"
            bar.bar_style = "success" if total and finished >= total else "info"
            label.value = _render.job_label(job)
        rows = tuple(self._job_rows[job["job_id"]] for job in shown)
        if self._jobs_box.children != rows:
            self._jobs_box.children = rows

    # -- adapt controls --------------------------------------------------------------
    def _sync_controls(self) -> None:
        auto = self.autoscaler
        enabled = auto is not None and auto.enabled and any(t.max_workers or t.min_workers for t in auto.node_types)
        self._controls.layout.display = None if enabled else "none"
        if not enabled:
            return
        names = tuple(t.name for t in auto.node_types if t.max_workers or t.min_workers)  # type: ignore[union-attr]
        if tuple(self._type.options) != names:
            self._type.options = names
        if self._type.value not in names:  # new options leave no choice made: the first type
            self._type.value = names[0]  # (its observer fills in min and max)
        else:
            self._on_type(changed_only=True)

    def _on_type(self, _change: Any = None, changed_only: bool = False) -> None:
        """Show the chosen type's min and max: when a type is chosen, and when the
        cluster's bounds of it change (``changed_only``: not over what the user typed)."""
        chosen = next((t for t in (self.autoscaler.node_types if self.autoscaler else []) if t.name == self._type.value),
                      None)
        if chosen is None or self._apply.disabled:
            return
        bounds = (chosen.name, chosen.min_workers, chosen.max_workers)
        if not changed_only or bounds != self._bounds_shown:
            self._bounds_shown = bounds
            self._min.value, self._max.value = chosen.min_workers, chosen.max_workers

    def adapt(self, minimum: int, maximum: int, node_type: str | None = None) -> None:
        """What the Adapt button does: keep ``minimum``..``maximum`` nodes of the type."""
        try:
            name = set_worker_bounds(minimum, maximum, node_type=node_type or self._type.value or None)
            self.adapt_message = f"{name}: {minimum} to {maximum} nodes"
        except (ValueError, nbcluster.exceptions.NbclusterError) as exc:
            self.adapt_message = f"not changed: {exc}"
        self._adapt_note.value = _render.esc(self.adapt_message)

    def _on_adapt(self, _button: Any = None) -> None:
        self.adapt(self._min.value, self._max.value)

    def job_bar(self, job_id: str) -> widgets.IntProgress:
        """The progress bar of one job (for tests)."""
        return self._job_rows[job_id].children[1]

    def _text_summary(self) -> str:
        text = _render.header_text(self._address, self._start_time(), self.node_rows)
        if self.autoscaler is not None and self.autoscaler.enabled:
            counts = ", ".join(f"{t.name} {t.running}+{t.pending}" for t in self.autoscaler.node_types)
            text += f"; autoscaler: {counts}"
        return f"<ClusterWidget: {text}; {len(self.jobs)} jobs>"

    def _static_html(self) -> str:
        return (
            _render.header_html(self._address, self._start_time(), self.node_rows)
            + _render.nodes_html(self.node_rows)
            + _render.autoscaler_html(self.autoscaler, self.timeline)
            + "<b>Jobs</b>" + _render.jobs_table_html(self._shown_jobs(), self.job_progress)
        )

    def freeze(self, note: str = "disconnected") -> None:
        """Stop updating but keep showing the last state, marked with ``note``: what
        ``%cluster stop``/``disconnect`` do, so the notebook keeps its record."""
        if self.closed or self.frozen:
            return
        self.frozen = True
        feed.unregister(self)
        for control in (self._type, self._min, self._max, self._apply):
            control.disabled = True
        self._header.value += f" <i>({_render.esc(note)})</i>"

    def close(self) -> None:
        """Stop updating, and close this widget and its parts."""
        if getattr(self, "_header", None) is not None and not self.closed:
            self.closed = True
            feed.unregister(self)
            for row in self._job_rows.values():
                for part in row.children:
                    part.close()
                row.close()
            for child in self.children:
                child.close()
        super().close()
        self._keep_static_repr()
