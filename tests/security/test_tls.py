"""A cluster with TLS on this machine (``Cluster(..._tls=True)``): what works with the
token file, and what is refused without the right CA — on gRPC, the jobs API and the
certificate issuing that node managers use."""

from __future__ import annotations

import asyncio
import os
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

import nbcluster
from nbcluster.cluster_utils import Cluster
from nbcluster.exceptions import ClusterConnectionError
from nbcluster.job_submission import JobSubmissionClient
from nbcluster.runtime import credentials, tls
from nbcluster.runtime.protocol import common_pb2, gcs_pb2
from nbcluster.runtime.transport import dial, methods
from nbcluster.runtime.transport.errors import ConnectionLost, RemoteError

from ..conftest import two_nodes, wait_for


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with two_nodes(_tls=True) as c:
        yield c


def _session(cluster: Cluster):
    return cluster.head_node._handle.session


def _addresses(cluster: Cluster) -> dict[str, str]:
    return _session(cluster).read_address()


def test_every_node_serves_tls_and_work_crosses_nodes(cluster: Cluster) -> None:
    session = _session(cluster)
    assert session.read_ca().startswith(b"-----BEGIN CERTIFICATE-----")
    worker = cluster.worker_nodes[0]._handle.session
    assert worker.read_ca() == session.read_ca()  # the joining node pinned the head's CA
    nbcluster.init(address=cluster.address)
    try:
        @nbcluster.remote(resources={"other": 0.1})
        def across(blob):
            return len(blob), nbcluster.get_runtime_context().get_node_id()

        ref = nbcluster.put(b"x" * 2_000_000)
        assert nbcluster.get(across.remote(ref), timeout=60) == (2_000_000, cluster.worker_nodes[0].node_id)
    finally:
        nbcluster.shutdown()
    log = next(worker.logs.glob("node-*.log")).read_text()
    assert "got its TLS certificate from the head" in log


def test_a_plaintext_grpc_client_gets_no_answer(cluster: Cluster) -> None:
    with grpc.insecure_channel(_addresses(cluster)["gcs_address"]) as channel:
        method = methods.Gcs.GetClusterInfo
        call = channel.unary_unary(method.path, request_serializer=method.request.SerializeToString,
                                   response_deserializer=method.reply.FromString)
        with pytest.raises(grpc.RpcError) as info:
            call(gcs_pb2.GetClusterInfoRequest(), metadata=(("nbcluster-token", cluster.head_node._handle.token),),
                 timeout=5)
        assert info.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


def test_a_client_pinning_another_ca_is_refused(cluster: Cluster) -> None:
    token = cluster.head_node._handle.token
    other_ca, _ = tls.make_ca("someone else")
    impostor = "impostor-" + token  # a token of its own, trusted with the wrong CA
    credentials.trust(impostor, other_ca)
    with pytest.raises(ConnectionLost, match=r"the TLS handshake failed \(CERTIFICATE_VERIFY_FAILED"):
        asyncio.run(_dial(_addresses(cluster)["gcs_address"], impostor))


def test_the_cli_without_the_ca_says_to_use_the_token_file(cluster: Cluster, tmp_path: Path) -> None:
    token = cluster.head_node._handle.token
    env = {**os.environ, "NBCLUSTER_TOKEN": token, "NBCLUSTER_TEMP_DIR": str(tmp_path)}
    proc = subprocess.run(["nbcluster", "status", "--address", cluster.address], capture_output=True, text=True,
                          env=env, timeout=120)
    assert proc.returncode != 0
    assert "uses TLS, use its token file" in proc.stderr, proc.stderr
    copy = tmp_path / "token-copy"
    copy.write_bytes(_session(cluster).token_file.read_bytes())
    env.pop("NBCLUSTER_TOKEN")
    proc = subprocess.run(["nbcluster", "status", "--address", cluster.address, "--token-file", str(copy)],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0 and "2 node" in proc.stdout, proc.stdout + proc.stderr


def test_the_jobs_api_is_https_and_verified(cluster: Cluster, tmp_path: Path) -> None:
    jobs = _addresses(cluster)["jobs_address"]
    assert jobs.startswith("https://"), jobs
    token = cluster.head_node._handle.token
    client = JobSubmissionClient(jobs, token=token)
    job = client.submit_job(entrypoint="echo over-https")
    wait_for(lambda: client.get_job_status(job).is_terminal(), timeout=60, message="the job to end")
    assert "over-https" in client.get_job_logs(job)
    # Plain HTTP to the TLS port gets no answer; a client trusting another CA refuses.
    with pytest.raises((urllib.error.URLError, ConnectionError)):
        urllib.request.urlopen(jobs.replace("https://", "http://") + "/api/version", timeout=10).close()
    other_ca, _ = tls.make_ca("someone else")
    (tmp_path / "other.pem").write_bytes(other_ca)
    with pytest.raises(ClusterConnectionError, match="CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
        JobSubmissionClient(jobs, token=token, verify=str(tmp_path / "other.pem")).list_jobs()


def test_certificates_are_issued_only_for_the_cluster_token(cluster: Cluster) -> None:
    token = cluster.head_node._handle.token
    gcs = _addresses(cluster)["gcs_address"]
    csr, key = tls.make_csr(["10.1.2.3"])
    request = gcs_pb2.IssueCertificateRequest(csr_pem=csr)
    with pytest.raises(RemoteError) as info:
        asyncio.run(_dial(gcs, credentials.driver_token(token), methods.Gcs.IssueCertificate, request))
    assert info.value.code == common_pb2.ERROR_CODE_PERMISSION_DENIED
    reply = asyncio.run(_dial(gcs, token, methods.Gcs.IssueCertificate, request))
    assert reply.ca_pem == _session(cluster).read_ca()
    issued = tls.Identity(reply.ca_pem, reply.cert_pem, key)
    from .test_tls_unit import _handshake

    assert _handshake(issued, reply.ca_pem, "10.1.2.3") is None


async def _dial(address: str, token: str, method=None, request=None):
    conn = await dial(address, token, timeout=5)
    try:
        method = method or methods.Gcs.GetClusterInfo
        return await conn.call(method, request or gcs_pb2.GetClusterInfoRequest(), timeout=10)
    finally:
        conn.close()
