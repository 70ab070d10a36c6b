"""Payloads that carry an error instead of a value (``get`` of one raises it), and the
error a task that raised stands as."""

from __future__ import annotations

import os
import traceback
from typing import Any

import cloudpickle

from nbcluster.exceptions import ObjectFreedError, TaskError
from nbcluster.runtime.objects.serialization import serialize
from nbcluster.runtime.protocol import common_pb2


def error_payload(object_id: bytes, exc: BaseException) -> common_pb2.ObjectPayload:
    """A payload whose ``get`` raises ``exc``."""
    data = serialize(exc, error=True).to_bytes()
    return common_pb2.ObjectPayload(object_id=object_id, data=data, size=len(data), is_error=True)


def freed_payload(object_id: bytes) -> common_pb2.ObjectPayload:
    """The payload of an object read after it was freed: ``get`` raises ObjectFreedError."""
    err = ObjectFreedError(
        object_id.hex(),
        f"Object {object_id.hex()} was freed: no reference to it remained. Keep the ObjectRef "
        "alive for as long as you need the value.",
    )
    return common_pb2.ObjectPayload(object_id=object_id, data=serialize(err, error=True).to_bytes(), is_error=True)


def format_exc(exc: BaseException, skip: int = 0) -> str:
    """``exc``'s traceback as text, its first ``skip`` frames left out (the runtime's)."""
    tb = exc.__traceback__
    for _ in range(skip):
        if tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb))


def picklable(exc: BaseException) -> BaseException | None:
    """``exc`` if it survives pickling (so the driver can raise its class), else None."""
    try:
        cloudpickle.loads(cloudpickle.dumps(exc))
    except Exception:  # noqa: BLE001
        return None
    exc.__traceback__ = None
    return exc


def task_error(function_name: str, text: str, exc: BaseException, node_ip: str, actor: Any) -> TaskError:
    """The error a task (or a call of ``actor``, an ``ActorHost`` or None) that raised
    ``exc`` stands as for its caller: where it ran, the actor's id and repr."""
    described = actor.described() if actor is not None else {}
    return TaskError(function_name, text, picklable(exc), os.getpid(), node_ip, **described)
