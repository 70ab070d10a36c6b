"""Renamed notebooks: when a notebook is renamed or moved in Jupyter, the job of the
driver in its kernel gets the new ``notebook_path`` (``nbcluster.state.update_job_metadata``)
in every cluster the server can reach, so every view names it by its new name — the
notebook's own cluster widget, ``nbcluster.state.list_jobs()``, the CLI, the page and the
sidebar.

Two signals, both after the fact: a rename never waits for a cluster, nor fails because
of one.

- The contents service's ``rename`` event on the server's event bus (a file or a
  directory, ``source_path`` → ``path``).
- A notebook session's path changed (``PATCH /api/sessions/ID``: JupyterLab moves a
  notebook's session after it renamed the file, and on "Save As"). jupyter_server has no
  event for that, so :class:`RenameFollower` wraps its session manager's
  ``update_session`` while it runs (and unwraps it when it stops).

Which jobs: running drivers whose metadata's ``kernel_id`` is the kernel of a notebook
session of this server that moved, or whose ``notebook_path`` is the renamed path or
lies under it (a kernel this server does not know). The new value keeps the old one's
form: absolute under the server's root when it was absolute (Jupyter gives kernels the
absolute path in ``JPY_SESSION_NAME``), else the path relative to the root.

Which clusters: those the server knows (:class:`~nbcluster.server_ext.manager.ClusterManager`,
whose list streams are woken when one of their drivers moved) and those running on this
machine whose token the server can read (a notebook's ``%cluster start``, a script's
``init()``, ``nbcluster start --head``). A cluster that does not answer is logged once
(until it answers again) and skipped.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from nbcluster import state
from nbcluster.exceptions import ClusterConnectionError, NbclusterError
from nbcluster.runtime import local_heads
from nbcluster.server_ext.entries import listening
from nbcluster.server_ext.models import notebook_path

__all__ = ["CONTENTS_SCHEMA", "Moved", "RenameFollower", "moved_path", "new_notebook_path"]

logger = logging.getLogger(__name__)
_T = TypeVar("_T")

#: The contents service's events on jupyter_server's event bus.
CONTENTS_SCHEMA = "https://events.jupyter.org/jupyter_server/contents_service/v1"


@dataclass(frozen=True)
class Moved:
    """What moved: a file or directory renamed (API paths ``source_path`` → ``path``; both
    "" for a session alone), and the new path of each moved notebook session's kernel."""

    source_path: str = ""
    path: str = ""
    kernels: Mapping[str, str] = field(default_factory=dict)


def moved_path(path: str, source_path: str, new_path: str) -> str | None:
    """Where ``path`` is after ``source_path`` (a file or directory) became ``new_path``;
    None when the rename did not move it."""
    path, source_path, new_path = path.strip("/"), source_path.strip("/"), new_path.strip("/")
    if not source_path:
        return None
    if path == source_path:
        return new_path
    if path.startswith(source_path + "/"):
        return new_path + path[len(source_path):]
    return None


def new_notebook_path(metadata: Mapping[str, str], moved: Moved, root_dir: str | None) -> str | None:
    """The ``notebook_path`` a driver's job with ``metadata`` has after ``moved`` (None:
    not moved; possibly its value already), in the form of its old value."""
    old = metadata.get("notebook_path", "")
    target = moved.kernels.get(metadata.get("kernel_id", ""))
    if target is None and old:
        target = moved_path(notebook_path(old, root_dir), moved.source_path, moved.path)
    if target is None:
        return None
    target = target.strip("/")
    if root_dir and os.path.isabs(old):
        return os.path.join(root_dir, *target.split("/"))
    return target


@dataclass(frozen=True)
class _Cluster:
    address: str
    token: str
    #: One of the manager's (its list shows the drivers).
    known: bool


