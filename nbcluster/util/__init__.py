"""Utilities (as ``ray.util``): :class:`ActorPool`, the scheduling strategies, and the
submodules ``nbcluster.util.queue`` (a queue shared by tasks and actors) and
``nbcluster.util.multiprocessing`` (``multiprocessing.Pool`` on the cluster), imported
by name as in Ray (``from nbcluster.util.queue import Queue``)."""

from nbcluster.util import scheduling_strategies
from nbcluster.util.actor_pool import ActorPool

__all__ = ["ActorPool", "scheduling_strategies"]
