"""The cluster's tables as typed snapshots (``nbcluster.state.list_actors()``)."""

from nbcluster.runtime.state import ActorState, get_actor_state, list_actors

__all__ = ["ActorState", "get_actor_state", "list_actors"]
