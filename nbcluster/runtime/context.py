"""``get_runtime_context()``: who and where the calling code is."""

from __future__ import annotations

from dataclasses import dataclass

from nbcluster.runtime.core import worker_state


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
    def should_capture_child_tasks_in_placement_group(self) -> bool:
        """Whether tasks and actors started here go into this code's placement group."""
        return self.capture_child_tasks

    def get(self) -> dict:
        """The context as a dict (job_id, node_id, task_id, actor_id, namespace)."""
        return {
            "job_id": self.job_id,
            "node_id": self.node_id,
            "task_id": self.task_id,
            "actor_id": self.actor_id,
            "namespace": self.namespace,
        }


def get_runtime_context() -> RuntimeContext:
    """Who and where the calling code is. Raises RuntimeError before ``init()``."""
    core = worker_state.current
    if core is None:
        raise RuntimeError("nbcluster is not initialized: call nbcluster.init() first")
    task = core.executor.current_task_id if core.executor is not None else None
    actor = core.executor.actor if core.executor is not None else None
    group, capture = core.executor.placement_group if core.executor is not None else (b"", False)
    return RuntimeContext(
        job_id=core.job_id.hex(),
        node_id=core.node_id.hex(),
        worker_id=core.worker_id.hex(),
        task_id=task.hex() if task else None,
        namespace=core.namespace,
        actor_id=actor.actor_id.hex() if actor is not None else None,
        placement_group_id=group.hex() if group else None,
        capture_child_tasks=capture,
    )
