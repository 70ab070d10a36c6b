"""Validation of actor options (``@remote`` on a class, ``Cls.options(...)``) and
actor method options, with Ray's names and defaults."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nbcluster.runtime.options import integer, number, validate_resources, validate_strategy

ACTOR_OPTIONS = (
    "num_cpus",
    "num_gpus",
    "memory",
    "resources",
    "max_restarts",
    "max_task_retries",
    "max_concurrency",
    "name",
    "namespace",
    "lifetime",
    "get_if_exists",
    "scheduling_strategy",
)
METHOD_OPTIONS = ("num_returns", "name")


def _unknown(options: Mapping[str, Any], valid: tuple[str, ...], where: str, what: str) -> None:
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ValueError(
            f"{where} got unknown option(s) {', '.join(map(repr, unknown))}; valid options for "
            f"{what} are: {', '.join(sorted(valid))}"
        )


def validate_actor_options(options: Mapping[str, Any], where: str = "@nbcluster.remote") -> dict[str, Any]:
    _unknown(options, ACTOR_OPTIONS, where, "actors")
    out: dict[str, Any] = {}
    for key, value in options.items():
        if key in ("num_cpus", "num_gpus", "memory"):
            out[key] = None if value is None and key == "num_cpus" else number(key, value)
        elif key == "resources":
            out[key] = validate_resources(value)
        elif key in ("max_restarts", "max_task_retries"):
            out[key] = integer(key, value, minimum=-1)
        elif key == "max_concurrency":
            out[key] = integer(key, value, minimum=1)
        elif key in ("name", "namespace"):
            if value is not None and not isinstance(value, str):
                raise TypeError(f"{key} must be a str, not {type(value).__name__}")
            if key == "name" and value == "":
                raise ValueError("name must not be empty (leave it out for an unnamed actor)")
            out[key] = value
        elif key == "lifetime":
            if value not in (None, "detached", "non_detached"):
                raise ValueError(f"lifetime must be None, 'detached' or 'non_detached', got {value!r}")
            out[key] = value
        elif key == "scheduling_strategy":
            out[key] = validate_strategy(value)
        elif key == "get_if_exists":
            if not isinstance(value, bool):
                raise TypeError(f"get_if_exists must be a bool, not {type(value).__name__}")
            out[key] = value
    if out.get("get_if_exists") and not out.get("name"):
        raise ValueError("get_if_exists=True needs a name: it finds an existing actor by its name")
    return out


def validate_method_options(options: Mapping[str, Any], where: str) -> dict[str, Any]:
    _unknown(options, METHOD_OPTIONS, where, "actor methods")
    out: dict[str, Any] = {}
    if "num_returns" in options:
        out["num_returns"] = integer("num_returns", options["num_returns"], minimum=0)
    if "name" in options:
        if not isinstance(options["name"], str):
            raise TypeError("name must be a str")
        out["name"] = options["name"]
    return out


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
