"""The token stays out of reach, and a credential does only what its scope allows.

- Jobs, tasks and kernels never see the cluster token or the driver credential in
  their environment (``env``, ``%env``, ``os.environ``), nor do process titles or logs.
- A driver credential (what workers and job entrypoints hold) runs tasks but cannot
  administer the cluster: such calls answer PERMISSION_DENIED; a wrong token answers
  UNAUTHENTICATED — on the framed carrier and on gRPC alike.
- A node id is bound to the node manager that registered it.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import textwrap
from pathlib import Path

import grpc
import psutil
import pytest

import nbcluster
from nbcluster.cluster_utils import Cluster
from nbcluster.runtime.credentials import driver_token
from nbcluster.runtime.protocol import common_pb2, gcs_pb2
from nbcluster.runtime.state import list_nodes
from nbcluster.runtime.transport import dial, methods
from nbcluster.runtime.transport.errors import RemoteError

from ..conftest import wait_for


@pytest.fixture(scope="module")
def cluster(head_and_worker: Cluster) -> Cluster:
    return head_and_worker


def _token(cluster: Cluster) -> str:
    return cluster.head_node._handle.token


def _secrets(cluster: Cluster) -> tuple[str, str]:
    token = _token(cluster)
    return token, driver_token(token)


def _session(cluster: Cluster) -> Path:
    return cluster.head_node._handle.session.dir


def _cli(cluster: Cluster, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "NBCLUSTER_TOKEN"}
    return subprocess.run(["nbcluster", *args], capture_output=True, text=True, timeout=timeout, env=env)


ENV_PROBE = textwrap.dedent(
    """
    import json, os
    import nbcluster

    nbcluster.init()  # inside the job: joins its cluster with the job's credential

    @nbcluster.remote(resources={"other": 0.1})
    def environment():
        with open("/proc/self/environ", "rb") as f:
            raw = f.read().decode(errors="replace")
        return dict(os.environ), raw

    env, raw = nbcluster.get(environment.remote(), timeout=60)
    print("TASK-ENV", json.dumps(env))
    print("TASK-RAW", json.dumps(raw))
    print("TASK-RAN", "yes")
    """
)


def test_job_env_and_task_env_hold_no_credential(cluster: Cluster, tmp_path: Path) -> None:
    """``nbcluster job submit -- env`` prints no secret; a task's os.environ and its
    process's initial environment (/proc/PID/environ) hold none either, although
    the job's own driver joined the cluster and ran it."""
    token, driver = _secrets(cluster)
    jobs = cluster.head_node._handle.session.read_address()["jobs_address"]
    proc = _cli(cluster, "job", "submit", "--address", f"http://{jobs}", "--", "env")
    assert proc.returncode == 0, proc.stderr
    assert "NBCLUSTER_ADDRESS=" in proc.stdout and "NBCLUSTER_CREDENTIAL_FILE=" in proc.stdout, proc.stdout
    for secret in (token, driver):
        assert secret not in proc.stdout + proc.stderr
    (tmp_path / "probe.py").write_text(ENV_PROBE)
    proc = _cli(cluster, "job", "submit", "--address", f"http://{jobs}", "--working-dir", str(tmp_path),
                "--", "python", "probe.py")
    assert proc.returncode == 0 and "TASK-RAN yes" in proc.stdout, proc.stdout + proc.stderr
    for secret in (token, driver):
        assert secret not in proc.stdout
    # The job's credential file is gone once the job ended.
    assert not list(_session(cluster).glob("job-*.credential"))


def test_no_process_title_environment_or_log_shows_the_token(cluster: Cluster) -> None:
    """Every process of the cluster: neither secret in its command line or its initial
    environment; after a workload, in no log file of the session."""
    token, driver = _secrets(cluster)
    nbcluster.init(address=cluster.address)
    try:
        @nbcluster.remote(resources={"other": 0.1})
        def work(x):
            print("working on", x)
            return x + 1

        assert nbcluster.get([work.remote(i) for i in range(4)], timeout=60) == [1, 2, 3, 4]
        checked = 0
        for handle in [cluster.head_node._handle, *(n._handle for n in cluster.worker_nodes)]:
            for root in handle.procs:
                tree = psutil.Process(root.pid)
                for proc in [tree, *tree.children(recursive=True)]:
                    try:
                        title = " ".join(proc.cmdline())
                        environ = "\n".join(f"{k}={v}" for k, v in proc.environ().items())
                    except psutil.NoSuchProcess:
                        continue
                    for secret in (token, driver):
                        assert secret not in title and secret not in environ, proc
                    checked += 1
        assert checked >= 4  # the GCS, two node managers and their workers
    finally:
        nbcluster.shutdown()
    for handle in [cluster.head_node._handle, *(n._handle for n in cluster.worker_nodes)]:
        for log in handle.session.logs.iterdir():
            text = log.read_text(errors="replace")
            for secret in (token, driver):
                assert secret not in text, log


