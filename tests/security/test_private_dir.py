"""The one check every trusted path passes (``nbcluster.runtime.private_dir``), and
how the session module picks and follows its roots, without clusters. Paths of
another owner are made by ``chown`` to the second user (``other_user``)."""

from __future__ import annotations

import concurrent.futures
import logging
import os
import pickle
import pwd
from collections.abc import Iterator
from pathlib import Path

import pytest

from nbcluster.exceptions import InsecurePathError, NbclusterError
from nbcluster.runtime import envvars
from nbcluster.runtime import private_dir as pd
from nbcluster.runtime import session as sess


@pytest.fixture
def umask0() -> Iterator[None]:
    """No umask: a mode nbcluster asks for is the mode it gets."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def made(path: Path, mode: int, uid: int | None = None, *, directory: bool = True) -> Path:
    if directory:
        path.mkdir()
    else:
        path.write_text("{}")
    os.chmod(path, mode)
    if uid is not None:
        os.chown(path, uid, -1)
    return path


@pytest.mark.parametrize("mode", [0o700, 0o755, 0o711, 0o1700])
def test_an_own_directory_nobody_else_can_write_passes(tmp_path, mode):
    path = made(tmp_path / "d", mode)
    assert pd.check_private(path).st_ino == path.stat().st_ino
    assert pd.is_private(path)


@pytest.mark.parametrize("mode", [0o600, 0o644, 0o400])
def test_an_own_file_nobody_else_can_write_passes(tmp_path, mode):
    path = made(tmp_path / "f", mode, directory=False)
    pd.check_private(path, pd.FILE)
    assert pd.read_private(path) == "{}"


@pytest.mark.parametrize("mode", [0o770, 0o707, 0o777, 0o1777, 0o2770])
def test_a_directory_group_or_others_can_write_is_refused(tmp_path, mode):
    path = made(tmp_path / "d", mode)
    with pytest.raises(InsecurePathError) as info:
        pd.check_private(path, fix="Remove it")
    assert info.value.path == str(path) and info.value.mode == mode and info.value.uid == os.geteuid()
    me = pwd.getpwuid(os.geteuid()).pw_name
    assert str(info.value) == (f"refusing to use {path}: group or others can write it "
                               f"(owner uid {os.geteuid()} ({me}), mode {mode:04o}). Remove it")


@pytest.mark.parametrize("mode", [0o620, 0o602, 0o666])
def test_a_file_group_or_others_can_write_is_refused(tmp_path, mode):
    path = made(tmp_path / "f", mode, directory=False)
    with pytest.raises(InsecurePathError, match="group or others can write it"):
        pd.read_private(path)


def test_another_users_directory_and_file_are_refused_naming_owner_and_mode(tmp_path, other_user):
    directory = made(tmp_path / "d", 0o700, other_user.uid)
    file = made(tmp_path / "f", 0o600, other_user.uid, directory=False)
    with pytest.raises(InsecurePathError) as info:
        pd.check_private(directory, fix="Remove it, or set NBCLUSTER_TEMP_DIR to a directory of your own")
    message = str(info.value)
    me = os.geteuid()
    assert message.startswith(f"refusing to use {directory}: another user owns it (you are uid {me})")
    assert f"owner uid {other_user.uid} ({other_user.name}), mode 0700" in message
    assert message.endswith("Remove it, or set NBCLUSTER_TEMP_DIR to a directory of your own")
    with pytest.raises(InsecurePathError, match=f"another user owns it .*owner uid {other_user.uid}"):
        pd.read_private(file)
    with pytest.raises(InsecurePathError, match="another user owns it"):
        pd.touch_private(file)
    assert not pd.is_private(directory)


def test_links_are_refused_in_place_of_a_directory_or_a_file(tmp_path):
    real_dir = made(tmp_path / "real", 0o700)
    real_file = made(tmp_path / "real.json", 0o600, directory=False)
    (tmp_path / "dlink").symlink_to(real_dir)
    (tmp_path / "flink").symlink_to(real_file)
    with pytest.raises(InsecurePathError, match="it is a symbolic link, where nbcluster expects a directory"):
        pd.check_private(tmp_path / "dlink")
    with pytest.raises(InsecurePathError, match="symbolic link, where nbcluster expects a regular file"):
        pd.read_private(tmp_path / "flink")  # not followed, even to a file of ours
    with pytest.raises(InsecurePathError, match="symbolic link"):
        pd.touch_private(tmp_path / "flink")
    with pytest.raises(InsecurePathError, match="not a regular file"):
        pd.read_private(real_dir)
    pd.check_private(tmp_path / "dlink", pd.LINK)  # a link of ours where a link is expected


def test_a_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "address.json"
    os.mkfifo(fifo, 0o600)
    with pytest.raises(InsecurePathError, match="not a regular file"):
        pd.read_private(fifo)


def test_a_missing_path_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        pd.check_private(tmp_path / "none")
    with pytest.raises(FileNotFoundError):
        pd.read_private(tmp_path / "none")
    assert pd.private_dir(tmp_path / "none", "") is None


def test_private_dir_makes_0700_with_parents(tmp_path, umask0):
    path = tmp_path / "a" / "b" / "root"
    assert pd.make_private_dir(path, "") == path
    assert path.stat().st_mode & 0o7777 == 0o700
    assert pd.make_private_dir(path, "") == path  # there already: checked, kept


def test_private_dir_tightens_an_own_directory_others_can_write(tmp_path, caplog):
    path = made(tmp_path / "root", 0o777)
    with caplog.at_level(logging.WARNING, logger="nbcluster.runtime.private_dir"):
        assert pd.private_dir(path, "") == path
    assert path.stat().st_mode & 0o7777 == 0o700
    assert "mode 0777" in caplog.text and "0700 now" in caplog.text


def test_private_dir_refuses_what_it_must_not_take_over(tmp_path, other_user):
    foreign = made(tmp_path / "foreign", 0o777, other_user.uid)
    with pytest.raises(InsecurePathError, match="another user owns it"):
        pd.make_private_dir(foreign, "")
    assert foreign.stat().st_mode & 0o7777 == 0o777  # not tightened: not ours
    (tmp_path / "link").symlink_to(made(tmp_path / "mine", 0o700))
    with pytest.raises(InsecurePathError, match="symbolic link"):
        pd.make_private_dir(tmp_path / "link", "")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    with pytest.raises(InsecurePathError, match="symbolic link"):
        pd.make_private_dir(tmp_path / "dangling", "")
    assert not (tmp_path / "nowhere").exists()
    with pytest.raises(InsecurePathError, match="not a directory"):
        pd.make_private_dir(made(tmp_path / "file", 0o600, directory=False), "")


def test_private_dir_made_by_someone_else_in_the_race_is_refused(tmp_path, other_user, monkeypatch):
    """The directory appears between our look and our mkdir: mkdir fails, the check refuses."""
    path = tmp_path / "root"
    real_mkdir = os.mkdir

    def racing_mkdir(target, mode=0o777, *args, **kwargs):
        if Path(target) == path and not path.exists():
            real_mkdir(path, 0o700)
            os.chown(path, other_user.uid, -1)
        return real_mkdir(target, mode, *args, **kwargs)

    monkeypatch.setattr(pd.os, "mkdir", racing_mkdir)
    with pytest.raises(InsecurePathError, match="another user owns it"):
        pd.make_private_dir(path, "")


def test_private_dir_in_concurrent_makers_all_agree(tmp_path):
    path = tmp_path / "root"
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        made_by = list(pool.map(lambda _: pd.make_private_dir(path, ""), range(8)))
    assert made_by == [path] * 8 and pd.is_private(path)


def test_write_private_is_0600_whatever_the_umask_and_replaces(tmp_path, umask0):
    path = tmp_path / "address.json"
    made(path, 0o666, directory=False)
    pd.write_private(path, '{"a": 1}')
    assert path.stat().st_mode & 0o7777 == 0o600 and pd.read_private(path) == '{"a": 1}'
    assert [p.name for p in tmp_path.iterdir()] == ["address.json"]  # no temp file left
    made_now = pd.touch_private(tmp_path / "gcs.db")
    assert made_now.stat().st_mode & 0o7777 == 0o600 and made_now.stat().st_size == 0


def test_private_entries_skip_what_is_not_private_with_one_warning_each(tmp_path, other_user, caplog):
    mine = made(tmp_path / "session_1", 0o700)
    made(tmp_path / "session_2", 0o700, other_user.uid)
    made(tmp_path / "session_3", 0o770)
    (tmp_path / "session_4").symlink_to(mine)
    (tmp_path / "session_latest").symlink_to("session_1")
    made(tmp_path / "other", 0o700)
    with caplog.at_level(logging.WARNING, logger="nbcluster.runtime.private_dir"):
        for _ in range(3):
            assert pd.private_entries(tmp_path, "session_*", "Remove it", links=("session_latest",)) == [mine]
    lines = caplog.text.strip().splitlines()
    assert len(lines) == 3, caplog.text
    assert any(f"skipped {tmp_path}/session_2: another user owns it" in line and "Remove it" in line
               for line in lines)
    assert any(f"skipped {tmp_path}/session_3: group or others can write it" in line for line in lines)
    assert any(f"skipped {tmp_path}/session_4: it is a symbolic link" in line for line in lines)


def test_the_error_is_an_nbcluster_error_not_an_os_error_and_pickles():
    exc = InsecurePathError("/tmp/x", "another user owns it", 1001, 0o755, "Remove it")
    assert isinstance(exc, NbclusterError) and not isinstance(exc, OSError)
    again = pickle.loads(pickle.dumps(exc))
    assert type(again) is InsecurePathError and str(again) == str(exc) and again.uid == 1001


# -- the roots ------------------------------------------------------------------------
@pytest.fixture
def no_root_env(monkeypatch) -> None:
    for name in (envvars.TEMP_DIR, envvars.SHM_DIR, envvars.XDG_RUNTIME_DIR):
        monkeypatch.delenv(name, raising=False)


def test_roots_default_to_per_user_paths(no_root_env):
    uid = os.geteuid()
    assert sess.temp_root() == Path(f"/tmp/nbcluster-{uid}")
    assert sess.shm_root() == Path(f"/dev/shm/nbcluster-{uid}")
    assert sess.store_dir(bytes(range(16))) == Path(f"/dev/shm/nbcluster-{uid}/nbcluster-0001020304050607")


def test_xdg_runtime_dir_is_used_only_when_it_is_private(no_root_env, tmp_path, monkeypatch, other_user):
    fallback = Path(f"/tmp/nbcluster-{os.geteuid()}")
    xdg = made(tmp_path / "run-user", 0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(xdg))
    assert sess.temp_root() == xdg / "nbcluster"
    for bad in (made(tmp_path / "theirs", 0o700, other_user.uid), made(tmp_path / "open", 0o777),
                tmp_path / "missing", "relative/dir", ""):
        monkeypatch.setenv("XDG_RUNTIME_DIR", str(bad))
        assert sess.temp_root() == fallback, bad
    (tmp_path / "link").symlink_to(xdg)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "link"))
    assert sess.temp_root() == fallback
    monkeypatch.setenv(envvars.TEMP_DIR, str(tmp_path / "override"))
    assert sess.temp_root() == tmp_path / "override"


@pytest.fixture
def root(tmp_path, monkeypatch) -> Path:
    """A temp root of this test's (NBCLUSTER_TEMP_DIR), made by nbcluster."""
    monkeypatch.setenv(envvars.TEMP_DIR, str(tmp_path / "root"))
    return pd.make_private_dir(sess.temp_root(), sess.TEMP_FIX)


