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
    placement = dict(held)
    if num_cpus is None:
        placement["CPU"] = 1.0
    return held, placement
