"""A script driver's remote output: ``(name pid=N) line`` on its stdout/stderr.

Redrawn lines (``LogLine.redraw``: a progress bar printed with carriage returns) are
written ``"\\r"``-terminated, so a terminal shows them in place; the line's final state
ends with a newline. Progress bars reported as data (``nbcluster.util.tqdm``) are merged
into one status line on stderr, redrawn at most ten times a second, and each closed bar
prints its final state on a line of its own.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any

from nbcluster.runtime.core.progress import ProgressState, format_bar
from nbcluster.runtime.protocol import core_worker_pb2 as cw_pb2

__all__ = ["TERMINAL", "TerminalSink", "prefix", "print_log_batch"]

#: Seconds between two redraws of the merged progress line.
REDRAW_INTERVAL = 0.1


def prefix(source: str, pid: int, node_ip: str) -> str:
    """Ray's ``(name pid=N)`` prefix (with the node's address when not local)."""
    ip = f", ip={node_ip}" if node_ip and node_ip != "127.0.0.1" else ""
    return f"({source} pid={pid}{ip}) "


class TerminalSink:
    """Writes log batches to this process's stdout/stderr (see the module docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        #: Length of the redraw left on the terminal per (stream, writer), to blank its rest.
        self._redrawn: dict[tuple[bool, str], int] = {}
        self._bars: dict[tuple, ProgressState] = {}
        self._status = 0  # length of the merged progress line on the terminal
        self._status_at = 0.0

    def __call__(self, batch: cw_pb2.LogBatch) -> None:
        self.lines(batch)
        self.progress([ProgressState.from_batch(batch, u) for u in batch.progress])

    def lines(self, batch: cw_pb2.LogBatch) -> None:
        """The batch's lines (and redraws) on stdout and stderr."""
        head = prefix(batch.source, batch.pid, batch.node_ip)
        writer = f"{batch.node_ip}/{batch.pid}"
        out: dict[bool, list[str]] = {False: [], True: []}
        with self._lock:
            for line in batch.lines:
                text = head + line.text
                left = self._redrawn.pop((line.is_stderr, writer), 0)
                pad = " " * max(0, left - len(text))
                if line.redraw:
                    self._redrawn[(line.is_stderr, writer)] = len(text)
                    out[line.is_stderr].append(text + pad + "\r")
                else:
                    out[line.is_stderr].append(text + pad + "\n")
            for is_stderr, parts in out.items():
                if parts:
                    stream = sys.stderr if is_stderr else sys.stdout
                    stream.write("".join(parts))
                    stream.flush()

    def progress(self, states: list[ProgressState]) -> None:
        """Bars: closed ones on a line each, the open ones merged on one redrawn line."""
        if not states:
            return
        with self._lock:
            done = []
            for state in states:
                if state.closed:
                    self._bars.pop(state.key, None)
                    if not state.drop:
                        done.append(prefix(state.source, state.pid, state.node_ip) + format_bar(state))
                else:
                    self._bars[state.key] = state
            now = time.monotonic()
            if not done and now - self._status_at < REDRAW_INTERVAL:
                return
            self._status_at = now
            bars = sorted(self._bars.values(), key=lambda s: (s.position, s.key))
            status = " | ".join(format_bar(s, width=10) for s in bars)
            blank = " " * max(0, self._status - len(status))
            text = "".join(f"\r{line}{' ' * max(0, self._status - len(line))}\n" for line in done)
            self._status = len(status)
            sys.stderr.write(text + "\r" + status + blank + "\r")
            sys.stderr.flush()


#: The process's terminal: one, so lines and bars from all sinks share its state.
TERMINAL = TerminalSink()


def print_log_batch(batch: Any) -> None:
    """The default sink: ``(name pid=N) line`` to this process's stdout/stderr, progress
    bars merged on stderr."""
    TERMINAL(batch)
