"""Starting, attaching, stopping: what init() and shutdown() leave behind (nothing),
also when the driver is killed; attaching with address="auto"; the GCS tables."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

import nbcluster
from nbcluster.exceptions import AlreadyInitializedError, GetTimeoutError
from nbcluster.runtime.core import worker_state
from nbcluster.runtime.protocol import gcs_pb2
from nbcluster.runtime.transport import methods

from ..conftest import ROOT, run_python, shm_stores, wait_for


def sockets_of(session_name: str) -> list[str]:
    with open("/proc/net/unix") as f:
        return [line.split()[-1] for line in f if session_name in line]


def gone(pids: list[int]) -> bool:
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                return False
        except psutil.NoSuchProcess:
            pass
    return True


def test_shutdown_leaves_nothing_behind(start_cluster):
    info = start_cluster(num_cpus=2)
    core = worker_state.current
    session = core.session

    @nbcluster.remote
    def work():
        import numpy as np

        return np.ones(1 << 20)  # a shared-memory object too

    value = nbcluster.get(work.remote())
    assert value.sum() == 1 << 20
    pids = [p.pid for p in psutil.Process().children(recursive=True)]
    assert len(pids) >= 3  # head, node manager, at least one worker
    assert sockets_of(session.name) and Path(info.session_dir).exists() and shm_stores()
    del value
    start = time.monotonic()
    nbcluster.shutdown()
    assert time.monotonic() - start < 5
    assert not nbcluster.is_initialized()
    wait_for(lambda: gone(pids), message="every cluster process to exit")
    assert not sockets_of(session.name)
    assert not Path(info.session_dir).exists()
    assert not shm_stores()


def test_shutdown_frees_the_arena_of_a_node_manager_that_could_not(start_cluster):
    """A node manager killed outright (or one that rejoined under a new id and was
    stopped while starting) never removes its arena, nor does a head killed with it:
    shutdown does."""
    from nbcluster.runtime.launcher import live_clusters

    start_cluster(num_cpus=1)
    (handle,) = live_clusters()
    assert shm_stores()
    for proc in handle.procs:  # the head and the node manager
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    assert shm_stores()  # killed: nothing cleaned up
    nbcluster.shutdown()
    assert not shm_stores()


DRIVER_THAT_WAITS = """
    import json, os, sys, time
    import numpy as np
    import psutil
    import nbcluster
    info = nbcluster.init(num_cpus=2)

    @nbcluster.remote
    def work():
        return os.getpid()

    worker = nbcluster.get(work.remote())
    big = nbcluster.put(np.ones(1 << 20))
    pids = [p.pid for p in psutil.Process().children(recursive=True)]
    print(json.dumps({"pids": pids, "session": info.session_dir, "worker": worker,
                      "address": info.address}), flush=True)
    sys.stdin.read()  # until the test closes stdin (or kills us)
