"""The argument check at ``.remote()`` (nbcluster.runtime.signatures): its shortcut for
positional-only calls decides exactly as binding does."""

from __future__ import annotations

import inspect

import pytest

from nbcluster.runtime.signatures import check_call, portable_signature


def none() -> None: ...
def two(a, b): ...
def defaults(a, b=1, c=2): ...
def star(a, *rest): ...
def keyword_only(a, *, k): ...
def keyword_default(a, *, k=1): ...
def kwargs_only(**kw): ...
def positional_only(a, /, b=2): ...


def assert_agrees(fn, args: tuple, kwargs: dict) -> None:
    try:
        inspect.signature(fn).bind(*args, **kwargs)
    except TypeError as exc:
        with pytest.raises(TypeError, match=rf"^{fn.__name__}\(\) {exc}$"):
            check_call(portable_signature(fn), fn.__name__, args, kwargs)
    else:
        check_call(portable_signature(fn), fn.__name__, args, kwargs)


@pytest.mark.parametrize("fn", [none, two, defaults, star, keyword_only, keyword_default, kwargs_only, positional_only])
def test_positional_shortcut_agrees_with_binding(fn):
    for n in range(6):
        assert_agrees(fn, tuple(range(n)), {})
        assert_agrees(fn, tuple(range(n)), {"k": 1})
        assert_agrees(fn, tuple(range(n)), {"zz": 1})
