"""A task's or actor's own ``runtime_env`` (``@remote(runtime_env=...)``,
``.options(runtime_env=...)``): what its worker is set up with.

The value was validated where it entered (the options, :class:`RuntimeEnv`). Here,
in the submitting process, its local paths are zipped and uploaded to the GCS's
package store once by content, it is laid over the submitter's own environment (the
job's, or the one the submitting task runs in: children inherit it) as Ray does, and
it becomes the ``JobConfig`` the worker binds to — with its own ``runtime_env_hash``,
so the node managers pool workers per environment and a task never runs in a worker
set up for another. Workers set it up as a job's (``Executor._bind_job``); a failure
fails the tasks with ``RuntimeEnvSetupError``, the node goes on.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

from nbcluster.runtime.protocol import common_pb2
from nbcluster.runtime.runtime_env import RuntimeEnv, setup

_lock = threading.Lock()
_STATE: weakref.WeakKeyDictionary[Any, tuple[dict[tuple, common_pb2.JobConfig], set[str]]] = weakref.WeakKeyDictionary()


def current_env(config: common_pb2.JobConfig | None) -> RuntimeEnv:
    """The runtime environment a ``JobConfig`` carries."""
    return RuntimeEnv.from_json(config.runtime_env_json if config is not None else None)


def job_config_for(core: Any, env: RuntimeEnv) -> common_pb2.JobConfig:
    """The ``JobConfig`` of work with ``env`` submitted from ``core``'s process (not on
    its loop thread: uploads wait for the GCS). Cached per process and environment."""
    cache = _state(core)[0]
    key = (id(core.job_config), env.to_json())
    config = cache.get(key)
    if config is not None:
        return config
    merged = current_env(core.job_config).override(packed(core, env))
    config = common_pb2.JobConfig()
    if core.job_config is not None:
        config.CopyFrom(core.job_config)
    config.runtime_env_json = merged.to_json()
    config.runtime_env_hash = merged.hash
    cache[key] = config
    return config


def packed(core: Any, env: RuntimeEnv) -> RuntimeEnv:
    """``env`` with its local paths zipped and uploaded from ``core``'s process (once
    per package), URIs in their place (not on its loop thread)."""
    return env.packed(lambda uri, data: _upload(core, uri, data))


def _upload(core: Any, uri: str, data: bytes) -> None:
    """Store a package in the GCS once per process (its name is its content's hash)."""
    uploaded = _state(core)[1]
    if uri in uploaded:
        return

    async def put() -> None:
        await setup.upload(await core.gcs_connection(), uri, data)

    core.run_sync(put())
    uploaded.add(uri)


def _state(core: Any) -> tuple[dict[tuple, common_pb2.JobConfig], set[str]]:
    """A process's configs by environment, and the packages it uploaded."""
    with _lock:
        state = _STATE.get(core)
        if state is None:
            state = _STATE[core] = ({}, set())
        return state
