"""Utilities (as ``ray.util``): :class:`ActorPool`, placement groups
(``placement_group``, ``placement_group_table``, ``remove_placement_group``,
``get_placement_group``, ``get_current_placement_group``), the scheduling strategies, and
the submodules ``nbcluster.util.queue`` (a queue shared by tasks and actors),
``nbcluster.util.multiprocessing`` (``multiprocessing.Pool`` on the cluster) and
``nbcluster.util.state`` (the state API under Ray's names), imported
by name as in Ray (``from nbcluster.util.queue import Queue``)."""

from nbcluster.util import scheduling_strategies
from nbcluster.util.actor_pool import ActorPool
from nbcluster.util.placement_group import (
    PlacementGroup,
    get_current_placement_group,
    get_placement_group,
    placement_group,
    placement_group_table,
    remove_placement_group,
)

__all__ = [
    "ActorPool",
    "PlacementGroup",
    "get_current_placement_group",
    "get_placement_group",
    "placement_group",
    "placement_group_table",
    "remove_placement_group",
    "scheduling_strategies",
]
