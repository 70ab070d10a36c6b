"""Validation of ``@remote(...)`` / ``.options(...)`` arguments, with Ray's names.

Every error names the option, what was wrong, and what to pass instead.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from typing import Any

from nbcluster.runtime.objects.serialization import dumps
from nbcluster.runtime.core.tasks import Placement, TaskOptions
from nbcluster.runtime.protocol import node_manager_pb2 as nm_pb2
from nbcluster.util.scheduling_strategies import NodeAffinitySchedulingStrategy

TASK_DEFAULTS: dict[str, Any] = {
    "num_cpus": 1,
    "num_gpus": 0,
    "memory": 0,
    "resources": None,
    "num_returns": 1,
    "max_retries": 3,
    "retry_exceptions": False,
    "name": "",
    "scheduling_strategy": None,
}

_RESERVED_RESOURCES = {"CPU": "num_cpus", "GPU": "num_gpus", "memory": "memory"}


def number(name: str, value: Any, *, minimum: float = 0) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, not {type(value).__name__} ({value!r})")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum:g}, got {value!r}")
    return float(value)


def integer(name: str, value: Any, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, not {type(value).__name__} ({value!r})")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return int(value)


def validate_task_options(options: Mapping[str, Any], where: str = "@nbcluster.remote") -> dict[str, Any]:
    """Check option names and values; return them normalized."""
    unknown = sorted(set(options) - set(TASK_DEFAULTS))
    if unknown:
        raise ValueError(
            f"{where} got unknown option(s) {', '.join(map(repr, unknown))}; valid options for "
            f"remote functions are: {', '.join(sorted(TASK_DEFAULTS))}"
        )
    out: dict[str, Any] = {}
    for name, value in options.items():
        if name in ("num_cpus", "num_gpus", "memory"):
            out[name] = number(name, value)
        elif name == "resources":
            out[name] = validate_resources(value)
        elif name == "num_returns":
            out[name] = integer(name, value, minimum=0)
        elif name == "max_retries":
            out[name] = integer(name, value, minimum=-1)
        elif name == "retry_exceptions":
            out[name] = _retry_exceptions(value)
        elif name == "name":
            if not isinstance(value, str):
                raise TypeError(f"name must be a str, not {type(value).__name__}")
            out[name] = value
        elif name == "scheduling_strategy":
            out[name] = validate_strategy(value)
    return out


def validate_strategy(value: Any) -> Any:
    if value is None or value in ("DEFAULT", "SPREAD") or isinstance(value, NodeAffinitySchedulingStrategy):
        return value
    raise ValueError(
        "scheduling_strategy must be 'DEFAULT', 'SPREAD' or a "
        f"nbcluster.util.scheduling_strategies.NodeAffinitySchedulingStrategy, not {value!r}"
    )


def placement(value: Any) -> Placement | None:
    """The wire form of a validated scheduling strategy (None: the default)."""
    if value is None or value == "DEFAULT":
        return None
    if value == "SPREAD":
        return Placement(nm_pb2.SCHEDULING_STRATEGY_SPREAD)
    return Placement(nm_pb2.SCHEDULING_STRATEGY_NODE_AFFINITY, bytes.fromhex(value.node_id), value.soft)


def validate_resources(value: Any) -> dict[str, float]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise TypeError(f"resources must be a dict of name -> amount, not {type(value).__name__}")
    out = {}
    for key, amount in value.items():
        if not isinstance(key, str):
            raise TypeError(f"resource names must be str, got {key!r}")
        if key in _RESERVED_RESOURCES:
            raise ValueError(
                f"Use the '{_RESERVED_RESOURCES[key]}' argument instead of resources={{'{key}': ...}}"
            )
        out[key] = number(f"resources[{key!r}]", amount)
    return out


def _retry_exceptions(value: Any) -> bool | tuple[type, ...]:
    if isinstance(value, bool):
        return value
    if isinstance(value, (list, tuple)) and value and all(
        isinstance(t, type) and issubclass(t, BaseException) for t in value
    ):
        return tuple(value)
    raise TypeError(
        "retry_exceptions must be True, False, or a non-empty list of exception classes, "
        f"not {value!r}"
    )


def task_options(merged: Mapping[str, Any]) -> TaskOptions:
    """The runtime's TaskOptions from validated, defaults-merged options."""
    opts = {**TASK_DEFAULTS, **merged}
    shape: dict[str, float] = {}
    if opts["num_cpus"]:
        shape["CPU"] = opts["num_cpus"]
    if opts["num_gpus"]:
        shape["GPU"] = opts["num_gpus"]
    if opts["memory"]:
        shape["memory"] = opts["memory"]
    shape.update(opts["resources"] or {})
    retry = opts["retry_exceptions"]
    return TaskOptions(
        resources=shape,
        num_returns=opts["num_returns"],
        max_retries=opts["max_retries"],
        retry_exceptions=bool(retry),
        retry_types=dumps(retry) if isinstance(retry, tuple) else b"",
        name=opts["name"],
        placement=placement(opts["scheduling_strategy"]),
    )
