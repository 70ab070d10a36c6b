"""The ``nbcluster`` Jupyter server extension: one :class:`ClusterManager` per server.

Enabled on install (``etc/jupyter/jupyter_server_config.d/nbcluster.json``); configured
with traitlets, e.g. in ``jupyter_server_config.py``::

    c.NbclusterApp.workers = 2                  # the default cluster: 2 worker nodes
    c.NbclusterApp.start_clusters = [{"name": "main", "workers": 1}]
    c.NbclusterApp.stop_clusters_on_shutdown = False
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jupyter_server.extension.application import ExtensionApp
from traitlets import Bool, Dict, Float, Int, List, TraitError, Unicode, validate

from nbcluster.server_ext.handlers import api_handlers
from nbcluster.server_ext.manager import ClusterManager
from nbcluster.server_ext.models import BadRequest, ClusterSpec, parse_local
from nbcluster.server_ext.page import page_handlers
from nbcluster.server_ext.renames import RenameFollower

__all__ = ["NbclusterApp"]


class NbclusterApp(ExtensionApp):
    """Start, attach, scale and stop nbcluster clusters from the Jupyter server."""

    name = "nbcluster"
    extension_url = "/nbcluster/"
    load_other_extensions = True

    num_cpus = Float(
        None, allow_none=True,
        help="CPUs of the head node of clusters made without num_cpus (default: this machine's cores).",
    ).tag(config=True)
    workers = Int(0, help="Worker nodes of clusters made without workers, adapt or autoscaling_config.").tag(
        config=True
    )
    worker_cpus = Float(1.0, help="CPUs of each worker node of clusters made without worker_cpus.").tag(config=True)
    idle_timeout = Float(
        15.0,
        help="Seconds a worker node above the minimum stays idle before it is removed, in clusters the server "
             "makes (so scaling down takes about this long once the nodes are idle).",
    ).tag(config=True)
    start_clusters = List(
        Dict(),
        help='Clusters to make when the server starts, as POST clusters bodies, e.g. [{"name": "main", "workers": 1}]'
             "; one of that name that still runs is re-attached instead.",
    ).tag(config=True)
    stop_clusters_on_shutdown = Bool(
        True,
        help="Stop the clusters the server made when it stops. False keeps them running; the next server "
             "re-attaches them.",
    ).tag(config=True)
    cluster_host = Unicode(
        "127.0.0.1", help="The address clusters the server makes listen on (127.0.0.1: this machine only)."
    ).tag(config=True)
    system_config = Dict(
        help="Runtime settings of clusters the server makes (as nbcluster start --system-config), e.g. "
             '{"heartbeat_interval_s": 0.5}.'
    ).tag(config=True)

    manager: ClusterManager
    renames: RenameFollower | None = None

    @validate("workers")
    def _check_workers(self, proposal: Any) -> int:
        if proposal["value"] < 0:
            raise TraitError(f"NbclusterApp.workers must be >= 0, got {proposal['value']}")
        return proposal["value"]

    @validate("worker_cpus", "idle_timeout")
    def _check_positive(self, proposal: Any) -> float:
        if proposal["value"] <= 0:
            raise TraitError(f"NbclusterApp.{proposal['trait'].name} must be > 0, got {proposal['value']}")
        return proposal["value"]

    def default_spec(self) -> ClusterSpec:
        """The cluster spec a create request's missing fields come from (the app's
        traitlets); TraitError when they make no valid cluster."""
        spec = ClusterSpec(num_cpus=None, workers=self.workers, worker_cpus=self.worker_cpus,
                           idle_timeout_s=self.idle_timeout)
        body: dict[str, Any] = {"workers": self.workers, "worker_cpus": self.worker_cpus}
        if self.num_cpus is not None:
            body["num_cpus"] = self.num_cpus
        try:
            return parse_local(body, spec)[1]
        except BadRequest as exc:
            raise TraitError(f"NbclusterApp: the default cluster spec is invalid: {exc}") from None

    def initialize_settings(self) -> None:
        """Make the :class:`ClusterManager` and re-attach the clusters the registry lists
        (blocking, before the server serves)."""
        runtime_dir = Path(self.serverapp.runtime_dir)  # type: ignore[union-attr]
        self.manager = ClusterManager(runtime_dir, defaults=self.default_spec(), host=self.cluster_host,
                                      system_config=self.system_config,
                                      root_dir=self.serverapp.root_dir,  # type: ignore[union-attr]
                                      sessions=self._sessions, log=self.log)
        self.manager.load()
        self.log.info("nbcluster: %d cluster(s) re-attached (or starting); discovery file %s",
                      len(self.manager.names()), self.manager.registry.discovery_path)

    async def _sessions(self) -> dict[str, str]:
        """The server's sessions now: kernel id -> the path of its notebook (renames included)."""
        sessions = await self.serverapp.session_manager.list_sessions()  # type: ignore[union-attr]
        return {s["kernel"]["id"]: s["path"] for s in sessions if s.get("kernel") and s.get("path")}

    def initialize_handlers(self) -> None:
        """Add the REST API's and the page's routes."""
        self.handlers.extend(api_handlers())
        self.handlers.extend(page_handlers())

    async def _start_jupyter_server_extension(self, serverapp: Any) -> None:
        if self.renames is None:  # a renamed notebook's driver follows it (renames.py), in every cluster reachable
            self.renames = RenameFollower(self.manager, event_logger=serverapp.event_logger,
                                          session_manager=serverapp.session_manager, root_dir=serverapp.root_dir,
                                          log=self.log)
            await self.renames.start()
        # The server serves meanwhile: clusters the last server left starting show as starting.
        await self.manager.resume()
        await self.manager.start_configured(list(self.start_clusters))

    async def stop_extension(self) -> None:
        """The server stops: end the event streams and stop the clusters made here unless
        ``stop_clusters_on_shutdown`` is off; stop following renamed notebooks."""
        if self.renames is not None:
            await self.renames.stop()
            self.renames = None
        await self.manager.shutdown(stop_created=self.stop_clusters_on_shutdown)
