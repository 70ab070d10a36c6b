"""What a node manager is started with, and what it derives from that: the size of
its object store and the resources it offers.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import psutil


@dataclass(frozen=True)
class NodeOptions:
    """What a node manager is started with (``python -m nbcluster.runtime.node``)."""

    node_id: bytes
    gcs_address: str
    num_cpus: float
    num_gpus: float = 0
    #: The GPUs' ids (default: 0 .. num_gpus-1); detected ones keep nvidia-smi's.
    gpu_ids: tuple[int, ...] = ()
    resources: dict[str, float] = field(default_factory=dict)
    object_store_memory: int | None = None
    memory: int | None = None
    node_ip: str = "127.0.0.1"
    #: gRPC port for other machines; None: serve only this machine (embedded).
    grpc_port: int | None = None
    #: The port other nodes pull objects from (with a gRPC port; 0: any).
    object_port: int = 0
    is_head: bool = False
    node_type: str = ""
    #: The autoscaler instance this node was launched as.
    instance_id: str = ""


def default_object_store_memory(directory: Path) -> int:
    """What a node's store may take: 30% of memory, at most 80% of what is free in the
    shared memory that holds ``directory``."""
    total = psutil.virtual_memory().total
    try:
        shm = os.statvfs(str(directory))
        shm_free = shm.f_bavail * shm.f_frsize
    except OSError:
        shm_free = total
    return int(min(total * 0.3, shm_free * 0.8))


def node_resources(opts: NodeOptions, store_capacity: int, memory: int) -> dict[str, float]:
    """The resources a node of ``opts`` offers: CPUs, GPUs, memory, object store, its
    ``node:<ip>`` (and the head's marker), then the custom ones."""
    total: dict[str, float] = {"CPU": opts.num_cpus, "memory": memory, "object_store_memory": store_capacity}
    if opts.num_gpus:
        total["GPU"] = opts.num_gpus
    total[f"node:{opts.node_ip}"] = 1
    if opts.is_head:
        total["node:__internal_head__"] = 1
    total.update(opts.resources)
    return total
