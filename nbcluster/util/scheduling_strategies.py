"""Scheduling strategies for ``options(scheduling_strategy=...)`` (as
``ray.util.scheduling_strategies``). Besides these: ``"DEFAULT"`` and ``"SPREAD"``."""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class NodeAffinitySchedulingStrategy:
    """Run on the node with id ``node_id`` (hex, as ``get_runtime_context().get_node_id()``).
    ``soft=True``: another node will do when that one is gone or cannot fit the work;
    ``soft=False``: the work fails with TaskUnschedulableError then."""

    node_id: str
    soft: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.node_id, str):
            raise TypeError(f"node_id must be a hex str, not {type(self.node_id).__name__}")
        try:
            raw = bytes.fromhex(self.node_id)
        except ValueError:
            raise ValueError(f"node_id must be a node's hex id, got {self.node_id!r}") from None
        if len(raw) != 16:
            raise ValueError(f"node_id must be 32 hex digits, got {self.node_id!r}")
        if not isinstance(self.soft, bool):
            raise TypeError("soft must be a bool")


@dataclass(frozen=True)
class PlacementGroupSchedulingStrategy:
    """Run in a placement group (``nbcluster.util.placement_group``): in its bundle
    ``placement_group_bundle_index`` (-1: any of its bundles). The work's resources come
    out of the bundle's. ``placement_group_capture_child_tasks=True``: tasks and actors
    it starts without a scheduling strategy go into the same group (any bundle).
    ``placement_group=None``: not in a group, also when the caller's group captures."""

    placement_group: Any
    placement_group_bundle_index: int = -1
    placement_group_capture_child_tasks: bool | None = None

    def __post_init__(self) -> None:
        group = self.placement_group
        if group is not None and not (hasattr(group, "id") and hasattr(group, "bundle_specs")):
            raise TypeError(
                "placement_group must be a PlacementGroup (from nbcluster.util.placement_group()) or None, "
                f"not {type(group).__name__}"
            )
        index = self.placement_group_bundle_index
        if isinstance(index, bool) or not isinstance(index, numbers.Integral) or index < -1:
            raise ValueError(f"placement_group_bundle_index must be an int >= -1, got {index!r}")
        if self.placement_group_capture_child_tasks not in (None, True, False):
            raise TypeError("placement_group_capture_child_tasks must be a bool or None")


__all__ = ["NodeAffinitySchedulingStrategy", "PlacementGroupSchedulingStrategy"]