class RenameFollower:
    """Follows renames and session moves (see the module); ``start()`` listens,
    ``stop()`` stops listening and ends the coroutine that handles them, in the order
    they came, each across the clusters at once (blocking calls on a pool of its own)."""

    #: Seconds one cluster has to list and update its jobs for one change.
    timeout_s = 15.0
    max_threads = 4

    def __init__(self, manager: Any, *, event_logger: Any, session_manager: Any, root_dir: str | None,
                 log: logging.Logger | None = None) -> None:
        self.manager = manager
        self.event_logger = event_logger
        self.session_manager = session_manager
        self.root_dir = root_dir
        self.log = log or logger
        self._queue: asyncio.Queue[Callable[[], Any]] = asyncio.Queue()
        self._task: asyncio.Task | None = None
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._hooked: Callable[..., Any] | None = None
        #: Addresses of clusters that did not answer (logged once until they do).
        self._unreachable: set[str] = set()
        #: Changes handled so far (for tests).
        self.handled = 0

    # -- lifecycle -----------------------------------------------------------------------
    async def start(self) -> None:
        """Listen for renames and session moves; handle them from now on."""
        self._pool = concurrent.futures.ThreadPoolExecutor(self.max_threads, thread_name_prefix="nbcluster-renames")
        self._task = asyncio.get_running_loop().create_task(self._serve(), name="nbcluster-renames")
        self.event_logger.add_listener(modified=False, schema_id=CONTENTS_SCHEMA, listener=self._on_contents)
        self._hook_sessions()

    async def stop(self) -> None:
        """Stop listening; end the handling coroutine (a change under way is dropped)."""
        self.event_logger.remove_listener(schema_id=CONTENTS_SCHEMA, listener=self._on_contents)
        if self._hooked is not None and self.session_manager.__dict__.get("update_session") is self._hooked:
            del self.session_manager.update_session  # the class's own again
        self._hooked = None
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    # -- the signals -------------------------------------------------------------------------
    async def _on_contents(self, logger: Any, schema_id: str, data: Mapping[str, Any]) -> None:
        """jupyter_events' listener: a rename succeeded (other actions are not ours)."""
        if data.get("action") == "rename" and data.get("source_path") and data.get("path"):
            source_path, path = str(data["source_path"]), str(data["path"])
            self._queue.put_nowait(lambda: self._renamed(source_path, path))

    def _hook_sessions(self) -> None:
        original = getattr(self.session_manager, "update_session", None)
        if not asyncio.iscoroutinefunction(original):
            self.log.warning("nbcluster: the session manager %s has no async update_session: a session moved "
                             "without a rename is not followed", type(self.session_manager).__name__)
            return

        @functools.wraps(original)
        async def update_session(session_id: str, **kwargs: Any) -> None:
            await original(session_id, **kwargs)
            if "path" in kwargs:
                self._queue.put_nowait(lambda: self._session_moved(session_id))

        self.session_manager.update_session = self._hooked = update_session

    async def _notebook_sessions(self) -> list[tuple[str, str]]:
        """(kernel id, path) of the server's notebook sessions."""
        sessions = await self.session_manager.list_sessions()
        return [(s["kernel"]["id"], s["path"]) for s in sessions
                if s.get("type", "notebook") == "notebook" and s.get("kernel") and s.get("path")]

    async def _renamed(self, source_path: str, path: str) -> Moved:
        kernels = {}
        for kernel_id, where in await self._notebook_sessions():
            now = moved_path(where, source_path, path)
            if now is None and moved_path(where, path, path) is not None:
                now = where  # its session moved first
            if now is not None:
                kernels[kernel_id] = now
        return Moved(source_path, path, kernels)

    async def _session_moved(self, session_id: str) -> Moved | None:
        try:
            session = await self.session_manager.get_session(session_id=session_id)
        except Exception:  # noqa: BLE001 - deleted meanwhile (tornado's 404)
            return None
        if session.get("type", "notebook") != "notebook" or not session.get("kernel") or not session.get("path"):
            return None
        return Moved(kernels={session["kernel"]["id"]: session["path"]})

    # -- handling ------------------------------------------------------------------------------
    async def _serve(self) -> None:
        while True:
            make = await self._queue.get()
            try:
                moved = await make()
                if moved is not None:
                    await self.follow(moved)
            except Exception:  # noqa: BLE001 - the next rename is still followed
                self.log.exception("nbcluster: following a renamed notebook failed")
            self.handled += 1

    async def follow(self, moved: Moved) -> int:
        """Update the drivers' jobs that ``moved`` moved, in every cluster reachable; how
        many jobs it matched (updated, or already there)."""
        clusters = await self._clusters()
        counts = await asyncio.gather(*(self._follow_in(c, moved) for c in clusters))
        if any(n for c, n in zip(clusters, counts) if c.known):
            self.manager.touch()  # the list streams send the drivers' new names
        return sum(counts)

    async def _clusters(self) -> list[_Cluster]:
        found: dict[str, _Cluster] = {}
        for name in self.manager.names():
            try:
                address, token, _gone = self.manager.connection(name)
            except NbclusterError:  # starting, or being deleted
                continue
            if address and token:
                found[address] = _Cluster(address, token, True)
        try:
            heads = await self._run(local_heads)
        except NbclusterError as exc:  # this user's session root is not theirs alone
            self._failed("this machine's clusters", exc)
            heads = []
        for head in heads:
            if head.token and head.gcs_address not in found:
                found[head.gcs_address] = _Cluster(head.gcs_address, head.token, False)
        return list(found.values())

    async def _follow_in(self, cluster: _Cluster, moved: Moved) -> int:
        try:
            matched = await asyncio.wait_for(self._run(self._update_jobs, cluster, moved), self.timeout_s)
        except (NbclusterError, asyncio.TimeoutError) as exc:  # (not the builtin TimeoutError before 3.11)
            self._failed(cluster.address, str(exc) or f"no answer within {self.timeout_s:g} s")
            return 0
        if cluster.address in self._unreachable:
            self._unreachable.discard(cluster.address)
            self.log.info("nbcluster: cluster at %s answers again: following renamed notebooks there",
                          cluster.address)
        return matched

    def _update_jobs(self, cluster: _Cluster, moved: Moved) -> int:
        """On the pool: the cluster's running drivers that ``moved`` moved get their new path."""
        if not listening(cluster.address):
            raise ClusterConnectionError(f"nothing accepts connections at {cluster.address}")
        matched = 0
        for job in state.list_jobs(address=cluster.address, token=cluster.token):
            value = new_notebook_path(job.metadata, moved, self.root_dir) if job.type == "DRIVER" else None
            if value is None or job.status != "RUNNING":
                continue
            matched += 1
            if value == job.metadata.get("notebook_path"):
                continue
            try:
                state.update_job_metadata(job.job_id, {"notebook_path": value}, address=cluster.address,
                                          token=cluster.token)
            except ClusterConnectionError:
                raise
            except NbclusterError as exc:  # it ended meanwhile
                self.log.info("nbcluster: job %s at %s keeps its notebook_path: %s", job.job_id, cluster.address, exc)
                continue
            self.log.info("nbcluster: job %s at %s: notebook_path %s -> %s", job.job_id, cluster.address,
                          job.metadata.get("notebook_path", ""), value)
        return matched

    def _failed(self, where: str, why: object) -> None:
        if where not in self._unreachable:
            self._unreachable.add(where)
            self.log.warning("nbcluster: cannot follow renamed notebooks in %s: %s", where, why)

    async def _run(self, func: Callable[..., _T], *args: Any) -> _T:
        assert self._pool is not None
        return await asyncio.get_running_loop().run_in_executor(self._pool, functools.partial(func, *args))