def test_connected_kernel_env_holds_no_token(cluster: Cluster, tmp_path: Path) -> None:
    """``%cluster connect HOST:PORT --token-file F`` keeps the token in the driver's
    memory: ``%env`` and ``os.environ`` in the notebook show neither secret."""
    from ..kernel.harness import Kernel

    token, driver = _secrets(cluster)
    token_file = tmp_path / "token"
    token_file.write_text(token)
    kernel = Kernel()
    try:
        cell = kernel.execute(f"%load_ext nbcluster\n%cluster connect {cluster.address} --token-file {token_file}")
        assert "Connected to a cluster" in kernel.text(cell), kernel.text(cell, "stderr")
        cell = kernel.execute("import nbcluster\nprint('RAN', nbcluster.get(nbcluster.put(7)))")
        assert "RAN 7" in kernel.text(cell)
        cell = kernel.execute("%env")
        shown = kernel.result(cell) or ""
        cell = kernel.execute("import os, json\nprint(json.dumps(dict(os.environ)))")
        shown += kernel.text(cell)
        assert "PATH" in shown  # the probes printed the environment
        for secret in (token, driver):
            assert secret not in shown
        kernel.execute("%cluster disconnect")
    finally:
        kernel.close()


# -- scopes and refusal codes ---------------------------------------------------------
def _call(endpoint: str, token: str, method, request) -> object:
    async def go() -> object:
        conn = await dial(endpoint, token, timeout=10)
        try:
            return await conn.call(method, request, timeout=10)
        finally:
            conn.close()

    return asyncio.run(go())


def _endpoints(cluster: Cluster) -> dict[str, str]:
    info = cluster.head_node._handle.session.read_address()
    return {"framed": info["local_endpoint"], "grpc": info["gcs_address"]}


@pytest.mark.parametrize("carrier", ["framed", "grpc"])
def test_driver_credential_cannot_administer_the_cluster(cluster: Cluster, carrier: str) -> None:
    token, driver = _secrets(cluster)
    endpoint = _endpoints(cluster)[carrier]
    # What a driver does works with the driver credential...
    reply = _call(endpoint, driver, methods.Gcs.GetAllNodes, gcs_pb2.GetAllNodesRequest())
    assert len([n for n in reply.nodes if n.state == gcs_pb2.NODE_STATE_ALIVE]) == 2
    # ...administering does not: registering a node, stopping the head, changing bounds.
    admin = [
        (methods.Gcs.RegisterNode, gcs_pb2.RegisterNodeRequest(
            node=gcs_pb2.NodeInfo(node_id=os.urandom(16)), node_secret=os.urandom(16))),
        (methods.Gcs.Shutdown, gcs_pb2.ShutdownRequest(reason="a driver credential tried")),
        (methods.Gcs.SetWorkerBounds, gcs_pb2.SetWorkerBoundsRequest(node_type="x", min_workers=0, max_workers=9)),
    ]
    for method, request in admin:
        with pytest.raises(RemoteError) as info:
            _call(endpoint, driver, method, request)
        assert info.value.code == common_pb2.ERROR_CODE_PERMISSION_DENIED, info.value
        assert "needs the cluster token" in info.value.message
    # A wrong token is not a credential at all: UNAUTHENTICATED, before any method.
    with pytest.raises(RemoteError) as info:
        _call(endpoint, "0" * 32, methods.Gcs.GetAllNodes, gcs_pb2.GetAllNodesRequest())
    assert info.value.code == common_pb2.ERROR_CODE_UNAUTHENTICATED
    alive = [n for n in list_nodes(address=cluster.address, token=token) if n.state == "ALIVE"]
    assert cluster.head_node.alive() and len(alive) == 2


def test_grpc_status_codes_for_a_plain_grpc_client(cluster: Cluster) -> None:
    """What any gRPC client sees: UNAUTHENTICATED without a credential, PERMISSION_DENIED
    for a driver credential on an admin method."""
    _, driver = _secrets(cluster)
    method = methods.Gcs.Shutdown
    with grpc.insecure_channel(_endpoints(cluster)["grpc"]) as channel:
        call = channel.unary_unary(method.path, request_serializer=method.request.SerializeToString,
                                   response_deserializer=method.reply.FromString)
        for metadata, code in [((), grpc.StatusCode.UNAUTHENTICATED),
                               ((("nbcluster-token", driver),), grpc.StatusCode.PERMISSION_DENIED)]:
            with pytest.raises(grpc.RpcError) as info:
                call(gcs_pb2.ShutdownRequest(reason="x"), metadata=metadata, timeout=10)
            assert info.value.code() == code
    assert cluster.head_node.alive()


