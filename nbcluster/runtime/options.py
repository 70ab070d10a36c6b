"""Validation of ``@remote(...)`` / ``.options(...)`` arguments of remote functions,
actors and actor methods, with Ray's names: one validator, a table of checks per kind.

Every error names the option, what was wrong, and what to pass instead.
"""

from __future__ import annotations

import copy
import numbers
from collections.abc import Callable, Mapping
from typing import Any

from nbcluster.runtime import bundles
from nbcluster.runtime.actor_options import accelerator_demand
from nbcluster.runtime.objects.serialization import dumps
from nbcluster.runtime.core.tasks import Placement, TaskOptions
from nbcluster.runtime.protocol import common_pb2, node_manager_pb2 as nm_pb2
from nbcluster.runtime.runtime_env import RuntimeEnv
from nbcluster.util.scheduling_strategies import NodeAffinitySchedulingStrategy, PlacementGroupSchedulingStrategy

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
    """``value`` as a float >= ``minimum``; TypeError/ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, not {type(value).__name__} ({value!r})")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum:g}, got {value!r}")
    return float(value)


def integer(name: str, value: Any, *, minimum: int) -> int:
    """``value`` as an int >= ``minimum``; TypeError/ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, not {type(value).__name__} ({value!r})")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return int(value)


#: How one option's value is checked: (option name, value) -> the normalized value.
Check = Callable[[str, Any], Any]


def _number(name: str, value: Any) -> float:
    return number(name, value)


def _optional_number(name: str, value: Any) -> float | None:
    return None if value is None else number(name, value)


def _int_from(minimum: int) -> Check:
    return lambda name, value: integer(name, value, minimum=minimum)


