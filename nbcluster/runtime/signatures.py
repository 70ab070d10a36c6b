"""Arguments checked against a function's or method's signature at ``.remote()`` time,
as Ray does: a call that could not bind fails in the caller with TypeError, not later
in a worker.

The signatures kept are *portable*: defaults replaced by a placeholder and annotations
dropped, so an actor handle that carries its methods' signatures still pickles (a
default value need not), and binding never evaluates either.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from typing import Any

__all__ = ["check_call", "from_wire", "method_signature", "portable_signature", "to_wire"]


def portable_signature(fn: Callable[..., Any], *, drop_first: bool = False) -> inspect.Signature | None:
    """``fn``'s parameters (without the first one when ``drop_first``: ``self``), or None
    when Python cannot tell them (a builtin, a C extension): such calls go unchecked."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
    params = list(sig.parameters.values())
    if drop_first:
        if not params or params[0].kind not in (
            inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD
        ):
            return None  # (*args) methods: nothing to check
        params = params[1:]
    return inspect.Signature([
        p.replace(default=None if p.default is not p.empty else p.empty, annotation=p.empty) for p in params
    ])


def method_signature(cls: type, name: str) -> inspect.Signature | None:
    """The signature a call of ``cls``'s method ``name`` binds to (``self`` and ``cls``
    left out; a staticmethod's as it is)."""
    static = inspect.getattr_static(cls, name, None)
    member = getattr(cls, name)
    if isinstance(static, staticmethod) or inspect.ismethod(member):
        return portable_signature(member)  # a static or class method: nothing implicit left
    return portable_signature(member, drop_first=True)


def to_wire(sig: inspect.Signature | None) -> str:
    """A portable signature as text for the GCS's actor records ("" for None)."""
    if sig is None:
        return ""
    return json.dumps([[p.name, int(p.kind), p.default is not p.empty] for p in sig.parameters.values()])


def from_wire(text: str) -> inspect.Signature | None:
    """The signature :func:`to_wire` wrote (None for "")."""
    if not text:
        return None
    return inspect.Signature([
        inspect.Parameter(name, inspect._ParameterKind(kind), default=None if has_default else inspect.Parameter.empty)
        for name, kind, has_default in json.loads(text)
    ])


def check_call(sig: inspect.Signature | None, name: str, args: tuple, kwargs: dict) -> None:
    """TypeError naming ``name`` when ``args``/``kwargs`` do not bind to ``sig``."""
    if sig is None:
        return
    try:
        sig.bind(*args, **kwargs)
    except TypeError as exc:
        raise TypeError(f"{name}() {exc}") from None
