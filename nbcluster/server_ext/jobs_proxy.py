"""``clusters/{name}/jobs/{rest}``: the head's Jobs API through the Jupyter server.

The browser sends Jupyter's credentials only; this handler adds the cluster's token
(``Authorization: Bearer``) and forwards to ``http://JOBS_ADDRESS/api/jobs/{rest}``
with the query string and body, then passes the status, content type and body back.
The token never reaches the browser, and the head's port need not be reachable from
it (a proxy in front of Jupyter is enough).

``clusters/{name}/jobs/{id}/logs/tail`` — a websocket on the head — is served to the
browser as server-sent events instead (``EventSource`` carries Jupyter's cookie; a
websocket through proxies often does not): ``event: log`` with ``{"text": ...}`` for
the log from its start and then as it grows, and ``event: end`` with the head's close
code and reason when the job ended (1000) or is unknown (4004).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

from jupyter_server.auth.decorator import authorized
from tornado import httpclient, web, websocket
from tornado.iostream import StreamClosedError

from nbcluster.exceptions import NbclusterError
from nbcluster.job_api import ssl_context
from nbcluster.server_ext.base import NbclusterAPIHandler, domain_errors
from nbcluster.server_ext.models import BadRequest
from nbcluster.server_ext.sse import SseHandler

__all__ = ["JobLogTailHandler", "JobsProxyHandler"]

#: What may follow ``jobs/``: job ids and Ray's sub-paths (logs, stop, ...); no "." or
#: ".." segment (checked after tornado decoded %2e and %2f), so the path stays under the
#: head's /api/jobs/.
_REST = re.compile(r"[A-Za-z0-9_.\-/]*\Z")
_FORWARDED = ("Content-Type", "Accept")
#: Passed back besides the content type (never Set-Cookie or the head's auth headers).
_PASSED_BACK = ("Content-Disposition", "Cache-Control")


class JobsProxyHandler(NbclusterAPIHandler):
    """GET, POST and DELETE passed to the head's Jobs API."""

    timeout_s = 120.0

    async def _forward(self, name: str, rest: str) -> None:
        rest = rest.removeprefix("/")
        if not _REST.match(rest) or any(part in (".", "..") for part in rest.split("/")):
            raise BadRequest(f"not a Jobs API path: {rest!r}: use letters, digits and _ . - / without . or .. "
                             "segments (e.g. jobs/, jobs/ID, jobs/ID/logs, jobs/ID/stop)")
        base, token = await self.manager.jobs_endpoint(name)
        url = f"{base}/api/jobs/{rest}"
        if self.request.query:
            url += "?" + self.request.query
        headers = {"Authorization": f"Bearer {token}"}
        for key in _FORWARDED:
            if key in self.request.headers:
                headers[key] = self.request.headers[key]
        body = self.request.body if self.request.method in ("POST", "PUT", "PATCH") else None
        request = httpclient.HTTPRequest(
            url, method=self.request.method or "GET", headers=headers, body=body,
            request_timeout=self.timeout_s, follow_redirects=False, allow_nonstandard_methods=True,
            ssl_options=ssl_context(url, token),
        )
        try:
            response = await httpclient.AsyncHTTPClient().fetch(request, raise_error=False)
        except OSError as exc:  # refused, unreachable (not an HTTP answer)
            response = None
            error: object = exc
        else:
            error = response.error
        if response is None or response.code == 599:  # no HTTP answer (refused, timeout)
            self.fail(502, f"the Jobs API of cluster {name} did not answer: {error}; is the cluster still "
                           f"running? GET clusters/{name} shows its status")
            return
        self.set_status(response.code, response.reason)
        for key in _PASSED_BACK:
            if key in response.headers:
                self.set_header(key, response.headers[key])
        content_type = response.headers.get("Content-Type", "application/octet-stream")
        if response.code in (204, 304):
            self.finish(set_content_type=content_type)
        else:
            self.finish(response.body or b"", set_content_type=content_type)

    @web.authenticated
    @authorized
    @domain_errors
    async def get(self, name: str, rest: str) -> None:
        """Forward the request to the cluster's Jobs API."""
        await self._forward(name, rest)

    @web.authenticated
    @authorized
    @domain_errors
    async def post(self, name: str, rest: str) -> None:
        """Forward the request to the cluster's Jobs API."""
        await self._forward(name, rest)

    @web.authenticated
    @authorized
    @domain_errors
    async def delete(self, name: str, rest: str) -> None:
        """Forward the request to the cluster's Jobs API."""
        await self._forward(name, rest)


class JobLogTailHandler(SseHandler):
    """``GET clusters/{name}/jobs/{id}/logs/tail``: the head's log tail as events."""

    @web.authenticated
    @authorized
    @domain_errors
    async def get(self, name: str, job_id: str) -> None:
        """Stream the job's log from the head's websocket as ``log`` events until the job
        ends."""
        base, token = await self.manager.jobs_endpoint(name)
        request = httpclient.HTTPRequest(
            "ws" + base.removeprefix("http") + f"/api/jobs/{job_id}/logs/tail",
            headers={"Authorization": f"Bearer {token}"}, connect_timeout=10.0, ssl_options=ssl_context(base, token),
        )
        try:
            conn = await websocket.websocket_connect(request)
        except httpclient.HTTPClientError as exc:
            self.fail(404 if exc.code == 404 else 502,
                      f"the Jobs API of cluster {name} refused the log tail of {job_id}: {exc}")
            return
        except OSError as exc:
            self.fail(502, f"the Jobs API of cluster {name} did not answer: {exc}; is the cluster still running?")
            return

        async def chunks() -> AsyncIterator[tuple[str, Any]]:
            while (message := await conn.read_message()) is not None:
                yield "log", {"text": message if isinstance(message, str) else message.decode(errors="replace")}

        self.start_stream()
        try:
            try:  # a head that hangs keeps the websocket open: the check after a keepalive ends it
                how = await self.relay(chunks(), check=lambda: self.manager.ping(name))
            except NbclusterError as exc:
                self.send_event("unreachable", {"name": name, "message": str(exc)})
                how = "ended"
            else:
                if how == "ended":
                    self.send_event("end", {"code": conn.close_code, "reason": conn.close_reason or ""})
            if how == "ended":
                self.finish(set_content_type="text/event-stream; charset=utf-8")
        except StreamClosedError:
            pass  # the client left while we wrote
        finally:
            conn.close()
