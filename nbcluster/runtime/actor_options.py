"""An actor's resources: what it holds while it lives and what it needs free to be
placed (its options are validated by ``nbcluster.runtime.options``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def actor_shape(options: Mapping[str, Any]) -> tuple[dict[str, float], dict[str, float]]:
    """(held, placement) resources. As Ray: without num_cpus an actor needs 1 CPU free
    to be placed but holds none while it lives; with num_cpus it holds them."""
    held: dict[str, float] = {}
    num_cpus = options.get("num_cpus")
    if num_cpus:
        held["CPU"] = num_cpus
    if options.get("num_gpus"):
        held["GPU"] = options["num_gpus"]
    if options.get("memory"):
        held["memory"] = options["memory"]
    held.update(options.get("resources") or {})
    held.update(accelerator_demand(options))
    placement = dict(held)
    if num_cpus is None:
        placement["CPU"] = 1.0
    return held, placement


#: What ``accelerator_type=`` asks of a node, as Ray: a sliver of its
#: ``accelerator_type:<model>`` resource (which a node with such GPUs has one of).
ACCELERATOR_SLIVER = 0.001


def accelerator_demand(options: Mapping[str, Any]) -> dict[str, float]:
    """The resource ``accelerator_type=`` adds to a task's or actor's demand ({} without it)."""
    kind = options.get("accelerator_type")
    return {f"accelerator_type:{kind}": ACCELERATOR_SLIVER} if kind else {}
