"""What a starting server does with the clusters on Kubernetes the last one left (the
Kubernetes API and the heads stubbed: no processes): one whose head answers is
re-attached, one whose head does not stays listed as unreachable (not deleted: its pod
may be rescheduled), one the last server was still deploying is deleted, one that never
made an object is only forgotten; DELETE deletes the objects of an unreachable one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from nbcluster import state
from nbcluster.server_ext import kubernetes, restore
from nbcluster.server_ext.manager import ClusterManager
from nbcluster.server_ext.models import ClusterRecord
from nbcluster.server_ext.registry import Registry


def _record(registry: Registry, name: str, *, starting: bool = False, token: bool = True) -> ClusterRecord:
    token_file = registry.store_token(name, f"token-{name}") if token else registry.token_path(name)
    spec = {"name": name, "namespace": "ml", "image": "nbcluster:1", "workers_max": 2, "worker_cpus": 1.0,
            "timeout": 300.0}
    return ClusterRecord(name, f"{name}-head.ml.svc:6380", str(token_file), "created", spec, created=1.0,
                         starting=starting, provider="kubernetes")


async def test_a_restarted_server_keeps_what_runs_and_deletes_what_no_one_finishes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    registry = Registry(tmp_path / "runtime")
    registry.save([_record(registry, "up"), _record(registry, "down"), _record(registry, "half", starting=True),
                   _record(registry, "never", starting=True, token=False), _record(registry, "lost", token=False)])
    deleted: list[str] = []
    monkeypatch.setattr(kubernetes, "delete", lambda record: deleted.append(record.name))
    monkeypatch.setattr(kubernetes, "running", lambda record: record.name == "up")
    monkeypatch.setattr(restore, "listening", lambda address: address.startswith("up-"))

    def head(*, address: str, token: str) -> Any:
        assert (address, token) == ("up-head.ml.svc:6380", "token-up")
        return object()

    monkeypatch.setattr(state, "get_head_state", head)
    manager = ClusterManager(tmp_path / "runtime")
    manager.load()
    try:
        assert sorted(deleted) == ["half", "lost"]
        assert sorted(manager.names()) == ["down", "up"]
        assert {n: e.status for n, e in manager._entries.items()} == {"up": "running", "down": "unreachable"}
        listed = json.loads(registry.discovery_path.read_text())["clusters"]
        assert [c["name"] for c in listed] == ["up"]  # kernels do not pick an unreachable one
        down = await manager.get("down")
        assert (down["status"], down["provider"]) == ("unreachable", "kubernetes")
        await manager.delete("down")
        assert deleted[-1] == "down" and sorted(manager.names()) == ["up"]
    finally:
        deleted.clear()
        await manager.shutdown()
    assert deleted == ["up"]  # the server stops: what it made goes
