"""``%cluster submit`` and ``%cluster jobs`` use the jobs API of the cluster the kernel is
connected to, also when a newer cluster runs on the machine (which "auto" discovery
would pick)."""

from __future__ import annotations

import re

import pytest

from nbcluster.cluster_utils import Cluster

from ..conftest import FAST_CONFIG
from .harness import Kernel

pytestmark = pytest.mark.timeout(300)

JOB = "import nbcluster; nbcluster.init(); print('JOB-HEAD', nbcluster.state.get_head_state().gcs_address)"


def test_jobs_go_to_the_connected_cluster_not_the_newest(kernel: Kernel) -> None:
    cell = kernel.execute("import nbcluster\n%load_ext nbcluster\n%cluster start --num-cpus 1\n"
                          "print('KERNEL-HEAD', nbcluster.state.get_head_state().gcs_address)")
    assert kernel.error(cell) is None, kernel.error(cell)
    mine = re.search(r"KERNEL-HEAD (\S+)", kernel.text(cell)).group(1)
    newer = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "_system_config": FAST_CONFIG},
                    shutdown_at_exit=False)
    try:
        assert newer.address != mine
        cell = kernel.execute(f'%cluster submit --submission-id where -- python -c "{JOB}"', timeout=180)
        out = kernel.text(cell)
        assert kernel.error(cell) is None and "SUCCEEDED" in out, out
        assert f"JOB-HEAD {mine}" in out, out
        cell = kernel.execute("%cluster jobs")
        listed = [m["content"]["data"]["text/plain"] for m in kernel.outputs(cell) if m["msg_type"] == "display_data"]
        assert listed and "where" in listed[0], listed
    finally:
        newer.shutdown()
        kernel.execute("%cluster stop")