"""


def start_waiting_driver() -> tuple[subprocess.Popen, dict]:
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(DRIVER_THAT_WAITS)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=str(ROOT),
    )
    line = proc.stdout.readline()
    if not line:
        proc.kill()
        pytest.fail(f"driver failed: {proc.stderr.read()}")
    return proc, json.loads(line)


def test_killed_driver_takes_its_cluster_with_it():
    proc, facts = start_waiting_driver()
    session = Path(facts["session"])
    assert facts["worker"] in facts["pids"] and session.exists() and shm_stores()
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    proc.stdout.close()
    proc.stderr.close()
    proc.stdin.close()
    wait_for(lambda: gone(facts["pids"]), timeout=15, message="the cluster processes to exit")
    wait_for(lambda: not session.exists(), timeout=10, message="the session directory removed")
    assert not sockets_of(session.name)
    assert not shm_stores()


def test_attach_with_auto_to_a_running_cluster():
    proc, facts = start_waiting_driver()
    try:
        info = nbcluster.init(address="auto")
        try:
            assert info.session_dir == facts["session"] and not info.embedded

            @nbcluster.remote
            def square(x):
                return x * x

            assert nbcluster.get([square.remote(i) for i in range(5)]) == [0, 1, 4, 9, 16]
            assert nbcluster.cluster_resources()["CPU"] == 2
            core = worker_state.current
            jobs = core.run_sync(core.gcs.call(methods.Gcs.GetAllJobs, gcs_pb2.GetAllJobsRequest())).jobs
            assert len(jobs) == 2 and all(j.type == gcs_pb2.JOB_TYPE_DRIVER for j in jobs)
        finally:
            nbcluster.shutdown()
        # Detaching does not stop a cluster this process did not start.
        assert proc.poll() is None and not gone(facts["pids"][:2])
    finally:
        proc.stdin.close()
        proc.wait(15)
        proc.stdout.close()
        proc.stderr.close()
    wait_for(lambda: gone(facts["pids"]), message="the first driver's cluster to stop with it")


def test_auto_without_a_cluster_is_a_clear_error(tmp_path):
    proc = run_python(
        """
        import nbcluster
        try:
            nbcluster.init(address="auto")
        except nbcluster.exceptions.ClusterConnectionError as e:
            print("ERROR:", e)
        """,
        env={"NBCLUSTER_TEMP_DIR": str(tmp_path)},
    )
    assert "No running nbcluster cluster found" in proc.stdout and str(tmp_path) in proc.stdout


def test_init_twice(start_cluster):
    start_cluster(num_cpus=1)
    with pytest.raises(AlreadyInitializedError, match="shutdown"):
        nbcluster.init()
    with pytest.raises(ValueError):  # also a ValueError and a RuntimeError, as Ray's is
        nbcluster.init(num_cpus=1)
    info = nbcluster.init(ignore_reinit_error=True)
    assert info.embedded


def test_calls_before_init_start_an_embedded_cluster():
    proc = run_python(
        """
        import nbcluster

        @nbcluster.remote
        def f():
            return 41

        print("RESULT", nbcluster.get(f.remote()) + 1, nbcluster.is_initialized())
        """
    )
    assert "RESULT 42 True" in proc.stdout
    # Said in one line, without any logging set up.
    assert [line for line in proc.stderr.splitlines() if "nbcluster" in line] == [
        "nbcluster was not initialized: starting an embedded cluster (nbcluster.init())"
    ]


def test_after_a_failed_connect_calls_never_start_a_local_cluster():
    proc = run_python(
        """
        import os, nbcluster
        from nbcluster.runtime.session import sessions

        @nbcluster.remote
        def f():
            return 1

        before = len(sessions())
        try:
            nbcluster.init(address="127.0.0.1:9")  # nothing listens there
        except nbcluster.exceptions.ClusterConnectionError as exc:
            print("CONNECT FAILED", type(exc).__name__)
        for call in (lambda: f.remote(), lambda: nbcluster.put(1)):
            try:
                call()
                print("STARTED A LOCAL CLUSTER")
            except nbcluster.exceptions.ClusterConnectionError as exc:
                print("REFUSED", exc)
        print("INITIALIZED", nbcluster.is_initialized(), "NEW SESSIONS", len(sessions()) - before)
        """,
        env={"NBCLUSTER_TOKEN": "t" * 32},
    )
    assert "CONNECT FAILED ClusterConnectionError" in proc.stdout
    assert "STARTED A LOCAL CLUSTER" not in proc.stdout
    refusals = [line for line in proc.stdout.splitlines() if line.startswith("REFUSED")]
    assert len(refusals) == 2 and all(
        "not connected: connecting to the cluster at 127.0.0.1:9 failed" in r and "nbcluster.init()" in r
        for r in refusals
    ), proc.stdout
    assert "INITIALIZED False NEW SESSIONS 0" in proc.stdout


def test_after_a_connected_cluster_is_left_calls_never_start_a_local_one(start_cluster):
    info = start_cluster(num_cpus=1)
    proc = run_python(
        f"""
        import nbcluster

        @nbcluster.remote
        def f():
            return 1

        nbcluster.init(address={info.address!r})
        print("RESULT", nbcluster.get(f.remote()))
        nbcluster.shutdown()
        try:
            f.remote()
            print("STARTED A LOCAL CLUSTER")
        except nbcluster.exceptions.ClusterConnectionError as exc:
            print("REFUSED", exc)
        nbcluster.init(num_cpus=1)  # asked for on purpose: allowed
        nbcluster.shutdown()
        print("AGAIN", nbcluster.get(f.remote()))  # the last ask was a local cluster
        """
    )
    assert "RESULT 1" in proc.stdout and "STARTED A LOCAL CLUSTER" not in proc.stdout
    assert f"REFUSED nbcluster is not connected: this process was connected to the cluster at {info.address}" in proc.stdout
    assert "AGAIN 1" in proc.stdout


def test_works_inside_a_running_event_loop():
    # A Jupyter kernel calls the API from code that runs on its own asyncio loop.
    proc = run_python(
        """
        import asyncio
        import nbcluster

        @nbcluster.remote
        def f(x):
            return x + 1

        async def cell():
            nbcluster.init(num_cpus=1)
            value = nbcluster.get(f.remote(1))
            awaited = await f.remote(2)
            nbcluster.shutdown()
            return value, awaited

        print("RESULT", asyncio.run(cell()))
        """
    )
    assert "RESULT (2, 3)" in proc.stdout


def test_driver_in_a_real_jupyter_kernel():
    from jupyter_client.manager import start_new_kernel

    km, kc = start_new_kernel(kernel_name="python3", cwd=str(ROOT))
    outputs: list = []
    try:
        code = textwrap.dedent(
            """
            import nbcluster
            nbcluster.init(num_cpus=1)

            @nbcluster.remote
            def double(x):
                return 2 * x

            print("RESULT", nbcluster.get([double.remote(i) for i in range(4)]))
            nbcluster.shutdown()
            """
        )
        reply = kc.execute_interactive(code, timeout=60, output_hook=lambda msg: outputs.append(msg))
        assert reply["content"]["status"] == "ok", reply["content"]
        text = "".join(m["content"].get("text", "") for m in outputs if m["msg_type"] == "stream")
        assert "RESULT [0, 2, 4, 6]" in text
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=False)



def test_runtime_env_vars_reach_tasks(start_cluster):
    start_cluster(num_cpus=1, runtime_env={"env_vars": {"NBC_TEST_VAR": "hello"}})

    @nbcluster.remote
    def read_env():
        return os.environ.get("NBC_TEST_VAR")

    assert nbcluster.get(read_env.remote()) == "hello"


def test_functions_from_local_modules_run_remotely(tmp_path):
    (tmp_path / "localmod.py").write_text(
        textwrap.dedent(
            """
            def triple(x):
                return 3 * x
            """
        )
    )
    proc = run_python(
        """
        import nbcluster, localmod
        nbcluster.init(num_cpus=1)
        f = nbcluster.remote(localmod.triple)
        print("RESULT", nbcluster.get(f.remote(14)))
        nbcluster.shutdown()
        """,
        cwd=tmp_path,
    )
    assert "RESULT 42" in proc.stdout


def test_gcs_kv_and_events(start_cluster):
    start_cluster(num_cpus=1)
    core = worker_state.current
    gcs = core.gcs

    def call(method, request):
        return core.run_sync(gcs.call(method, request))

    assert call(methods.Gcs.KvPut, gcs_pb2.KvPutRequest(namespace="t", key=b"a", value=b"1")).added
    assert not call(methods.Gcs.KvPut, gcs_pb2.KvPutRequest(namespace="t", key=b"a", value=b"2")).added
    assert call(methods.Gcs.KvGet, gcs_pb2.KvGetRequest(namespace="t", key=b"a")).value == b"1"
    call(methods.Gcs.KvPut, gcs_pb2.KvPutRequest(namespace="t", key=b"ab", value=b"3", overwrite=True))
    assert sorted(call(methods.Gcs.KvKeys, gcs_pb2.KvKeysRequest(namespace="t", prefix=b"a")).keys) == [b"a", b"ab"]
    assert call(methods.Gcs.KvDel, gcs_pb2.KvDelRequest(namespace="t", key=b"a", by_prefix=True)).deleted == 2

    async def replay_until(wanted):
        seen = []  # from the start: load reports may come between the ones wanted
        async for event in gcs.stream(methods.Gcs.Watch, gcs_pb2.WatchRequest(replay=True)):
            seen.append(event)
            if wanted <= {e.kind for e in seen}:
                return seen

    events = core.run_sync(replay_until({gcs_pb2.EVENT_KIND_NODE_ADDED, gcs_pb2.EVENT_KIND_JOB_STATE}), timeout=10)
    kinds = {e.kind for e in events}
    assert gcs_pb2.EVENT_KIND_NODE_ADDED in kinds and gcs_pb2.EVENT_KIND_JOB_STATE in kinds
    assert "joined" in next(e.message for e in events if e.kind == gcs_pb2.EVENT_KIND_NODE_ADDED)

    async def next_job_event():
        async for event in gcs.stream(methods.Gcs.Watch, gcs_pb2.WatchRequest(kinds=[gcs_pb2.EVENT_KIND_JOB_STATE])):
            return event

    future = __import__("asyncio").run_coroutine_threadsafe(next_job_event(), core.loop)
    time.sleep(0.2)
    run_python(
        """
        import nbcluster
        nbcluster.init(address="auto")
        nbcluster.shutdown()
        """
    )
    event = future.result(20)
    assert "Job" in event.message and json.loads(event.data_json)["type"] == "JOB_TYPE_DRIVER"


def test_infeasible_task_warns_and_stays_pending(start_cluster, caplog):
    start_cluster(num_cpus=2)

    @nbcluster.remote(num_cpus=4)
    def big():
        return 1

    with caplog.at_level(logging.WARNING, logger="nbcluster"):
        ref = big.remote()
        with pytest.raises(GetTimeoutError):
            nbcluster.get(ref, timeout=1.0)

        def messages() -> list[str]:
            return [r.getMessage() for r in caplog.records if r.name == "nbcluster"]

        wait_for(lambda: any("CPU: 4" in m and "big" in m for m in messages()), timeout=15,
                 message="the infeasible task's warning")
    assert not nbcluster.wait([ref], timeout=0.2)[0]
    nbcluster.cancel(ref)


def test_nodes_and_resources_of_an_unusual_node(start_cluster):
    start_cluster(num_cpus=3, num_gpus=1, resources={"accel": 2}, object_store_memory=200 << 20)
    total = nbcluster.cluster_resources()
    assert total["CPU"] == 3 and total["GPU"] == 1 and total["accel"] == 2
    assert total["object_store_memory"] == 200 << 20

    @nbcluster.remote(resources={"accel": 2}, num_gpus=1)
    def on_accel():
        return "ran"

    assert nbcluster.get(on_accel.remote()) == "ran"


def test_clean_exit_without_shutdown_stops_the_cluster():
    proc = run_python(
        """
        import json, psutil, nbcluster
        info = nbcluster.init(num_cpus=1)
        print(json.dumps({"pids": [p.pid for p in psutil.Process().children(recursive=True)],
                          "session": info.session_dir}))
        """
    )
    facts = json.loads(proc.stdout.strip().splitlines()[-1])
    wait_for(lambda: gone(facts["pids"]), message="the cluster to stop at exit")
    assert not Path(facts["session"]).exists()
