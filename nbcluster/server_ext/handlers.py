"""The REST API under ``{base_url}nbcluster/api/`` (``openapi.yaml`` describes it).

Thin handlers over :class:`~nbcluster.server_ext.manager.ClusterManager` (their base
class is in :mod:`nbcluster.server_ext.base`; the event streams and the jobs proxy
have modules of their own); every one
behind Jupyter's authentication (``@web.authenticated``) and authorization
(``@authorized``, resource ``nbcluster``); mutations need Jupyter's XSRF token or a
token header, which ``JupyterHandler`` checks. Domain errors become 400/404/409 with
``{"message": ...}``; anything else reaches Jupyter's 500 handler, which logs it.
"""

from __future__ import annotations

from typing import Any

from jupyter_server.auth.decorator import authorized
from tornado import web

from nbcluster.server_ext.base import API_PREFIX, NbclusterAPIHandler, domain_errors
from nbcluster.server_ext.events_handler import ClusterListEventsHandler, EventsHandler
from nbcluster.server_ext.jobs_proxy import JobLogTailHandler, JobsProxyHandler
from nbcluster.server_ext.models import NAME_PATTERN

__all__ = ["api_handlers"]

class ClustersHandler(NbclusterAPIHandler):
    """``clusters``: list, create."""

    @web.authenticated
    @authorized
    @domain_errors
    async def get(self) -> None:
        """Every cluster the server knows, as Cluster JSON."""
        self.reply({"clusters": await self.manager.list_clusters()})

    @web.authenticated
    @authorized
    @domain_errors
    async def post(self) -> None:
        """Create a cluster (201 with its Cluster JSON and Location) once its head serves."""
        cluster = await self.manager.create(self.json_body(required=False))
        self.set_header("Location", self.request.path.rstrip("/") + "/" + cluster["name"])
        self.reply(cluster, 201)


class AttachHandler(NbclusterAPIHandler):
    """``attach``: a running cluster by address and token."""

    @web.authenticated
    @authorized
    @domain_errors
    async def post(self) -> None:
        """Attach a running cluster (201 with its Cluster JSON)."""
        self.reply(await self.manager.attach(self.json_body()), 201)


class LocalHandler(NbclusterAPIHandler):
    """``local``: clusters running on this machine that the server does not know yet."""

    @web.authenticated
    @authorized
    @domain_errors
    async def get(self) -> None:
        """The clusters running on this machine that the server does not know yet."""
        self.reply({"clusters": await self.manager.local()})


class ClusterHandler(NbclusterAPIHandler):
    """``clusters/{name}``: get, scale (PATCH), delete."""

    @web.authenticated
    @authorized
    @domain_errors
    async def get(self, name: str) -> None:
        """The cluster's Cluster JSON."""
        self.reply(await self.manager.get(name))

    @web.authenticated
    @authorized
    @domain_errors
    async def patch(self, name: str) -> None:
        """Scale the cluster (``{"workers": n}`` or ``{"adapt": ...}``); its Cluster JSON."""
        self.manager.require(name)  # 404 before a bad body's 400
        self.reply(await self.manager.scale(name, self.json_body()))

    @web.authenticated
    @authorized
    @domain_errors
    async def delete(self, name: str) -> None:
        """Stop a cluster made here, or forget an attached one (204)."""
        await self.manager.delete(name)
        self.set_status(204)
        self.finish()


class NodesHandler(NbclusterAPIHandler):
    """``clusters/{name}/nodes``: the cluster's nodes."""

    @web.authenticated
    @authorized
    @domain_errors
    async def get(self, name: str) -> None:
        """The cluster's nodes (``{"nodes": [...]}``)."""
        self.reply({"nodes": await self.manager.nodes(name)})


class AutoscalerHandler(NbclusterAPIHandler):
    """``clusters/{name}/autoscaler``: the autoscaler's state."""

    @web.authenticated
    @authorized
    @domain_errors
    async def get(self, name: str) -> None:
        """The autoscaler's state (``{"enabled": false}`` when it has none)."""
        self.reply(await self.manager.autoscaler(name))


def api_handlers() -> list[tuple[str, type[Any]]]:
    """The API's routes, relative to the server root."""
    name = f"(?P<name>{NAME_PATTERN})"
    return [
        (rf"{API_PREFIX}/clusters/?", ClustersHandler),
        (rf"{API_PREFIX}/attach/?", AttachHandler),
        (rf"{API_PREFIX}/local/?", LocalHandler),
        (rf"{API_PREFIX}/events/?", ClusterListEventsHandler),
        (rf"{API_PREFIX}/clusters/{name}/?", ClusterHandler),
        (rf"{API_PREFIX}/clusters/{name}/nodes/?", NodesHandler),
        (rf"{API_PREFIX}/clusters/{name}/autoscaler/?", AutoscalerHandler),
        (rf"{API_PREFIX}/clusters/{name}/events/?", EventsHandler),
        (rf"{API_PREFIX}/clusters/{name}/jobs/(?P<job_id>[A-Za-z0-9_\-]+)/logs/tail/?", JobLogTailHandler),
        (rf"{API_PREFIX}/clusters/{name}/jobs(?P<rest>(?:/.*)?)", JobsProxyHandler),
    ]
