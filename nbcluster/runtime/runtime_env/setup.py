"""Setting up a job's runtime environment's packages in a process: fetch each ``gcs://`` package
from the GCS's package store once per node, unpack it into the node's session
(``runtime_resources/<name>/``, shared by the node's processes), build or reuse the
node's virtualenv for its ``pip``/``uv`` packages (:mod:`.venvs`), and say where they
are. The working_dir is a job process's cwd and first on its ``sys.path``; py_modules
directories follow it, then the virtualenv's site-packages (:func:`activate`)."""

from __future__ import annotations

import asyncio
import os
import site
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nbcluster.runtime import envvars
from nbcluster.runtime.config import RuntimeConfig
from nbcluster.runtime.runtime_env import packages, venvs
from nbcluster.runtime.runtime_env.spec import RuntimeEnv
from nbcluster.runtime.protocol import gcs_pb2
from nbcluster.runtime.transport import methods

#: Where a job's driver finds its runtime_env packages (set by its supervisor).
CACHE_DIR = "runtime_resources"


@dataclass(frozen=True)
class Prepared:
    """A job's runtime_env unpacked on this node: its working directory, modules and
    the virtualenv of its packages."""

    working_dir: Path | None = None
    py_modules: list[Path] = field(default_factory=list)
    venv: venvs.Venv | None = None

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
    return await asyncio.to_thread(packages.ensure_unpacked, uri, cache, lambda _uri: reply.value)


async def upload(gcs: Any, uri: str, data: bytes) -> None:
    """Store a package in the GCS's package store under its name (its content's hash)."""
    _, name = packages.parse_uri(uri)
    await gcs.call(methods.Gcs.KvPut, gcs_pb2.KvPutRequest(namespace=envvars.KV_PACKAGES, key=name.encode(), value=data))


async def prepare(gcs: Any, session_dir: Path, env: RuntimeEnv, config: RuntimeConfig) -> Prepared:
    """Unpack ``env``'s packages (URIs) on this node (once), build or reuse the
    virtualenv of its ``pip``/``uv`` packages, and return where they are. A virtualenv
    that cannot be built raises ``RuntimeEnvSetupError`` with the installer's message."""
    cache = session_dir / CACHE_DIR
    working_dir = await _ensure(gcs, env.working_dir, cache) if env.working_dir else None
    modules = [await _ensure(gcs, uri, cache) for uri in env.py_modules]
    venv = None
    if env.pip is not None:
        venv = await asyncio.to_thread(
            venvs.ensure_venv, session_dir, env.pip, timeout=setup_timeout(env),
            cache_size=config.runtime_env_cache_size, idle_timeout_s=config.runtime_env_idle_timeout_s)
    return Prepared(working_dir, modules, venv)


def setup_timeout(env: RuntimeEnv) -> float | None:
    """Seconds a process waits for ``env`` to be set up (``config``'s
    ``setup_timeout_seconds``, Ray's 600 by default; None for -1: no limit)."""
    seconds = env.config.get("setup_timeout_seconds", 600)
    return None if seconds == -1 else float(seconds)


def activate(prepared: Prepared) -> None:
    """Make this (worker) process run in ``prepared``: the working_dir as cwd, it and the
    py_modules first on ``sys.path``, then the virtualenv's site-packages (its ``.pth``
    files processed), ahead of the node's own packages."""
    if prepared.venv is not None:
        before = list(sys.path)
        site.addsitedir(str(prepared.venv.site_packages))
        added = [p for p in sys.path if p not in before]
        sys.path[:] = added + before
    for path in reversed(prepared.sys_path):
        if path not in sys.path:
            sys.path.insert(0, path)
    if prepared.working_dir is not None:
        os.chdir(prepared.working_dir)


def from_env() -> RuntimeEnv:
    """The runtime environment a submitted job's driver was started with (its
    supervisor sets it; for the job's tasks and actors too)."""
    return RuntimeEnv.from_json(os.environ.get(envvars.RUNTIME_ENV))
