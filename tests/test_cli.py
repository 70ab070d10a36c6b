"""The ``nbcluster`` command as a new user meets it: start a head, join a node,
connect a driver, look with ``status`` and ``list``, ``stop``; and its errors."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys

import psutil
import pytest

from .cli_tools import Machine, nbcluster_command
from .conftest import wait_for

#: Fast health checks, so a stopped node is noticed quickly.
FAST = json.dumps({"heartbeat_interval_s": 0.2, "health_check_initial_delay_s": 0.5,
                   "health_check_period_s": 0.3, "health_check_timeout_s": 0.5})


@pytest.fixture
def machine():  # type: ignore[no-untyped-def]
    m = Machine()
    try:
        yield m
    finally:
        m.close()


def test_start_join_connect_status_list_stop(machine: Machine) -> None:
    out = machine.run("start", "--head", "--port", "0", "--node-ip-address", "127.0.0.1", "--num-cpus", "1",
                      "--resources", '{"accel": 1}', "--system-config", FAST).stdout
    address = out.split("head node at ")[1].split()[0]
    token_file = machine.token_file()
    # What a user copies: the join command and the connect line, with no token in them.
    assert f"nbcluster start --address {address} --token-file" in out
    assert 'nbcluster.init(address="auto")' in out
    assert str(token_file) in out and token_file.read_text().strip() not in out
    assert token_file.stat().st_mode & 0o077 == 0

    joined = machine.run("start", "--address", address, "--num-cpus", "2", "--node-ip-address", "127.0.0.1",
                         "--token-file", str(token_file)).stdout
    worker_id = joined.split("as node ")[1].split(".")[0]

    status = machine.run("status").stdout
    assert f"Cluster at {address}: 2 nodes alive, 0 dead" in status
    assert "accel 0/1" in status and worker_id in status
    assert "CPU           0 / 3" in status

    drv = machine.python(
        """
        import nbcluster, time
        nbcluster.init(address="auto")

        @nbcluster.remote(resources={"accel": 1})
        def on_accel(x):
            return x, nbcluster.get_runtime_context().get_node_id()

        @nbcluster.remote
        class Keeper:
            def ping(self):
                return "pong"

        keeper = Keeper.options(name="keeper", lifetime="detached").remote()
        results = nbcluster.get([on_accel.remote(i) for i in range(4)])
        print({node for _, node in results}.__len__(), sum(x for x, _ in results), nbcluster.get(keeper.ping.remote()))
        """
    )
    assert drv.stdout.split() == ["1", "6", "pong"]

    nodes = json.loads(machine.run("list", "nodes", "--format", "json").stdout)
    assert {n["state"] for n in nodes} == {"ALIVE"} and len(nodes) == 2
    accel_node = next(n for n in nodes if "accel" in n["resources_total"])
    assert accel_node["is_head"]
    tasks = json.loads(machine.run("list", "tasks", "--format", "json").stdout)
    accel_tasks = [t for t in tasks if t["name"].endswith("on_accel")]
    assert len(accel_tasks) == 4 and {t["state"] for t in accel_tasks} == {"FINISHED"}
    assert {t["node_id"] for t in accel_tasks} == {accel_node["node_id"]}
    actors = machine.run("list", "actors").stdout
    assert "Keeper" in actors and "ALIVE" in actors and "keeper" in actors
    jobs = machine.run("list", "jobs").stdout.splitlines()
    assert jobs[0].split()[:4] == ["JOB_ID", "SUBMISSION_ID", "TYPE", "STATUS"] and "SUCCEEDED" in jobs[1]
    assert machine.run("list", "tasks", "--state", "FAILED").stdout.strip() == "(no tasks)"

    started = machine.processes()
    assert len(started) >= 3  # GCS, two node managers (and their workers)
    stopped = machine.run("stop").stdout
    assert stopped.startswith("Stopped 3 nbcluster processes of 2 nodes")
    assert not psutil.wait_procs(started, timeout=10)[1], "processes survived `nbcluster stop`"
    assert not machine.processes()
    after = machine.run("status", check=False)
    assert after.returncode == 1 and "No running nbcluster cluster found" in after.stderr
    assert "No nbcluster processes" in machine.run("stop").stdout


def test_stop_leaves_clusters_it_did_not_start(machine: Machine) -> None:
    """An embedded cluster of a running driver is not `nbcluster stop`'s to end."""
    driver = machine.python(
        """
        import os, subprocess
        import nbcluster
        nbcluster.init(num_cpus=1)
        stop = subprocess.run([os.environ["NBC"], "stop"], capture_output=True, text=True)
        print(stop.stdout.strip())
        print(nbcluster.get(nbcluster.put(41)) + 1)
        """,
        env={"NBC": nbcluster_command()},
    )
    lines = driver.stdout.splitlines()
    assert lines[0].startswith("No nbcluster processes started by `nbcluster start`") and lines[-1] == "42"


