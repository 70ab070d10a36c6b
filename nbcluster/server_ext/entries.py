"""What the server keeps per cluster, and the quick looks at a cluster that need no
GCS call: :class:`ClusterEntry` (its record, token and status, and the lock that
serializes its changes), :func:`listening` (does its head accept connections) and
:func:`reachable_jobs_address` (its Jobs API as reachable from here). Used by
:class:`~nbcluster.server_ext.manager.ClusterManager`.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from dataclasses import dataclass, field

from nbcluster.server_ext.models import ClusterRecord

__all__ = ["RUNNING", "STARTING", "STOPPING", "UNREACHABLE", "ClusterEntry", "listening", "reachable_jobs_address",
           "retrieved"]

#: A cluster's status as the server sees it (the Cluster JSON's ``status``).
STARTING, RUNNING, UNREACHABLE, STOPPING = "starting", "running", "unreachable", "stopping"


@dataclass(eq=False)
class ClusterEntry:
    """One cluster the server knows: its saved record, its token, its status now."""

    record: ClusterRecord
    token: str
    status: str = RUNNING
    #: Held while the cluster starts, scales or stops: one change at a time.
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    #: Set when the server forgets the cluster (deleted, or the server stops).
    gone: asyncio.Event = field(default_factory=asyncio.Event)
    #: The :meth:`ClusterManager.ping` in flight (callers share it).
    ping: asyncio.Future | None = None
    #: Set to stop a start on Kubernetes that is under way (it deletes what it made).
    stop_start: threading.Event = field(default_factory=threading.Event)


def retrieved(future: asyncio.Future) -> None:
    """A ping's outcome is read by whoever waited for it; nobody may have (all timed out)."""
    if not future.cancelled():
        future.exception()


def listening(address: str, timeout: float = 2.0) -> bool:
    """Whether something accepts connections at host:port (a quick check before a GCS
    call, which would keep retrying a refused connection for its whole timeout)."""
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False


def reachable_jobs_address(jobs: str, gcs_address: str) -> str:
    """The Jobs API as reachable from here: the port the head reports, on the host we
    reach the head's GCS at. The head's own idea of its host is not used: a wildcard or
    127.0.0.1 means nothing from this machine, and the proxy (which adds the cluster
    token) must only ever talk to that cluster's head, whatever an attached head says."""
    if not jobs:
        return ""
    port = jobs.rpartition(":")[2]
    if not port.isdigit():
        return ""
    scheme = "https://" if jobs.startswith("https://") else ""  # the head's TLS
    return f"{scheme}{gcs_address.rpartition(':')[0]}:{port}"