def _str(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, not {type(value).__name__}")
    return value


def _optional_str(name: str, value: Any) -> str | None:
    return None if value is None else _str(name, value)


def _actor_name(name: str, value: Any) -> str | None:
    if value == "":
        raise ValueError("name must not be empty (leave it out for an unnamed actor)")
    return _optional_str(name, value)


def _method_name(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError("name must be a str")
    return value


def _lifetime(name: str, value: Any) -> str | None:
    if value not in (None, "detached", "non_detached"):
        raise ValueError(f"lifetime must be None, 'detached' or 'non_detached', got {value!r}")
    return value


def _bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, not {type(value).__name__}")
    return value


def _placement_group(name: str, value: Any) -> Any:
    """The legacy placement group options, checked as the strategy they stand for."""
    if name == "placement_group" and value != "default":
        PlacementGroupSchedulingStrategy(value)
    elif name == "placement_group_bundle_index":
        PlacementGroupSchedulingStrategy(None, value)
    elif name == "placement_group_capture_child_tasks":
        PlacementGroupSchedulingStrategy(None, -1, value)
    return value


#: ``num_returns`` values that make a generator's results (Ray's names).
RETURNS_KINDS = {"streaming": common_pb2.RETURNS_KIND_STREAMING, "dynamic": common_pb2.RETURNS_KIND_DYNAMIC}


def _num_returns(name: str, value: Any) -> int | str:
    if value in RETURNS_KINDS and isinstance(value, str):
        return value
    if isinstance(value, str):
        raise ValueError(f"num_returns must be an int >= 0, 'streaming' or 'dynamic', got {value!r}")
    return integer(name, value, minimum=0)


def _backpressure(name: str, value: Any) -> int:
    n = integer(name, value, minimum=-1)
    if n == 0:
        raise ValueError(f"{name} must be -1 (no backpressure) or >= 1, got 0")
    return n


def _concurrency_groups(name: str, value: Any) -> dict[str, int]:
    if not isinstance(value, Mapping):
        raise TypeError(f"{name} must be a dict of group name -> max concurrency, not {type(value).__name__}")
    out = {}
    for group, limit in value.items():
        if not isinstance(group, str) or not group:
            raise TypeError(f"{name}: group names must be non-empty str, got {group!r}")
        out[group] = integer(f"{name}[{group!r}]", limit, minimum=1)
    return out


#: Options that tasks and actors share, with the same checks.
_SHARED: dict[str, Check] = {
    "num_cpus": _number,
    "num_gpus": _number,
    "memory": _number,
    "resources": lambda _name, value: validate_resources(value),
    "accelerator_type": _str,
    "scheduling_strategy": lambda _name, value: validate_strategy(value),
    # Ray's older spelling of PlacementGroupSchedulingStrategy.
    "placement_group": _placement_group,
    "placement_group_bundle_index": _placement_group,
    "placement_group_capture_child_tasks": _placement_group,
    # Validated once, here: the RuntimeEnv value travels as is from now on.
    "runtime_env": lambda _name, value: RuntimeEnv.parse(value),
}
#: ``@remote`` on a function, ``f.options(...)`` (defaults: TASK_DEFAULTS).
TASK_OPTIONS: dict[str, Check] = {
    **_SHARED,
    "num_returns": _num_returns,
    "max_retries": _int_from(-1),
    "retry_exceptions": lambda _name, value: _retry_exceptions(value),
    "name": _str,
    "_generator_backpressure_num_objects": _backpressure,
}
#: ``@remote`` on a class, ``Cls.options(...)``. Without num_cpus (None) an actor
#: holds no CPU while it lives (see actor_options.actor_shape).
ACTOR_OPTIONS: dict[str, Check] = {
    **_SHARED,
    "num_cpus": _optional_number,
    "max_restarts": _int_from(-1),
    "max_task_retries": _int_from(-1),
    "max_concurrency": _int_from(1),
    "name": _actor_name,
    "namespace": _optional_str,
    "lifetime": _lifetime,
    "get_if_exists": _bool,
    "concurrency_groups": _concurrency_groups,
}
#: ``handle.method.options(...)``.
METHOD_OPTIONS: dict[str, Check] = {
    "num_returns": _num_returns,
    "name": _method_name,
    "concurrency_group": _str,
    "_generator_backpressure_num_objects": _backpressure,
}


def validate_options(options: Mapping[str, Any], table: Mapping[str, Check], where: str, what: str) -> dict[str, Any]:
    """Check option names against ``table`` (``what`` names its kind in the error)
    and each value with its check; return them normalized. Raises ValueError or
    TypeError naming the option and what to pass instead."""
    unknown = sorted(set(options) - set(table))
    if unknown:
        raise ValueError(
            f"{where} got unknown option(s) {', '.join(map(repr, unknown))}; valid options for "
            f"{what} are: {', '.join(sorted(table))}"
        )
    return {name: table[name](name, value) for name, value in options.items()}


def validate_task_options(options: Mapping[str, Any], where: str = "@nbcluster.remote") -> dict[str, Any]:
    """A remote function's options, checked and normalized."""
    return validate_options(options, TASK_OPTIONS, where, "remote functions")


def validate_actor_options(options: Mapping[str, Any], where: str = "@nbcluster.remote") -> dict[str, Any]:
    """An actor class's options, checked and normalized."""
    out = validate_options(options, ACTOR_OPTIONS, where, "actors")
    if out.get("get_if_exists") and not out.get("name"):
        raise ValueError("get_if_exists=True needs a name: it finds an existing actor by its name")
    return out


def validate_method_options(options: Mapping[str, Any], where: str) -> dict[str, Any]:
    """An actor method's options (``num_returns``, ``name``, ``concurrency_group``,
    ``_generator_backpressure_num_objects``), checked."""
    return validate_options(options, METHOD_OPTIONS, where, "actor methods")


def validate_strategy(value: Any) -> Any:
    """A scheduling strategy: None, "DEFAULT", "SPREAD", a NodeAffinitySchedulingStrategy
    or a PlacementGroupSchedulingStrategy."""
    if value is None or value in ("DEFAULT", "SPREAD") or isinstance(
        value, (NodeAffinitySchedulingStrategy, PlacementGroupSchedulingStrategy)
    ):
        return value
    raise ValueError(
        "scheduling_strategy must be 'DEFAULT', 'SPREAD', a NodeAffinitySchedulingStrategy or a "
        f"PlacementGroupSchedulingStrategy (nbcluster.util.scheduling_strategies), not {value!r}"
    )


def strategy_of(options: Mapping[str, Any]) -> Any:
    """The scheduling strategy of validated options, Ray's legacy ``placement_group=``,
    ``placement_group_bundle_index=`` and ``placement_group_capture_child_tasks=`` folded in."""
    strategy = options.get("scheduling_strategy")
    group = options.get("placement_group", "default")
    if group == "default":
        return strategy
    if strategy is not None:
        raise ValueError(
            "pass a placement group either as scheduling_strategy=PlacementGroupSchedulingStrategy(...) "
            "or with placement_group=..., not both"
        )
    return PlacementGroupSchedulingStrategy(
        group, options.get("placement_group_bundle_index", -1), options.get("placement_group_capture_child_tasks")
    )


def placement(value: Any) -> Placement | None:
    """The wire form of a validated scheduling strategy (None: none given). ValueError
    when a placement group's bundle index is out of its range."""
    if value is None:
        return None
    if value in ("DEFAULT", "SPREAD"):
        return Placement(nm_pb2.SCHEDULING_STRATEGY_SPREAD if value == "SPREAD" else nm_pb2.SCHEDULING_STRATEGY_DEFAULT)
    if isinstance(value, PlacementGroupSchedulingStrategy):
        group = value.placement_group
        if group is None:  # explicitly in no group (also when the caller's group captures)
            return Placement(nm_pb2.SCHEDULING_STRATEGY_DEFAULT)
        count = len(group.bundle_specs)
        if value.placement_group_bundle_index >= count:
            raise ValueError(
                f"placement_group_bundle_index {value.placement_group_bundle_index} is out of range: the placement "
                f"group has {count} bundle(s), so pass 0..{count - 1}, or -1 for any of them"
            )
        return Placement(
            nm_pb2.SCHEDULING_STRATEGY_DEFAULT,
            group_id=group.id.binary(),
            capture=bool(value.placement_group_capture_child_tasks),
        )
    return Placement(nm_pb2.SCHEDULING_STRATEGY_NODE_AFFINITY, bytes.fromhex(value.node_id), value.soft)


def bundle_index(strategy: Any) -> int:
    """The bundle a strategy names (-1: any bundle, or not a placement group strategy)."""
    return strategy.placement_group_bundle_index if isinstance(strategy, PlacementGroupSchedulingStrategy) else -1


def in_current_group(where: Placement | None, current: tuple[bytes, bool]) -> Placement | None:
    """The placement of work submitted by code running in placement group ``current``
    (group id, capture): with no strategy of its own (``where`` None) and a group that
    captures, in that group (any bundle), capturing in turn."""
    group_id, capture = current
    if where is None and capture and group_id:
        return Placement(nm_pb2.SCHEDULING_STRATEGY_DEFAULT, group_id=group_id, capture=True)
    return where


def captured(options: TaskOptions, current: tuple[bytes, bool]) -> TaskOptions:
    """A task's ``options`` as submitted from placement group ``current`` (see
    :func:`in_current_group`)."""
    where = in_current_group(options.placement, current)
    if where is options.placement:
        return options
    assert where is not None
    out = copy.copy(options)
    out.resources = bundles.in_group(options.resources, where.group_id)
    out.placement = where
    return out


def validate_resources(value: Any) -> dict[str, float]:
    """Custom resources: a dict of name -> amount >= 0 (CPU, GPU and memory have
    their own arguments)."""
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
    shape.update(accelerator_demand(opts))
    retry = opts["retry_exceptions"]
    strategy = strategy_of(opts)
    where = placement(strategy)
    if where is not None and where.group_id:
        shape = bundles.in_group(shape, where.group_id, bundle_index(strategy))
    num_returns, kind = returns_shape(opts["num_returns"])
    return TaskOptions(
        resources=shape,
        num_returns=num_returns,
        max_retries=opts["max_retries"],
        retry_exceptions=bool(retry),
        retry_types=dumps(retry) if isinstance(retry, tuple) else b"",
        name=opts["name"],
        placement=where,
        returns_kind=kind,
        backpressure=max(opts.get("_generator_backpressure_num_objects", -1), 0),
        runtime_env=opts.get("runtime_env"),
    )


def returns_shape(num_returns: int | str) -> tuple[int, int]:
    """A validated ``num_returns`` as (return refs, ``RETURNS_KIND_*``): a generator
    (``"streaming"``, ``"dynamic"``) has one return ref."""
    if isinstance(num_returns, str):
        return 1, RETURNS_KINDS[num_returns]
    return num_returns, common_pb2.RETURNS_KIND_UNSPECIFIED