def test_block_runs_in_the_foreground_until_interrupted(machine: Machine) -> None:
    proc = machine.popen("start", "--head", "--port", "0", "--node-ip-address", "127.0.0.1", "--num-cpus", "1",
                         "--block")
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if line.startswith("Stop it:"):
            break
    else:
        pytest.fail(f"no start banner: {lines} {proc.stderr.read() if proc.stderr else ''}")
    node_procs = machine.processes()
    assert len(node_procs) >= 2 and all(p.ppid() == proc.pid for p in node_procs if "runtime.gcs" in " ".join(p.info["cmdline"]))
    assert machine.run("status").returncode == 0
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 0
    assert not psutil.wait_procs(node_procs, timeout=10)[1]


def test_a_sigterm_while_a_blocking_node_starts_in_a_container_stops_it(machine: Machine) -> None:
    """A container's first process (PID 1 of its PID namespace: a pod) gets only the
    signals it handles, so a SIGTERM that came while the node started was lost, and
    the pod was killed only after its grace period. The node catches it from the start."""
    proc = subprocess.Popen(
        ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child", "--", nbcluster_command(), "start", "--head",
         "--port", "0", "--node-ip-address", "127.0.0.1", "--num-cpus", "1", "--block"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=machine.env)
    machine.children.append(proc)
    first = wait_for(lambda: next(iter(psutil.Process(proc.pid).children()), None), timeout=30,
                     message="the container's first process")
    # It has started the GCS (the node is starting) and has not printed its banner yet.
    wait_for(lambda: first.children(), timeout=30, interval=0.01, message="the node to start its first process")
    os.kill(first.pid, signal.SIGTERM)
    try:
        out, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail("the node ignored the SIGTERM that came while it started")
    assert proc.returncode == 0, (out, err)
    assert "Stop it:" in out, out  # it started, then stopped
    assert not machine.processes()


def test_bad_input_is_refused_with_the_reason(machine: Machine) -> None:
    def fails(*args: str, env: dict[str, str] | None = None) -> str:
        proc = machine.run(*args, check=False, env=env)
        assert proc.returncode != 0, proc.stdout
        return proc.stderr

    assert "either --head" in fails("start")
    assert "JSON object" in fails("start", "--head", "--resources", "{accel: 1}")
    assert "--num-cpus" in fails("start", "--head", "--resources", '{"CPU": 4}')
    assert "must be a number" in fails("start", "--head", "--resources", '{"accel": "many"}')
    assert "--num-cpus must be >= 0" in fails("start", "--head", "--num-cpus", "-1")
    assert "unknown runtime config keys ['nope']" in fails("start", "--head", "--system-config", '{"nope": 1}')
    assert "invalid choice" in fails("list", "things")
    # Joining: no token, a token file that is not there, nothing listening, a wrong token.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        free_port = sock.getsockname()[1]
    assert "needs the cluster's token" in fails("start", "--address", f"127.0.0.1:{free_port}")
    assert "cannot read --token-file" in fails("start", "--address", f"127.0.0.1:{free_port}", "--token-file", "/nonexistent")
    refused = fails("start", "--address", f"127.0.0.1:{free_port}", env={"NBCLUSTER_TOKEN": "x"})
    assert f"cannot reach the cluster's head at 127.0.0.1:{free_port}: nothing listens there" in refused, refused
    address = machine.start_head("--port", "0", "--node-ip-address", "127.0.0.1", "--num-cpus", "1")
    assert "refused the token" in fails("start", "--address", address, env={"NBCLUSTER_TOKEN": "wrong"})
    # The port is taken by the running head.
    port = address.rsplit(":", 1)[1]
    taken = fails("start", "--head", "--port", port, "--node-ip-address", "127.0.0.1", "--num-cpus", "1")
    assert "did not start" in taken and f"cannot listen on 127.0.0.1:{port}" in taken
    # Nothing was lost: the first head still serves.
    assert "1 node alive" in machine.run("status").stdout


