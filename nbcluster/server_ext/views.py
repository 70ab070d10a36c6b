"""The views of the clusters one Jupyter server knows: their Cluster JSON, nodes and
autoscaler, and what the event streams and the jobs proxy need; a mixin of
:class:`~nbcluster.server_ext.manager.ClusterManager`.

Status: a cluster is "running" until a look at it (a GET, the list, the events) finds
its head gone — a created cluster whose processes died (or, on Kubernetes, whose head
Service accepts no connections), an attached one that does not answer — then
"unreachable" (logged once), until a later look finds it back. An unreachable cluster
stays in the registry (the page shows it; DELETE tidies it up) but leaves the discovery
file, so ``%cluster connect`` does not pick a dead cluster; its nodes, autoscaler and
scaling answer 409 at once instead of waiting for GCS timeouts.

A head that hangs without dropping its connections (stopped, swapped out, stuck) still
accepts them and looks running to those checks: :meth:`Views.ping` (the event streams
call it every keepalive period) asks it something cheap and marks it unreachable when it
does not answer within :attr:`Views.ping_timeout_s`.
"""

from __future__ import annotations

import asyncio
import functools
from dataclasses import replace
from typing import Any

from nbcluster import state
from nbcluster.exceptions import ClusterConnectionError, NbclusterError
from nbcluster.server_ext.entries import (
    RUNNING,
    STARTING,
    STOPPING,
    UNREACHABLE,
    ClusterEntry,
    reachable_jobs_address,
    retrieved,
)
from nbcluster.server_ext.models import ClusterConflict, cluster_json
from nbcluster.server_ext.table import ClusterTable

__all__ = ["Views"]


class Views(ClusterTable):
    """Looks at the clusters (module docstring)."""

    #: Seconds a head has to answer :meth:`ping` before it counts as unreachable.
    ping_timeout_s = 10.0

    async def _view(self, entry: ClusterEntry) -> dict[str, Any]:
        record = entry.record
        if entry.status in (STARTING, STOPPING):
            return cluster_json(record, entry.status)
        if not await self._reachable(entry):
            self._observed(entry, False, self._gone_why(record))
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
                f"cluster {name} is unreachable: {self._gone_why(entry.record)}; DELETE clusters/{name} to remove it"
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

