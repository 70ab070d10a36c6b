"""The GPUs of what a worker runs: its lease's ids (``TaskSpec.gpu_ids``), set as
``CUDA_VISIBLE_DEVICES`` while it runs, and what ``get_gpu_ids()`` answers; and the
resources it holds (``get_runtime_context().get_assigned_resources()``)."""

from __future__ import annotations

import os

from nbcluster.runtime.bundles import plain_resources
from nbcluster.runtime.protocol import common_pb2

_ORIGINAL = os.environ.get("CUDA_VISIBLE_DEVICES")
#: The GPU ids assigned to the task or actor this worker runs (none in a driver).
_assigned: list[int] = []
#: The spec of the task or actor this worker runs: its resources (turned into Ray's
#: names only when asked, as this runs before every task).
_spec: common_pb2.TaskSpec | None = None


def enter(spec: common_pb2.TaskSpec) -> None:
    """A task or actor creation starts here: its GPUs become the visible ones. An
    actor's method calls keep what its creation was given."""
    global _assigned, _spec
    if spec.kind == common_pb2.TASK_KIND_ACTOR_TASK:
        return
    _spec = spec
    if not spec.gpu_ids and not _assigned:
        return  # none before and none now (the usual case): the variable is as it was
    _assigned = list(spec.gpu_ids)
    if _assigned:
        os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(str(i) for i in _assigned)
    elif _ORIGINAL is None:
        os.environ.pop("CUDA_VISIBLE_DEVICES", None)
    else:
        os.environ["CUDA_VISIBLE_DEVICES"] = _ORIGINAL


def assigned() -> list[int]:
    """The GPU ids of the task or actor running here (Ray's ``get_gpu_ids()``)."""
    return list(_assigned)


def assigned_resources() -> dict[str, float]:
    """The resources the task or actor running here holds (Ray's names)."""
    return plain_resources(_spec.resources.amounts) if _spec is not None else {}
