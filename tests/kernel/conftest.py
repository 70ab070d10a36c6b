"""The ``kernel`` fixture: a real ipykernel for one test (tests/kernel/harness.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .harness import Kernel


@pytest.fixture
def kernel() -> Iterator[Kernel]:
    k = Kernel()
    try:
        yield k
    finally:
        k.close()
