"""Setting up a job's runtime environment's packages in a process: fetch each ``gcs://`` package
from the GCS's package store once per node, unpack it into the node's session
(``runtime_resources/<name>/``, shared by the node's processes), and say where it is.
The working_dir is a job process's cwd and first on its ``sys.path``; py_modules
directories follow it on ``sys.path``."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nbcluster.runtime import envvars
from nbcluster.runtime.runtime_env import packages
from nbcluster.runtime.runtime_env.spec import RuntimeEnv
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


async def upload(gcs: Any, uri: str, data: bytes) -> None:
    """Store a package in the GCS's package store under its name (its content's hash)."""
    _, name = packages.parse_uri(uri)
    await gcs.call(methods.Gcs.KvPut, gcs_pb2.KvPutRequest(namespace=envvars.KV_PACKAGES, key=name.encode(), value=data))


async def prepare(gcs: Any, session_dir: Path, env: RuntimeEnv) -> Prepared:
    """Unpack ``env``'s packages (URIs) on this node (once) and return where they are."""
    cache = session_dir / CACHE_DIR
    working_dir = await _ensure(gcs, env.working_dir, cache) if env.working_dir else None
    modules = [await _ensure(gcs, uri, cache) for uri in env.py_modules]
    return Prepared(working_dir, modules)


def from_env() -> RuntimeEnv:
    """The runtime environment a submitted job's driver was started with (its
    supervisor sets it; for the job's tasks and actors too)."""
    return RuntimeEnv.from_json(os.environ.get(envvars.RUNTIME_ENV))
