"""The Jupyter side reads only files that are the user's alone: the server extension's
list of clusters (``%cluster connect NAME``), its registry, the token files they name,
and this machine's heads for the server's ``local`` list."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from pathlib import Path

import pytest

from nbcluster.exceptions import InsecurePathError
from nbcluster.runtime.discovery import read_token_file

LISTED = {"clusters": [{"name": "main", "address": "127.0.0.1:6380", "token_file": "/nowhere/token"}]}


@pytest.fixture
def runtime_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path))
    monkeypatch.delenv("NBCLUSTER_ADDRESS", raising=False)
    return tmp_path


def test_cluster_connect_refuses_a_discovery_file_that_is_not_private(runtime_dir, other_user):
    from IPython.core.error import UsageError

    from nbcluster.kernel_ext.magics import ClusterMagics, discovery_path

    path = discovery_path()
    path.write_text(json.dumps(LISTED))
    os.chmod(path, 0o600)
    assert ClusterMagics._resolve("main") == ("127.0.0.1:6380", "/nowhere/token")
    os.chmod(path, 0o622)
    with pytest.raises(UsageError, match=f"refusing to use {path}: group or others can write it .*mode 0622"):
        ClusterMagics._resolve("main")
    os.chmod(path, 0o600)
    os.chown(path, other_user.uid, -1)
    with pytest.raises(UsageError, match=f"{path}: another user owns it .*{other_user.name}.* Remove it; the "
                                         "Jupyter server writes it again"):
        ClusterMagics._resolve(None)
    path.unlink()
    (runtime_dir / "elsewhere.json").write_text(json.dumps(LISTED))
    path.symlink_to(runtime_dir / "elsewhere.json")
    with pytest.raises(UsageError, match="symbolic link"):
        ClusterMagics._resolve("main")


def test_token_files_nbcluster_wrote_must_be_private_those_the_user_names_need_not(tmp_path, other_user):
    token = tmp_path / "token"
    token.write_text("abc\n")
    os.chown(token, other_user.uid, -1)
    assert read_token_file(str(token)) == "abc"  # --token-file F: the user's choice
    with pytest.raises(InsecurePathError, match=f"{token}: another user owns it"):
        read_token_file(str(token), private=True)  # one the server listed


def test_the_server_ignores_a_registry_another_user_owns(tmp_path, other_user, caplog):
    from nbcluster.server_ext.models import ClusterRecord
    from nbcluster.server_ext.registry import Registry

    registry = Registry(tmp_path)
    registry.save([ClusterRecord("main", "127.0.0.1:6380", str(tmp_path / "t"), "attached")])
    assert [r.name for r in registry.load()] == ["main"]
    os.chown(registry.records_path, other_user.uid, -1)
    with caplog.at_level(logging.WARNING, logger="nbcluster.server_ext.registry"):
        assert registry.load() == []
    assert f"refusing to use {registry.records_path}: another user owns it" in caplog.text


def test_the_servers_local_list_refuses_a_root_another_user_owns(tmp_path, monkeypatch, other_user):
    from nbcluster.server_ext.manager import ClusterManager
    from nbcluster.server_ext.models import ClusterConflict

    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o755)
    os.chown(theirs, other_user.uid, -1)
    monkeypatch.setenv("NBCLUSTER_TEMP_DIR", str(theirs))

    async def local() -> None:
        manager = ClusterManager(tmp_path / "runtime")
        try:
            with pytest.raises(ClusterConflict, match=f"refusing to use {theirs}: another user owns it"):
                await manager.local()
        finally:
            await manager.shutdown()

    asyncio.run(local())
