"""Actors: ``nbcluster.actor.exit_actor()`` and the actor types (as ``ray.actor``)."""

from nbcluster.runtime.actor import ActorClass, ActorHandle, ActorMethod, exit_actor, method

__all__ = ["ActorClass", "ActorHandle", "ActorMethod", "exit_actor", "method"]
