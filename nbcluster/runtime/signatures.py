"""Arguments checked against a function's or method's signature at ``.remote()`` time,
as Ray does: a call that could not bind fails in the caller with TypeError, not later
in a worker.

The signatures kept are *portable*: defaults replaced by a placeholder and annotations
dropped, so an actor handle that carries its methods' signatures still pickles (a
default value need not), and binding never evaluates either. A call with positional
arguments only is checked by their count when that decides it (no binding: this runs
on every ``.remote()``).
"""

from __future__ import annotations

import inspect
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["CallShape", "check_call", "from_wire", "method_signature", "portable_signature", "to_wire"]

_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


@dataclass(frozen=True)
class CallShape:
    """A portable signature, and the numbers of positional arguments that bind to it
    when no keyword is given (``fewest`` > ``most``: the count alone never decides)."""

    signature: inspect.Signature
    fewest: float
    most: float

    @classmethod
    def of(cls, signature: inspect.Signature) -> "CallShape":
        """The shape of calls that bind to ``signature``."""
        params = signature.parameters.values()
        kinds = [p.kind for p in params]
        if any(p.kind == p.KEYWORD_ONLY and p.default is p.empty for p in params):
            return cls(signature, 1, 0)  # a required keyword: binding decides
        positional = [p for p in params if p.kind in _POSITIONAL]
        fewest = sum(1 for p in positional if p.default is p.empty)
        most = math.inf if inspect.Parameter.VAR_POSITIONAL in kinds else len(positional)
        return cls(signature, fewest, most)


def portable_signature(fn: Callable[..., Any], *, drop_first: bool = False) -> CallShape | None:
    """``fn``'s parameters (without the first one when ``drop_first``: ``self``), or None
    when Python cannot tell them (a builtin, a C extension): such calls go unchecked."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
    params = list(sig.parameters.values())
    if drop_first:
        if not params or params[0].kind not in _POSITIONAL:
            return None  # (*args) methods: nothing to check
        params = params[1:]
    return CallShape.of(inspect.Signature([
        p.replace(default=None if p.default is not p.empty else p.empty, annotation=p.empty) for p in params
    ]))


def method_signature(cls: type, name: str) -> CallShape | None:
    """The signature a call of ``cls``'s method ``name`` binds to (``self`` and ``cls``
    left out; a staticmethod's as it is)."""
    static = inspect.getattr_static(cls, name, None)
    member = getattr(cls, name)
    if isinstance(static, staticmethod) or inspect.ismethod(member):
        return portable_signature(member)  # a static or class method: nothing implicit left
    return portable_signature(member, drop_first=True)


def to_wire(shape: CallShape | None) -> str:
    """A portable signature as text for the GCS's actor records ("" for None)."""
    if shape is None:
        return ""
    return json.dumps([[p.name, int(p.kind), p.default is not p.empty] for p in shape.signature.parameters.values()])


def from_wire(text: str) -> CallShape | None:
    """The signature :func:`to_wire` wrote (None for "")."""
    if not text:
        return None
    return CallShape.of(inspect.Signature([
        inspect.Parameter(name, inspect._ParameterKind(kind), default=None if has_default else inspect.Parameter.empty)
        for name, kind, has_default in json.loads(text)
    ]))


def check_call(shape: CallShape | None, name: str, args: tuple, kwargs: dict) -> None:
    """TypeError naming ``name`` when ``args``/``kwargs`` do not bind to ``shape``."""
    if shape is None or (not kwargs and shape.fewest <= len(args) <= shape.most):
        return
    try:
        shape.signature.bind(*args, **kwargs)
    except TypeError as exc:
        raise TypeError(f"{name}() {exc}") from None