CLUSTER_YAML = """\
cluster_name: demo
max_workers: 2
upscaling_speed: 2
idle_timeout_minutes: 0.05
head_node_type: head
provider:
  type: local
available_node_types:
  head:
    resources: {CPU: 0}
  cpu_worker:
    resources: {CPU: 1}
    min_workers: 0
    max_workers: 2
"""


def test_up_status_down_with_the_autoscaler(machine: Machine) -> None:
    config = machine.root / "cluster.yaml"
    config.write_text(CLUSTER_YAML)
    out = machine.run("up", str(config), "--port", "0", "--node-ip-address", "127.0.0.1", "--system-config", FAST).stdout
    assert "Autoscaler on (local provider) for cluster demo: worker types cpu_worker {CPU: 1} x0-2" in out
    assert f"nbcluster down {config}" in out
    again = machine.run("up", str(config)).stdout
    assert "Cluster demo is already up at" in again

    drv = machine.python(
        """
        import nbcluster, time
        nbcluster.init(address="auto")

        @nbcluster.remote
        def work():
            time.sleep(1)
            return nbcluster.get_runtime_context().get_node_id()

        print(len(set(nbcluster.get([work.remote() for _ in range(4)]))))
        """
    )
    assert drv.stdout.strip() == "2"
    assert "(autoscaler +" in drv.stderr and "Adding 2 nodes of type cpu_worker" in drv.stderr

    status = machine.run("status").stdout
    assert "Autoscaler (cluster demo: max_workers 2, idle timeout 3 s)" in status
    assert "cpu_worker" in status and "Recent autoscaler events" in status
    assert "Adding 2 nodes of type cpu_worker for" in status

    down = machine.run("down", str(config)).stdout
    assert "Stopped" in down
    assert not machine.processes(), "down left processes (the autoscaler's nodes included)"
    assert "is not running" in machine.run("down", str(config)).stdout


def test_up_while_the_cluster_is_still_starting_says_so(machine: Machine) -> None:
    """A head is recorded as soon as its processes run (address still empty): `up` of
    the same cluster then says it is starting, and starts no second one."""
    config = machine.root / "cluster.yaml"
    config.write_text(CLUSTER_YAML)
    session = machine.root / "session_starting"
    session.mkdir()
    stand_in = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])  # the head, still starting
    try:
        record = {"role": "head", "address": "", "node_id": "00" * 16, "cluster_name": "demo",
                  "procs": [{"pid": stand_in.pid, "create_time": psutil.Process(stand_in.pid).create_time()}]}
        (session / "processes.json").write_text(json.dumps(record))
        out = machine.run("up", str(config)).stdout
        assert f"Cluster demo is starting (session {session})" in out and "already up at" not in out, out
        assert [p.pid for p in machine.processes()] == [], "up started a second cluster"
    finally:
        stand_in.kill()
        stand_in.wait()


def test_stop_finds_its_processes_after_a_clock_step_but_never_a_reused_pid(machine: Machine) -> None:
    """A start time read after the wall clock was stepped (NTP, a laptop that wakes)
    differs from the recorded one by the step: `nbcluster stop` still stops the
    session's processes, which name its directory, and leaves a process that only has a
    recorded pid alone."""
    machine.run("start", "--head", "--port", "0", "--node-ip-address", "127.0.0.1", "--num-cpus", "1")
    (session,) = [d for d in machine.root.glob("session_*") if not d.is_symlink()]
    started = machine.processes()
    assert len(started) >= 2
    record_file = session / "processes.json"
    stepped = json.loads(record_file.read_text())
    for entry in stepped["procs"]:
        entry["create_time"] -= 2.5  # read now, they start 2.5 s later than recorded
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:  # a process that reused a recorded pid (its start time is not the recorded one either)
        stepped["procs"].append({"pid": stranger.pid, "create_time": psutil.Process(stranger.pid).create_time() - 2.5})
        record_file.write_text(json.dumps(stepped))
        assert "1 node alive" in machine.run("status").stdout
        out = machine.run("stop").stdout
        assert "Stopped" in out, out
        assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in started), machine.processes()
        assert stranger.poll() is None, "stop signalled a process that only reused a recorded pid"
    finally:
        stranger.kill()
        stranger.wait()


