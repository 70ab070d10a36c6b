"""Placement group bundles as resources (Ray's design).

A bundle ``i`` of group ``G`` committed on a node adds, for each resource ``R`` it
holds, ``R_group_<i>_<G>`` and ``R_group_<G>`` to that node (taken from its free
``R``), plus the markers ``bundle_group_<i>_<G>`` and ``bundle_group_<G>``. Work in the
group asks for the renamed resources (:func:`in_group`) and a sliver of the marker, so
the ordinary scheduler places it on the bundle's node — also work that needs no
resources. Bundle index ``-1`` asks for the group-wide names only: any bundle will do.

Pure functions, shared by the driver (options), the GCS (placing groups) and node
managers (committing and releasing bundles).
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from typing import Any

#: Ray's strategies, in the order of the protocol's PlacementStrategy values (from 1).
STRATEGIES = ("PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD")
#: What a committed bundle offers of its marker resource, and what work asks of it.
MARKER_TOTAL = 1000.0
MARKER_NEED = 0.001
_MARKER = "bundle"


def group_name(resource: str, group_id: bytes, index: int = -1) -> str:
    """``CPU_group_0_<hex>`` (one bundle) or ``CPU_group_<hex>`` (index -1: any bundle)."""
    if index < 0:
        return f"{resource}_group_{group_id.hex()}"
    return f"{resource}_group_{index}_{group_id.hex()}"


def committed_resources(group_id: bytes, index: int, bundle: Mapping[str, float]) -> dict[str, float]:
    """What committing bundle ``index`` of ``group_id`` adds to its node."""
    out: dict[str, float] = {}
    for name, amount in {**bundle, _MARKER: MARKER_TOTAL}.items():
        if amount:
            out[group_name(name, group_id, index)] = amount
            out[group_name(name, group_id)] = amount
    return out


def in_group(shape: Mapping[str, float], group_id: bytes, index: int = -1) -> dict[str, float]:
    """A task's or actor's resource ``shape`` renamed into bundle ``index`` of ``group_id``
    (-1: any of its bundles), with the marker that pins work needing nothing. Work in
    one bundle takes the group-wide names too (as Ray), so work in any bundle never
    takes more of a node than its bundles hold."""
    out: dict[str, float] = {}
    for name, amount in {**shape, _MARKER: MARKER_NEED}.items():
        if amount:
            out[group_name(name, group_id)] = amount
            if index >= 0:
                out[group_name(name, group_id, index)] = amount
    return out


def group_of(resource: str) -> str | None:
    """The hex id of the group a resource name belongs to (None: not a group resource)."""
    head, sep, tail = resource.rpartition("_group_")
    if not sep or not head:
        return None
    group = tail.rpartition("_")[2]
    return group if len(group) == 32 and all(c in "0123456789abcdef" for c in group) else None


def plain_resources(shape: Mapping[str, float]) -> dict[str, float]:
    """``shape`` with group resources under their own names (``CPU_group_0_<G>`` and
    ``CPU_group_<G>`` both ``CPU``) and without the markers: what work holds, as Ray's
    ``get_assigned_resources()`` names it."""
    out: dict[str, float] = {}
    for name, amount in shape.items():
        if is_group_resource(name):
            name = name.rpartition("_group_")[0]
            if name == _MARKER:
                continue
            out[name] = max(out.get(name, 0.0), amount)
        else:
            out[name] = out.get(name, 0.0) + amount
    return {name: amount for name, amount in out.items() if amount}


def is_group_resource(resource: str) -> bool:
    """Whether ``resource`` is a renamed resource of some placement group."""
    return group_of(resource) is not None


def validate_bundles(bundles: Any) -> list[dict[str, float]]:
    """Ray's rules: a non-empty list of non-empty dicts of resource name -> amount >= 0,
    with something > 0 in each. Returns them as plain dicts of floats."""
    if not isinstance(bundles, Sequence) or isinstance(bundles, (str, bytes)):
        raise TypeError(f"bundles must be a list of dicts (resource name -> amount), not {type(bundles).__name__}")
    if not bundles:
        raise ValueError("bundles must not be empty: a placement group reserves at least one bundle")
    out = []
    for i, bundle in enumerate(bundles):
        if not isinstance(bundle, Mapping):
            raise TypeError(f"bundle {i} must be a dict of resource name -> amount, not {type(bundle).__name__}")
        if not bundle:
            raise ValueError(f"bundle {i} is empty: each bundle must reserve some resource, e.g. {{'CPU': 1}}")
        checked = {}
        for name, amount in bundle.items():
            if not isinstance(name, str) or not name:
                raise TypeError(f"bundle {i}: resource names must be non-empty str, got {name!r}")
            if isinstance(amount, bool) or not isinstance(amount, numbers.Real):
                raise TypeError(f"bundle {i}: the amount of {name!r} must be a number, not {amount!r}")
            if amount < 0:
                raise ValueError(f"bundle {i}: the amount of {name!r} must be >= 0, got {amount!r}")
            if is_group_resource(name) or name.startswith(f"{_MARKER}_group_"):
                raise ValueError(f"bundle {i}: {name!r} is a placement group resource; ask for the plain resource")
            checked[name] = float(amount)
        if not any(checked.values()):
            raise ValueError(f"bundle {i} reserves nothing (every amount is 0): {bundle!r}")
        out.append(checked)
    return out


def validate_strategy(strategy: Any) -> str:
    """One of :data:`STRATEGIES`."""
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}, not {strategy!r}")
    return strategy


def sum_bundles(bundles: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """The resources of several bundles together."""
    total: dict[str, float] = {}
    for bundle in bundles:
        for name, amount in bundle.items():
            total[name] = total.get(name, 0.0) + amount
    return total
