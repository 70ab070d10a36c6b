"""The state API (``nbcluster.state``): tasks, nodes and jobs as the GCS sees them."""

from __future__ import annotations

import json

import pytest

import nbcluster
from nbcluster import state

from ..conftest import wait_for


@nbcluster.remote
def ok(x: int) -> int:
    return x + 1


@nbcluster.remote(max_retries=0)
def broken() -> None:
    raise ValueError("state api boom")


@pytest.fixture
def quick_events(start_cluster):  # type: ignore[no-untyped-def]
    return start_cluster(num_cpus=2, _system_config={"task_events_interval_s": 0.1})


def _by_name(name: str) -> list[state.TaskState]:
    return [t for t in state.list_tasks() if t.name.endswith(name)]


def test_tasks_reach_finished_and_failed_with_node_and_times(quick_events) -> None:  # type: ignore[no-untyped-def]
    assert nbcluster.get([ok.remote(i) for i in range(5)]) == [1, 2, 3, 4, 5]
    with pytest.raises(nbcluster.exceptions.TaskError):
        nbcluster.get(broken.remote())

    def finished() -> list[state.TaskState] | None:
        tasks = [t for t in _by_name("ok") if t.state == "FINISHED"]
        return tasks if len(tasks) == 5 else None

    done = wait_for(finished, timeout=10, message="five FINISHED ok tasks in list_tasks()")
    node_ids = {n.node_id for n in state.list_nodes() if n.state == "ALIVE"}
    for t in done:
        assert t.node_id in node_ids
        assert t.submit_time <= t.start_time <= t.end_time
        assert t.job_id == nbcluster.get_runtime_context().get_job_id()
    failed = wait_for(lambda: [t for t in _by_name("broken") if t.state == "FAILED"], timeout=10,
                      message="a FAILED broken task in list_tasks()")
    assert "state api boom" in failed[0].error
    # The snapshot round-trips through JSON, which is what the CLI and REST handlers send.
    assert state.TaskState.from_json(json.loads(json.dumps(failed[0].to_json()))) == failed[0]


def test_list_tasks_filters_by_job_and_limits(quick_events) -> None:  # type: ignore[no-untyped-def]
    nbcluster.get([ok.remote(i) for i in range(6)])
    job = nbcluster.get_runtime_context().get_job_id()
    wait_for(lambda: len(state.list_tasks(job_id=job)) >= 6, timeout=10, message="six tasks of this job")
    assert len(state.list_tasks(limit=2)) == 2
    assert state.list_tasks(job_id="00" * len(bytes.fromhex(job))) == []


def test_nodes_and_jobs(quick_events) -> None:  # type: ignore[no-untyped-def]
    nodes = state.list_nodes()
    assert len(nodes) == 1 and nodes[0].is_head and nodes[0].state == "ALIVE"
    assert nodes[0].resources_total["CPU"] == 2
    jobs = state.list_jobs()
    me = [j for j in jobs if j.job_id == nbcluster.get_runtime_context().get_job_id()]
    assert me and me[0].status == "RUNNING" and me[0].type == "DRIVER"