def test_a_bad_cluster_yaml_is_refused_with_its_line(machine: Machine) -> None:
    config = machine.root / "cluster.yaml"
    config.write_text(CLUSTER_YAML.replace("    max_workers: 2", "    max_worker: 2"))
    result = machine.run("up", str(config), check=False)
    assert result.returncode == 1
    assert "line 14: available_node_types.cpu_worker.max_worker: unknown key" in result.stderr
    assert "max_workers" in result.stderr and not machine.processes()


def test_job_submit_follows_logs_and_exits_with_the_job(machine: Machine) -> None:
    machine.run("start", "--head", "--port", "0", "--dashboard-port", "0", "--node-ip-address", "127.0.0.1",
                "--num-cpus", "2", "--system-config", FAST)
    project = machine.root / "proj"
    project.mkdir()
    (project / "helpers.py").write_text("import nbcluster\n\n@nbcluster.remote\ndef square(x):\n    return x * x\n")
    (project / "analysis.py").write_text(
        "import nbcluster\nfrom helpers import square\n\nnbcluster.init()\n"
        "print('squares:', nbcluster.get([square.remote(i) for i in range(5)]))\n"
    )
    ok = machine.run("job", "submit", "--working-dir", str(project), "--", "python", "analysis.py")
    assert "submitted successfully" in ok.stdout and "squares: [0, 1, 4, 9, 16]" in ok.stdout
    assert "succeeded" in ok.stdout
    failed = machine.run("job", "submit", "--submission-id", "will-fail", "--", "python", "-c",
                         "print('about to fail'); raise SystemExit(3)", check=False)
    assert failed.returncode == 1 and "about to fail" in failed.stdout and "failed" in failed.stdout
    status = machine.run("job", "status", "will-fail").stdout
    assert "FAILED" in status and "exited with code 3" in status
    listed = json.loads(machine.run("job", "list", "--format", "json").stdout)
    assert {j["submission_id"] for j in listed} >= {"will-fail"} and len(listed) == 2
    assert machine.run("job", "logs", "will-fail").stdout == "about to fail\n"
    missing = machine.run("job", "status", "nope", check=False)
    assert missing.returncode == 1 and "no job 'nope'" in missing.stderr


def test_joining_an_embedded_cluster_is_refused_with_the_way_out(machine: Machine) -> None:
    """An init() / %cluster start cluster serves its own session only: a node joining it
    is refused with what to do instead, and the cluster keeps serving."""
    from pathlib import Path

    import nbcluster

    info = nbcluster.init(num_cpus=1)
    try:
        proc = machine.run("start", "--address", info.address, "--token-file", str(Path(info.session_dir) / "token"),
                           "--num-cpus", "1", check=False)
        assert proc.returncode != 0, proc.stdout
        assert "started embedded" in proc.stderr and "nbcluster start --head" in proc.stderr, proc.stderr
        assert nbcluster.get(nbcluster.put(41)) == 41
        assert nbcluster.available_resources().get("CPU") == 1
    finally:
        nbcluster.shutdown()


def test_stopping_a_session_frees_the_memory_of_a_node_that_rejoined(tmp_path) -> None:
    """A node declared dead while alive rejoins under a new id, and its shared memory
    is named by that id: stopping the session frees it even if the node could not."""
    from nbcluster.runtime import cli, ids
    from nbcluster.runtime.session import Session, store_dir

    session = Session(tmp_path / "session")
    session.dir.mkdir()
    first, rejoined = ids.random_id(), ids.random_id()
    session.write_address({"node_id": first.hex()})
    session.record_rejoin(rejoined)
    stores = [store_dir(first), store_dir(rejoined)]
    for path in stores:
        path.mkdir()
        (path / "arena").write_bytes(b"x")
    try:
        assert session.node_ids() == {first.hex(), rejoined.hex()}
        assert cli.stop_session(session.dir, 1.0) == 0  # its processes are gone already
        assert not [p for p in stores if p.exists()]
    finally:
        for path in stores:
            shutil.rmtree(path, ignore_errors=True)
