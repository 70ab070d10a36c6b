"""The ``kernel`` fixture (a real ipykernel, tests/kernel/harness.py) for widget tests
that check what a frontend receives."""

from ..kernel.conftest import kernel  # noqa: F401 - a fixture, offered to this package's tests
