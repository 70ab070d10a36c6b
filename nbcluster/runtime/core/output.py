"""A worker's output: ``sys.stdout``/``sys.stderr`` write through to the worker's log
files, and complete lines written by tasks (or by an actor) go to the job's driver,
prefixed there with the function or actor class name and the pid."""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from nbcluster.runtime.protocol import core_worker_pb2 as cw_pb2
from nbcluster.runtime.transport import methods

if TYPE_CHECKING:
    from nbcluster.runtime.core.core_worker import CoreWorker


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
            self._partial = lines.pop()
            if lines:
                self._forwarder.add(lines, self._is_stderr)
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        self._stream.flush()

    def end_task(self) -> None:
        if self._partial:
            self._forwarder.add([self._partial], self._is_stderr)
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
        self._lines: list[tuple[str, str, bool, str]] = []
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
        """Lines written by the running task: queued to send (any thread)."""
        with self._lock:
            for line in lines:
                self._lines.append((self.source, self.context, is_stderr, line))
            schedule = not self._scheduled
            self._scheduled = True
        if schedule:
            self.core.call_soon(self._schedule)

    def _schedule(self) -> None:
        self.core.loop.call_later(0.05, self.flush)

    def flush(self) -> None:
        """Send the buffered lines to the driver (loop thread)."""
        with self._lock:
            lines, self._lines = self._lines, []
            self._scheduled = False
        driver = self.core.driver_address
        if not lines or driver is None:
            return
        batches: dict[tuple[str, str], cw_pb2.LogBatch] = {}
        for source, context, is_stderr, text in lines:
            batch = batches.get((source, context))
            if batch is None:
                batch = batches[(source, context)] = cw_pb2.LogBatch(
                    source=source, pid=os.getpid(), node_ip=self.core.node_ip, context=context
                )
            batch.lines.add(text=text, is_stderr=is_stderr)
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
