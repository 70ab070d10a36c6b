"""``auto_progress``'s per-cell counting, with submissions from several threads (a
cell may submit from a thread pool); the view itself is faked, no cluster needed."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from nbcluster.widgets import auto

from ..conftest import wait_for


class _FakeView:
    made: list["_FakeView"] = []
    gate = threading.Event()

    def __init__(self, refs: list[Any], open_ended: bool) -> None:
        self.refs = list(refs)
        self.sealed = False
        _FakeView.made.append(self)
        assert _FakeView.gate.wait(20), "the test never let the view be made"

    def add_refs(self, refs: list[Any]) -> None:
        self.refs.extend(refs)

    def seal(self) -> None:
        self.sealed = True


@pytest.fixture
def fake_view(monkeypatch: pytest.MonkeyPatch) -> type[_FakeView]:
    _FakeView.made = []
    _FakeView.gate = threading.Event()
    monkeypatch.setattr(auto, "ProgressWidget", _FakeView)
    monkeypatch.setattr("IPython.display.display", lambda *a, **k: None)
    return _FakeView


def test_submissions_while_the_view_is_made_join_that_one_view(fake_view: type[_FakeView]) -> None:
    counter = auto._AutoProgress(shell=None)
    counter.min_tasks = 1
    counter._on_submit("", ["a"])
    crossing = threading.Thread(target=counter._on_submit, args=("", ["b"]))
    other = threading.Thread(target=counter._on_submit, args=("", ["c"]))
    crossing.start()  # goes past 1: makes the view, held at the gate
    try:
        wait_for(lambda: len(fake_view.made) == 1, timeout=20, message="the view being made")
        other.start()  # another thread of the same cell, meanwhile
        other.join(5)
        assert not other.is_alive(), "a second submission waited to make a second view"
    finally:
        fake_view.gate.set()
        crossing.join(20)
        if other.ident is not None:
            other.join(20)
    assert len(fake_view.made) == 1, "one cell, one view"
    assert fake_view.made[0].refs == ["a", "b", "c"]
    counter._on_submit("", ["d"])
    assert fake_view.made[0].refs == ["a", "b", "c", "d"]


def test_a_view_made_after_its_cell_ended_is_sealed_and_not_reused(fake_view: type[_FakeView]) -> None:
    counter = auto._AutoProgress(shell=None)
    counter.min_tasks = 0
    crossing = threading.Thread(target=counter._on_submit, args=("", ["a"]))
    crossing.start()
    try:
        wait_for(lambda: len(fake_view.made) == 1, timeout=20, message="the view being made")
        counter._seal()  # the cell ends; the next one starts
    finally:
        fake_view.gate.set()
        crossing.join(20)
    old = fake_view.made[0]
    assert old.sealed and counter._view is None
    counter._on_submit("", ["b"])  # the next cell's first task: a view of its own
    assert len(fake_view.made) == 2 and fake_view.made[1].refs == ["b"] and old.refs == ["a"]
