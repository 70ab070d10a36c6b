"""Identifiers. Raw bytes on the wire, hex for people.

NodeID, WorkerID and TaskID are 16 bytes; an ObjectID is its task's id plus a 4-byte
index (returns count from 1; ``put`` objects use a put id with index 0); a JobID is 4
bytes from the GCS's counter.
"""

from __future__ import annotations

import itertools
import os
import struct
import threading

ID_SIZE = 16
OBJECT_ID_SIZE = ID_SIZE + 4
_INDEX = struct.Struct("<I")


def random_id() -> bytes:
    """A fresh 16-byte id (nodes, workers)."""
    return os.urandom(ID_SIZE)


class IdGenerator:
    """Unique 16-byte ids for one process, cheap enough for every task and put."""

    def __init__(self) -> None:
        self._prefix = os.urandom(8)
        self._counter = itertools.count(1)
        self._lock = threading.Lock()

    def next(self) -> bytes:
        """A new id, unique in this process and across processes (random prefix, counter)."""
        with self._lock:
            n = next(self._counter)
        return self._prefix + n.to_bytes(8, "little")


def object_id(task_id: bytes, index: int) -> bytes:
    """The id of a task's ``index``-th return (0: its arguments, or a put)."""
    return task_id + _INDEX.pack(index)


def job_id_from_int(n: int) -> bytes:
    """A job id from its number."""
    return n.to_bytes(4, "little")


def job_id_to_int(job_id: bytes) -> int:
    """A job id's number (0 for none)."""
    return int.from_bytes(job_id, "little") if job_id else 0


def short(raw: bytes, n: int = 8) -> str:
    """The first ``n`` hex digits, for logs and prefixes."""
    return raw.hex()[:n]
