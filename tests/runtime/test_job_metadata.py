"""``nbcluster.state.update_job_metadata`` (``Gcs.UpdateJobMetadata``): a running job's
metadata changes (what a renamed notebook's driver needs), watchers hear of it, the
store keeps it across a head restart; unknown and ended jobs, a driver's credential and
updates past the bounds are refused."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import nbcluster
import nbcluster.events
from nbcluster import state
from nbcluster.cluster_utils import Cluster
from nbcluster.exceptions import NbclusterError, PermissionDeniedError
from nbcluster.runtime import discovery
from nbcluster.runtime.credentials import driver_token
from nbcluster.runtime.protocol import common_pb2, gcs_pb2
from nbcluster.runtime.state import gcs_call
from nbcluster.runtime.transport import methods

from ..conftest import FAST_CONFIG, restart_gcs, run_python, wait_for


def _metadata(job_id: str, **kwargs: str) -> dict[str, str]:
    (job,) = [j for j in state.list_jobs(**kwargs) if j.job_id == job_id]
    return job.metadata


def test_a_running_jobs_metadata_changes_and_watchers_hear_of_it(start_cluster) -> None:  # type: ignore[no-untyped-def]
    start_cluster(num_cpus=1)
    me = nbcluster.get_runtime_context().get_job_id()
    heard: list[nbcluster.events.ClusterEvent] = []
    # With replay, the job's own RUNNING event comes first.
    sub = nbcluster.events.subscribe(lambda e: heard.append(e) if e.job_id == me else None, kinds=("JOB_STATE",),
                                     replay=True)
    try:
        job = state.update_job_metadata(me, {"notebook_path": "/home/u/b.ipynb"})
        assert job.job_id == me and job.status == "RUNNING" and job.metadata["notebook_path"] == "/home/u/b.ipynb"
        assert _metadata(me) == {"notebook_path": "/home/u/b.ipynb"}
        # The same value again changes nothing (no event); another key keeps the first.
        state.update_job_metadata(me, {"notebook_path": "/home/u/b.ipynb"})
        state.update_job_metadata(me, {"owner": "me"})
        assert _metadata(me) == {"notebook_path": "/home/u/b.ipynb", "owner": "me"}
        wait_for(lambda: len(heard) >= 3, message="three JOB_STATE events of this job")
    finally:
        sub.close()
    assert [e.data.get("changed") for e in heard] == [None, ["notebook_path"], ["owner"]]
    heard.pop(0)
    assert heard[0].data["state"] == "RUNNING" and heard[0].data["metadata"] == {"notebook_path": "/home/u/b.ipynb"}
    assert "notebook_path=/home/u/b.ipynb" in heard[0].message


def test_unknown_and_ended_jobs_a_driver_credential_and_oversized_updates_are_refused(start_cluster) -> None:  # type: ignore[no-untyped-def]
    start_cluster(num_cpus=1)
    me = nbcluster.get_runtime_context().get_job_id()
    with pytest.raises(NbclusterError, match="has no job"):
        state.update_job_metadata("7f" * (len(me) // 2), {"notebook_path": "x.ipynb"})
    ended = run_python("""
