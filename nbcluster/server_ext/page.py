"""The page at ``{base_url}nbcluster/``: static HTML, CSS and JS (no build step).

``page_handlers()`` gives the routes, relative to the server root (the app prefixes the
base URL): the page itself and its static files, both behind Jupyter's authentication
and authorization (resource ``nbcluster``). The page handler injects the base URL into
``index.html`` and makes sure the ``_xsrf`` cookie is set, so the script can send it
back as ``X-XSRFToken`` on mutations — Jupyter's cookie and XSRF token are the page's
only credentials; it never sees a cluster's token or port (the REST API and its jobs
proxy stand in between).

The script resolves every URL against the page's own address, so the page also works
behind a proxy that serves Jupyter under another prefix. A strict Content-Security-Policy
(same-origin scripts, styles and connections only, no inline script) confines it.

The script is native ES modules: ``index.html`` loads ``static/app.js`` with
``type="module"`` and the modules import each other by plain relative paths. None of
their URLs carries a ``?v=`` version (a module imported under two URLs would run twice,
with two copies of its state, and an import cannot know the version without a build
step), so the static handler makes the browser revalidate every file on each load
(``Cache-Control: no-cache``) against a content hash (``ETag``): an unchanged file costs
a 304, a changed one — an edit, a new release — is fetched anew.
"""

from __future__ import annotations

import datetime
import html
import mimetypes
from pathlib import Path
from typing import Any

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import AuthenticatedFileHandler, JupyterHandler
from tornado import web

from nbcluster import __version__
from nbcluster.server_ext.base import AUTH_RESOURCE

__all__ = ["AUTH_RESOURCE", "STATIC_DIR", "PageHandler", "StaticHandler", "page_handlers"]

#: Where index.html, style.css and the script's modules (app.js, view.js, ...) live.
STATIC_DIR = Path(__file__).resolve().parent / "static"

# The page's own files get fixed types, not the process-wide mimetypes table: some
# systems map .js to text/plain (browsers refuse a module script then), and Jupyter's
# ServerApp re-registers .js as application/javascript after the extensions load.
_CONTENT_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".html": "text/html; charset=utf-8",
}

_CSP = "; ".join([
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "connect-src 'self'",
    "base-uri 'none'",
    "form-action 'self'",
])


def _render_index(base_url: str) -> str:
    text = (STATIC_DIR / "index.html").read_text(encoding="utf-8")
    return text.replace("{{base_url}}", html.escape(base_url, quote=True)).replace(
        "{{version}}", html.escape(__version__, quote=True)
    )


class PageHandler(JupyterHandler):
    """``GET /nbcluster/``: index.html with the base URL injected."""

    auth_resource = AUTH_RESOURCE

    @property
    def content_security_policy(self) -> str:
        """Jupyter's policy narrowed for the page (unless the user configured one)."""
        if "Content-Security-Policy" in self.settings.get("headers", {}):
            return super().content_security_policy  # the user's own policy wins
        return f"{super().content_security_policy}; {_CSP}"

    @web.authenticated
    @authorized
    def get(self) -> None:
        """The page (redirects to the address with a trailing slash first)."""
        if not self.request.path.endswith("/"):
            # The page resolves its URLs against its own address: it must end in "/".
            # A relative Location keeps working behind a proxy that changes the prefix.
            query = f"?{self.request.query}" if self.request.query else ""
            self.redirect(self.request.path.rsplit("/", 1)[-1] + "/" + query)
            return
        self.xsrf_token  # noqa: B018 - reading it sets the _xsrf cookie when missing
        self.set_header("Content-Type", "text/html; charset=UTF-8")
        self.set_header("Cache-Control", "no-store")
        self.finish(_render_index(self.base_url))


class StaticHandler(AuthenticatedFileHandler):
    """``GET /nbcluster/static/...``: the page's files, for authenticated users only."""

    auth_resource = AUTH_RESOURCE

    def initialize(self, path: str = str(STATIC_DIR), default_filename: str | None = None) -> None:  # type: ignore[override]
        """Serve the page's static directory."""
        super().initialize(path=path, default_filename=default_filename)

    @property
    def content_security_policy(self) -> str:
        """Jupyter's policy narrowed for the page's files."""
        return f"{JupyterHandler.content_security_policy.fget(self)}; {_CSP}"  # type: ignore[attr-defined]

    def get_content_type(self) -> str:
        """The file's type by its suffix (fixed for the page's own kinds of file)."""
        assert self.absolute_path is not None
        fixed = _CONTENT_TYPES.get(Path(self.absolute_path).suffix)
        guessed, _ = mimetypes.guess_type(self.absolute_path)
        return fixed or guessed or "application/octet-stream"

    def compute_etag(self) -> str | None:
        """The ETag: a hash of the file's content (None for a file too large to hash inline)."""
        # A hash of the content, computed per request (the files are small): an edit or a
        # new release changes it whatever the files' times say, and no stale hash is kept.
        # (Jupyter's AuthenticatedFileHandler sends none; tornado's caches it per process.)
        assert self.absolute_path is not None
        try:
            return f'"{self.get_content_version(self.absolute_path)}"'
        except ValueError:  # too large to hash inline: revalidated by Last-Modified only
            return None

    def get_cache_time(self, path: str, modified: datetime.datetime | None, mime_type: str) -> int:
        """0: every file is revalidated."""
        return 0  # never tornado's ten years for a ?v= URL: every file is revalidated

    def set_headers(self) -> None:
        """tornado's static-file headers, without AuthenticatedFileHandler's (which add a
        second Cache-Control to the one :meth:`set_extra_headers` sets)."""
        web.StaticFileHandler.set_headers(self)

    def set_extra_headers(self, path: str) -> None:
        """``Cache-Control: no-cache``."""
        # The modules' URLs carry no version (see the module docstring): the browser asks
        # every time, and an unchanged file is a 304 (If-None-Match against the ETag).
        self.set_header("Cache-Control", "no-cache")


def page_handlers() -> list[tuple[str, type[Any]]]:
    """The page's routes, relative to the server root: ``(pattern, handler class)``."""
    return [
        (r"/nbcluster/?", PageHandler),
        (r"/nbcluster/static/(.*)", StaticHandler),
    ]
