"""The state API under Ray's names (``ray.util.state``)::

    from nbcluster.util.state import list_actors, list_tasks, summarize_tasks, get_log

    list_actors(filters=[("state", "=", "ALIVE")])
    list_tasks(filters=[("state", "!=", "FINISHED")], limit=10, detail=True)
    summarize_tasks()["cluster"]["summary"]
    for line in get_log(actor_id=handle._actor_id.hex(), tail=20):
        print(line)

Records carry Ray's field names (``ActorState.ray_namespace``, ``TaskState.attempt_number``,
times in ``*_ms``) and read the same head tables as :mod:`nbcluster.state`, which keeps
the runtime's own names. ``filters`` are ``(column, "=" | "!=", value)`` tuples; ``limit``
(default 100, 0 for all) caps a list; ``detail=True`` fills the detail columns.
Workers and stored objects are asked of every alive node manager (the calling process
must be connected); with ``raise_on_missing_output=True`` (the default, as Ray) a node
that does not answer raises :class:`RayStateApiException` rather than being left out
silently. ``timeout`` is accepted for Ray's signatures; the head's calls use their own.
"""

from nbcluster.util.state.api import (
    get_actor,
    get_job,
    get_node,
    get_objects,
    get_placement_group,
    get_task,
    get_worker,
    list_actors,
    list_jobs,
    list_nodes,
    list_objects,
    list_placement_groups,
    list_tasks,
    list_workers,
    summarize_actors,
    summarize_objects,
    summarize_tasks,
)
from nbcluster.util.state.common import (
    ActorState,
    JobState,
    NodeState,
    ObjectState,
    PlacementGroupState,
    RayStateApiException,
    StateSchema,
    TaskState,
    WorkerState,
)
from nbcluster.util.state.logs import get_log, list_logs

__all__ = [
    "ActorState",
    "JobState",
    "NodeState",
    "ObjectState",
    "PlacementGroupState",
    "RayStateApiException",
    "StateSchema",
    "TaskState",
    "WorkerState",
    "get_actor",
    "get_job",
    "get_log",
    "get_node",
    "get_objects",
    "get_placement_group",
    "get_task",
    "get_worker",
    "list_actors",
    "list_jobs",
    "list_logs",
    "list_nodes",
    "list_objects",
    "list_placement_groups",
    "list_tasks",
    "list_workers",
    "summarize_actors",
    "summarize_objects",
    "summarize_tasks",
]
