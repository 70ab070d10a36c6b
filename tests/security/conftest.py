"""Fixtures of the security tests: a second real Unix user (``users.py``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .users import OtherUser, other_user as make_other_user, remove_user


@pytest.fixture(scope="session")
def other_user() -> Iterator[OtherUser]:
    """A second user of this machine, for the whole run; removed at its end with what it made."""
    user = make_other_user()
    try:
        yield user
    finally:
        try:
            user.close()
        finally:
            remove_user(user.name)
