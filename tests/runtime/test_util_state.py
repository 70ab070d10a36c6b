"""``nbcluster.util.state`` (Ray's ``ray.util.state``) and ``nbcluster.timeline()``,
against one cluster with real workers."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest

import nbcluster
from nbcluster.util import state

from ..conftest import FAST_CONFIG, wait_for


@pytest.fixture(scope="module", autouse=True)
def quick_events():  # type: ignore[no-untyped-def]
    assert not nbcluster.is_initialized()
    info = nbcluster.init(num_cpus=2, _system_config={**FAST_CONFIG, "task_events_interval_s": 0.1})
    try:
        yield info
    finally:
        nbcluster.shutdown()


@nbcluster.remote
def nap(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


@nbcluster.remote(max_retries=1, retry_exceptions=True)
def flaky(marker: str) -> str:
    if not os.path.exists(marker):
        Path(marker).touch()
        raise ValueError("first attempt fails")
    return "second attempt"


@nbcluster.remote(max_retries=0)
def broken() -> None:
    raise ValueError("util state boom")


@nbcluster.remote
class Talker:
    def say(self, text: str) -> int:
        print(text, flush=True)
        return os.getpid()


def _done(name: str, count: int) -> list[state.TaskState]:
    found = state.list_tasks(filters=[("name", "=", name), ("state", "=", "FINISHED")], limit=0, detail=True)
    return found if len(found) >= count and all(t.worker_pid for t in found) else []


def test_tasks_with_rays_fields_filters_and_limits():
    pids = set(nbcluster.get([nap.remote(0.01) for _ in range(4)]))
    with pytest.raises(ValueError):
        nbcluster.get(broken.remote())
    done = wait_for(lambda: _done("nap", 4), timeout=10, message="four FINISHED nap tasks")
    node = nbcluster.get_runtime_context().get_node_id()
    for task in done:
        assert task.type == "NORMAL_TASK" and task.func_or_class_name == "nap" and task.attempt_number == 0
        assert task.node_id == node and task.worker_pid in pids and task.worker_id
        assert task.job_id == nbcluster.get_runtime_context().get_job_id()
        assert task.creation_time_ms <= task.start_time_ms <= task.end_time_ms
        assert task["state"] == "FINISHED"  # item access, as Ray's records
    failed = wait_for(lambda: state.list_tasks(filters=[("name", "=", "broken"), ("state", "=", "FAILED")],
                                               detail=True), timeout=10, message="the FAILED broken task")
    assert failed[0].error_type == "TASK_EXECUTION_EXCEPTION" and "util state boom" in failed[0].error_message
    assert all(t.state != "FINISHED" for t in state.list_tasks(filters=[("state", "!=", "FINISHED")], limit=0))
    assert len(state.list_tasks(limit=2)) == 2
    brief = state.list_tasks(filters=[("name", "=", "nap")], limit=1)[0]
    assert brief.error_message is None and brief.events is None  # detail columns only with detail=True
    assert state.get_task(done[0].task_id) == state.list_tasks(filters=[("task_id", "=", done[0].task_id)],
                                                                  detail=True)[0]
    assert state.get_task("00" * 16) is None
    with pytest.raises(state.RayStateApiException, match="Invalid filter column 'nope'"):
        state.list_tasks(filters=[("nope", "=", 1)])
    with pytest.raises(state.RayStateApiException, match="predicate '>'"):
        state.list_tasks(filters=[("state", ">", "A")])
    summary = state.summarize_tasks()["cluster"]
    assert summary["summary"]["nap"]["state_counts"]["FINISHED"] >= 4
    assert summary["summary"]["broken"]["state_counts"] == {"FAILED": 1}
    assert summary["total_tasks"] >= 5 and summary["summary_by"] == "func_name"


def test_actors_nodes_jobs_workers_and_objects():
    talker = Talker.options(name="talker").remote()
    pid = nbcluster.get(talker.say.remote("hello state"))
    me = nbcluster.get_runtime_context()
    actors = state.list_actors(filters=[("state", "=", "ALIVE"), ("class_name", "=", "Talker")], detail=True)
    assert [a.actor_id for a in actors] == [talker._actor_id.hex()]
    actor = actors[0]
    assert actor.pid == pid and actor.name == "talker" and actor.ray_namespace == me.namespace
    assert actor.is_detached is False and actor.required_resources is not None
    assert state.get_actor(actor.actor_id) == actor
    assert state.summarize_actors()["cluster"]["summary"]["Talker"]["state_counts"] == {"ALIVE": 1}
    calls = wait_for(lambda: state.list_tasks(filters=[("actor_id", "=", actor.actor_id)]), timeout=10,
                     message="the actor's call in list_tasks")
    assert calls[0].type == "ACTOR_TASK" and calls[0].name == "Talker.say"

    (node,) = state.list_nodes(filters=[("state", "=", "ALIVE")])
    assert node.node_id == me.get_node_id() and node.is_head_node and node.resources_total["CPU"] == 2
    assert state.get_node(node.node_id).start_time_ms > 0
    jobs = state.list_jobs(filters=[("job_id", "=", me.get_job_id())])
    assert jobs[0].type == "DRIVER" and jobs[0].status == "RUNNING" and state.get_job(me.get_job_id()) == jobs[0]

    workers = state.list_workers(filters=[("pid", "=", pid)])
    assert len(workers) == 1 and workers[0].is_alive and workers[0].node_id == node.node_id
    assert state.get_worker(workers[0].worker_id).pid == pid

    ref = nbcluster.put(np.ones(500_000))
    stored = state.get_objects(ref.hex())
    assert len(stored) == 1 and stored[0].object_size >= 4_000_000 and stored[0].node_id == node.node_id
    assert any(o.object_id == ref.hex() for o in state.list_objects(limit=0))
    objects = state.summarize_objects()["cluster"]
    assert objects["total_objects"] >= 1 and objects["total_size_mb"] >= 3.8
    del ref
    nbcluster.kill(talker)


def test_logs_of_a_worker_by_actor_task_pid_and_name():
    talker = Talker.remote()
    pid = nbcluster.get(talker.say.remote("first line for the log"))
    wait_for(lambda: "first line for the log" in list(state.get_log(actor_id=talker._actor_id.hex())),
             timeout=10, message="the actor's line in its worker's .out")
    logs = state.list_logs()
    assert any(name.startswith("gcs.") for name in logs["gcs_server"]) and logs["raylet"]
    assert logs["worker_out"] and logs["worker_err"]
    assert state.list_logs(glob_filter="*.err").keys() <= {"gcs_server", "raylet", "worker_err", "job", "internal"}
    by_pid = list(state.get_log(pid=pid, tail=1))
    assert by_pid == ["first line for the log"]
    ref = nap.remote(0)
    worker_pid = nbcluster.get(ref)
    task = wait_for(lambda: (t := state.get_task(ref.task_id())) and t.worker_id and t, timeout=10,
                    message="the task's worker in list_tasks")
    assert task.worker_pid == worker_pid
    assert isinstance(list(state.get_log(task_id=task.task_id, suffix="err")), list)
    (gcs_log,) = [n for n in logs["gcs_server"] if n.endswith(".log")]
    assert list(state.get_log(filename=gcs_log, tail=3))
    with pytest.raises(ValueError, match="file's name"):
        list(state.get_log(filename="../token"))

    follow = state.get_log(actor_id=talker._actor_id.hex(), tail=0, follow=True)
    nbcluster.get(talker.say.remote("a line written later"))
    assert next(follow) == "a line written later"
    follow.close()
    nbcluster.kill(talker)


def test_timeline_writes_chrome_trace_events(tmp_path: Path):
    marker = str(tmp_path / "attempted")
    pids = nbcluster.get([nap.remote(0.3), nap.remote(0.3)])
    assert nbcluster.get(flaky.remote(marker)) == "second attempt"
    wait_for(lambda: _done("flaky", 1), timeout=10, message="the retried task's runs")
    path = tmp_path / "trace.json"
    assert nbcluster.timeline(str(path)) is None
    events = json.loads(path.read_text())
    assert events == nbcluster.timeline() or len(events) <= len(nbcluster.timeline())
    runs = [e for e in events if e["ph"] == "X"]
    naps = [e for e in runs if e["name"].endswith("nap") and e["dur"] >= 0.25e6]
    assert {e["tid"] for e in naps} >= set(pids)  # the worker's pid is the thread
    flaky_runs = sorted((e for e in runs if e["name"].endswith("flaky")), key=lambda e: e["args"]["attempt_number"])
    assert [(e["args"]["attempt_number"], e["args"]["failed"]) for e in flaky_runs] == [(0, True), (1, False)]
    names = {e["pid"]: e["args"]["name"] for e in events if e["ph"] == "M" and e["name"] == "process_name"}
    node = nbcluster.get_runtime_context().get_node_id()
    assert all(node[:12] in names[e["pid"]] for e in naps)
    threads = {(e["pid"], e["tid"]) for e in events if e["ph"] == "M" and e["name"] == "thread_name"}
    assert all((e["pid"], e["tid"]) in threads for e in runs)
    for e in runs:
        assert e["ts"] > 1e15 and e["dur"] >= 0 and e["cat"].startswith("task::")
