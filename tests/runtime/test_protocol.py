"""The protocol contract: generated modules up to date, and no server parses or
unpickles anything from a caller without the cluster token."""

from __future__ import annotations

import os
import pickle
import socket
import struct
import subprocess
import sys

import grpc
import pytest

import nbcluster
from nbcluster.runtime.core import worker_state
from nbcluster.runtime.objects.serialization import SerializedObject
from nbcluster.runtime.protocol import common_pb2, core_worker_pb2, gcs_pb2
from nbcluster.runtime.transport import framed, methods

from ..conftest import ROOT, node_stats, wait_for


def test_generated_modules_match_the_proto_files():
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_protos.py"), "--check"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_check_detects_a_stale_module(tmp_path):
    # Run the checker on a copy of the tree whose .proto gained a field.
    import shutil

    copy = tmp_path / "repo"
    shutil.copytree(ROOT / "nbcluster" / "runtime" / "protocol", copy / "nbcluster" / "runtime" / "protocol")
    shutil.copytree(ROOT / "scripts", copy / "scripts")
    proto = copy / "nbcluster" / "runtime" / "protocol" / "common.proto"
    proto.write_text(proto.read_text().replace("message Empty {}", "message Empty { int32 added = 1; }"))
    proc = subprocess.run(
        [sys.executable, str(copy / "scripts" / "gen_protos.py"), "--check"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 1 and "stale" in proc.stdout


class Evil:
    """Unpickling this writes a file: proof that a payload was unpickled."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (exec, (f"open({self.path!r}, 'w').write('unpickled')",))


def evil_payload(path) -> bytes:
    return SerializedObject(pickle.dumps(Evil(str(path))), [], []).to_bytes()


@pytest.fixture(scope="module")
def extra_node(cluster):
    """A second node manager serving gRPC, joined to the module's cluster."""
    core = worker_state.current
    session = core.session
    node_id = os.urandom(16)
    env = {**os.environ, "NBCLUSTER_TOKEN": core.token}
    log = open(session.logs / "extra-node.out", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "nbcluster.runtime.node", "--session-dir", str(session.dir),
         "--node-id", node_id.hex(), "--gcs-address", session.endpoint("gcs"),
         "--num-cpus", "0", "--grpc-port", "0"],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        def registered():
            return [n for n in nbcluster.nodes() if n["NodeID"] == node_id.hex() and n["Alive"]]

        (node,) = wait_for(registered, timeout=30, message="the second node manager to join")
        yield node
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def grpc_targets(extra_node) -> list[str]:
    info = worker_state.current.session.read_address()
    return [info["gcs_address"], f"127.0.0.1:{extra_node['NodeManagerPort']}"]


@pytest.mark.parametrize("metadata", [(), (("nbcluster-token", "wrong"),)], ids=["no-token", "wrong-token"])
def test_grpc_without_token_is_refused_and_payload_never_unpickled(extra_node, tmp_path, metadata):
    marker = tmp_path / "unpickled"
    payload = evil_payload(marker)
    # A request body that would reach pickle if anything parsed it: a KV value, a
    # task's arguments, an object-creation request.
    bodies = {
        "/nbcluster.Gcs/KvPut": gcs_pb2.KvPutRequest(key=b"k", value=payload).SerializeToString(),
        "/nbcluster.Gcs/GetClusterInfo": b"",
        "/nbcluster.NodeManager/RequestWorkerLease": payload,
        "/nbcluster.NodeManager/CreateObject": payload,
        "/nbcluster.CoreWorker/PushTasks": core_worker_pb2.PushTasksRequest(
            tasks=[common_pb2.TaskSpec(args=common_pb2.ObjectPayload(data=payload))]
        ).SerializeToString(),
    }
    for target in grpc_targets(extra_node):
        with grpc.insecure_channel(target) as channel:
            for path, body in bodies.items():
                call = channel.unary_unary(path, request_serializer=None, response_deserializer=None)
                with pytest.raises(grpc.RpcError) as info:
                    call(body, metadata=metadata, timeout=10)
                assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED, (target, path, info.value)
    assert not marker.exists()
    assert worker_state.current.run_sync(
        worker_state.current.gcs.call(methods.Gcs.KvGet, gcs_pb2.KvGetRequest(key=b"k"))
    ).found is False


def test_grpc_with_token_is_served(extra_node):
    token = worker_state.current.token
    for target in grpc_targets(extra_node):
        with grpc.insecure_channel(target) as channel:
            if target.endswith(str(extra_node["NodeManagerPort"])):
                method = methods.NodeManager.GetNodeStats
                from nbcluster.runtime.protocol import node_manager_pb2 as request_module

                request = request_module.GetNodeStatsRequest()
            else:
                method, request = methods.Gcs.GetClusterInfo, gcs_pb2.GetClusterInfoRequest()
            call = channel.unary_unary(method.path, request_serializer=method.request.SerializeToString,
                                       response_deserializer=method.reply.FromString)
            reply = call(request, metadata=(("nbcluster-token", token),), timeout=10)
            assert reply.ByteSize() > 0


def _raw_frames(endpoint: str, frames: list[bytes]) -> bytes:
    """Send raw bytes to a framed endpoint; return what comes back before it closes."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(framed.parse_endpoint(endpoint))
        for frame in frames:
            try:
                sock.sendall(frame)
            except (BrokenPipeError, ConnectionResetError):
                break  # the server already refused and closed
        received = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
    return received


def _frame(kind: int, method: int, payload: bytes) -> bytes:
    return framed.HEADER.pack(len(payload), kind, 1, method) + payload


def _hello(token: str) -> bytes:
    body = struct.pack("<H", len(token)) + token.encode() + common_pb2.Hello(protocol="x").SerializeToString()
    return _frame(framed.HELLO, 0, body)


def test_framed_carrier_refuses_bad_token_before_parsing(cluster, tmp_path):
    marker = tmp_path / "unpickled"

    @nbcluster.remote
    def ping():
        return 1

    assert nbcluster.get(ping.remote()) == 1  # a worker is up
    # One that has connected (another may still be starting, at its low priority).
    worker = next(w for w in node_stats().workers if w.state != "STARTING")
    endpoint = worker_state.current.session.endpoint(f"w-{worker.worker_id.hex()[:16]}")
    push = core_worker_pb2.PushTasksRequest(
        tasks=[common_pb2.TaskSpec(task_id=os.urandom(16), num_returns=1,
                                        args=common_pb2.ObjectPayload(data=evil_payload(marker)))]
    ).SerializeToString()
    push_frame = _frame(framed.REQUEST, methods.CoreWorker.PushTasks.index, push)
    for frames in ([push_frame], [_hello("wrong-token"), push_frame], [_hello(""), push_frame]):
        reply = _raw_frames(endpoint, frames)
        if reply:
            size, kind, _, _ = framed.HEADER.unpack_from(reply)
            assert kind == framed.ERROR
            err = common_pb2.RpcError.FromString(reply[framed.HEADER_SIZE:framed.HEADER_SIZE + size])
            assert err.code in (common_pb2.ERROR_CODE_UNAUTHENTICATED,)
    assert not marker.exists()
    # The worker survived the attempts and still runs tasks.
    assert nbcluster.get(ping.remote()) == 1


@pytest.mark.parametrize("how", ["timeout", "cancelled"])
def test_a_handshake_that_does_not_finish_closes_its_socket(how: str) -> None:
    """A peer that accepts but never answers the hello: the dial gives up (its timeout,
    or the caller cancelling it, as a shutdown does) and closes the socket, so the peer
    sees the end instead of a connection left open until garbage collection."""
    import asyncio

    async def scenario() -> bytes:
        ended = asyncio.get_running_loop().create_future()
        hello = asyncio.Event()

        async def silent_peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while await reader.read(65536):  # take the hello, answer nothing
                hello.set()
            ended.set_result(b"eof")
            writer.close()

        name = f"nbc-test-silent-{os.getpid()}-{how}"
        server = await asyncio.start_unix_server(silent_peer, path="\0" + name)
        try:
            dialing = asyncio.ensure_future(framed.connect(
                f"unix-abstract:{name}", "token", framed.Dispatcher(), common_pb2.Address(),
                timeout=0.3 if how == "timeout" else 30.0))
            if how == "timeout":
                with pytest.raises(framed.ConnectionLost, match="timed out"):
                    await dialing
            else:
                await asyncio.wait_for(hello.wait(), 10.0)  # the dial is in its handshake
                dialing.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await dialing
            return await asyncio.wait_for(ended, 5.0)
        finally:
            server.close()

    assert asyncio.run(scenario()) == b"eof"
