"""The messages between a node manager and its worker template (``core/worker_template.py``,
``node/worker_template.py``): one JSON datagram each on a ``SOCK_SEQPACKET`` socket."""

from __future__ import annotations

import json
from dataclasses import dataclass


@dataclass(frozen=True)
class Message:
    """One message on the control socket. To the template: ``fork`` (worker_id).
    From it: ``ready`` (its pid), ``forked`` (worker_id, pid), ``failed`` (worker_id,
    detail), ``exited`` (pid, detail: the exit code as ``Popen.returncode`` has it)."""

    kind: str
    worker_id: str
    pid: int = 0
    detail: str = ""


def encode(message: Message) -> bytes:
    """A message as one datagram."""
    return json.dumps([message.kind, message.worker_id, message.pid, message.detail]).encode()


def decode(data: bytes) -> Message:
    """A datagram as a message."""
    kind, worker_id, pid, detail = json.loads(data)
    return Message(kind, worker_id, pid, detail)
