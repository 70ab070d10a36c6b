"""The clusters one Jupyter server knows: made here, or attached by address and token.

:class:`ClusterManager` is the whole domain of the REST API, testable without a
server. Its coroutines run on the server's loop and hand every blocking step (a GCS
call, starting or stopping processes, the Kubernetes API) to a thread pool of its own
(not the loop's default executor, which the server shares: a cluster starting for a
minute or a hung head must not starve it), so the server keeps answering while a
cluster starts. Each change is saved to the registry and the discovery file
(:mod:`nbcluster.server_ext.registry`) before the call returns.

The server makes clusters two ways (the create request's ``provider``): ``local``,
processes on this machine that outlive kernels and the server
(:mod:`~nbcluster.server_ext.local`), and ``kubernetes``, a head pod and its Service
(and the worker pods its autoscaler makes) deployed with the server's own credentials
when the server runs in a pod (:mod:`~nbcluster.server_ext.kubernetes`). Kernels connect
to either by name; scaling sets the autoscaler's bounds of both.

This module makes, attaches, scales and deletes clusters; the table it keeps is
:mod:`~nbcluster.server_ext.table`, the start-up :mod:`~nbcluster.server_ext.restore`,
the views (Cluster JSON, status, pings) :mod:`~nbcluster.server_ext.views`.
Lifecycle: :meth:`load`, :meth:`resume` and :meth:`start_configured` when the server
starts; :meth:`shutdown` stops the clusters made here (unless told to keep them) when
it stops — a cluster on Kubernetes that is still starting is stopped too, and what its
deploy made is deleted.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from typing import Any

from nbcluster import state
from nbcluster.autoscaler import set_worker_bounds
from nbcluster.exceptions import AuthenticationError, ClusterConnectionError, InsecurePathError, NbclusterError
from nbcluster.runtime import KubernetesOptions, LocalNode, local_heads, read_token_file
from nbcluster.server_ext import kubernetes, local
from nbcluster.server_ext.entries import (
    RUNNING,
    STARTING,
    STOPPING,
    ClusterEntry,
    listening,
    reachable_jobs_address,
)
from nbcluster.server_ext.models import (
    BadRequest,
    ClusterConflict,
    ClusterRecord,
    ClusterSpec,
    UnknownCluster,
    parse_attach,
    parse_create,
    parse_scale,
)
from nbcluster.server_ext.restore import Restore
from nbcluster.server_ext.table import stop_created
from nbcluster.server_ext.views import Views

__all__ = ["ClusterManager"]


class ClusterManager(Restore, Views):
    """Create, attach, scale and delete clusters; describe them as Cluster JSON."""

    # -- create -----------------------------------------------------------------------
    async def create(self, body: Any) -> dict[str, Any]:
        """Start a cluster as the create request ``body`` asks; its Cluster JSON once its
        head serves. BadRequest for a bad body (or, on Kubernetes, no access to it or a
        namespace that does not exist), ClusterConflict for a name in use (in the
        server, or in the namespace) or a server that is stopping, ClusterStartError
        when it does not start."""
        if self.closing.is_set():  # what shutdown() stops is chosen already
            raise ClusterConflict("the Jupyter server is stopping: create the cluster once it runs again")
        # In the pool: a Kubernetes body without a namespace reads the pod's (or the kubeconfig).
        name, spec = await self._run(parse_create, body, self.defaults)
        if isinstance(spec, KubernetesOptions):
            return await self._create_kubernetes(spec)
        return await self._create_local(name, spec)

    async def _create_local(self, name: str | None, spec: ClusterSpec) -> dict[str, Any]:
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

    async def _create_kubernetes(self, options: KubernetesOptions) -> dict[str, Any]:
        """Deploy on Kubernetes. Saved as starting before anything is made (a server
        killed meanwhile leaves a record, and the next one deletes what was made);
        deleting it or stopping the server meanwhile stops the deploy, which deletes
        what it made."""
        name = self._reserve(options.name)
        token_file = self.registry.token_path(name)
        record = ClusterRecord(name, options.address, str(token_file), "created", options.to_json(),
                               created=time.time(), provider="kubernetes")
        entry = self._entries[name] = ClusterEntry(record, "", STARTING)
        self._save()  # listed (and saved) as starting
        self.log.info("nbcluster: deploying cluster %s in namespace %s", name, options.namespace)
        async with entry.lock:
            try:
                token, jobs_address = await self._run(kubernetes.deploy, options, token_file, entry.stop_start)
            except BaseException:
                entry.stop_start.set()  # if this wait was cancelled: the deploy stops and deletes what it made
                if self._entries.get(name) is entry:
                    self._entries.pop(name)
                    self._save()
                raise
            entry.record = replace(record, jobs_address=jobs_address)
            entry.token, entry.status = token, RUNNING
            self._save()
        self.log.info("nbcluster: created cluster %s in namespace %s at %s", name, options.namespace, options.address)
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

    # -- delete, shut down ------------------------------------------------------------------
    async def delete(self, name: str) -> None:
        """Forget the cluster; one made here is stopped first (its processes are gone,
        or its objects on Kubernetes deleted, when this returns). A cluster on
        Kubernetes that is still starting: its deploy stops, and deletes what it made."""
        entry = self._entry(name)
        if entry.status == STARTING and entry.record.provider == "kubernetes":
            entry.stop_start.set()  # its deploy holds the lock until it has deleted what it made
        async with entry.lock:
            if self._entries.get(name) is not entry:
                if entry.stop_start.is_set():
                    self.log.info("nbcluster: stopped cluster %s while it started; deleted what it made", name)
                    return
                raise UnknownCluster(f"no cluster named {name!r} (it was just deleted)")
            previous, entry.status = entry.status, STOPPING
            entry.gone.set()  # end its event streams first
            if entry.record.origin == "created":
                try:
                    await self._run(stop_created, entry.record)
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
