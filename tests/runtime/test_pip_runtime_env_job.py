"""A submitted job's ``runtime_env`` with ``pip``: its entrypoint runs with the node's
virtualenv's ``python``, and the tasks of the driver it starts (``init()`` picks the
job's environment up) use the same virtualenv — one build for both."""

from __future__ import annotations

import textwrap
from pathlib import Path

from nbcluster.cluster_utils import Cluster
from nbcluster.job_submission import JobStatus, JobSubmissionClient

from ..conftest import FAST_CONFIG
from .test_pip_runtime_env import build_wheel, spec


def test_a_submitted_jobs_entrypoint_and_tasks_share_its_virtualenv(tmp_path: Path) -> None:
    wheels = build_wheel(tmp_path, "nbc_job_pkg", "3.0")
    work = tmp_path / "work"
    work.mkdir()
    (work / "main.py").write_text(textwrap.dedent("""
        import os, sys
        import nbc_job_pkg
        import nbcluster
        nbcluster.init()

        @nbcluster.remote
        def in_task():
            import nbc_job_pkg
            return nbc_job_pkg.VALUE, nbc_job_pkg.__file__

        value, file = nbcluster.get(in_task.remote())
        print(nbc_job_pkg.VALUE, "|", value, "|", os.environ["VIRTUAL_ENV"] in file, "|", os.environ["VIRTUAL_ENV"])
    """))
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "_system_config": FAST_CONFIG})
    try:
        address = cluster.head_node._handle.session.read_address()["jobs_address"]
        client = JobSubmissionClient(f"http://{address}", token=cluster.head_node._handle.token)
        job = client.submit_job(entrypoint="python main.py",
                                runtime_env={"working_dir": str(work), **spec(wheels, "nbc_job_pkg")})
        logs = "".join(client.iter_job_logs(job, timeout=120))
        assert client.get_job_status(job) is JobStatus.SUCCEEDED, logs
        driver, task, same, venv = [part.strip() for part in logs.strip().splitlines()[-1].split("|")]
        assert (driver, task, same) == ("nbc_job_pkg 3.0", "nbc_job_pkg 3.0", "True")
        built = (Path(venv).parent / "builds.log").read_text().splitlines()
        assert len([line for line in built if line.endswith(": nbc_job_pkg")]) == 1
        assert client.get_job_info(job).runtime_env["pip"]["packages"] == ["nbc_job_pkg"]
    finally:
        cluster.shutdown()
