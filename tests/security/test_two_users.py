"""Two users on one machine: neither can steer the other's drivers, and both run clusters.

The attacks are the ones reproduced against a shared ``/tmp/nbcluster``: a directory,
``session_latest`` or ``address.json`` of the second user's (``other_user``) that names
a listener of theirs. The listener, run as that user, records every connection and
every byte that reaches it; each attack asserts that nothing did (and a control
connection proves it would have seen one). Root's drivers are fresh interpreters
(``run_python``) with ``NBCLUSTER_TOKEN`` set to a secret, which would be the first
thing a connection sent.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ..cli_tools import nbcluster_command
from ..conftest import ROOT, run_python, wait_for
from .users import OtherUser, with_private_tmp

pytestmark = pytest.mark.slow

SECRET = "root-secret-token-0123456789abcdef"
#: A planted session's name sorts after every real one: newest, so first in a scan.
PLANTED = "session_9999-12-31_23-59-59_999999_1"

LISTENER = r"""
import json, os, select, socket, sys
tcp = socket.socket()
tcp.bind(("127.0.0.1", 0))
tcp.listen()
unix = socket.socket(socket.AF_UNIX)
unix.bind("\0" + NAME)
unix.listen()
print(json.dumps({"port": tcp.getsockname()[1], "pid": os.getpid()}), flush=True)
conns, received, accepted = [], b"", 0

def serve(timeout):
    global received, accepted
    watched = [tcp, unix, *conns] + ([sys.stdin] if timeout is None else [])
    ready, _, _ = select.select(watched, [], [], timeout)
    for s in ready:
        if s in (tcp, unix):
            conns.append(s.accept()[0])
            accepted += 1
        elif s is not sys.stdin:
            data = s.recv(65536)
            received += data
            if not data:
                conns.remove(s)
                s.close()
    return ready

while sys.stdin not in serve(None):  # until the test closes our stdin
    pass
while serve(0.2):  # what had arrived by then
    pass
print(json.dumps({"accepted": accepted, "received": received.decode(errors="replace")}), flush=True)
"""


class Listener:
    """A TCP and an abstract Unix socket of the other user's, recording what reaches them."""

    def __init__(self, user: OtherUser, tag: str) -> None:
        name = f"nbc-sec-{os.getpid()}-{tag}"
        self.proc = user.spawn_python(LISTENER.replace("NAME", repr(name)))
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            pytest.fail(f"the listener did not start: {self.proc.communicate()[1]}")
        first = json.loads(line)
        self.pid = first["pid"]
        self.address = f"127.0.0.1:{first['port']}"
        self.endpoint = f"unix-abstract:{name}"

    def control(self) -> None:
        """Connect and send as a driver would: the listener must see this."""
        host, port = self.address.split(":")
        with socket.create_connection((host, int(port)), timeout=5) as sock:
            sock.sendall(b"control")

    def finish(self) -> dict[str, Any]:
        """Stop it; what reached it."""
        out, err = self.proc.communicate(timeout=30)
        assert self.proc.returncode == 0, err
        return json.loads(out.strip().splitlines()[-1])


@pytest.fixture
def listener(other_user: OtherUser, request: pytest.FixtureRequest) -> Iterator[Listener]:
    """Nothing may reach it during the test; at its end a control connection must."""
    made = Listener(other_user, request.node.name[-40:].replace("[", "-").replace("]", ""))
    try:
        yield made
        made.control()
        reached = made.finish()
        assert reached == {"accepted": 1, "received": "control"}, f"not just the control: {reached}"
    finally:
        if made.proc.poll() is None:
            made.proc.kill()
            made.proc.communicate()


def plant(root: Path, listener: Listener, owner: OtherUser | None, *, name: str = PLANTED,
          gcs_address: str | None = None, link: bool = True) -> Path:
    """A head's session in ``root`` (and ``session_latest`` to it) naming ``listener``,
    owned by ``owner`` (None: left root's)."""
    session = root / name
    session.mkdir(mode=0o700)
    info = {"role": "head", "head_pid": listener.pid, "local_endpoint": listener.endpoint,
            "gcs_address": gcs_address or listener.address, "jobs_address": listener.address,
            "node_id": "ab" * 16}
    (session / "address.json").write_text(json.dumps(info))
    (session / "token").write_text("the-planters-token")
    if link:
        (root / "session_latest").symlink_to(name)
    if owner is not None:
        for path in [session, *session.iterdir()] + ([root / "session_latest"] if link else []):
            os.lchown(path, owner.uid, owner.gid)
    return session


