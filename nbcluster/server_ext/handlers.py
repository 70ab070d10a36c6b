"""The REST API under ``{base_url}nbcluster/api/`` (``openapi.yaml`` describes it).

Thin handlers over :class:`~nbcluster.server_ext.manager.ClusterManager`: every one
behind Jupyter's authentication (``@web.authenticated``) and authorization
(``@authorized``, resource ``nbcluster``); mutations need Jupyter's XSRF token or a
token header, which ``JupyterHandler`` checks. Domain errors become 400/404/409 with
``{"message": ...}``; anything else reaches Jupyter's 500 handler, which logs it.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable
from typing import Any

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from jupyter_server.extension.handler import ExtensionHandlerMixin
from tornado import web

from nbcluster.server_ext.manager import ClusterManager
from nbcluster.server_ext.models import (
    NAME_PATTERN,
    BadRequest,
    ClusterConflict,
    ClusterStartError,
    UnknownCluster,
)

__all__ = ["API_PREFIX", "AUTH_RESOURCE", "NbclusterAPIHandler", "api_handlers", "domain_errors"]

#: Routes, relative to the server's base URL.
API_PREFIX = "/nbcluster/api"
#: The authorization resource of every handler (the page's too).
AUTH_RESOURCE = "nbcluster"

_STATUS = ((BadRequest, 400), (UnknownCluster, 404), (ClusterConflict, 409), (ClusterStartError, 500))


class NbclusterAPIHandler(ExtensionHandlerMixin, APIHandler):
    """Base of the API's handlers: the manager, JSON bodies, domain errors."""

    auth_resource = AUTH_RESOURCE

    @property
    def manager(self) -> ClusterManager:
        return self.extensionapp.manager  # type: ignore[no-any-return]

    def json_body(self, required: bool = True) -> Any:
        """The request's JSON body; BadRequest when it is not JSON."""
        raw = self.request.body
        if not raw:
            if required:
                raise BadRequest("the request needs a JSON body")
            return {}
        try:
            return json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise BadRequest(f"the body is not valid JSON: {exc}") from None

    def fail(self, status: int, message: str) -> None:
        self.set_status(status)
        self.log.info("nbcluster API %s %s: %d %s", self.request.method, self.request.path, status, message)
        self.finish(json.dumps({"message": message}))

    def reply(self, body: Any, status: int = 200) -> None:
        self.set_status(status)
        self.finish(json.dumps(body))


_Method = Callable[..., Awaitable[None]]


def domain_errors(method: _Method) -> _Method:
    """Answer the manager's domain errors with their status and message."""

    @functools.wraps(method)
    async def wrapper(self: NbclusterAPIHandler, *args: Any, **kwargs: Any) -> None:
        try:
            await method(self, *args, **kwargs)
        except (BadRequest, UnknownCluster, ClusterConflict, ClusterStartError) as exc:
            status = next(code for cls, code in _STATUS if isinstance(exc, cls))
            self.fail(status, str(exc))

    return wrapper


class ClustersHandler(NbclusterAPIHandler):
    """``clusters``: list, create."""

    @web.authenticated
    @authorized
    @domain_errors
    async def get(self) -> None:
        self.reply({"clusters": await self.manager.list_clusters()})

    @web.authenticated
    @authorized
    @domain_errors
    async def post(self) -> None:
        cluster = await self.manager.create(self.json_body(required=False))
        self.set_header("Location", self.request.path.rstrip("/") + "/" + cluster["name"])
        self.reply(cluster, 201)


class AttachHandler(NbclusterAPIHandler):
    """``attach``: a running cluster by address and token."""

    @web.authenticated
    @authorized
    @domain_errors
    async def post(self) -> None:
        self.reply(await self.manager.attach(self.json_body()), 201)


class LocalHandler(NbclusterAPIHandler):
    """``local``: clusters running on this machine that the server does not know yet."""

    @web.authenticated
    @authorized
    @domain_errors
    async def get(self) -> None:
        self.reply({"clusters": await self.manager.local()})


class ClusterHandler(NbclusterAPIHandler):
    """``clusters/{name}``: get, scale (PATCH), delete."""

    @web.authenticated
    @authorized
    @domain_errors
    async def get(self, name: str) -> None:
        self.reply(await self.manager.get(name))

    @web.authenticated
    @authorized
    @domain_errors
    async def patch(self, name: str) -> None:
        self.manager.require(name)  # 404 before a bad body's 400
        self.reply(await self.manager.scale(name, self.json_body()))

    @web.authenticated
    @authorized
    @domain_errors
    async def delete(self, name: str) -> None:
        await self.manager.delete(name)
        self.set_status(204)
        self.finish()


class NodesHandler(NbclusterAPIHandler):
    @web.authenticated
    @authorized
    @domain_errors
    async def get(self, name: str) -> None:
        self.reply({"nodes": await self.manager.nodes(name)})


class AutoscalerHandler(NbclusterAPIHandler):
    @web.authenticated
    @authorized
    @domain_errors
    async def get(self, name: str) -> None:
        self.reply(await self.manager.autoscaler(name))


def api_handlers() -> list[tuple[str, type[Any]]]:
    """The API's routes, relative to the server root."""
    from nbcluster.server_ext.events_handler import ClusterListEventsHandler, EventsHandler
    from nbcluster.server_ext.jobs_proxy import JobLogTailHandler, JobsProxyHandler

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
