"""``get_runtime_context()``: who and where the calling code is (Ray's
``ray.get_runtime_context()``).

The first call in a driver that has not called ``init()`` starts an embedded cluster
with the same one-line notice as the other calls (as Ray). The context is a snapshot
taken when it is asked for: ask again inside each task.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from nbcluster.runtime.actor import current_actor_handle
from nbcluster.runtime.core import gpus, worker_state


@dataclass(frozen=True)
class RuntimeContext:
    """Ids of the current job, node, worker and task (hex), as in Ray."""

    job_id: str
    node_id: str
    worker_id: str
    task_id: str | None
    namespace: str
    actor_id: str | None = None
    placement_group_id: str | None = None
    capture_child_tasks: bool = False
    #: The resources the running task or actor holds (Ray's names: ``CPU``, ``GPU``, ...).
    assigned_resources: dict[str, float] = field(default_factory=dict)
    #: The accelerators it was given, by kind: ``{"GPU": ["0", "1"]}`` (ids as str, as Ray).
    accelerator_ids: dict[str, list[str]] = field(default_factory=dict)
    #: The head's GCS address.
    gcs_address: str = ""
    #: This code runs in a worker (a task or an actor), not a driver.
    in_worker: bool = False

    def get_job_id(self) -> str:
        """The current job's id (hex)."""
        return self.job_id

    def get_node_id(self) -> str:
        """The id of the node this code runs on (hex)."""
        return self.node_id

    def get_worker_id(self) -> str:
        """The id of this process's worker (hex)."""
        return self.worker_id

    def get_task_id(self) -> str | None:
        """The running task's id; None in a driver."""
        return self.task_id

    def get_actor_id(self) -> str | None:
        """The actor this code runs in; None outside actors."""
        return self.actor_id

    def get_placement_group_id(self) -> str | None:
        """The placement group this code runs in (hex); None outside placement groups."""
        return self.placement_group_id

    @property
    def current_placement_group_id(self) -> str | None:
        """The same as :meth:`get_placement_group_id` (Ray's property)."""
        return self.placement_group_id

    def get_assigned_resources(self) -> dict[str, float]:
        """The resources given to the running task or actor, e.g. ``{"CPU": 1.0}`` (placement
        group bundles under their plain names, as Ray); ``{}`` in a driver."""
        return dict(self.assigned_resources)

    def get_accelerator_ids(self) -> dict[str, list[str]]:
        """The accelerator ids given to the running task or actor, by kind (``{"GPU": [...]}``;
        empty lists in a driver or for work that asked for none)."""
        return {kind: list(ids) for kind, ids in self.accelerator_ids.items()}

    @property
    def current_actor(self) -> Any:
        """A handle to the actor this code runs in. RuntimeError outside actors (as Ray)."""
        if self.actor_id is None:
            raise RuntimeError("This method is only available in an actor.")
        return current_actor_handle()

    @property
    def should_capture_child_tasks_in_placement_group(self) -> bool:
        """Whether tasks and actors started here go into this code's placement group."""
        return self.capture_child_tasks

    def get(self) -> dict[str, Any]:
        """The context as a dict with Ray's keys: ``job_id``, ``node_id``, ``namespace``, and in
        a worker ``task_id`` when it runs a task and ``actor_id`` when it hosts an actor."""
        context: dict[str, Any] = {"job_id": self.job_id, "node_id": self.node_id, "namespace": self.namespace}
        if self.in_worker and self.task_id is not None:
            context["task_id"] = self.task_id
        if self.in_worker and self.actor_id is not None:
            context["actor_id"] = self.actor_id
        return context


def get_runtime_context() -> RuntimeContext:
    """Who and where the calling code is. Before ``init()`` in a driver, it starts an
    embedded cluster first (as Ray, with the same notice as ``remote()``)."""
    core = worker_state.require()
    executor = core.executor
    task = executor.current_task_id if executor is not None else None
    actor = executor.actor if executor is not None else None
    group, capture = executor.placement_group if executor is not None else (b"", False)
    return RuntimeContext(
        job_id=core.job_id.hex(),
        node_id=core.node_id.hex(),
        worker_id=core.worker_id.hex(),
        task_id=task.hex() if task else None,
        namespace=core.namespace,
        actor_id=actor.actor_id.hex() if actor is not None else None,
        placement_group_id=group.hex() if group else None,
        capture_child_tasks=capture,
        assigned_resources=gpus.assigned_resources() if executor is not None else {},
        accelerator_ids={"GPU": [str(i) for i in gpus.assigned()]},
        gcs_address=str(getattr(core, "gcs_address", "") or ""),
        in_worker=executor is not None,
    )
