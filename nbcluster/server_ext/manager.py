"""The clusters one Jupyter server knows: made here, or attached by address and token.

:class:`ClusterManager` is the whole domain of the REST API, testable without a
server. Its coroutines run on the server's loop and hand every blocking step (a GCS
call, starting or stopping processes) to a thread pool of its own (not the loop's
default executor, which the server shares: a cluster starting for a minute or a hung
head must not starve it), so the server keeps answering while a cluster starts. Each
change is saved to the registry and the discovery file
(:mod:`nbcluster.server_ext.registry`) before the call returns.

Status: a cluster is "running" until a look at it (a GET, the list, the events) finds
its head gone — a created cluster whose processes died, an attached one that does not
answer — then "unreachable" (logged once), until a later look finds it back. An
unreachable cluster stays in the registry (the page shows it; DELETE tidies it up) but
leaves the discovery file, so ``%cluster connect`` does not pick a dead cluster; its
nodes, autoscaler and scaling answer 409 at once instead of waiting for GCS timeouts.

A head that hangs without dropping its connections (stopped, swapped out, stuck) still
accepts them and looks running to those checks: :meth:`ping` (the event streams call it
every keepalive period) asks it something cheap and marks it unreachable when it does not
answer within :attr:`ClusterManager.ping_timeout_s`.

Lifecycle: :meth:`load` re-attaches what the registry lists and still runs (dropping
the rest); :meth:`resume` waits for the clusters the last server left starting (a
cluster is saved, as starting, as soon as its session directory is known, so a server
killed while a cluster starts does not lose it); :meth:`start_configured` makes the
clusters the server is configured to start; :meth:`shutdown` stops the clusters made here
(unless told to keep them).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

from nbcluster import state
from nbcluster.autoscaler import set_worker_bounds
from nbcluster.exceptions import (
    AuthenticationError,
    ClusterConnectionError,
    InsecurePathError,
    NbclusterError,
)
from nbcluster.runtime import LocalNode, local_heads, read_token_file
from nbcluster.server_ext import local
from nbcluster.server_ext.models import (
    BadRequest,
    ClusterConflict,
    ClusterRecord,
    ClusterSpec,
    UnknownCluster,
    cluster_json,
    parse_attach,
    parse_create,
    parse_scale,
)
from nbcluster.server_ext.entries import (
    RUNNING,
    STARTING,
    STOPPING,
    UNREACHABLE,
    ClusterEntry,
    reachable_jobs_address,
    listening,
    retrieved,
)
from nbcluster.server_ext.registry import Registry

__all__ = ["ClusterManager"]

logger = logging.getLogger(__name__)
_T = TypeVar("_T")

class ClusterManager:
    """Create, attach, scale and delete clusters; describe them as Cluster JSON."""

    #: Threads for blocking steps (GCS calls, starting and stopping processes).
    max_threads = 16
    #: Seconds a head has to answer :meth:`ping` before it counts as unreachable.
    ping_timeout_s = 10.0
    #: Seconds between two looks at a cluster :meth:`resume` waits for.
    resume_poll_s = 0.25

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
        #: Clusters :meth:`load` found starting, for :meth:`resume`.
        self._resumable: list[ClusterEntry] = []

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
        """The list changed (or what it shows: a driver's notebook renamed): wake whoever
        follows it (:meth:`changes`)."""
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
        """Save the registry and the discovery file. A starting cluster is saved once
        its session is known (a later server can find it), but is not discoverable."""
        self.touch()
        saved = [e for e in self._entries.values() if e.status != STARTING or e.record.session_dir]
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
        """A quick check (no GCS call): a created cluster's processes run, an attached
        one's head accepts connections."""
        record = entry.record
        if record.origin == "created":
            return await self._run(local.is_running, record.session_dir)
        return await self._run(listening, record.address)

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

    # -- start-up ---------------------------------------------------------------------
    def load(self) -> None:
        """Re-attach the registry's clusters that still run; drop (and tidy) the rest.
        Blocking: call it before the server serves."""
        records = self.registry.load()

        def check(record: ClusterRecord) -> tuple[ClusterRecord, str | None]:
            try:
                token = read_token_file(record.token_file, private=True)
            except ValueError:
                token = None
            except InsecurePathError as exc:
                self.log.warning("nbcluster: not using the token of cluster %s: %s", record.name, exc)
                token = None
            if record.origin == "created":
                if token is not None and local.is_running(record.session_dir):
                    return record, token
                local.stop(record.session_dir, 5.0)  # what is left of it
                return record, None
            if token is not None and listening(record.address):
                try:
                    state.get_head_state(address=record.address, token=token)
                    return record, token
                except NbclusterError:
                    pass
            return record, None

        with concurrent.futures.ThreadPoolExecutor(max(1, min(8, len(records)))) as pool:
            for record, token in pool.map(check, records):
                if token is None:
                    self.log.info("nbcluster: dropping cluster %s (%s): it no longer runs", record.name,
                                  record.address or record.session_dir)
                    if record.origin == "attached":
                        self.registry.drop_token(record.token_file)
                elif record.name in self._entries:
                    continue
                elif record.starting:  # the last server stopped while it started: see resume()
                    self.log.info("nbcluster: cluster %s (session %s) was starting; waiting for it to serve",
                                  record.name, record.session_dir)
                    entry = self._entries[record.name] = ClusterEntry(record, token, STARTING)
                    self._resumable.append(entry)
                else:
                    self.log.info("nbcluster: re-attached cluster %s at %s", record.name, record.address)
                    self._entries[record.name] = ClusterEntry(record, token)
        self._save()

    async def resume(self) -> None:
        """Settle the clusters :meth:`load` found starting: each is re-attached once
        its head serves (its address from its session), or stopped and dropped when its
        processes die or it does not serve within the start-up timeout. Returns when all
        are settled, or once the server stops (they stay saved as starting)."""
        entries, self._resumable = self._resumable, []
        results = await asyncio.gather(*(self._resume(entry) for entry in entries), return_exceptions=True)
        for entry, result in zip(entries, results):
            if isinstance(result, Exception):
                self.log.error("nbcluster: settling cluster %s (session %s) failed: %s", entry.record.name,
                               entry.record.session_dir, result, exc_info=result)

    async def _resume(self, entry: ClusterEntry) -> None:
        name, session_dir = entry.record.name, entry.record.session_dir
        deadline = time.monotonic() + local.startup_timeout(self.system_config)

        def pending() -> bool:  # still ours to settle (not deleted meanwhile, the server not stopping)
            return self._entries.get(name) is entry and entry.status == STARTING and not self.closing.is_set()

        while pending():
            started = await self._run(local.serving, session_dir)
            if started is not None and pending():
                try:
                    await self._run(state.get_head_state, address=started.address, token=entry.token)
                except NbclusterError:
                    pass  # it wrote its address but does not answer yet
                else:
                    if pending():
                        entry.record = replace(entry.record, address=started.address, token_file=started.token_file,
                                               jobs_address=started.jobs_address, starting=False)
                        entry.status = RUNNING
                        self._save()
                        self.log.info("nbcluster: re-attached cluster %s at %s (it was starting)", name,
                                      started.address)
                    return
            if not pending():
                return
            if not await self._run(local.is_running, session_dir):
                why = "its processes exited"
            elif time.monotonic() > deadline:
                why = "it did not serve in time"
            else:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self.closing.wait(), self.resume_poll_s)
                continue
            if pending():
                self.log.warning("nbcluster: cluster %s (session %s) was starting, but %s: stopping it",
                                 name, session_dir, why)
                with contextlib.suppress(UnknownCluster):  # deleted meanwhile
                    await self.delete(name)
            return

    async def start_configured(self, bodies: list[dict[str, Any]]) -> None:
        """Create the configured clusters that do not run yet (by name); a bad one is
        logged and skipped."""
        for body in bodies:
            if self.closing.is_set():  # the server stopped while resume() waited
                return
            name = body.get("name") if isinstance(body, dict) else None
            if name is not None and name in self._entries:
                continue
            try:
                await self.create(body)
            except NbclusterError as exc:
                self.log.error("nbcluster: NbclusterApp.start_clusters entry %r not started: %s", body, exc)

    # -- create, attach, delete -------------------------------------------------------
    async def create(self, body: Any) -> dict[str, Any]:
        """Start a cluster as the create request ``body`` asks; its Cluster JSON once its
        head serves. BadRequest for a bad body, ClusterConflict for a name in
        use or a server that is stopping, ClusterStartError when it does not
        start."""
        if self.closing.is_set():  # what shutdown() stops is chosen already
            raise ClusterConflict("the Jupyter server is stopping: create the cluster once it runs again")
        name, spec = parse_create(body, self.defaults)
        name = self._reserve(name)
        local.check_spec(name, spec)  # a bad autoscaling_config is a 400 before anything starts
        record = ClusterRecord(name, "", "", "created", spec.to_json(), created=time.time())
        entry = self._entries[name] = ClusterEntry(record, "", STARTING)
        self.touch()  # listed as starting
        loop = asyncio.get_running_loop()

        def announced(session_dir: str, token_file: str) -> None:
            """On the pool's thread, when its processes run: saved (as starting) before
            the helper goes on, so a server killed now does not lose them."""
            save = asyncio.run_coroutine_threadsafe(self._announced(entry, session_dir, token_file), loop)
            save.result(30.0)

        async with entry.lock:
            try:
                started = await self._run(local.start, name, spec, host=self.host, system_config=self.system_config,
                                          on_session=announced)
                token = await self._run(read_token_file, started.token_file, private=True)
            except asyncio.CancelledError:
                # The server stops under it: the pool's thread goes on starting it, and once
                # its session is known it stays saved as starting for the next server.
                raise
            except BaseException:
                if self._entries.get(name) is entry:
                    self._entries.pop(name)
                    self._save()  # no longer listed (it was saved as starting once its session was known)
                raise
            entry.record = replace(record, address=started.address, token_file=started.token_file,
                                   session_dir=started.session_dir, jobs_address=started.jobs_address)
            entry.token, entry.status = token, RUNNING
            self._save()
        self.log.info("nbcluster: created cluster %s at %s (session %s)", name, started.address, started.session_dir)
        return await self._view(entry)

    async def _announced(self, entry: ClusterEntry, session_dir: str, token_file: str) -> None:
        if self._entries.get(entry.record.name) is not entry:  # cannot happen while it starts: stop it then
            raise ClusterConflict(f"cluster {entry.record.name} was forgotten while it started")
        entry.record = replace(entry.record, session_dir=session_dir, token_file=token_file)
        self._save()

    async def attach(self, body: Any) -> dict[str, Any]:
        """Attach the running cluster the attach request ``body`` names (its address and
        token, token file, or none for a cluster on this machine); its Cluster
        JSON. BadRequest when it cannot be reached or refuses the token."""
        request = parse_attach(body)
        name = self._reserve(request.name)
        if request.token_file is not None:
            try:
                token = await self._run(read_token_file, request.token_file)
            except ValueError as exc:
                raise BadRequest(str(exc).replace("--token-file", "token_file"), "token_file") from None
        elif request.token is not None:
            token = request.token
        else:  # a cluster on this machine: its session holds the token
            local = {head.gcs_address: head for head in await self._local_heads()}
            if request.address not in local or not local[request.address].token:
                raise BadRequest(f"token or token_file is required: {request.address} is not a cluster running "
                                 "on this machine (GET local lists those); give the head's `token` file", "token")
            token = local[request.address].token
        if not await self._run(listening, request.address):
            raise BadRequest(f"cannot reach a cluster at {request.address}: nothing accepts connections there "
                             "(is the head running, and is that its host:port?)", "address")
        try:
            head = await self._run(state.get_head_state, address=request.address, token=token)
        except AuthenticationError as exc:
            raise BadRequest(f"the cluster at {request.address} refused the token: {exc}", "token") from None
        except (ClusterConnectionError, NbclusterError) as exc:
            raise BadRequest(f"cannot reach a cluster at {request.address}: {exc}", "address") from None
        self._reserve(name)  # taken while we asked?
        # A copy of our own (0600), whatever the mode of the user's file: kernels read it.
        token_file = str(self.registry.store_token(name, token))
        record = ClusterRecord(name, request.address, token_file, "attached", {}, created=time.time(),
                               jobs_address=reachable_jobs_address(head.jobs_address, request.address))
        entry = self._entries[name] = ClusterEntry(record, token)
        self._save()
        self.log.info("nbcluster: attached cluster %s at %s", name, request.address)
        return await self._view(entry)

    async def local(self) -> list[dict[str, Any]]:
        """Clusters running on this machine that the server does not know yet (made by
        notebooks, scripts or `nbcluster start --head`): attach them by address alone."""
        known = {entry.record.address for entry in self._entries.values()}
        heads = [head for head in await self._local_heads() if head.gcs_address not in known]
        started = await asyncio.gather(*(self._run(local.start_time, head) for head in heads))
        return [{"address": head.gcs_address, "session_dir": str(head.session.dir), "started": when}
                for head, when in zip(heads, started)]

    async def _local_heads(self) -> list[LocalNode]:
        """The heads running on this machine; ClusterConflict when this user's session
        root is not this user's alone (the message names it and the fix)."""
        try:
            return await self._run(local_heads)
        except InsecurePathError as exc:
            raise ClusterConflict(str(exc)) from None

    async def delete(self, name: str) -> None:
        """Forget the cluster; one made here is stopped first (its processes are gone
        when this returns)."""
        entry = self._entry(name)
        async with entry.lock:
            if self._entries.get(name) is not entry:
                raise UnknownCluster(f"no cluster named {name!r} (it was just deleted)")
            previous, entry.status = entry.status, STOPPING
            entry.gone.set()  # end its event streams first
            if entry.record.origin == "created":
                try:
                    await self._run(local.stop, entry.record.session_dir)
                except BaseException:
                    # Keep it listed: forgetting it would leave its processes running unseen.
                    entry.status, entry.gone = previous, asyncio.Event()
                    raise
            else:
                self.registry.drop_token(entry.record.token_file)
            self._entries.pop(name, None)
            self._save()
        self.log.info("nbcluster: %s cluster %s", "stopped" if entry.record.origin == "created" else "forgot", name)

    async def shutdown(self, stop_created: bool = True) -> None:
        """The server stops: end every event stream; stop the clusters made here
        unless ``stop_created`` is False (they are re-attached at the next start)."""
        self.closing.set()
        for entry in self._entries.values():
            entry.gone.set()
        try:
            if not stop_created:
                return
            created = [name for name, e in self._entries.items() if e.record.origin == "created"]
            results = await asyncio.gather(*(self.delete(name) for name in created), return_exceptions=True)
            for name, result in zip(created, results):
                if isinstance(result, BaseException):
                    self.log.error("nbcluster: stopping cluster %s failed: %s", name, result, exc_info=result)
        finally:
            self._pool.shutdown(wait=False)

    # -- scale --------------------------------------------------------------------------
    async def scale(self, name: str, body: Any) -> dict[str, Any]:
        """Set the cluster's worker bounds from the scale request ``body``; its Cluster
        JSON. ClusterConflict when it is starting, stopping or unreachable."""
        bounds = parse_scale(body)
        entry = await self._live(name, "scale it")
        async with entry.lock:
            try:
                await self._run(set_worker_bounds, bounds.minimum, bounds.maximum,
                                address=entry.record.address, token=entry.token)
            except ClusterConnectionError as exc:
                raise ClusterConflict(f"cluster {name} cannot be reached: {exc}") from None
            except NbclusterError as exc:  # no autoscaler, or several worker types
                raise ClusterConflict(f"cluster {name} cannot scale: {exc}") from None
        self.log.info("nbcluster: cluster %s worker bounds %d..%d", name, bounds.minimum, bounds.maximum)
        return await self._view(entry)

    # -- views ----------------------------------------------------------------------------
    async def _view(self, entry: ClusterEntry) -> dict[str, Any]:
        record = entry.record
        if entry.status in (STARTING, STOPPING):
            return cluster_json(record, entry.status)
        if not await self._reachable(entry):
            self._observed(entry, False, "its processes are gone" if record.origin == "created" else
                           "nothing accepts connections at its address")
            return cluster_json(record, UNREACHABLE)
        try:  # a head that hangs accepts connections: one bounded look, shared with the event streams
            await self.ping(record.name)
        except ClusterConnectionError:
            return cluster_json(record, UNREACHABLE)
        kwargs = {"address": record.address, "token": entry.token}
        try:
            nodes, autoscaler, jobs = await asyncio.gather(
                self._run(state.list_nodes, **kwargs),
                self._run(state.get_autoscaler_state, **kwargs),
                self._run(state.list_jobs, **kwargs),
            )
        except NbclusterError as exc:
            self._observed(entry, False, str(exc))
            return cluster_json(record, UNREACHABLE)
        self._observed(entry, True)
        sessions = await self.sessions() if self.sessions is not None else {}
        return cluster_json(record, entry.status, nodes, autoscaler, jobs, self.root_dir, sessions)

    async def get(self, name: str) -> dict[str, Any]:
        """The cluster's Cluster JSON, after a look at it (its status follows what that
        found)."""
        return await self._view(self._entry(name))

    async def list_clusters(self) -> list[dict[str, Any]]:
        """The Cluster JSON of every cluster the server knows."""
        entries = list(self._entries.values())
        return list(await asyncio.gather(*(self._view(e) for e in entries)))

    async def nodes(self, name: str) -> list[dict[str, Any]]:
        """The cluster's nodes as JSON; ClusterConflict when it cannot be reached."""
        entry = await self._live(name, "ask for its nodes")
        try:
            nodes = await self._run(state.list_nodes, address=entry.record.address, token=entry.token)
        except NbclusterError as exc:
            raise ClusterConflict(f"cluster {name} cannot be reached: {exc}") from None
        return [n.to_json() for n in nodes]

    async def autoscaler(self, name: str) -> dict[str, Any]:
        """The cluster's autoscaler state as JSON (``{"enabled": False}`` when it has
        none); ClusterConflict when it cannot be reached."""
        entry = await self._live(name, "ask for its autoscaler")
        try:
            status = await self._run(state.get_autoscaler_state, address=entry.record.address, token=entry.token)
        except NbclusterError as exc:
            raise ClusterConflict(f"cluster {name} cannot be reached: {exc}") from None
        return status.to_json() if status.enabled else {"enabled": False}

    def _ready(self, name: str, what: str = "use it") -> ClusterEntry:
        entry = self._entry(name)
        if entry.status == STARTING:
            raise ClusterConflict(f"cluster {name} is still starting; {what} once its status is running")
        if entry.status == STOPPING:
            raise ClusterConflict(f"cluster {name} is being deleted")
        return entry

    async def _live(self, name: str, what: str) -> ClusterEntry:
        """The entry of a cluster that is neither starting nor gone: 409 at once when
        its head is gone (a GCS call would retry for its whole timeout first)."""
        entry = self._ready(name, what)
        if not await self._reachable(entry):
            self._observed(entry, False)
            raise ClusterConflict(
                f"cluster {name} is unreachable: "
                + ("its processes are gone" if entry.record.origin == "created"
                   else f"nothing accepts connections at {entry.record.address}")
                + f"; DELETE clusters/{name} to remove it"
                + (" (and attach it again once it runs)" if entry.record.origin == "attached" else "")
            )
        return entry

    async def ping(self, name: str) -> None:
        """Ask the head something cheap (its own record) and record what that found:
        ClusterConnectionError when it does not answer within :attr:`ping_timeout_s`
        (a head that hangs still accepts connections, so nothing else notices). One call
        at a time per cluster: concurrent callers share it. Nothing to do for a cluster
        that is starting, stopping or forgotten."""
        entry = self._entries.get(name)
        if entry is None or entry.status not in (RUNNING, UNREACHABLE) or self.closing.is_set():
            return
        if entry.ping is None or entry.ping.done():
            entry.ping = asyncio.get_running_loop().run_in_executor(
                self._pool, functools.partial(state.get_head_state, address=entry.record.address, token=entry.token))
            entry.ping.add_done_callback(retrieved)
        try:
            await asyncio.wait_for(asyncio.shield(entry.ping), self.ping_timeout_s)
        except asyncio.TimeoutError:  # not the builtin TimeoutError before Python 3.11
            why = f"its head did not answer within {self.ping_timeout_s:g} s"
        except NbclusterError as exc:
            why = str(exc)
        else:
            self._observed(entry, True)
            return
        self._observed(entry, False, why)
        raise ClusterConnectionError(f"cluster {name} at {entry.record.address} is unreachable: {why}")

    # -- for the event stream and the jobs proxy --------------------------------------
    def connection(self, name: str) -> tuple[str, str, asyncio.Event]:
        """(address, token, an event set when the cluster is forgotten) of a cluster."""
        entry = self._ready(name, "watch its events")
        return entry.record.address, entry.token, entry.gone

    async def jobs_endpoint(self, name: str) -> tuple[str, str]:
        """(``http[s]://host:port`` of the head's Jobs API, the token)."""
        entry = self._ready(name, "use its jobs")
        if not entry.record.jobs_address:  # learn it (a head restarted with the API on)
            try:
                head = await self._run(state.get_head_state, address=entry.record.address, token=entry.token)
            except NbclusterError as exc:
                raise ClusterConflict(f"cluster {name} cannot be reached: {exc}") from None
            entry.record = replace(entry.record, jobs_address=reachable_jobs_address(head.jobs_address, entry.record.address))
            self._save()
        jobs = reachable_jobs_address(entry.record.jobs_address, entry.record.address)
        if not jobs:
            raise ClusterConflict(f"cluster {name} serves no Jobs API (its head runs without one); start its head "
                                  "with the Jobs API to use jobs")
        return jobs if "://" in jobs else f"http://{jobs}", entry.token

