"""The cluster's tables as typed snapshots (``nbcluster.state.list_actors()``)."""

from nbcluster.runtime.state import (
    ActorState,
    AutoscalerEvent,
    AutoscalerState,
    DemandState,
    NodeTypeState,
    get_autoscaler_state,
    JobState,
    NodeState,
    TaskState,
    get_actor_state,
    list_actors,
    list_jobs,
    list_nodes,
    list_tasks,
)

__all__ = [
    "ActorState",
    "AutoscalerEvent",
    "AutoscalerState",
    "DemandState",
    "NodeTypeState",
    "get_autoscaler_state",
    "JobState",
    "NodeState",
    "TaskState",
    "get_actor_state",
    "list_actors",
    "list_jobs",
    "list_nodes",
    "list_tasks",
]
