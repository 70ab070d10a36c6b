"""The cluster's tables as typed snapshots (``nbcluster.state.list_actors()``)."""

from nbcluster.runtime.state import (
    ActorState,
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
    "JobState",
    "NodeState",
    "TaskState",
    "get_actor_state",
    "list_actors",
    "list_jobs",
    "list_nodes",
    "list_tasks",
]
