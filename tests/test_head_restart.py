"""The head's process killed with ``kill -9`` (or stopped) and started again (as a process
supervisor or Kubernetes would), on three hosts made of network namespaces: the head
(1 CPU) and two worker hosts h1 and h2, started with the ``nbcluster`` command.

The restarted head recovers its tables from the session's store: the node managers
re-register under the same node ids, a named detached actor and a driver's actor are
taken back (the same processes, their state kept), a task that was running when the
head died finishes and its result reaches the driver, and the driver's job is still
RUNNING. Nothing of it went through the head's loopback: h1 and h2 reach it by address.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator

import psutil
import pytest

from .cli_tools import Machine
from .conftest import wait_for
from .drivers import COUNTER_CLASS
from .netns import Hosts, machines_on_hosts

PORT = 6380
FAST = {"heartbeat_interval_s": 0.2, "health_check_initial_delay_s": 1.0, "health_check_period_s": 0.5,
        "health_check_timeout_s": 0.5, "health_check_failure_threshold": 4}

DRIVER = ("""
import json, os, time
import nbcluster
nbcluster.init(address="auto")
MARK = os.environ["MARK"]

def wait_file(name, timeout=120):
    deadline = time.monotonic() + timeout
    while not os.path.exists(os.path.join(MARK, name)):
        assert time.monotonic() < deadline, f"no {name} file"
        time.sleep(0.05)

COUNTER_CLASS
@nbcluster.remote(resources={"h2": 0.1})
def long_task():
    open(os.path.join(MARK, "task-started"), "w").close()
    wait_file("finish")
    return "finished after the restart", nbcluster.get_runtime_context().get_node_id()

keeper = Counter.options(name="keeper", namespace="ft", lifetime="detached", resources={"h2": 0.1}).remote()
mine = Counter.options(resources={"h1": 0.1}).remote()
before = {"keeper": nbcluster.get(keeper.incr.remote()), "mine": nbcluster.get(mine.incr.remote()),
          "job": nbcluster.get_runtime_context().get_job_id()}
running = long_task.remote()
wait_file("task-started")
print(json.dumps(before), flush=True)
wait_file("go")
after = {
    "task": nbcluster.get(running, timeout=60),
    "keeper": nbcluster.get(keeper.incr.remote(), timeout=60),
    "mine": nbcluster.get(mine.incr.remote(), timeout=60),
    "by_name": nbcluster.get(nbcluster.get_actor("keeper", namespace="ft").incr.remote(), timeout=60),
    "new_task": nbcluster.get(nbcluster.remote(lambda: 7).remote(), timeout=60),
}
from nbcluster.util import state
after["jobs"] = {j.job_id: j.status for j in state.list_jobs()}
print(json.dumps(after), flush=True)
""").replace("COUNTER_CLASS", COUNTER_CLASS)


def _gcs(machine: Machine) -> psutil.Process:
    found = [p for p in machine.processes() if "nbcluster.runtime.gcs" in " ".join(p.info["cmdline"])]
    assert len(found) == 1, found
    return found[0]


@pytest.fixture
def hosts() -> Iterator[tuple[Hosts, dict[str, Machine]]]:
    with machines_on_hosts(("head", "h1", "h2")) as made:
        yield made


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["kill-9", "stopped"])
def test_a_head_killed_and_restarted_takes_back_its_nodes_actors_tasks_and_jobs(
    hosts: tuple[Hosts, dict[str, Machine]], sig: int,
) -> None:
    """SIGKILL, or SIGTERM: a head that stops on purpose records no death of the node
    managers and actors whose connections it closes (a pod deleted, a restart)."""
    net, machines = hosts
    head, h1, h2 = machines["head"], machines["h1"], machines["h2"]
    address = head.start_head("--port", str(PORT), "--node-ip-address", net.hosts["head"][1], "--num-cpus", "1",
                              "--system-config", json.dumps(FAST))
    token = h1.root / "token-copy"
    shutil.copy(head.token_file(), token)
    for name, machine in (("h1", h1), ("h2", h2)):
        machine.run("start", "--address", address, "--token-file", str(token), "--num-cpus", "2",
                    "--node-ip-address", net.hosts[name][1], "--resources", json.dumps({name: 1}),
                    "--system-config", json.dumps(FAST))
    marks = head.root / "marks"
    marks.mkdir()
    nodes_before = {n["node_id"]: n["state"] for n in json.loads(head.run("list", "nodes", "--format", "json").stdout)}
    assert sorted(nodes_before.values()) == ["ALIVE"] * 3

    h1.env["MARK"] = str(marks)
    driver = h1.spawn_python(DRIVER)
    line = driver.stdout.readline()
    assert line, f"the driver failed: {driver.stderr.read()}"
    before = json.loads(line)

    gcs = _gcs(head)
    argv, env = gcs.cmdline(), gcs.environ()
    gcs.send_signal(sig)
    gcs.wait(15)
    # Started again with the same command, as a supervisor (or the head pod's restart) would.
    restarted = subprocess.Popen(head.argv(argv), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                 start_new_session=True)
    try:
        started = time.monotonic()
        wait_for(lambda: _rejoined(head) >= 3, timeout=60, interval=0.2, message="three nodes back with the new head")
        rejoin_s = time.monotonic() - started
        nodes_after = {n["node_id"]: n["state"] for n in
                       json.loads(head.run("list", "nodes", "--format", "json").stdout)}
        assert nodes_after == nodes_before  # the same node ids, all alive: none rejoined as new
        (marks / "finish").touch()
        (marks / "go").touch()
        out, err = driver.communicate(timeout=120)
        assert driver.returncode == 0, f"the driver failed:\n{out}\n{err}"
        after = json.loads(out.strip().splitlines()[-1])
        task_result, task_node = after["task"]
        assert task_result == "finished after the restart"
        # The actors are the same processes, their state kept.
        assert after["keeper"][0] == before["keeper"][0] + 1 and after["keeper"][1:] == before["keeper"][1:]
        assert after["by_name"][0] == before["keeper"][0] + 2 and after["by_name"][1] == before["keeper"][1]
        assert after["mine"][0] == before["mine"][0] + 1 and after["mine"][1] == before["mine"][1]
        assert after["new_task"] == 7
        assert after["jobs"][before["job"]] == "RUNNING"
        # A new driver finds the detached actor by name.
        seen = h2.python("import nbcluster, json; nbcluster.init(address='auto'); "
                         "print(json.dumps(nbcluster.get(nbcluster.get_actor('keeper', namespace='ft').incr.remote())))").stdout
        assert json.loads(seen.strip().splitlines()[-1])[:2] == [before["keeper"][0] + 3, before["keeper"][1]]
        print(f"nodes back with the restarted head {rejoin_s:.1f} s after it started")
    finally:
        restarted.terminate()
        restarted.wait(15)


def _rejoined(head: Machine) -> int:
    log = next(p for p in head.root.glob("session_*/logs/gcs.log") if not p.parent.parent.is_symlink())
    return log.read_text().count("re-registered with the restarted head")

