"""``JobWidget``: one job's status, task progress, a bounded live log tail and a Stop button.

The log tail runs ``JobSubmissionClient.tail_job_logs`` on a thread with an event loop
of its own (never the kernel's); it ends when the job ends (the server closes the
stream) or when the widget is closed (its task is cancelled and the thread joined).
Status and task progress come from the shared event feed when this process is
connected to the job's cluster, and from ``get_job_info`` at start and when the log ends.
"""

from __future__ import annotations

import collections
import logging
from typing import Any

import ipywidgets as widgets

import nbcluster
from nbcluster.events import ClusterEvent
from nbcluster.job_submission import JobDetails, JobStatus, JobSubmissionClient
from nbcluster.log_pump import LogPump

from ._display import StaticReprMixin, bar_html, esc
from ._feed import feed

__all__ = ["JobWidget"]

logger = logging.getLogger(__name__)

#: Lines of output the log tail keeps.
TAIL_LINES = 200


class JobWidget(StaticReprMixin, widgets.VBox):
    """A submitted job (by submission id or job id), live.

    ``client``: the :class:`JobSubmissionClient` to use (default: this cluster's Jobs
    API). Plain-Python state for tests: ``status``, ``progress`` ((finished, total)),
    ``log_lines`` (the last ``TAIL_LINES`` lines)."""

    def __init__(self, job_id: str, *, client: JobSubmissionClient | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.job_id = job_id
        self.client = client if client is not None else JobSubmissionClient()
        self.closed = False
        self.frozen = False
        self.status = ""
        self.entrypoint = ""
        self.message = ""
        self.progress: tuple[int, int] = (0, 0)
        self.log_lines: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        self._partial = ""
        self._cluster_job_id = ""
        self._status = widgets.HTML()
        self._bar = widgets.IntProgress(min=0, max=1, value=0, description="0/0", bar_style="info")
        self._stop = widgets.Button(description="Stop", button_style="danger", icon="stop")
        self._stop.on_click(self._on_stop)
        self._log = widgets.HTML()
        self.children = [widgets.HBox([self._status, self._stop]), self._bar, self._log]
        self._registered = False
        if nbcluster.is_initialized():
            feed.register(self)
            self._registered = True
        self._apply_info(self.client.get_job_info(job_id))
        self._render()
        self._tail = LogPump(lambda: self.client.tail_job_logs(job_id), f"nbcluster-jobwidget-{job_id}", self._on_log)
        self._tail.start()

    # -- state -----------------------------------------------------------------------
    def _apply_info(self, info: JobDetails) -> None:
        self.status = info.status.value
        self.entrypoint = info.entrypoint
        self.message = info.message or ""
        self._cluster_job_id = info.job_id or ""
        p = info.progress
        if p.submitted:
            self.progress = (p.finished, p.submitted)

    def _update(self, events: list[ClusterEvent]) -> None:
        """Events from the feed (inside ``hold_sync()``)."""
        if self.closed or self.frozen:
            return
        for e in events:
            mine = e.job_id and e.job_id == self._cluster_job_id
            if e.kind == "JOB_STATE" and (mine or e.data.get("submission_id") == self.job_id):
                self._cluster_job_id = self._cluster_job_id or e.job_id
                self.status = str(e.data.get("state", self.status))
            elif e.kind == "TASK_COUNTERS" and mine:
                self.progress = (int(e.data.get("finished", 0)), int(e.data.get("total", 0)))
        self._render()

    # -- the log tail (on the pump's thread) -------------------------------------------
    def _on_log(self, kind: str, item: Any) -> None:
        if kind == "chunk":
            self._add_output(item)
            return
        if kind == "error":  # shown in the widget, not raised on a thread
            logger.warning("log tail of job=%s ended: %s", self.job_id, item)
            self.message = f"log tail ended: {item}"
        if self._partial:
            self.log_lines.append(self._partial)
            self._partial = ""
        if self.closed:
            return
        try:  # the job ended: its final state
            info = self.client.get_job_info(self.job_id)
            if not JobStatus(self.status or "PENDING").is_terminal() or info.status.is_terminal():
                self._apply_info(info)
        except Exception as exc:  # noqa: BLE001
            logger.warning("job=%s: reading its final state failed: %s", self.job_id, exc)
        if not self.closed:
            with self.hold_sync():
                self._render()

    def _add_output(self, chunk: str) -> None:
        lines = (self._partial + chunk).split("\n")
        self._partial = lines.pop()
        self.log_lines.extend(lines)
        if not self.closed:
            self._log.value = self._log_html()

    @property
    def tail_running(self) -> bool:
        """Whether the widget still follows the job's log."""
        return self._tail.alive

    # -- actions and view ------------------------------------------------------------
    def _on_stop(self, _button: Any = None) -> None:
        try:
            stopped = self.client.stop_job(self.job_id)
            self.message = "stop requested" if stopped else "the job had already ended"
        except Exception as exc:  # noqa: BLE001 - shown to the user in the widget
            self.message = f"stop failed: {exc}"
        self._render()

    def _log_html(self) -> str:
        text = "\n".join([*self.log_lines, self._partial] if self._partial else self.log_lines)
        return (
            '<pre style="max-height:300px;overflow-y:auto;font-size:11px;margin:0">'
            f"{esc(text)}</pre>"
        )

    def _render(self) -> None:
        if self.frozen:  # a log line or flush under way when it froze must not redraw over the note
            return
        finished, total = self.progress
        self._bar.layout.display = None if total else "none"  # a job that ran no task: no empty 0/0 bar
        self._bar.max = max(total, 1)
        self._bar.value = min(finished, self._bar.max)
        self._bar.description = f"{finished}/{total}"
        self._bar.bar_style = "success" if total and finished >= total else "info"
        terminal = bool(self.status) and JobStatus(self.status).is_terminal()
        self._stop.disabled = terminal
        self._status.value = self._status_html()
        self._log.value = self._log_html()

    def _status_html(self) -> str:
        message = f" — {esc(self.message)}" if self.message else ""
        return (f'Job <code>{esc(self.job_id)}</code> <b>{esc(self.status or "?")}</b>{message}'
                f' <code style="font-size:11px">{esc(self.entrypoint)}</code>')

    def _text_summary(self) -> str:
        finished, total = self.progress
        return f"<JobWidget {self.job_id}: {self.status or '?'}, {finished}/{total} tasks, {len(self.log_lines)} log lines>"

    def _static_html(self) -> str:
        finished, total = self.progress
        bar = bar_html(finished, total, f"{finished}/{total} tasks") if total else "<span>no tasks</span>"
        return f"<div>{self._status_html()}<br>{bar}{self._log_html()}</div>"

    def freeze(self, note: str = "disconnected") -> None:
        """Stop the log tail and the updates but keep showing the last state, marked
        with ``note``."""
        if self.closed or self.frozen:
            return
        self.frozen = True
        if self._registered:
            feed.unregister(self)
            self._registered = False
        self._tail.stop()
        self._stop.disabled = True
        self._status.value += f" <i>({esc(note)})</i>"

    def close(self) -> None:
        """Stop the log tail (joining its thread) and the updates, and close the widget."""
        if getattr(self, "_status", None) is not None and not self.closed:
            self.closed = True
            if self._registered:
                feed.unregister(self)
            self._tail.stop()
            for child in (*self.children[0].children, *self.children):
                child.close()
        super().close()
        self._keep_static_repr()
