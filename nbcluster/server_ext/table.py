"""The clusters one Jupyter server knows, as a table: the base of
:class:`~nbcluster.server_ext.manager.ClusterManager`.

:class:`ClusterTable` keeps the entries (:class:`~nbcluster.server_ext.entries.ClusterEntry`
by name), saves them to the registry and the discovery file
(:mod:`nbcluster.server_ext.registry`), counts changes for the list's event stream,
records what looks at a cluster found (running <-> unreachable), and owns the thread
pool every blocking step runs on. It also knows the one thing that differs by how a
cluster was made: whether a created cluster still runs, and stopping it
(:mod:`~nbcluster.server_ext.local` processes, or :mod:`~nbcluster.server_ext.kubernetes`
objects). The concerns built on it are mixins of their own: the start-up
(:mod:`~nbcluster.server_ext.restore`), the views (:mod:`~nbcluster.server_ext.views`);
the manager makes, attaches, scales and deletes clusters.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

from nbcluster.server_ext import kubernetes, local
from nbcluster.server_ext.entries import RUNNING, STARTING, UNREACHABLE, ClusterEntry, listening
from nbcluster.server_ext.models import ClusterConflict, ClusterRecord, ClusterSpec, UnknownCluster
from nbcluster.server_ext.registry import Registry

__all__ = ["ClusterTable", "created_running", "stop_created"]

logger = logging.getLogger(__name__)
_T = TypeVar("_T")


def created_running(record: ClusterRecord) -> bool:
    """Whether a cluster the server made still runs: its processes (local), its head's
    Service accepting connections (Kubernetes). Blocking."""
    if record.provider == "kubernetes":
        return kubernetes.running(record)
    return local.is_running(record.session_dir)


def stop_created(record: ClusterRecord, grace_period: float = 10.0) -> None:
    """Stop a cluster the server made: its processes are gone (local), or every object
    labelled with its name is deleted (Kubernetes; ClusterConflict when Kubernetes
    refuses). Blocking."""
    if record.provider == "kubernetes":
        kubernetes.delete(record)
    else:
        local.stop(record.session_dir, grace_period)


class ClusterTable:
    """The entries, the registry, the change count and the thread pool (module
    docstring)."""

    #: Threads for blocking steps (GCS calls, starting and stopping processes).
    max_threads = 16

    def __init__(
        self,
        runtime_dir: Path,
        *,
        defaults: ClusterSpec | None = None,
        host: str = "127.0.0.1",
        system_config: dict[str, Any] | None = None,
        root_dir: str | None = None,
        sessions: Callable[[], Awaitable[dict[str, str]]] | None = None,
        log: logging.Logger | None = None,
    ) -> None:
        self.registry = Registry(runtime_dir)
        self.root_dir = root_dir
        #: The server's notebook sessions now, kernel id -> path (drivers' names follow renames).
        self.sessions = sessions
        self.defaults = defaults or ClusterSpec()
        self.host = host
        self.system_config = dict(system_config or {})
        self.log = log or logger
        self._entries: dict[str, ClusterEntry] = {}
        #: Bumped whenever the list changes (a cluster added or removed, a status).
        self.version = 0
        self._changed = asyncio.Event()
        #: Set when the server stops: list streams end.
        self.closing = asyncio.Event()
        self._pool = concurrent.futures.ThreadPoolExecutor(self.max_threads, thread_name_prefix="nbcluster-ext")

    # -- what the manager adds (the start-up calls them) ---------------------------------
    async def create(self, body: Any) -> dict[str, Any]:
        """Make a cluster (:meth:`ClusterManager.create`)."""
        raise NotImplementedError

    async def delete(self, name: str) -> None:
        """Stop or forget a cluster (:meth:`ClusterManager.delete`)."""
        raise NotImplementedError

    # -- helpers ----------------------------------------------------------------------
    async def _run(self, func: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, functools.partial(func, *args, **kwargs))

    def _entry(self, name: str) -> ClusterEntry:
        entry = self._entries.get(name)
        if entry is None:
            known = ", ".join(sorted(self._entries)) or "none"
            raise UnknownCluster(f"no cluster named {name!r} (known: {known})")
        return entry

    def touch(self) -> None:
        """The list changed: wake whoever follows it (:meth:`changes`)."""
        self.version += 1
        self._changed.set()
        self._changed = asyncio.Event()

    async def changes(self, settle_s: float = 0.2) -> AsyncIterator[int]:
        """The list's version now, then again after each change (changes within
        ``settle_s`` of each other count once). Runs until the caller stops."""
        seen = -1
        while True:
            changed = self._changed  # before the check: a change after it sets this one
            if self.version != seen:
                seen = self.version
                yield seen
                continue
            await changed.wait()
            await asyncio.sleep(settle_s)

    def _save(self) -> None:
        """Save the registry and the discovery file. A starting cluster is saved once a
        later server could find it (``ClusterRecord.saved_while_starting``), but is not
        discoverable."""
        self.touch()
        saved = [e for e in self._entries.values() if e.status != STARTING or e.record.saved_while_starting]
        self.registry.save((replace(e.record, starting=e.status == STARTING) for e in saved),
                           discoverable=[e.record.name for e in saved if e.status not in (STARTING, UNREACHABLE)])

    def _observed(self, entry: ClusterEntry, reachable: bool, why: str = "") -> None:
        """Record what a look at the cluster found (running <-> unreachable)."""
        if entry.status not in (RUNNING, UNREACHABLE) or self._entries.get(entry.record.name) is not entry:
            return
        status = RUNNING if reachable else UNREACHABLE
        if status == entry.status:
            return
        entry.status = status
        if reachable:
            self.log.info("nbcluster: cluster %s at %s answers again", entry.record.name, entry.record.address)
        else:
            self.log.warning("nbcluster: cluster %s at %s is unreachable (%s); DELETE it to tidy up",
                             entry.record.name, entry.record.address, why or "its head does not answer")
        self._save()

    async def _reachable(self, entry: ClusterEntry) -> bool:
        """A quick check (no GCS call): a created cluster still runs
        (:func:`created_running`), an attached one's head accepts connections."""
        record = entry.record
        if record.origin == "created":
            return await self._run(created_running, record)
        return await self._run(listening, record.address)

    @staticmethod
    def _gone_why(record: ClusterRecord) -> str:
        """Why a cluster that :meth:`_reachable` found gone is."""
        if record.origin == "attached":
            return f"nothing accepts connections at {record.address}"
        if record.provider == "kubernetes":
            return f"its head does not accept connections at {record.address}"
        return "its processes are gone"

    def _reserve(self, name: str | None) -> str:
        if name is None:
            n = 1
            while f"cluster-{n}" in self._entries:
                n += 1
            return f"cluster-{n}"
        if name in self._entries:
            raise ClusterConflict(f"a cluster named {name!r} exists already; choose another name or delete it first")
        return name

    def names(self) -> list[str]:
        """The names of the clusters the server knows."""
        return list(self._entries)

    def require(self, name: str) -> None:
        """UnknownCluster unless a cluster of that name is known."""
        self._entry(name)
