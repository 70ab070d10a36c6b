"""What every handler of the REST API shares: its prefix and authorization resource,
the base class (the manager, JSON bodies and replies) and the mapping of the manager's
domain errors to HTTP statuses (:func:`domain_errors`).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable
from typing import Any

from jupyter_server.base.handlers import APIHandler
from jupyter_server.extension.handler import ExtensionHandlerMixin

from nbcluster.server_ext.manager import ClusterManager
from nbcluster.server_ext.models import BadRequest, ClusterConflict, ClusterStartError, UnknownCluster

__all__ = ["API_PREFIX", "AUTH_RESOURCE", "NbclusterAPIHandler", "domain_errors"]

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
        """The server's :class:`ClusterManager`."""
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
        """Answer ``status`` with ``{"message": message}`` (and log it)."""
        self.set_status(status)
        self.log.info("nbcluster API %s %s: %d %s", self.request.method, self.request.path, status, message)
        self.finish(json.dumps({"message": message}))

    def reply(self, body: Any, status: int = 200) -> None:
        """Answer ``status`` with ``body`` as JSON."""
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
