"""``progress()``: one job's tasks per function, against a real embedded cluster."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import nbcluster
import nbcluster.driver
from nbcluster.widgets import ProgressWidget, progress
from nbcluster.widgets._feed import feed

from ..conftest import wait_for


@nbcluster.remote
def square(x: int) -> int:
    time.sleep(0.05)
    return x * x


@nbcluster.remote
def cube(x: int) -> int:
    time.sleep(0.05)
    return x * x * x


@nbcluster.remote(max_retries=0)
def boom() -> None:
    time.sleep(0.05)
    raise ValueError("boom")


@pytest.fixture
def embedded() -> Iterator[None]:
    nbcluster.init(num_cpus=2)
    try:
        yield
    finally:
        nbcluster.shutdown()


def row(widget: ProgressWidget, suffix: str) -> dict[str, int] | None:
    return next((r for name, r in widget.by_function.items() if name.endswith(suffix)), None)


def bar(widget: ProgressWidget, suffix: str) -> Any:
    return next((b for name, b in widget.bars.items() if name.endswith(suffix)), None)


def drawn(widget: ProgressWidget, suffix: str, n: int) -> bool:
    b = bar(widget, suffix)
    return b is not None and b.max == n and b.value == n


def test_progress_counts_per_function_and_close(embedded: None) -> None:
    threads_before = threading.active_count()
    w = progress()
    try:
        assert w.job_id == nbcluster.get_runtime_context().get_job_id().lower()
        assert w.by_function == {}  # nothing submitted yet
        assert "0/0" in repr(w)

        refs = [square.remote(i) for i in range(10)] + [cube.remote(i) for i in range(5)]
        assert nbcluster.get(refs) == [i * i for i in range(10)] + [i**3 for i in range(5)]

        def done() -> bool:  # counted, and drawn (the feed's thread draws after it counts)
            s, c = row(w, "square"), row(w, "cube")
            return bool(s and c and s["finished"] == s["total"] == 10 and c["finished"] == c["total"] == 5
                        and drawn(w, "square", 10) and drawn(w, "cube", 5))

        wait_for(done, timeout=20, message="square 10/10 and cube 5/5 finished")
        for suffix, n in (("square", 10), ("cube", 5)):
            r = row(w, suffix)
            assert r is not None
            assert (r["pending"], r["running"], r["failed"]) == (0, 0, 0)
            assert drawn(w, suffix, n)
        assert "15/15" in repr(w)
        html = w._repr_mimebundle_()["text/html"]
        assert "square" in html and "cube" in html

        with pytest.raises(Exception, match="boom"):
            nbcluster.get(boom.remote())
        wait_for(lambda: (row(w, "boom") or {}).get("failed") == 1, timeout=20, message="boom counted as failed")
        # the counts change on the feed's thread before that thread draws the bar
        wait_for(lambda: getattr(bar(w, "boom"), "bar_style", None) == "danger", timeout=5,
                 message="boom's bar drawn as failed")
    finally:
        w.close()

    assert w not in feed.views
    frozen = {name: dict(r) for name, r in w.by_function.items()}
    later = ProgressWidget(seed=False)  # an open widget proves events for the job still come
    try:
        nbcluster.get([square.remote(i) for i in range(3)])
        wait_for(lambda: (row(later, "square") or {}).get("finished") == 13, timeout=20,
                 message="open widget sees the new tasks")
    finally:
        later.close()
    assert not feed.active
    assert w.by_function == frozen
    assert "square" in repr(w)  # the closed widget keeps its last static view
    wait_for(lambda: threading.active_count() <= threads_before, timeout=10,
             message=f"threads back to {threads_before}")


def test_progress_of_other_job_stays_empty(embedded: None) -> None:
    w = progress("FF" * 4)
    try:
        assert w.job_id == "ff" * 4
        nbcluster.get([square.remote(1)])
        other = progress()
        try:
            wait_for(lambda: row(other, "square"), timeout=20, message="own job seen")
        finally:
            other.close()
        assert w.by_function == {}
        assert "no tasks yet" in w._repr_mimebundle_()["text/html"]
    finally:
        w.close()


def test_progress_of_refs_follows_only_those_tasks_and_then_stops(embedded: None) -> None:
    unrelated = [cube.remote(i) for i in range(4)]
    refs = [square.remote(i) for i in range(6)] + [cube.remote(i) for i in range(3)] + [boom.remote()]
    w = progress(refs)
    try:
        assert w.job_id == "" and len(w.task_ids) == 10
        assert w in feed.views or w.done
        nbcluster.get(unrelated)
        wait_for(lambda: w.done, timeout=20, message="all ten tasks ended")
        assert row(w, "square") == {"pending": 0, "running": 0, "finished": 6, "failed": 0, "total": 6}
        assert row(w, "cube") == {"pending": 0, "running": 0, "finished": 3, "failed": 0, "total": 3}
        assert row(w, "boom") == {"pending": 0, "running": 0, "finished": 0, "failed": 1, "total": 1}
        assert w.totals["total"] == 10 and w.unreported == 0
        wait_for(lambda: drawn(w, "square", 6), timeout=5, message="square's bar drawn full")
        # done is set under the view's lock; the feed's thread unregisters it just after
        wait_for(lambda: w not in feed.views, timeout=5, message="a view of refs stops listening once its tasks ended")
        assert "9/10" in repr(w) and "1 failed" in w._repr_mimebundle_()["text/html"]
    finally:
        w.close()
    single = progress(refs[0])
    try:
        assert single.task_ids == {refs[0].task_id(): None}
        wait_for(lambda: single.done, timeout=20, message="the single task seen as ended")
    finally:
        single.close()
    only_puts = progress([nbcluster.put(1), nbcluster.put(2)])  # no tasks behind them: nothing to wait for
    try:
        assert only_puts.task_ids == {} and only_puts.done and only_puts not in feed.views
    finally:
        only_puts.close()
    with pytest.raises(TypeError, match="ObjectRefs"):
        progress([1, 2])


def test_a_failing_submit_hook_never_fails_a_submission(embedded: None) -> None:
    seen: list[tuple[str, int]] = []

    def hook(context: str, refs: list[Any]) -> None:
        seen.append((context, len(refs)))
        raise RuntimeError("a view's bug")

    nbcluster.driver.set_submit_hook(hook)
    try:
        assert nbcluster.get(square.remote(3)) == 9
    finally:
        nbcluster.driver.set_submit_hook(None)
    assert seen == [("", 1)]
    assert nbcluster.get(square.remote(4)) == 16 and len(seen) == 1


def test_tasks_the_table_no_longer_holds_keep_their_last_state() -> None:
    """The GCS keeps the most recent ``task_table_size`` tasks: a cell's early tasks,
    seen finished, then pushed out by later ones, stay finished (not pending again), and
    the view still stops listening when sealed."""
    nbcluster.init(num_cpus=2, _system_config={"task_table_size": 4})
    try:
        refs = [square.remote(i) for i in range(3)]
        w = ProgressWidget(refs=refs, open_ended=True)
        try:
            nbcluster.get(refs)
            wait_for(lambda: w.totals["finished"] == 3, timeout=20, message="the three tasks seen finished")
            nbcluster.get([cube.remote(i) for i in range(6)])
            ids = list(w.task_ids)
            wait_for(lambda: nbcluster.state.list_tasks(task_ids=ids) == [], timeout=20,
                     message="the three tasks pushed out of the task table")
            w.seal()
            assert w.unreported == 0 and w.totals["finished"] == 3, w.totals
            assert w.done
            wait_for(lambda: w not in feed.views, timeout=5, message="the sealed view stops listening")
        finally:
            w.close()
    finally:
        nbcluster.shutdown()


def test_a_look_up_that_answers_after_a_newer_one_is_dropped(embedded: None, monkeypatch: Any) -> None:
    """seal() (the cell's thread) and the feed's thread both look tasks up: the older
    answer must not overwrite the newer one (a bar stuck short of 100 %)."""
    refs = [square.remote(i) for i in range(2)]
    nbcluster.get(refs)
    ids = [r.task_id() for r in refs]
    wait_for(lambda: [t.state for t in nbcluster.state.list_tasks(task_ids=ids)] == ["FINISHED"] * 2,
             timeout=20, message="both tasks reported finished")
    real = nbcluster.state.list_tasks(task_ids=ids)
    stale = [dataclasses.replace(t, state="RUNNING") for t in real]
    entered, release = threading.Event(), threading.Event()
    w = ProgressWidget(refs=refs, open_ended=True)
    feed.unregister(w)  # only the look-ups below move it
    w._registered = False
    try:

        def slow_stale(**kwargs: Any) -> list[Any]:
            entered.set()
            assert release.wait(20)
            return stale

        monkeypatch.setattr(nbcluster.state, "list_tasks", slow_stale)
        older = threading.Thread(target=w._look_up)
        older.start()
        assert entered.wait(20)
        monkeypatch.setattr(nbcluster.state, "list_tasks", lambda **kwargs: real)
        w._look_up()  # the newer look-up answers first
        assert w.totals["finished"] == 2
        release.set()
        older.join(20)
        assert not older.is_alive()
        assert w.totals["finished"] == 2 and w.totals["running"] == 0, "the older answer won"
    finally:
        release.set()
        w.close()
