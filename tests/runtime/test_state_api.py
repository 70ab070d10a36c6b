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
