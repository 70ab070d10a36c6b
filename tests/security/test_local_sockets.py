"""Local sockets only their owner can use, attacked by a second real Unix user.

The runtime's local endpoints are abstract Unix sockets, which every user of the
machine can see (/proc/net/unix) and dial, and whose names anyone can bind once they
are free. Both ends check the peer's uid (SO_PEERCRED), so:

- another user who binds the name of a GCS that died gets the node manager's redials,
  but not one byte: no token;
- another user who dials the GCS, a node manager, its relay socket or a worker is
  dropped before a byte is read — while the same user's bad token gets an answer (the
  control that shows the probe would see one);
- session names carry a random tail, so a new session's socket names cannot be taken
  before its processes bind them.

The attacker is a stdlib-only script run by the system Python as that user.
"""

from __future__ import annotations

import json
import signal
import struct
import subprocess
from collections.abc import Iterator

import psutil
import pytest

from nbcluster.runtime.discovery import call_gcs
from nbcluster.runtime.launcher import start_local_cluster
from nbcluster.runtime.protocol import gcs_pb2
from nbcluster.runtime.transport import methods

from ..conftest import wait_for
from .users import OtherUser

#: Binds an abstract name once it is free, then records who connects and what they send.
SQUATTER = r"""
import json, socket, sys, time
name, wait_s, listen_s = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
deadline = time.monotonic() + wait_s
while True:
    try:
        sock.bind("\0" + name)
        break
    except OSError:
        if time.monotonic() > deadline:
            print(json.dumps({"bound": False})); sys.exit(0)
        time.sleep(0.002)
sock.listen(64)
print("BOUND", flush=True)
sock.settimeout(0.1)
conns, received = 0, b""
end = time.monotonic() + listen_s
while time.monotonic() < end:
    try:
        conn, _ = sock.accept()
    except socket.timeout:
        continue
    conns += 1
    conn.settimeout(1.0)
    try:
        while True:
            data = conn.recv(65536)
            if not data:
                break
            received += data
    except OSError:
        pass
    conn.close()
print(json.dumps({"bound": True, "connections": conns, "received": received.hex()}), flush=True)
"""

#: Dials abstract names, sends a HELLO frame with a made-up token, reports the answer.
PROBE = r"""
import json, socket, struct, sys
out = {}
for name in sys.argv[1:]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(5.0)
    try:
        sock.connect("\0" + name)
    except OSError as exc:
        out[name] = {"connected": False, "error": str(exc)}
        continue
    got, error = b"", ""
    try:
        token = b"not-the-token"
        body = struct.pack("<H", len(token)) + token
        sock.sendall(struct.pack("<IBIH", len(body), 1, 0, 0) + body)
        while True:
            data = sock.recv(65536)
            if not data:
                break
            got += data
    except OSError as exc:  # dropped: reset while sending or reading
        error = str(exc)
    finally:
        sock.close()
    out[name] = {"connected": True, "answer": len(got), "error": error}
print(json.dumps(out))
"""


@pytest.fixture
def head() -> Iterator:
    cluster = start_local_cluster(num_cpus=1, node_port=0)
    try:
        wait_for(lambda: cluster.session.address_file.exists(), timeout=30, message="the head to serve")
        # Until its node has registered: a GCS killed before that fails the node's start,
        # and the squatting test wants the node manager's redials of a running node.
        target = (cluster.gcs_endpoint, cluster.token)
        wait_for(lambda: call_gcs(target, methods.Gcs.GetAllNodes, gcs_pb2.GetAllNodesRequest()).nodes,
                 timeout=30, message="the head's node to join")
        yield cluster
    finally:
        cluster.stop()


def _name(endpoint: str) -> str:
    return endpoint.removeprefix("unix-abstract:")


def _abstract_names(prefix: str) -> list[str]:
    names = []
    with open("/proc/net/unix") as f:
        for line in f.read().splitlines()[1:]:
            path = line.split()[-1] if len(line.split()) > 7 else ""
            if path.startswith("@" + prefix):
                names.append(path[1:])
    return sorted(set(names))


def test_another_user_squatting_a_dead_gcs_name_gets_no_token(head, other_user: OtherUser) -> None:
    gcs_name = _name(head.gcs_endpoint)
    squatter = other_user.spawn_script(SQUATTER, gcs_name, "20", "4")
    try:
        gcs = psutil.Process(head.procs[0].pid)
        gcs.send_signal(signal.SIGKILL)  # the GCS dies; its node manager redials its name
        gcs.wait(10)
        line = squatter.stdout.readline()
        assert line.strip() == "BOUND", line
        result = json.loads(squatter.stdout.readline())
    finally:
        squatter.kill()
        squatter.wait(10)
    assert result["connections"] >= 1, "the node manager never redialed: the test proves nothing"
    assert result["received"] == "", f"the squatter received {len(result['received']) // 2} bytes"
    log = next(head.session.logs.glob("node-*.log")).read_text()
    assert "held by another user" in log


def test_another_user_is_dropped_before_a_byte_is_read(head, other_user: OtherUser) -> None:
    wait_for(lambda: len(_abstract_names(f"nbcluster/{head.session.name}/")) >= 4, timeout=30,
             message="the head's sockets (GCS, node, relay, a worker)")
    names = _abstract_names(f"nbcluster/{head.session.name}/")
    assert any(n.endswith("/gcs") for n in names) and any(n.endswith("/relay") for n in names), names
    assert any("/w-" in n for n in names), names
    # The same user with a wrong token is answered (an ERROR frame, or the relay's close
    # after reading its preamble): the probe can tell an answer from a drop.
    mine = json.loads(subprocess.run(
        ["/usr/bin/python3", "-I", "-c", PROBE, *names], capture_output=True, text=True, timeout=60, check=True,
    ).stdout)
    theirs = json.loads(other_user.run_script(PROBE, *names).stdout)
    for name in names:
        assert theirs[name]["connected"], theirs[name]
        assert theirs[name]["answer"] == 0, (name, theirs[name])
    framed = [n for n in names if not n.endswith("/relay")]
    assert all(mine[n]["answer"] > 0 for n in framed), mine
    log = "".join(p.read_text() for p in head.session.logs.glob("*.log"))
    assert "refused a connection on the local socket" in log and "held by another user" in log


def test_session_socket_names_are_not_guessable() -> None:
    """Two sessions started in the same microsecond by the same pid still differ in
    a random tail: a socket name cannot be bound before its session exists."""
    from nbcluster.runtime import session as sessions

    made = []
    try:
        for _ in range(2):
            made.append(sessions.new_session(link_latest=False)[0])
        tails = {s.name.rsplit("_", 1)[1] for s in made}
        assert len(tails) == 2 and all(len(t) == 8 for t in tails)
        assert made[0].endpoint("gcs") != made[1].endpoint("gcs")
    finally:
        for s in made:
            sessions.remove_session(s)


def test_hello_frame_of_the_probe_matches_the_carrier() -> None:
    """The probe's hand-made HELLO is the framed carrier's header: if the framing
    changed, the 'answered' control above would test nothing."""
    from nbcluster.runtime.transport import framed

    assert framed.HEADER.format == "<IBIH" and framed.HELLO == 1
    assert struct.calcsize("<IBIH") == framed.HEADER_SIZE
