"""What a driver's job is set up with, whichever way the driver connects: the job's
config (runtime_env, sys.path, namespace), its metadata, the packages it uploads,
and the GCS connection it registers with. Used by ``driver_init`` (a driver with a
node here) and ``client.connect`` (client mode)."""

from __future__ import annotations

import os
import re
import sys
import uuid
from dataclasses import dataclass
from typing import Any

from nbcluster.runtime.config import RuntimeConfig
from nbcluster.runtime.protocol import common_pb2
from nbcluster.runtime.runtime_env import RuntimeEnv
from nbcluster.runtime.runtime_env import setup as runtime_env_setup
from nbcluster.runtime.transport import dial
from nbcluster.runtime.transport.errors import TransportError, public_error


def driver_metadata() -> dict[str, str]:
    """What a driver tells about itself in its job's metadata: in a Jupyter kernel its
    ``kernel_id`` (from the connection file ipykernel was started with) and the
    ``notebook_path`` the Jupyter server gave it (``JPY_SESSION_NAME``) — so the server
    extension can list a cluster's notebooks. Read from the process, no imports."""
    out = {}
    argv = sys.argv
    for i, arg in enumerate(argv):
        path = arg[4:] if arg.startswith("--f=") else argv[i + 1] if arg in ("-f", "--f") and i + 1 < len(argv) else ""
        match = re.fullmatch(r"kernel-(.+)\.json", os.path.basename(path))
        if match:
            out["kernel_id"] = match.group(1)
    if os.environ.get("JPY_SESSION_NAME") and "kernel_id" in out:
        out["notebook_path"] = os.environ["JPY_SESSION_NAME"]
    return out


@dataclass(frozen=True)
class JobSetup:
    """What ``init`` sets the driver's job up with."""

    config: RuntimeConfig
    namespace: str | None
    runtime_env: RuntimeEnv  # packed: URIs only
    uploads: dict[str, bytes]  # the packages it names that were made here, by URI
    log_to_driver: bool
    autoscaler_events: bool


def job_config(job: JobSetup) -> common_pb2.JobConfig:
    """The job's config: the runtime_env merged with a submitted job's, this
    process's sys.path and cwd, the namespace."""
    env = runtime_env_setup.from_env().merged(job.runtime_env)
    cwd = os.getcwd()
    sys_path = [cwd if p == "" else p for p in sys.path if p == "" or os.path.isdir(p)]
    return common_pb2.JobConfig(
        sys_path=sys_path,
        cwd=cwd,
        namespace=job.namespace if job.namespace is not None else f"anonymous-{uuid.uuid4().hex[:12]}",
        log_to_driver=job.log_to_driver,
        runtime_env_hash=env.hash,
        runtime_env_json=env.to_json(),
    )


async def dial_gcs(gcs_endpoint: str, token: str, config: RuntimeConfig) -> Any:
    """The GCS connection of a driver; a failure raised as the public error for it."""
    try:
        # A head that restarts is waited for (as node managers do), not failed at once.
        return await dial(gcs_endpoint, token, timeout=config.startup_timeout_s,
                          reconnect_wait_s=config.gcs_reconnect_timeout_s)
    except TransportError as exc:
        raise public_error(exc, gcs_endpoint, connecting=True) from None


async def upload_packages(gcs: Any, uploads: dict[str, bytes]) -> None:
    """The runtime_env's packages made here, stored in the GCS once by content."""
    for uri, data in uploads.items():
        await runtime_env_setup.upload(gcs, uri, data)


@dataclass(frozen=True)
class JobRegistration:
    """What a driver's job is registered with: its config, metadata and entrypoint."""

    config: common_pb2.JobConfig
    metadata: dict[str, str]
    entrypoint: str


def this_driver(job_config: common_pb2.JobConfig) -> JobRegistration:
    """The registration of this process's own job (its metadata and command line)."""
    return JobRegistration(job_config, driver_metadata(), " ".join(sys.argv) or sys.executable)
