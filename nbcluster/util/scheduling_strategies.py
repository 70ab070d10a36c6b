"""Scheduling strategies for ``options(scheduling_strategy=...)`` (as
``ray.util.scheduling_strategies``). Besides these: ``"DEFAULT"`` and ``"SPREAD"``."""

from __future__ import annotations

from dataclasses import dataclass


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


__all__ = ["NodeAffinitySchedulingStrategy"]
