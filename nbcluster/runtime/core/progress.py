"""Progress bars as data: what ``nbcluster.util.tqdm`` reports, and how a bar reads as text.

A bar made in a task or an actor is sent to the job's driver by the worker's output
forwarder (``LogBatch.progress``, at most ten states a second per bar); a bar made in a
driver goes straight to that driver's log sink. The driver merges the bars of all its
tasks and actors into one view: a text line in scripts (``log_print``), a widget under
the submitting cell in a notebook (``nbcluster.kernel_ext``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from nbcluster.runtime.core import worker_state
from nbcluster.runtime.protocol import core_worker_pb2 as cw_pb2

__all__ = ["ProgressState", "format_bar", "report"]

#: Characters of the text bar.
BAR_WIDTH = 20


@dataclass(frozen=True)
class ProgressState:
    """One progress bar's state as it reaches the driver."""

    #: Unique within the process that made it (``pid``).
    bar_id: str
    desc: str
    n: float
    #: 0 when unknown.
    total: float
    unit: str
    position: int
    closed: bool
    #: Seconds since the bar was made.
    elapsed: float
    #: Closed and not to be kept on show (tqdm's ``leave=False``).
    drop: bool = False
    #: Who reported it: the function or actor class, its process and node, and the
    #: submission context of the work ("" when none).
    source: str = ""
    pid: int = 0
    node_ip: str = ""
    context: str = ""

    @property
    def key(self) -> tuple[str, int, str]:
        """Names the bar among all the driver's bars."""
        return (self.node_ip, self.pid, self.bar_id)

    @property
    def fraction(self) -> float | None:
        """Done out of total (0..1); None when the total is unknown."""
        if self.total <= 0:
            return None
        return max(0.0, min(1.0, self.n / self.total))

    def counts(self) -> str:
        """How far it is, without the bar: ``45/100 [00:03, 15.0it/s]`` (``45it [...]``
        when the total is unknown)."""
        unit = self.unit or "it"
        rate = self.n / self.elapsed if self.elapsed > 0 else 0.0
        minutes, seconds = divmod(int(self.elapsed), 60)
        done = f"{_number(self.n)}/{_number(self.total)}" if self.total > 0 else f"{_number(self.n)}{unit}"
        return f"{done} [{minutes:02d}:{seconds:02d}, {rate:.1f}{unit}/s]"

    def text(self, width: int = 20) -> str:
        """The bar as one line of text (:func:`format_bar`)."""
        return format_bar(self, width)

    @classmethod
    def from_batch(cls, batch: cw_pb2.LogBatch, update: cw_pb2.ProgressUpdate) -> "ProgressState":
        """The state of one bar of a ``LogBatch``."""
        return cls(bar_id=update.bar_id, desc=update.desc, n=update.n, total=update.total, unit=update.unit,
                   position=update.position, closed=update.closed, elapsed=update.elapsed, drop=update.drop,
                   source=batch.source, pid=batch.pid, node_ip=batch.node_ip, context=batch.context)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.2f}"


def format_bar(state: ProgressState, width: int = BAR_WIDTH) -> str:
    """A bar as one line of text, as tqdm prints it: ``desc:  45%|#########           | 45/100 [00:03, 15.0it/s]``."""
    desc = f"{state.desc}: " if state.desc else ""
    fraction = state.fraction
    if fraction is None:
        return f"{desc}{state.counts()}"
    filled = int(round(fraction * width))
    return f"{desc}{fraction * 100:3.0f}%|{'#' * filled}{' ' * (width - filled)}| {state.counts()}"


def report(state: ProgressState) -> None:
    """Send a bar's state where it is shown: from a task or actor to its driver (when
    the job forwards output, ``log_to_driver``); in a driver, to its own log sink. Its
    origin fields (``source`` ...) are filled in there. Dropped when this process is
    not connected to a cluster."""
    core = worker_state.current
    if core is None:
        return
    update = cw_pb2.ProgressUpdate(bar_id=state.bar_id, desc=state.desc, n=state.n, total=state.total,
                                   unit=state.unit, position=state.position, closed=state.closed,
                                   elapsed=state.elapsed, drop=state.drop)
    executor = getattr(core, "executor", None)
    if executor is not None:
        if executor.output.active():
            executor.output.progress(update)
        return
    batch = cw_pb2.LogBatch(source="driver", pid=os.getpid(), node_ip="", context=core.task_context)
    batch.progress.append(update)
    core.log_sink(batch)
