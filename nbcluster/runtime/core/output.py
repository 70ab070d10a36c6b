"""A worker's output: ``sys.stdout``/``sys.stderr`` write through to the worker's log
files, and what tasks (or an actor) write goes to the job's driver, prefixed there with
the function or actor class name and the pid.

Complete lines are sent as they are written (batched every ~50 ms). A line that is being
redrawn with carriage returns — a progress bar such as tqdm's — is sent as *redraws*:
its latest visible state (the text after its last ``"\\r"``), at most ten times a second
per stream, marked ``LogLine.redraw``; the line's final state follows as an ordinary line
when it ends (``"\\n"``, or the end of the task). Progress bars reported as data
(:func:`OutputForwarder.progress`, used by ``nbcluster.util.tqdm``) travel in the same
batches, the latest state of each bar at most ten times a second.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from nbcluster.runtime.protocol import core_worker_pb2 as cw_pb2
from nbcluster.runtime.transport import methods

if TYPE_CHECKING:
    from nbcluster.runtime.core.core_worker import CoreWorker

#: Seconds between two redraws of one stream (or two states of one progress bar).
REDRAW_INTERVAL = 0.1
#: Seconds lines wait to be batched.
BATCH_DELAY = 0.05


def visible(line: str) -> str:
    """What a terminal shows of ``line`` after its carriage returns: the last non-empty
    piece between them (``"a\\rb\\r"`` shows ``b``)."""
    if "\r" not in line:
        return line
    return next((piece for piece in reversed(line.split("\r")) if piece), "")


def _compact(partial: str) -> str:
    """``partial`` with its overwritten pieces dropped (same :func:`visible` text, and
    the same text once more is written after it)."""
    head, _, tail = partial.rpartition("\r")
    return "\r" + visible(head) + "\r" + tail


class _Stream:
    def __init__(self, forwarder: "OutputForwarder", stream: Any, is_stderr: bool) -> None:
        self._forwarder = forwarder
        self._stream = stream
        self._is_stderr = is_stderr
        self._partial = ""
        self.encoding = getattr(stream, "encoding", "utf-8")
        self.errors = getattr(stream, "errors", "strict")

    def write(self, text: str) -> int:
        self._stream.write(text)
        if self._forwarder.active():
            data = self._partial + text
            lines = data.split("\n")
            partial = lines.pop()
            if lines:
                self._forwarder.add([visible(line) for line in lines], self._is_stderr)
            if "\r" in partial:
                partial = _compact(partial)
                self._forwarder.redraw(visible(partial), self._is_stderr)
            self._partial = partial
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        self._stream.flush()

    def end_task(self) -> None:
        if self._partial:
            self._forwarder.add([visible(self._partial)], self._is_stderr)
            self._partial = ""
        self._stream.flush()

    def fileno(self) -> int:
        return self._stream.fileno()

    def isatty(self) -> bool:
        return False

    def writable(self) -> bool:
        return True

    def readable(self) -> bool:
        return False

    def seekable(self) -> bool:
        return False

    @property
    def closed(self) -> bool:
        return False


class OutputForwarder:
    """Captures a worker's stdout and stderr and sends task output to the job's driver."""

    def __init__(self, core: "CoreWorker", active: Callable[[], bool]) -> None:
        self.core = core
        self.active = active
        #: The "(source pid=N)" name for lines written now, and their context.
        self.source = ""
        self.context = ""
        self._lines: list[tuple[str, str, cw_pb2.LogLine | cw_pb2.ProgressUpdate]] = []
        #: Latest unsent redraw per stream (is_stderr) / state per progress bar, and when
        #: each was last sent.
        self._pending: dict[Any, tuple[str, str, cw_pb2.LogLine | cw_pb2.ProgressUpdate]] = {}
        self._sent_at: dict[Any, float] = {}
        self._lock = threading.Lock()
        self._scheduled = False
        self._streams: list[_Stream] = []

    def install(self) -> None:
        """Replace sys.stdout and sys.stderr with forwarding streams."""
        out, err = _Stream(self, sys.stdout, False), _Stream(self, sys.stderr, True)
        self._streams = [out, err]
        sys.stdout = out  # type: ignore[assignment]
        sys.stderr = err  # type: ignore[assignment]

    def end_task(self) -> None:
        """Push out the task's unfinished last lines (any thread)."""
        for stream in self._streams:
            stream.end_task()

    def add(self, lines: list[str], is_stderr: bool) -> None:
        """Lines written by the running task: queued to send (any thread). They end the
        stream's redrawn line, so its unsent redraw is dropped."""
        with self._lock:
            self._pending.pop(is_stderr, None)
            for line in lines:
                self._lines.append((self.source, self.context, cw_pb2.LogLine(text=line, is_stderr=is_stderr)))
        self._schedule()

    def redraw(self, text: str, is_stderr: bool) -> None:
        """The latest state of the stream's unfinished line (any thread): sent when the
        stream's last redraw is ``REDRAW_INTERVAL`` old."""
        line = cw_pb2.LogLine(text=text, is_stderr=is_stderr, redraw=True)
        with self._lock:
            self._pending[is_stderr] = (self.source, self.context, line)
        self._schedule()

    def progress(self, update: cw_pb2.ProgressUpdate) -> None:
        """A progress bar's state (any thread): sent when the bar's last state is
        ``REDRAW_INTERVAL`` old; a closed bar's at once."""
        with self._lock:
            self._pending[update.bar_id] = (self.source, self.context, update)
            if update.closed:
                self._sent_at.pop(update.bar_id, None)
        self._schedule()

    def _schedule(self, delay: float = BATCH_DELAY) -> None:
        with self._lock:
            if self._scheduled:
                return
            self._scheduled = True
        self.core.call_soon(self.core.loop.call_later, delay, self.flush)

    def _take(self) -> tuple[list, float | None]:
        """The lines to send now, with the redraws and bar states that are due; and how
        long until the next pending one is (None: nothing pending)."""
        now = time.monotonic()
        wait = None
        with self._lock:
            out, self._lines = self._lines, []
            for key, item in list(self._pending.items()):
                left = self._sent_at.get(key, 0.0) + REDRAW_INTERVAL - now
                if left > 0:
                    wait = left if wait is None else min(wait, left)
                    continue
                del self._pending[key]
                closed = isinstance(item[2], cw_pb2.ProgressUpdate) and item[2].closed
                if closed:
                    self._sent_at.pop(key, None)
                else:
                    self._sent_at[key] = now
                out.append(item)
            self._scheduled = False
        return out, wait

    def flush(self) -> None:
        """Send the buffered lines (and the redraws and bar states that are due) to the
        driver (loop thread)."""
        if not self._lines and not self._pending:
            return  # the usual case after a task (it runs after every one): nothing to take
        items, wait = self._take()
        if wait is not None:
            self._schedule(wait)
        driver = self.core.driver_address
        if not items or driver is None:
            return
        batches: dict[tuple[str, str], cw_pb2.LogBatch] = {}
        for source, context, item in items:
            batch = batches.get((source, context))
            if batch is None:
                batch = batches[(source, context)] = cw_pb2.LogBatch(
                    source=source, pid=os.getpid(), node_ip=self.core.node_ip, context=context
                )
            if isinstance(item, cw_pb2.ProgressUpdate):
                batch.progress.append(item)
            else:
                batch.lines.append(item)
        conn = self.core.connection_nowait(driver.endpoint)
        if conn is not None:
            for batch in batches.values():
                conn.notify(methods.CoreWorker.PublishLogs, batch)
        else:
            self.core.spawn(self._send(driver, list(batches.values())))

    async def _send(self, driver: Any, batches: list) -> None:
        try:
            conn = await self.core.connect_to(driver)
        except Exception:  # noqa: BLE001 - the driver has gone; output stays in the log file
            return
        for batch in batches:
            conn.notify(methods.CoreWorker.PublishLogs, batch)