DRIVER = """
import json, os, nbcluster
try:
    info = nbcluster.init(address=ADDRESS)
except (nbcluster.exceptions.InsecurePathError, nbcluster.exceptions.ClusterConnectionError) as exc:
    print(json.dumps({"refused": type(exc).__name__, "message": str(exc)}))
else:
    @nbcluster.remote
    def whoami():
        return os.getuid()
    print(json.dumps({"session_dir": info.session_dir, "uid": nbcluster.get(whoami.remote())}))
    nbcluster.shutdown()
"""


def drive(address: str | None, env: dict[str, str], timeout: float = 60.0) -> tuple[dict[str, Any], str]:
    """A root driver's ``init(address=address)`` (None: start a cluster): what it did, its stderr."""
    proc = run_python(DRIVER.replace("ADDRESS", repr(address)), env={"NBCLUSTER_TOKEN": SECRET, **env},
                      timeout=timeout)
    return json.loads(proc.stdout.strip().splitlines()[-1]), proc.stderr


def status(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([nbcluster_command(), "status"], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "NBCLUSTER_TOKEN": SECRET, **env})


@pytest.fixture
def root_dir() -> Iterator[Path]:
    """A runtime directory of root's (0700), empty, for one test."""
    path = Path(tempfile.mkdtemp(prefix="sec-", dir=os.environ["NBCLUSTER_TEMP_DIR"]))
    try:
        yield path
    finally:  # (an embedded cluster's head may be removing its session at the same time)
        shutil.rmtree(path, ignore_errors=True)


# -- (a) the runtime directory is another user's ------------------------------------
def test_a_runtime_dir_another_user_made_first_is_refused(other_user, listener):
    theirs = Path(f"/tmp/nbc-sec-{os.getpid()}-theirs")
    other_user.python(f"import os; os.umask(0); os.mkdir({str(theirs)!r}, 0o755)")
    try:
        plant(theirs, listener, other_user)
        env = {"NBCLUSTER_TEMP_DIR": str(theirs)}
        for address in ("auto", None):  # attach to "the newest cluster", or start one
            outcome, _ = drive(address, env)
            assert outcome["refused"] == "InsecurePathError", outcome
            message = outcome["message"]
            assert message.startswith(f"refusing to use {theirs}: another user owns it"), message
            assert f"owner uid {other_user.uid} ({other_user.name}), mode 0755" in message
            assert "Remove it, or set NBCLUSTER_TEMP_DIR to a directory of your own" in message
        shown = status(env)
        assert shown.returncode == 1, shown
        assert f"refusing to use {theirs}: another user owns it" in shown.stderr, shown
        # Root made nothing there.
        assert sorted(p.name for p in theirs.iterdir()) == [PLANTED, "session_latest"]
    finally:
        shutil.rmtree(theirs)


IN_PRIVATE_TMP = """
import json, subprocess, sys
spec = json.loads(sys.argv[1])
subprocess.run(spec["other"], env=spec["other_env"], cwd="/", check=True)
for argv in spec["root"]:
    proc = subprocess.run(argv, env=spec["root_env"], capture_output=True, text=True)
    print(json.dumps({"code": proc.returncode, "stdout": proc.stdout, "stderr": proc.stderr}), flush=True)
"""