def test_a_live_node_id_cannot_be_taken_over(cluster: Cluster) -> None:
    """Even with the cluster token: registering a live node's id again, or reporting
    for it, without the secret it registered with is refused; the node stays."""
    token, _ = _secrets(cluster)
    endpoint = _endpoints(cluster)["grpc"]
    victim = cluster.worker_nodes[0]
    node_id = bytes.fromhex(victim.node_id)
    stolen = gcs_pb2.NodeInfo(node_id=node_id, address="10.9.9.9:1", node_ip="10.9.9.9")
    with pytest.raises(RemoteError) as info:
        _call(endpoint, token, methods.Gcs.RegisterNode,
              gcs_pb2.RegisterNodeRequest(node=stolen, node_secret=os.urandom(16)))
    assert info.value.code == common_pb2.ERROR_CODE_ALREADY_EXISTS
    with pytest.raises(RemoteError) as info:
        _call(endpoint, token, methods.Gcs.ReportNodeState,
              gcs_pb2.ReportNodeStateRequest(node=stolen, node_secret=os.urandom(16)))
    assert info.value.code == common_pb2.ERROR_CODE_PERMISSION_DENIED
    with pytest.raises(RemoteError) as info:
        _call(endpoint, token, methods.Gcs.UnregisterNode,
              gcs_pb2.UnregisterNodeRequest(node_id=node_id, reason="hijack", node_secret=os.urandom(16)))
    assert info.value.code == common_pb2.ERROR_CODE_PERMISSION_DENIED
    reply = _call(endpoint, token, methods.Gcs.GetAllNodes, gcs_pb2.GetAllNodesRequest())
    (node,) = [n for n in reply.nodes if n.node_id == node_id]
    assert node.state == gcs_pb2.NODE_STATE_ALIVE and node.node_ip != "10.9.9.9"
    # The real node keeps reporting: still alive a few heartbeats later.
    wait_for(lambda: victim.alive(), timeout=5)


def test_credential_pipe_reaches_a_child_and_nothing_else() -> None:
    """procutil.spawn: the child reads its credential once from the pipe; the
    variable names only an fd number, and NBCLUSTER_TOKEN is not inherited."""
    import sys
    import tempfile

    from nbcluster.runtime.procutil import spawn

    child = textwrap.dedent(
        """
        import json, os
        from nbcluster.runtime.credentials import from_parent
        before = dict(os.environ)
        print(json.dumps({"token": from_parent(), "again": from_parent(), "before": before,
                          "after": dict(os.environ)}))
        """
    )
    with tempfile.TemporaryDirectory() as logs:
        os.environ["NBCLUSTER_TOKEN"] = "from-the-users-shell"
        try:
            proc = spawn([sys.executable, "-c", child], log_dir=Path(logs), log_name="child", credential="s3cr3t")
        finally:
            del os.environ["NBCLUSTER_TOKEN"]
        assert proc.wait(60) == 0, (Path(logs) / "child.err").read_text()
        out = json.loads((Path(logs) / "child.out").read_text())
    assert out["token"] == "s3cr3t" and out["again"] is None
    assert out["before"]["NBCLUSTER_CREDENTIAL_FD"].isdigit() and "NBCLUSTER_CREDENTIAL_FD" not in out["after"]
    assert "NBCLUSTER_TOKEN" not in out["before"]
    assert "s3cr3t" not in json.dumps(out["before"])


def test_refusals_reach_the_user_as_one_actionable_error(cluster: Cluster, tmp_path: Path) -> None:
    """A wrong token: AuthenticationError naming the token file; a driver credential
    asking for an admin action: PermissionDeniedError saying what to use instead."""
    from nbcluster.autoscaler import set_worker_bounds
    from nbcluster.exceptions import AuthenticationError, PermissionDeniedError

    token, driver = _secrets(cluster)
    wrong = tmp_path / "wrong"
    wrong.write_text("0" * 32)
    with pytest.raises(AuthenticationError, match="token file"):
        nbcluster.init(address=cluster.address, token_file=wrong)
    assert not nbcluster.is_initialized()
    scoped = tmp_path / "driver"
    scoped.write_text(driver)
    nbcluster.init(address=cluster.address, token_file=scoped)
    try:
        assert nbcluster.get(nbcluster.put(5)) == 5  # a driver credential drives
        with pytest.raises(PermissionDeniedError, match="needs the cluster token.*token file"):
            set_worker_bounds(0, 1)
    finally:
        nbcluster.shutdown()
