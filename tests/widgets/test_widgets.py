"""The widgets' Python models against real clusters in this process."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import nbcluster
from nbcluster.cluster_utils import Cluster
from nbcluster.job_submission import JobSubmissionClient
from nbcluster.widgets import ClusterWidget, JobWidget
from nbcluster.widgets._display import fmt_bytes
from nbcluster.widgets._feed import feed

from ..conftest import FAST_CONFIG, wait_for


def autoscaling_config() -> dict[str, Any]:
    return {
        "max_workers": 1,
        "idle_timeout_minutes": 0.03,
        "head_node_type": "head",
        "available_node_types": {
            "head": {"resources": {"CPU": 0}},
            "w": {"resources": {"CPU": 1}, "max_workers": 1},
        },
    }


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "_system_config": FAST_CONFIG})
    try:
        nbcluster.init(address=c.address)
        yield c
    finally:
        nbcluster.shutdown()
        c.shutdown()


@pytest.fixture
def widget_factory() -> Iterator[Any]:
    made: list[Any] = []

    def make(cls: type = ClusterWidget, *args: Any, **kwargs: Any) -> Any:
        made.append(cls(*args, **kwargs))
        return made[-1]

    try:
        yield make
    finally:
        for w in made:
            w.close()


def row(widget: ClusterWidget, node_id: str) -> dict[str, Any] | None:
    return next((r for r in widget.node_rows if r["node_id"] == node_id), None)


def assert_left_alone(widget: ClusterWidget, cluster: Cluster) -> None:
    """A node joins and tasks run while ``widget`` is closed or frozen: an open witness
    view gets those updates (the feed hands each batch to every registered view), and
    ``widget`` stays as it was."""
    frozen = [dict(r) for r in widget.node_rows]
    witness = ClusterWidget()
    try:
        node = cluster.add_node(num_cpus=1)
        nbcluster.get([square.remote(i) for i in range(3)])
        wait_for(lambda: row(witness, node.node_id), timeout=10, message="the witness view sees the new node")
    finally:
        witness.close()
    assert widget.node_rows == frozen


@nbcluster.remote
def square(x: int) -> int:
    return x * x


@nbcluster.remote
def nap(seconds: float) -> str:
    time.sleep(seconds)
    return nbcluster.get_runtime_context().get_node_id()


def test_nodes_table_follows_a_node_joining_and_leaving(cluster, widget_factory):
    widget = widget_factory()
    assert len([r for r in widget.node_rows if r["state"] == "ALIVE"]) == 1
    node = cluster.add_node(num_cpus=1)
    joined = time.monotonic()
    wait_for(lambda: row(widget, node.node_id), timeout=10, message="the new node's row")
    assert time.monotonic() - joined < 1.0, "the row came later than a second after the node joined"
    assert row(widget, node.node_id)["cpu_total"] == 1
    assert "2/2 nodes alive" in repr(widget)
    # Memory: the machine's, in each row with a bar, and counted once per machine in the header.
    import psutil

    total = psutil.virtual_memory().total
    assert row(widget, node.node_id)["memory_total"] == total
    assert 0 < row(widget, node.node_id)["memory_used"] <= total
    assert f"/{fmt_bytes(total)}, object store" in repr(widget)
    assert "<th" in widget._nodes.value and ">memory<" in widget._nodes.value

    cluster.remove_node(node)
    wait_for(lambda: (r := row(widget, node.node_id)) is None or r["state"] == "DEAD",
             timeout=5, message="the removed node's row to show DEAD")
    html = widget._repr_mimebundle_()["text/html"]
    assert node.node_id[:8] in html and "DEAD" in html


def test_load_reports_update_rows_without_calls(cluster, widget_factory, monkeypatch):
    widget = widget_factory()
    head = widget.node_rows[0]["node_id"]
    calls: list[str] = []
    monkeypatch.setattr(nbcluster.state, "list_nodes", lambda **kw: calls.append("list_nodes") or [])
    ref = nap.remote(1.5)
    wait_for(lambda: row(widget, head)["cpu_used"] == 1, message="the head's CPU in use")
    assert nbcluster.get(ref) == head
    wait_for(lambda: row(widget, head)["cpu_used"] == 0, message="the head's CPU free again")
    assert calls == [], "load reports alone must not reload the node list"


def test_autoscaler_timeline_and_type_counts(start_cluster, widget_factory):
    start_cluster(autoscaling_config=autoscaling_config())
    widget = widget_factory()
    assert widget.autoscaler is not None and widget.autoscaler.enabled
    assert widget._autoscaler.layout.display != "none"

    def counts() -> tuple[int, int]:
        (w,) = [t for t in widget.autoscaler.node_types if t.name == "w"]
        return w.running, w.pending

    assert counts() == (0, 0)
    before = widget._autoscaler.value
    ref = nap.remote(3)  # long enough to see the node running
    wait_for(lambda: any(m.startswith("Adding 1 node") for m in widget.timeline), timeout=20,
             message="a launch sentence")
    wait_for(lambda: counts()[0] == 1, timeout=30, message="the w type running")
    # the feed's thread changes the state, then draws it: wait for the drawing
    wait_for(lambda: "Adding 1 node" in widget._autoscaler.value, timeout=5, message="the launch drawn")
    running = widget._autoscaler.value
    assert running != before
    assert nbcluster.get(ref, timeout=60)
    wait_for(lambda: any(m.startswith("Removing node") for m in widget.timeline), timeout=60,
             message="the idle node removed")
    adding = next(i for i, m in enumerate(widget.timeline) if m.startswith("Adding 1 node"))
    removing = next(i for i, m in enumerate(widget.timeline) if m.startswith("Removing node"))
    assert adding < removing
    wait_for(lambda: counts() == (0, 0), timeout=30, message="the w type back to 0")
    wait_for(lambda: widget._autoscaler.value != running, timeout=5, message="the removal drawn")


def test_infeasible_demand_is_shown_with_its_reason(start_cluster, widget_factory):
    start_cluster(autoscaling_config=autoscaling_config())
    widget = widget_factory()
    ref = nap.options(num_gpus=1).remote(0)
    try:
        wait_for(lambda: any(d.status == "infeasible" for d in widget.autoscaler.demand), timeout=20,
                 message="the GPU demand shown as infeasible")
        (demand,) = [d for d in widget.autoscaler.demand if d.status == "infeasible"]
        assert "no node type provides GPU" in demand.reason
        wait_for(lambda: "infeasible" in widget._autoscaler.value
                 and "no node type provides GPU" in widget._autoscaler.value,
                 timeout=5, message="the infeasible demand drawn with its reason")
    finally:
        nbcluster.cancel(ref)


def test_job_progress_reaches_all_tasks(cluster, widget_factory):
    widget = widget_factory()
    job_id = nbcluster.get_runtime_context().get_job_id()
    assert job_id in widget.jobs
    assert nbcluster.get([square.remote(i) for i in range(20)]) == [i * i for i in range(20)]
    wait_for(lambda: widget.job_progress.get(job_id) == (20, 20), timeout=10, message="20 of 20 tasks")
    wait_for(lambda: job_id in widget._job_rows and widget.job_bar(job_id).value == widget.job_bar(job_id).max == 20,
             timeout=5, message="the job's bar drawn full")
    assert "20/20 tasks" in widget._repr_mimebundle_()["text/html"]


def test_a_notebooks_driver_follows_its_notebooks_new_name(cluster, widget_factory):
    """What the Jupyter server extension does when a notebook is renamed (its driver's
    job gets the new ``notebook_path``) reaches the view by its event alone."""
    widget = widget_factory()
    job_id = nbcluster.get_runtime_context().get_job_id()
    assert nbcluster.get(square.remote(3)) == 9
    # A TASK_COUNTERS event came through: the view's stream is live.
    wait_for(lambda: widget.job_progress.get(job_id) == (1, 1), timeout=10, message="the view's first event")
    nbcluster.state.update_job_metadata(job_id, {"kernel_id": "k" * 36, "notebook_path": "/home/u/old.ipynb"})
    nbcluster.state.update_job_metadata(job_id, {"notebook_path": "/home/u/sub/new name.ipynb"})
    wait_for(lambda: widget.jobs[job_id]["entrypoint"] == "new name.ipynb", timeout=10,
             message="the job named by the notebook's new name")
    label = widget._job_rows[job_id].children[0]
    wait_for(lambda: "new name.ipynb" in label.get_state()["value"], timeout=5, message="the job's label redrawn")
    assert "old.ipynb" not in widget._repr_mimebundle_()["text/html"]


def test_a_view_made_after_the_tasks_ended_starts_from_the_task_table(cluster, widget_factory):
    """Once a job's tasks have all ended no TASK_COUNTERS event comes: a view made then
    (`%cluster status` after a cell's tasks) shows their progress, not 0/0."""
    job_id = nbcluster.get_runtime_context().get_job_id()
    last: list[Any] = []
    sub = nbcluster.events.subscribe(last.append, kinds=("TASK_COUNTERS",))
    try:
        assert nbcluster.get([square.remote(i) for i in range(5)]) == [i * i for i in range(5)]
        wait_for(lambda: last and last[-1].data["finished"] == last[-1].data["total"], timeout=10,
                 message="the job's last task counters")
    finally:
        sub.close()
    total = last[-1].data["total"]
    widget = widget_factory()
    assert widget.job_progress.get(job_id) == (total, total)
    assert widget.job_bar(job_id).value == total


def test_close_stops_updates_and_leaves_no_thread(cluster, widget_factory):
    before = threading.active_count()
    widget = ClusterWidget()
    second = ClusterWidget()
    live = widget._repr_mimebundle_()
    assert {"application/vnd.jupyter.widget-view+json", "text/html", "text/plain"} <= set(live)
    assert feed.active and len(feed.views) == 2
    nbcluster.get([square.remote(i) for i in range(5)])  # some events, so flushes ran
    wait_for(lambda: widget.job_progress, message="task counters")
    second.close()
    assert feed.active, "one view is still open"
    widget.close()
    assert not feed.active and feed.views == []
    assert_left_alone(widget, cluster)
    wait_for(lambda: threading.active_count() == before, timeout=5, message="the flush threads gone")

    text = repr(widget)
    assert text.startswith("<ClusterWidget:") and "VBox" not in text
    bundle = widget._repr_mimebundle_()  # closed: the static views only
    assert "<table" in bundle["text/html"] and bundle["text/plain"] == text
    assert "application/vnd.jupyter.widget-view+json" not in bundle


def test_a_disconnect_ends_the_feed_and_a_later_view_starts_one(widget_factory):
    nbcluster.init(num_cpus=1, _system_config=FAST_CONFIG)
    try:
        widget = ClusterWidget()
        nbcluster.shutdown()
        wait_for(lambda: not feed.active, message="the stream to end")
        widget.close()
        nbcluster.init(num_cpus=1, _system_config=FAST_CONFIG)
        again = widget_factory()
        assert feed.active
        assert len([r for r in again.node_rows if r["state"] == "ALIVE"]) == 1
    finally:
        nbcluster.shutdown()


def test_job_widget_tails_logs_and_shows_the_final_status(cluster, widget_factory):
    head = cluster.head_node._handle
    client = JobSubmissionClient(f"http://{head.session.read_address()['jobs_address']}", token=head.token)
    before = threading.active_count()
    job_id = client.submit_job(entrypoint="python -c \"for i in range(3): print('line', i)\"")
    widget = widget_factory(JobWidget, job_id, client=client)
    wait_for(lambda: widget.status == "SUCCEEDED", timeout=60, message="the job to succeed")
    wait_for(lambda: not widget.tail_running, timeout=10, message="the tail thread to end")
    assert [line for line in widget.log_lines if line.startswith("line")] == ["line 0", "line 1", "line 2"]
    assert "line 2" in widget._log.value
    assert widget._stop.disabled
    assert repr(widget).startswith(f"<JobWidget {job_id}: SUCCEEDED")
    html = widget._repr_mimebundle_()["text/html"]
    assert "line 1" in html
    # It ran no task: no empty 0/0 bar, live or static.
    assert widget._bar.layout.display == "none" and "no tasks" in html and "0/0" not in html
    widget.close()
    wait_for(lambda: threading.active_count() <= before, timeout=5, message="no thread left behind")


def test_job_widget_stop_button_and_close_during_tail(cluster, widget_factory):
    head = cluster.head_node._handle
    client = JobSubmissionClient(f"http://{head.session.read_address()['jobs_address']}", token=head.token)
    before = threading.active_count()
    job_id = client.submit_job(entrypoint="python -c \"import time; print('started', flush=True); time.sleep(60)\"")
    widget = JobWidget(job_id, client=client)
    try:
        wait_for(lambda: "started" in widget.log_lines, timeout=60, message="the job's first line")
        assert widget.tail_running
        widget._stop.click()
        wait_for(lambda: widget.status == "STOPPED", timeout=30, message="the job stopped")
    finally:
        widget.close()
    assert not widget.tail_running
    wait_for(lambda: threading.active_count() <= before, timeout=5, message="no thread left behind")


def test_adapt_controls_change_the_autoscaler_bounds(start_cluster, widget_factory):
    start_cluster(autoscaling_config=autoscaling_config())
    widget = widget_factory()
    assert widget._controls.layout.display is None  # shown: the cluster has an autoscaler
    widget.adapt(1, 1)
    assert widget.adapt_message.endswith(": 1 to 1 nodes"), widget.adapt_message
    wait_for(lambda: any(not r["is_head"] and r["state"] == "ALIVE" for r in widget.node_rows), timeout=30,
             message="the node min_workers=1 asks for, in the table")
    widget.adapt(3, 1)
    assert widget.adapt_message.startswith("not changed:") and "max_workers" in widget.adapt_message


def test_adapt_controls_are_hidden_without_an_autoscaler(cluster, widget_factory):
    widget = widget_factory()
    assert widget._controls.layout.display == "none"


class _CountingView:
    """A view that records when the feed updates it and with how many events."""

    def __init__(self) -> None:
        self.flushes: list[tuple[float, int]] = []

    def hold_sync(self) -> Any:
        import contextlib

        return contextlib.nullcontext()

    def _update(self, events: list[Any]) -> None:
        self.flushes.append((time.monotonic(), len(events)))


@nbcluster.remote
class Tiny:
    def ping(self) -> int:
        return 1


def test_a_burst_of_events_reaches_views_at_most_ten_times_a_second(cluster):
    """Measured, not assumed: actors starting and stopping make a burst of events;
    the feed hands them over in batches at most every FLUSH_INTERVAL."""
    from nbcluster.widgets._feed import FLUSH_INTERVAL

    view = _CountingView()
    feed.register(view)
    try:
        actors = [Tiny.remote() for _ in range(12)]
        assert nbcluster.get([a.ping.remote() for a in actors]) == [1] * 12
        for a in actors:
            nbcluster.kill(a)
        events = lambda: sum(n for _, n in view.flushes)  # noqa: E731
        wait_for(lambda: events() >= 36, timeout=20, message="the actors' state events")
    finally:
        feed.unregister(view)
    times = [t for t, _ in view.flushes]
    gaps = [b - a for a, b in zip(times, times[1:])]
    print(f"\n{events()} events in {len(view.flushes)} updates over {times[-1] - times[0]:.2f} s")
    assert len(view.flushes) < events(), f"events were not coalesced: {view.flushes}"
    # The times are taken in the views' _update, a moment after the feed schedules from:
    # a paused thread can shift one of them, hence the slack.
    assert min(gaps) >= FLUSH_INTERVAL * 0.5, f"two updates {min(gaps):.3f} s apart"
    for start in times:  # any one-second window
        assert sum(1 for t in times if start <= t < start + 1.0) <= 11


def test_freeze_keeps_the_last_state_shown_and_stops_updates(cluster, widget_factory):
    """What %cluster stop/disconnect do: the view stays in the notebook, frozen."""
    widget = widget_factory()
    assert widget in feed.views
    widget.freeze("stopped")
    assert widget.frozen and not widget.closed
    assert widget not in feed.views and not feed.active
    assert widget.comm is not None, "the model stays open, so the frontend keeps showing it"
    assert "(stopped)" in widget._header.value and widget._apply.disabled
    assert_left_alone(widget, cluster)


def test_shutdown_from_code_freezes_the_views(widget_factory):
    """``nbcluster.shutdown()`` in a cell (not the magic) leaves the views frozen too."""
    from nbcluster.widgets import progress

    before = threading.active_count()
    nbcluster.init(num_cpus=1, _system_config=FAST_CONFIG)
    try:
        widget = widget_factory()
        bars = widget_factory(progress)
        nbcluster.get([square.remote(i) for i in range(3)])
        wait_for(lambda: bars.totals["finished"] == 3, timeout=20, message="the progress view's tasks")
    finally:
        nbcluster.shutdown()
    for view in (widget, bars):
        assert view.frozen and not view.closed and view.comm is not None
    assert "(disconnected)" in widget._header.value and widget._apply.disabled
    assert bars.totals["finished"] == 3 and "(disconnected)" in bars._header.value
    assert not feed.views and not feed.active
    wait_for(lambda: threading.active_count() <= before, timeout=10, message="no thread left behind")


def test_the_head_going_away_freezes_the_views(widget_factory):
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "_system_config": FAST_CONFIG})
    try:
        nbcluster.init(address=c.address)
        widget = widget_factory()
        assert feed.active
        c.shutdown()  # the head (and the node this driver is on) stop under the driver
        # freeze() sets frozen, then unregisters, then marks the header: wait for all of it
        wait_for(lambda: "(the cluster went away)" in widget._header.value and not feed.views, timeout=20,
                 message="the view frozen and marked when its stream ended")
        assert widget.frozen and not widget.closed and not feed.active
    finally:
        nbcluster.shutdown()
        c.shutdown()
