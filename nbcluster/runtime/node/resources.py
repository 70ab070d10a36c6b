"""Resource arithmetic in fixed point (1/10000 of a unit), so fractional requests such
as ``num_cpus=0.25`` add up exactly."""

from __future__ import annotations

from collections.abc import Mapping

SCALE = 10000
Fixed = dict[str, int]


def to_fixed(amounts: Mapping[str, float]) -> Fixed:
    """Amounts in fixed point (zeros left out)."""
    return {k: round(v * SCALE) for k, v in amounts.items() if v}


def to_float(amounts: Mapping[str, int]) -> dict[str, float]:
    """Fixed-point amounts as floats."""
    return {k: v / SCALE for k, v in amounts.items()}


def fits(available: Mapping[str, int], request: Mapping[str, int]) -> bool:
    """Whether ``request`` fits in ``available``."""
    return all(available.get(k, 0) >= v for k, v in request.items())


def subtract(available: dict[str, int], request: Mapping[str, int]) -> None:
    """Take ``request`` from ``available``, in place."""
    for k, v in request.items():
        available[k] = available.get(k, 0) - v


def add(available: dict[str, int], request: Mapping[str, int]) -> None:
    """Give ``request`` back to ``available``, in place."""
    for k, v in request.items():
        available[k] = available.get(k, 0) + v


def describe(amounts: Mapping[str, float]) -> str:
    """``{CPU: 4, accel: 1}`` for messages."""
    return "{" + ", ".join(f"{k}: {v:g}" for k, v in sorted(amounts.items())) + "}"