import nbcluster
nbcluster.init(address="auto")
print(nbcluster.get_runtime_context().get_job_id())
nbcluster.shutdown()
""").stdout.split()[-1]
    with pytest.raises(NbclusterError, match=r"has ended \(SUCCEEDED\)"):
        state.update_job_metadata(ended, {"notebook_path": "x.ipynb"})

    # Only the cluster's token holders may: a driver's credential is refused.
    address = state.get_head_state().gcs_address
    node = discovery.find_local_node(address)
    assert node is not None
    with pytest.raises(PermissionDeniedError):
        state.update_job_metadata(me, {"notebook_path": "x.ipynb"}, address=address, token=driver_token(node.token))
    state.update_job_metadata(me, {"notebook_path": "y.ipynb"}, address=address, token=node.token)

    # Bounds: checked before sending, and by the GCS itself.
    with pytest.raises(ValueError, match="at most 16 keys"):
        state.update_job_metadata(me, {f"k{i}": "v" for i in range(17)})
    with pytest.raises(ValueError, match="at most 4096"):
        state.update_job_metadata(me, {"notebook_path": "x" * 4097})
    with pytest.raises(ValueError, match="1 to 256 bytes"):
        state.update_job_metadata(me, {"": "x"})
    with pytest.raises(TypeError):
        state.update_job_metadata(me, [("notebook_path", "x")])  # type: ignore[arg-type]
    request = gcs_pb2.UpdateJobMetadataRequest(job_id=bytes.fromhex(me), metadata={"notebook_path": "x" * 5000})
    with pytest.raises(NbclusterError, match="at most 4096"):
        gcs_call(methods.Gcs.UpdateJobMetadata, request)
    keys = [f"k{i}" for i in range(64 - len(_metadata(me)))]  # 64 keys in all at the most
    for start in range(0, len(keys), 16):
        state.update_job_metadata(me, {k: "v" for k in keys[start:start + 16]})
    with pytest.raises(NbclusterError, match="at most 64 keys"):
        gcs_call(methods.Gcs.UpdateJobMetadata, gcs_pb2.UpdateJobMetadataRequest(job_id=bytes.fromhex(me),
                                                                                 metadata={"one-more": "v"}))
    assert _metadata(me)["notebook_path"] == "y.ipynb"


def test_the_store_keeps_an_update_for_the_next_head(tmp_path: Path) -> None:
    """The job table as a restarted head reads it (no processes)."""
    from nbcluster.runtime.gcs.job_table import JobTable
    from nbcluster.runtime.gcs.pubsub import EventLog
    from nbcluster.runtime.gcs.store import GcsStore
    from nbcluster.runtime.gcs.tasks import TaskTable

    def table(store: GcsStore) -> tuple[JobTable, list[gcs_pb2.JobInfo]]:
        events = EventLog(100)
        jobs = JobTable(events, TaskTable(100, events), asyncio.Event())
        return jobs, jobs.recover(store)

    async def scenario() -> gcs_pb2.JobInfo:
        store = GcsStore(tmp_path / "gcs.db")
        jobs, _ = table(store)
        driver = gcs_pb2.JobInfo(driver=common_pb2.Address(endpoint="nowhere"),
                                 metadata={"kernel_id": "k1", "notebook_path": "a.ipynb"})
        job_id = jobs.register(driver, conn=None).job_id
        jobs.update_metadata(gcs_pb2.UpdateJobMetadataRequest(job_id=job_id, metadata={"notebook_path": "b.ipynb"}))
        store.close()
        store = GcsStore(tmp_path / "gcs.db")
        try:
            _, running = table(store)
        finally:
            store.close()
        return running[0]

    recovered = asyncio.run(scenario())
    assert dict(recovered.metadata) == {"kernel_id": "k1", "notebook_path": "b.ipynb"}


DRIVER = """
import sys
import nbcluster
nbcluster.init(address=sys.argv[1])
print(nbcluster.get_runtime_context().get_job_id(), flush=True)
sys.stdin.readline()
nbcluster.shutdown()
"""


@pytest.mark.timeout(300)
def test_an_update_survives_a_head_restart() -> None:
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "_system_config": FAST_CONFIG})
    driver: subprocess.Popen | None = None
    restarted: subprocess.Popen | None = None
    try:
        driver = subprocess.Popen([sys.executable, "-c", textwrap.dedent(DRIVER), cluster.address],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        job_id = driver.stdout.readline().strip()  # type: ignore[union-attr]
        assert job_id, "the driver did not connect"
        state.update_job_metadata(job_id, {"notebook_path": "renamed.ipynb"}, address=cluster.address)
        restarted = restart_gcs(cluster)
        old = cluster.address

        def answers() -> bool:
            try:
                return cluster.address != old and bool(state.get_head_state(address=cluster.address))
            except NbclusterError:
                return False

        wait_for(answers, timeout=60, interval=0.2, message="the restarted head to answer")
        (job,) = [j for j in state.list_jobs(address=cluster.address) if j.job_id == job_id]
        assert job.status == "RUNNING" and job.metadata["notebook_path"] == "renamed.ipynb"
        # The restarted head takes further updates of the job it recovered.
        state.update_job_metadata(job_id, {"notebook_path": "again.ipynb"}, address=cluster.address)
        assert _metadata(job_id, address=cluster.address)["notebook_path"] == "again.ipynb"
    finally:
        if driver is not None:
            driver.stdin.close()  # type: ignore[union-attr]
            driver.wait(60)
            driver.stdout.close()  # type: ignore[union-attr]
        if restarted is not None:
            restarted.terminate()
            restarted.wait(15)
        cluster.shutdown()
