"""What a Jupyter server finds when it starts: the clusters the last one left.

:meth:`Restore.load` re-attaches what the registry lists and still runs, and tidies
the rest: a local cluster whose processes died is stopped (what is left of it); an
attached one that does not answer is forgotten; a cluster on Kubernetes whose head does
not answer stays listed as unreachable (a head pod being rescheduled comes back; DELETE
deletes its objects), and one the last server was still deploying is deleted (no one
finishes a deploy that server began). :meth:`Restore.resume` waits for the local
clusters the last server left starting (a cluster is saved, as starting, as soon as its
session directory is known, so a server killed while a cluster starts does not lose it);
:meth:`Restore.start_configured` makes the clusters the server is configured to start.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import time
from dataclasses import replace
from typing import Any

from nbcluster import state
from nbcluster.exceptions import InsecurePathError, NbclusterError
from nbcluster.runtime import read_token_file
from nbcluster.server_ext import kubernetes, local
from nbcluster.server_ext.entries import RUNNING, STARTING, UNREACHABLE, ClusterEntry, listening
from nbcluster.server_ext.models import ClusterConflict, ClusterRecord, UnknownCluster
from nbcluster.server_ext.table import ClusterTable

__all__ = ["Restore"]


class Restore(ClusterTable):
    """The start-up's part of :class:`~nbcluster.server_ext.manager.ClusterManager`."""

    #: Seconds between two looks at a cluster :meth:`resume` waits for.
    resume_poll_s = 0.25

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: Clusters :meth:`load` found starting, for :meth:`resume`.
        self._resumable: list[ClusterEntry] = []

    def load(self) -> None:
        """Re-attach the registry's clusters that still run; drop (and tidy) the rest.
        Blocking: call it before the server serves."""
        records = self.registry.load()
        with concurrent.futures.ThreadPoolExecutor(max(1, min(8, len(records)))) as pool:
            for record, token, status in pool.map(self._check, records):
                if token is None:
                    self.log.info("nbcluster: dropping cluster %s (%s): it no longer runs", record.name,
                                  record.address or record.session_dir)
                    if record.origin == "attached":
                        self.registry.drop_token(record.token_file)
                elif record.name in self._entries:
                    continue
                elif status == STARTING:  # the last server stopped while it started: see resume()
                    self.log.info("nbcluster: cluster %s (session %s) was starting; waiting for it to serve",
                                  record.name, record.session_dir)
                    entry = self._entries[record.name] = ClusterEntry(record, token, STARTING)
                    self._resumable.append(entry)
                else:
                    self.log.info("nbcluster: re-attached cluster %s at %s%s", record.name, record.address,
                                  "" if status == RUNNING else " (its head does not answer yet)")
                    self._entries[record.name] = ClusterEntry(record, token, status)
        self._save()

    def _check(self, record: ClusterRecord) -> tuple[ClusterRecord, str | None, str]:
        """(record, its token or None to drop it, its status); tidies what is dropped."""
        try:
            token: str | None = read_token_file(record.token_file, private=True)
        except ValueError:
            token = None
        except InsecurePathError as exc:
            self.log.warning("nbcluster: not using the token of cluster %s: %s", record.name, exc)
            token = None
        if record.origin == "created" and record.provider == "kubernetes":
            return self._check_kubernetes(record, token)
        if record.origin == "created":
            if token is not None and local.is_running(record.session_dir):
                return record, token, STARTING if record.starting else RUNNING
            local.stop(record.session_dir, 5.0)  # what is left of it
            return record, None, ""
        if token is not None and listening(record.address):
            try:
                state.get_head_state(address=record.address, token=token)
                return record, token, RUNNING
            except NbclusterError:
                pass
        return record, None, ""

    def _check_kubernetes(self, record: ClusterRecord, token: str | None) -> tuple[ClusterRecord, str | None, str]:
        if token is not None and not record.starting:
            if listening(record.address):
                try:
                    state.get_head_state(address=record.address, token=token)
                    return record, token, RUNNING
                except NbclusterError:
                    pass
            return record, token, UNREACHABLE
        # Its token file is written before any object is made: with none, nothing was.
        if token is not None or not record.starting:
            self.log.info("nbcluster: deleting the objects of cluster %s in namespace %s (%s)", record.name,
                          record.spec.get("namespace"), "its deploy did not finish" if record.starting else
                          "its token file is gone")
            try:
                kubernetes.delete(record)
            except (ClusterConflict, ValueError) as exc:
                self.log.error("nbcluster: %s; delete them with kubectl -n %s delete deployment,pod,service,pvc,"
                               "configmap,secret,serviceaccount,role,rolebinding -l nbcluster.io/cluster=%s", exc,
                               record.spec.get("namespace"), record.name)
        return record, None, ""

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