def test_latest_session_follows_only_a_link_of_ours_to_a_name_in_the_root(root, other_user):
    assert sess.latest_session() is None
    mine = made(root / "session_1", 0o700)
    (root / "session_latest").symlink_to("session_1")
    assert sess.latest_session() == sess.Session(mine)

    os.lchown(root / "session_latest", other_user.uid, -1)
    with pytest.raises(InsecurePathError, match=f"session_latest: another user owns it .* {other_user.uid}"):
        sess.latest_session()

    for target in ("../elsewhere", str(mine), "session_1/../session_1", "..", "."):
        (root / "session_latest").unlink()
        (root / "session_latest").symlink_to(target)
        with pytest.raises(InsecurePathError, match="not at a session directory's name"):
            sess.latest_session()

    made(root / "session_2", 0o700, other_user.uid)
    (root / "session_latest").unlink()
    (root / "session_latest").symlink_to("session_2")
    with pytest.raises(InsecurePathError, match="session_2: another user owns it"):
        sess.latest_session()

    (root / "session_latest").unlink()
    (root / "session_latest").symlink_to("session_gone")
    assert sess.latest_session() is None  # a session that was removed


def test_a_root_that_is_not_private_is_refused_loudly(tmp_path, monkeypatch, other_user):
    theirs = made(tmp_path / "theirs", 0o755, other_user.uid)
    monkeypatch.setenv(envvars.TEMP_DIR, str(theirs))
    for call in (sess.latest_session, sess.sessions, sess.new_session):
        with pytest.raises(InsecurePathError, match=f"{theirs}: another user owns it.*NBCLUSTER_TEMP_DIR"):
            call()
    assert list(theirs.iterdir()) == []


def test_session_files_are_read_only_when_private(root, other_user):
    session = sess.Session(made(root / "session_1", 0o700))
    sess.write_json(session.address_file, {"role": "head"})
    assert session.read_address() == {"role": "head"}
    os.chmod(session.address_file, 0o666)
    with pytest.raises(InsecurePathError, match="address.json: group or others can write it"):
        session.read_address()
    os.chmod(session.address_file, 0o600)
    os.chmod(session.dir, 0o777)
    with pytest.raises(InsecurePathError, match="session_1: group or others can write it"):
        session.read_address()
    os.chmod(session.dir, 0o700)
    session.token_file.write_text("secret")
    os.chown(session.token_file, other_user.uid, -1)
    with pytest.raises(InsecurePathError, match="token: another user owns it"):
        session.read_token()
    with pytest.raises(InsecurePathError, match="gcs.db: another user owns it"):
        made(session.gcs_db, 0o600, other_user.uid, directory=False)
        session.private_file(session.gcs_db)
