"""Fixtures of the security tests: a second real Unix user (``users.py``)."""

from .users import other_user  # noqa: F401 - a fixture
