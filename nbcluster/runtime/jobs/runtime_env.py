"""Setting up a job's runtime_env packages in a process: fetch each ``gcs://`` package
from the GCS's package store once per node, unpack it into the node's session
(``runtime_resources/<name>/``, shared by the node's processes), and say where it is.
The working_dir is a job process's cwd and first on its ``sys.path``; py_modules
directories follow it on ``sys.path``."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nbcluster.runtime import envvars
from nbcluster.runtime.jobs import packages
from nbcluster.runtime.protocol import gcs_pb2
from nbcluster.runtime.transport import methods

#: Where a job's driver finds its runtime_env packages (set by its supervisor).
CACHE_DIR = "runtime_resources"


@dataclass(frozen=True)
class Prepared:
    """A job's runtime_env unpacked on this node: its working directory and modules."""

    working_dir: Path | None = None
    py_modules: list[Path] = field(default_factory=list)

    @property
    def sys_path(self) -> list[str]:
        """The paths to put first on ``sys.path``."""
        return [str(p) for p in ([self.working_dir] if self.working_dir else []) + self.py_modules]


async def _ensure(gcs: Any, uri: str, cache: Path) -> Path:
    _, name = packages.parse_uri(uri)
    dest = cache / name.removesuffix(".zip")
    if dest.exists():
        return dest
    reply = await gcs.call(methods.Gcs.KvGet, gcs_pb2.KvGetRequest(namespace=envvars.KV_PACKAGES, key=name.encode()))
    if not reply.found:
        raise packages.PackageError(f"package {uri} is not in the cluster's package store (was it deleted?)")
    if packages.package_uri(reply.value) != uri:
        raise packages.PackageError(f"package {uri}: its content does not match its URI")
    cache.mkdir(parents=True, exist_ok=True)
    return await asyncio.to_thread(packages.unpack, reply.value, dest)


async def prepare(gcs: Any, session_dir: Path, working_dir_uri: str, py_modules_uris: Sequence[str]) -> Prepared:
    """Unpack the packages on this node (once) and return where they are."""
    cache = session_dir / CACHE_DIR
    working_dir = await _ensure(gcs, working_dir_uri, cache) if working_dir_uri else None
    modules = [await _ensure(gcs, uri, cache) for uri in py_modules_uris]
    return Prepared(working_dir, modules)


def from_env() -> tuple[str, list[str], dict[str, str]]:
    """The runtime_env a submitted job's driver was started with (its supervisor says):
    working_dir URI, py_modules URIs, env_vars (for the job's tasks and actors too)."""
    raw = os.environ.get(envvars.RUNTIME_ENV)
    if not raw:
        return "", [], {}
    data = json.loads(raw)
    return data.get("working_dir_uri", ""), list(data.get("py_modules_uris", [])), dict(data.get("env_vars", {}))
