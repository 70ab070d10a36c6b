"""A stopped cluster leaves nothing in /dev/shm: the last store to go removes this
user's default shared-memory root; a root the user named stays."""

from __future__ import annotations

import os
from pathlib import Path

from nbcluster.runtime import envvars
from nbcluster.runtime import session as sess

from ..conftest import run_python


def test_the_last_store_removes_the_default_root(tmp_path: Path, monkeypatch) -> None:
    root = tmp_path / "nbcluster-shm"
    monkeypatch.setattr(sess, "_default_shm_root", lambda: root)
    monkeypatch.delenv(envvars.SHM_DIR)
    first, second = sess.store_dir(b"\x01" * 16, create=True), sess.store_dir(b"\x02" * 16, create=True)
    (first / "arena").write_bytes(b"x")
    sess.drop_store_dir(first)
    assert not first.exists() and second.exists()  # another store is still there: the root stays
    sess.drop_store_dir(second)
    assert not root.exists()
    assert sess.store_dir(b"\x03" * 16, create=True).is_dir()  # made again when needed


def test_a_root_the_user_named_stays(tmp_path: Path, monkeypatch) -> None:
    named = tmp_path / "mine"
    monkeypatch.setenv(envvars.SHM_DIR, str(named))
    store = sess.store_dir(b"\x01" * 16, create=True)
    sess.drop_store_dir(store)
    assert not store.exists() and named.is_dir()


def test_an_embedded_cluster_leaves_no_shared_memory_behind() -> None:
    root = Path(f"/dev/shm/nbcluster-{os.geteuid()}")
    before = set(os.listdir(root)) if root.exists() else None
    proc = run_python(
        """
        import os, nbcluster
        from nbcluster.runtime.session import shm_root
        nbcluster.init(num_cpus=1)
        print("ROOT", shm_root(), sorted(os.listdir(shm_root())))
        print("VALUE", nbcluster.get(nbcluster.put(b"x" * 1_000_000))[:3])
        nbcluster.shutdown()
        """,
        env={envvars.SHM_DIR: ""},  # the default root, as users get it
    )
    assert f"ROOT {root} ['nbcluster-" in proc.stdout and "VALUE b'xxx'" in proc.stdout, proc.stdout
    if before is None:
        assert not root.exists(), os.listdir(root)
    else:  # the root was there before (another cluster of this user's may run): none of ours is left
        assert (set(os.listdir(root)) if root.exists() else set()) <= before
