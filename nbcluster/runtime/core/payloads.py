"""Payloads that carry an error instead of a value: ``get`` of one raises it."""

from __future__ import annotations

from nbcluster.exceptions import ObjectFreedError
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