@pytest.mark.parametrize("taken", ["/tmp/nbcluster-0", "/dev/shm/nbcluster-0"])
def test_the_default_roots_made_first_by_another_user_are_refused(other_user, taken):
    """As on a machine where the other user was first: root's default roots, in a /tmp
    and /dev/shm of this test's own (see ``with_private_tmp``)."""
    root_env = {k: v for k, v in os.environ.items()
                if k not in ("NBCLUSTER_TEMP_DIR", "NBCLUSTER_SHM_DIR", "XDG_RUNTIME_DIR")}
    spec = {
        "other": other_user.python_argv(f"import os; os.umask(0); os.mkdir({taken!r}, 0o777)"),
        "other_env": other_user.env({"HOME": "/"}),
        "root": [[sys.executable, "-c", DRIVER.replace("ADDRESS", "None")], [nbcluster_command(), "status"]],
        "root_env": root_env,
    }
    proc = subprocess.run(with_private_tmp([sys.executable, "-c", IN_PRIVATE_TMP, json.dumps(spec)]),
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    driver, shown = (json.loads(line) for line in proc.stdout.strip().splitlines())
    outcome = json.loads(driver["stdout"].strip().splitlines()[-1])
    assert outcome["refused"] == "InsecurePathError", (outcome, driver["stderr"])
    assert outcome["message"].startswith(f"refusing to use {taken}: another user owns it"), outcome
    assert f"owner uid {other_user.uid} ({other_user.name}), mode 0777" in outcome["message"]
    if taken.startswith("/tmp"):
        assert shown["code"] == 1 and f"refusing to use {taken}" in shown["stderr"], shown
    assert not Path(taken).exists() or os.lstat(taken).st_uid != other_user.uid  # the host's are untouched


# -- (b) a session and session_latest of another user's in root's runtime directory ---
def test_a_planted_session_latest_is_refused_and_a_planted_session_skipped(other_user, listener, root_dir):
    planted = plant(root_dir, listener, other_user)
    env = {"NBCLUSTER_TEMP_DIR": str(root_dir)}
    outcome, _ = drive("auto", env)
    assert outcome["refused"] == "InsecurePathError", outcome
    assert outcome["message"].startswith(f"refusing to use {root_dir}/session_latest: another user owns it")
    shown = status(env)
    assert shown.returncode == 1 and f"{root_dir}/session_latest: another user owns it" in shown.stderr, shown

    (root_dir / "session_latest").unlink()  # the session alone: a scan passes over it, saying so
    outcome, stderr = drive("auto", env)
    assert outcome["refused"] == "ClusterConnectionError", outcome
    assert "No running nbcluster cluster" in outcome["message"], outcome
    assert f"skipped {planted}: another user owns it" in stderr, stderr
    outcome, stderr = drive(listener.address, env)  # by the address it claims
    assert outcome["refused"] == "ClusterConnectionError", outcome
    assert outcome["message"].startswith(f"No node of the cluster at {listener.address} runs on this machine")


def test_a_planted_session_naming_roots_real_head_does_not_get_roots_token(other_user, listener, root_dir,
                                                                           monkeypatch, start_cluster):
    """The reproduced token theft: a newer session claiming the address of root's head,
    with the planter's socket as its local endpoint."""
    monkeypatch.setenv("NBCLUSTER_TEMP_DIR", str(root_dir))
    info = start_cluster(num_cpus=1)
    token = (Path(info.session_dir) / "token").read_text()
    planted = plant(root_dir, listener, other_user, gcs_address=info.address, link=False)
    env = {"NBCLUSTER_TEMP_DIR": str(root_dir), "NBCLUSTER_TOKEN": token}
    outcome, stderr = drive(info.address, env)  # a scan of the sessions for that address
    assert outcome == {"session_dir": info.session_dir, "uid": 0}, (outcome, stderr)
    assert f"skipped {planted}: another user owns it" in stderr, stderr
    outcome, stderr = drive("auto", env)  # session_latest: root's own
    assert outcome == {"session_dir": info.session_dir, "uid": 0}, (outcome, stderr)
    shutil.rmtree(planted)


# -- (c) a session or address.json others can write ------------------------------------
@pytest.mark.parametrize("loose", ["session dir", "address.json"])
def test_a_session_others_can_write_is_refused(listener, root_dir, loose):
    session = plant(root_dir, listener, None)
    if loose == "session dir":
        os.chmod(session, 0o777)
        bad, mode = session, "0777"
    else:
        os.chmod(session / "address.json", 0o666)
        bad, mode = session / "address.json", "0666"
    env = {"NBCLUSTER_TEMP_DIR": str(root_dir)}
    outcome, _ = drive("auto", env)
    assert outcome["refused"] == "InsecurePathError", outcome
    expected = f"refusing to use {bad}: group or others can write it (owner uid 0 (root), mode {mode})"
    assert outcome["message"].startswith(expected), outcome
    (root_dir / "session_latest").unlink()
    outcome, stderr = drive("auto", env)
    assert outcome["refused"] == "ClusterConnectionError", outcome
    assert f"skipped {bad}: group or others can write it" in stderr, stderr


# -- (d) the shared-memory directory is another user's -----------------------------------
def test_a_shm_dir_another_user_made_first_is_refused(other_user, root_dir):
    theirs = Path(f"/dev/shm/nbc-sec-{os.getpid()}-theirs")
    other_user.python(f"import os; os.umask(0); os.mkdir({str(theirs)!r}, 0o777)")
    try:
        env = {"NBCLUSTER_TEMP_DIR": str(root_dir), "NBCLUSTER_SHM_DIR": str(theirs)}
        outcome, _ = drive(None, env)
        assert outcome["refused"] == "InsecurePathError", outcome
        assert outcome["message"].startswith(f"refusing to use {theirs}: another user owns it"), outcome
        assert "mode 0777" in outcome["message"] and "set NBCLUSTER_SHM_DIR" in outcome["message"]
        started = subprocess.run([nbcluster_command(), "start", "--head", "--port", "0"], capture_output=True,
                                 text=True, timeout=60, env={**os.environ, **env})
        assert started.returncode == 1 and f"refusing to use {theirs}" in started.stderr, started
        assert list(theirs.iterdir()) == [] and list(root_dir.iterdir()) == []  # no store, no session made
    finally:
        shutil.rmtree(theirs)


# -- (e) two users side by side --------------------------------------------------------
OTHERS_CLUSTER = """
import json, os, sys, nbcluster
info = nbcluster.init(num_cpus=1)

@nbcluster.remote
def whoami():
    return os.getuid()

print(json.dumps({"session_dir": info.session_dir, "uid": nbcluster.get(whoami.remote())}), flush=True)
sys.stdin.read()  # until the test is done with it
nbcluster.shutdown()
"""


def test_two_users_each_run_and_find_their_own_cluster(other_user, start_cluster):
    import nbcluster

    mine = start_cluster(num_cpus=1)

    @nbcluster.remote
    def whoami() -> int:
        return os.getuid()

    assert nbcluster.get(whoami.remote()) == 0
    theirs = other_user.spawn_python(OTHERS_CLUSTER)
    try:
        assert theirs.stdout is not None
        line = theirs.stdout.readline()
        assert line, theirs.communicate()[1]
        started = json.loads(line)
        assert started["uid"] == other_user.uid
        assert Path(started["session_dir"]).parent == other_user.temp_root
        for path in (other_user.temp_root, other_user.shm_root):
            st = os.lstat(path)
            assert (st.st_uid, st.st_mode & 0o7777) == (other_user.uid, 0o700), path
        found = other_user.python(DRIVER.replace("ADDRESS", repr("auto")))
        assert json.loads(found.stdout.strip().splitlines()[-1]) == started
        assert nbcluster.get(whoami.remote()) == 0  # root's cluster, used while theirs runs
        outcome, _ = drive("auto", {"NBCLUSTER_TOKEN": ""})  # the token of the session it finds
        assert outcome == {"session_dir": mine.session_dir, "uid": 0}
    finally:
        _, err = theirs.communicate(timeout=60)  # their stdin closes: they stop their cluster
    assert theirs.returncode == 0, err
    # Their store freed (and their default root with it, once no store is left there).
    wait_for(lambda: not other_user.shm_root.exists() or not any(other_user.shm_root.iterdir()),
             message="their store freed")


# -- (f) XDG_RUNTIME_DIR ------------------------------------------------------------------
def test_sessions_go_to_xdg_runtime_dir_when_it_is_the_users(root_dir, other_user):
    xdg = root_dir / "run-user-0"
    xdg.mkdir(mode=0o700)
    env = {"XDG_RUNTIME_DIR": str(xdg), "NBCLUSTER_TEMP_DIR": ""}
    outcome, _ = drive(None, env)
    assert Path(outcome["session_dir"]).parent == xdg / "nbcluster" and outcome["uid"] == 0
    assert (xdg / "nbcluster").stat().st_mode & 0o7777 == 0o700
    # The other user's XDG_RUNTIME_DIR, as root would see it after `su`: not used.
    theirs = Path(other_user.home)
    proc = run_python("from nbcluster.runtime.session import temp_root; print(temp_root())",
                      env={"XDG_RUNTIME_DIR": str(theirs), "NBCLUSTER_TEMP_DIR": ""})
    assert proc.stdout.strip() == f"/tmp/nbcluster-{os.geteuid()}"
