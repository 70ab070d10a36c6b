"""``ObjectRef``: a reference to a value in the cluster (Ray's name and semantics).

Hashable, comparable, picklable; it may be nested inside arguments and results. Each
instance counts as one reference in its process: the owner frees the value when no
reference remains anywhere.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from typing import Any

from nbcluster.runtime.core import worker_state
from nbcluster.runtime.objects.serialization import record_ref


class ObjectRef:
    """A reference to a value in the cluster (Ray's ObjectRef): get it with ``nbcluster.get``."""

    __slots__ = ("_id", "_owner", "_core", "__weakref__")

    def __init__(self, object_id: bytes, owner: bytes, core: Any) -> None:
        # Created by the runtime only; the caller has counted this reference.
        self._id = object_id
        self._owner = owner
        self._core = core

    def __del__(self) -> None:
        core = self._core
        if core is not None:
            try:
                core.refs.release(self._id)
            except Exception:  # noqa: BLE001 - interpreter shutdown
                pass

    def __reduce__(self) -> Any:
        record_ref(self)
        return (_rebuild_ref, (self._id, self._owner))

    def __hash__(self) -> int:
        return hash(self._id)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ObjectRef) and other._id == self._id

    def __repr__(self) -> str:
        return f"ObjectRef({self._id.hex()})"

    def hex(self) -> str:
        """The object's id, hex."""
        return self._id.hex()

    def binary(self) -> bytes:
        """The object's id, bytes."""
        return self._id

    def task_id(self) -> str:
        """Hex id of the task that returns this object (or of the put)."""
        return self._id[:16].hex()

    def future(self) -> concurrent.futures.Future:
        """A ``concurrent.futures.Future`` that resolves to the value."""
        core = _require_core(self)
        return core.get_future(self)

    def __await__(self) -> Any:
        core = _require_core(self)
        return asyncio.wrap_future(core.get_future(self)).__await__()


def _require_core(ref: ObjectRef) -> Any:
    core = ref._core or worker_state.current
    if core is None or core.closed:
        raise RuntimeError(f"{ref!r} belongs to a runtime that has shut down; call nbcluster.init()")
    return core


def _rebuild_ref(object_id: bytes, owner: bytes) -> ObjectRef:
    core = worker_state.current
    ref = ObjectRef(object_id, owner, core)
    if core is not None:
        core.refs.add_borrowed(object_id, owner)
    return ref