def test_tasks_of_an_ended_job_are_failed_not_queued_forever(quick_events) -> None:  # type: ignore[no-untyped-def]
    # A driver that exits with a task no node can run: the task must not stay QUEUED.
    from ..conftest import run_python

    proc = run_python(
        """
import nbcluster
nbcluster.init(address="auto")
@nbcluster.remote(resources={"nowhere": 1})
def stuck(): return 1
stuck.remote()
print(nbcluster.get_runtime_context().get_job_id(), flush=True)
""",
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    job = proc.stdout.split()[-1]
    tasks = wait_for(lambda: [t for t in state.list_tasks(job_id=job) if t.state == "FAILED"], timeout=10,
                     message="the ended job's queued task marked FAILED")
    assert tasks[0].name.endswith("stuck") and "job ended" in tasks[0].error


def test_task_counters_publish_the_final_counts_after_a_burst() -> None:
    """Counters go out at most once a second per job; the last change of a burst is
    published when that second is up, not left behind."""
    import asyncio

    from nbcluster.runtime.gcs.pubsub import EventLog
    from nbcluster.runtime.gcs.tasks import TaskTable
    from nbcluster.runtime.protocol import gcs_pb2

    async def scenario() -> dict:
        log = EventLog(100)
        table = TaskTable(100, log)
        job = b"\x01\x00\x00\x00"

        def report(state: str) -> None:
            table.report(gcs_pb2.ReportTaskEventsRequest(
                events=[gcs_pb2.TaskEvent(task_id=b"t" * 16, job_id=job, name="f", state=state, time=1.0)]))

        report("QUEUED")  # published at once
        report("RUNNING")
        report("FINISHED")  # within the second: held back
        watch = log.watch(gcs_pb2.WatchRequest(replay=True, kinds=[gcs_pb2.EVENT_KIND_TASK_COUNTERS]))
        first = await asyncio.wait_for(watch.__anext__(), 1)
        last = await asyncio.wait_for(watch.__anext__(), 3)
        table.close()
        await watch.aclose()
        import json

        return {"first": json.loads(first.data_json), "last": json.loads(last.data_json)}

    seen = asyncio.run(scenario())
    assert seen["first"]["by_function"] == {"f": {"QUEUED": 1}}
    assert seen["last"]["by_function"] == {"f": {"FINISHED": 1}} and seen["last"]["finished"] == 1


def test_state_of_another_cluster_by_address_and_token() -> None:
    """Tools that are not drivers (the server extension) read any cluster's tables with
    its address and token; a wrong token is refused with that reason."""
    from pathlib import Path

    from nbcluster.cluster_utils import Cluster
    from nbcluster.exceptions import AuthenticationError

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    try:
        token = (Path(cluster.head_node.session_dir) / "token").read_text().strip()
        assert not nbcluster.is_initialized()
        for call in (state.list_nodes, state.list_jobs, state.list_tasks, state.list_actors):
            assert isinstance(call(address=cluster.address, token=token), list)
            with pytest.raises(AuthenticationError, match="refused the token"):
                call(address=cluster.address, token="wrong")
        assert [n.state for n in state.list_nodes(address=cluster.address, token=token)] == ["ALIVE"]
    finally:
        cluster.shutdown()


def test_a_full_task_table_drops_ended_tasks_first() -> None:
    """The task table keeps the newest N tasks, but a task still running is kept over
    one that has ended (a progress view must not lose running work)."""
    import asyncio

    from nbcluster.runtime.gcs.pubsub import EventLog
    from nbcluster.runtime.gcs.tasks import TaskTable
    from nbcluster.runtime.protocol import gcs_pb2

    async def scenario() -> list[list[str]]:
        table = TaskTable(3, EventLog(100))
        seen = []

        def report(task: str, state: str) -> None:
            table.report(gcs_pb2.ReportTaskEventsRequest(events=[gcs_pb2.TaskEvent(
                task_id=task.encode() * 16, job_id=b"\x01\x00\x00\x00", name="f", state=state, time=1.0)]))
            seen.append(sorted(r.task_id[:1].decode() + r.state[0] for r in table.list()))

        report("a", "RUNNING")
        report("b", "RUNNING")
        report("b", "FINISHED")
        report("c", "RUNNING")
        report("d", "RUNNING")  # full: b (ended) goes, not a (older, running)
        report("c", "FAILED")
        report("c", "RUNNING")  # retried: running again
        report("e", "RUNNING")  # none ended: the oldest (a) goes
        table.close()
        return seen

    seen = asyncio.run(scenario())
    assert seen[4] == ["aR", "cR", "dR"]
    assert seen[-1] == ["cR", "dR", "eR"]
