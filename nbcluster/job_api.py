"""Finding a cluster's Jobs API and talking to it: its address and token, the TLS
context for an ``https://`` API, and the mapping of its error answers (HTTP statuses,
websocket close codes) to :mod:`nbcluster.exceptions`. Used by
:class:`nbcluster.job_submission.JobSubmissionClient` and the Jupyter server's jobs proxy.
"""

from __future__ import annotations

import json
import ssl
import urllib.parse
import urllib.request
from typing import Any

import psutil

from nbcluster.exceptions import (
    AuthenticationError,
    ClusterConnectionError,
    InsecurePathError,
    NbclusterSystemError,
)
from nbcluster.runtime import discovery, envvars
from nbcluster.runtime.credentials import ca_for
from nbcluster.runtime.private_dir import warn_skipped
from nbcluster.runtime.session import sessions
from nbcluster.runtime.tls import client_context

__all__ = [
    "DEFAULT_PORT", "NoRedirect", "check_close", "check_token", "drain", "http_error", "local_jobs_api",
    "local_token_for", "no_job", "no_token_error", "same_endpoint", "server_message", "ssl_context", "jobs_url",
]

#: The jobs API's port when an address names none.
DEFAULT_PORT = 8265
_LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1", "0.0.0.0", "::", ""})


def jobs_url(address: str) -> str:
    """``http://host:port[/prefix]`` of an address given as ``host:port`` or a URL."""
    text = address.strip()
    if "://" not in text:
        text = "http://" + text
    bad = ValueError(f"the jobs API address must be 'http://HOST:PORT' or 'HOST:PORT', got {address!r}")
    parts = urllib.parse.urlsplit(text)
    try:
        port = parts.port
    except ValueError:
        raise bad from None
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise bad
    if parts.username or parts.password:
        raise ValueError("put no credentials in the address; pass the token with token= or NBCLUSTER_TOKEN")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{parts.scheme}://{host}:{port or DEFAULT_PORT}{parts.path.rstrip('/')}"


def host_port(base_url: str) -> tuple[str, int]:
    """(host, port) of a jobs API's URL (or ``host:port``), the host in lower case."""
    parts = urllib.parse.urlsplit(base_url if "://" in base_url else "http://" + base_url)
    return (parts.hostname or "").lower(), parts.port or DEFAULT_PORT


def same_endpoint(a: str, b: str) -> bool:
    """Whether two jobs API addresses name the same port on the same host (any two
    loopback names count as the same host)."""
    (host_a, port_a), (host_b, port_b) = host_port(a), host_port(b)
    if port_a != port_b:
        return False
    loop_a = host_a in _LOOPBACK or host_a.startswith("127.")
    loop_b = host_b in _LOOPBACK or host_b.startswith("127.")
    return host_a == host_b or (loop_a and loop_b)


def local_jobs_api() -> tuple[str, str]:
    """(base URL, token) of the jobs API of the newest cluster running on this machine."""
    node = discovery.find_local_node("auto")
    if node is None:
        raise ClusterConnectionError(
            f"{discovery.no_cluster_message()} For a remote cluster pass address='http://HOST:PORT' "
            f"(the head's jobs API) or set {envvars.JOBS_ADDRESS}."
        )
    try:
        jobs_address = node.session.read_address().get("jobs_address")
    except (OSError, ValueError):
        jobs_address = None
    if not jobs_address:
        raise ClusterConnectionError(
            f"the cluster at {node.gcs_address} (session {node.session.dir}) serves no jobs API: its "
            "session names no jobs_address (a worker node's session, or a head without the jobs "
            f"server). Pass address='http://HOST:PORT' of the head's jobs API or set {envvars.JOBS_ADDRESS}."
        )
    scheme, _, hostport = jobs_address.rpartition("://")
    host, _, port = hostport.rpartition(":")
    if host in ("0.0.0.0", "::", "[::]"):  # served on every interface: reach it here
        jobs_address = f"{scheme or 'http'}://127.0.0.1:{port}"
    return jobs_url(jobs_address), node.token


def local_token_for(base_url: str) -> str:
    """The token of a live head on this machine whose jobs API is ``base_url``, or ""."""
    for session in reversed(sessions()):
        try:
            info = session.read_address()
            jobs_address = info.get("jobs_address")
            if jobs_address and same_endpoint(jobs_address, base_url) and psutil.pid_exists(
                    int(info.get("head_pid", -1))):
                return session.read_token()
        except (OSError, ValueError, TypeError, AttributeError):
            continue
        except InsecurePathError as exc:
            warn_skipped(exc)
    return ""


def check_token(token: str) -> str:
    """``token`` without surrounding whitespace; ValueError when it could not be a header value."""
    token = token.strip()
    # Checked here: http.client would put a bad header value (the token) in its error.
    if not token.isascii() or not token.isprintable() or any(c.isspace() for c in token):
        raise ValueError("the cluster token holds whitespace or control characters; check the token file")
    return token


def no_token_error(base_url: str) -> AuthenticationError:
    """The error for a jobs API at ``base_url`` with no token to send it."""
    return AuthenticationError(
        f"the jobs API at {base_url} needs the cluster's token: pass token=... (CLI: --token-file FILE "
        f"with a copy of the head's `token` file) or set {envvars.TOKEN}."
    )


class NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect would carry the Authorization header elsewhere: refuse it."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        """Refuse every redirect (None)."""
        return None


def ssl_context(base_url: str, token: str, verify: bool | str = True) -> ssl.SSLContext | None:
    """The SSL context for the jobs API at ``base_url`` (None for http). An https API
    is verified with the cluster's CA (known with its token), a
    CA bundle the user names, the system's CAs, or — asked for — not at all. No
    proxies either (the websocket follows none): the token goes to the cluster only."""
    if not base_url.startswith("https://"):
        return None
    if verify is False:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    if isinstance(verify, str):
        return ssl.create_default_context(cafile=verify)
    ca = ca_for(token)
    return client_context(ca) if ca else ssl.create_default_context()


def server_message(raw: bytes, default: str) -> str:
    """The error message in a jobs API's answer (its ``error``), else its text, else ``default``."""
    try:
        message = json.loads(raw).get("error")
    except (ValueError, AttributeError):
        message = raw.decode("utf-8", "replace").strip()[:300]
    return str(message or default)


def no_job(job_id: str, message: str) -> str:
    """The message for a job the API does not know."""
    text = message if message.startswith("no job") else f"no job {job_id!r}: {message}"
    return text if "job list" in text else f"{text} (`nbcluster job list` shows the jobs)"


def http_error(status: int, message: str, base_url: str, what: str, job_id: str | None) -> Exception:
    """The exception for an HTTP error answer ``status`` to ``what`` (``"GET /path"``):
    AuthenticationError (401/403), ValueError (404 and other client errors),
    NbclusterSystemError (5xx, redirects)."""
    if status in (401, 403):
        return AuthenticationError(
            f"the jobs API at {base_url} refused the token ({status}: {message}); pass the cluster's "
            f"token (token=..., CLI --token-file FILE, or {envvars.TOKEN})"
        )
    if status == 404 and job_id is not None:
        return ValueError(no_job(job_id, message))
    if status == 404:
        return ValueError(f"{what}: not found ({message}); is {base_url} an nbcluster jobs API?")
    if status >= 500 or 300 <= status < 400:
        return NbclusterSystemError(
            f"the jobs API at {base_url} failed on {what} ({status}: {message}); the head's log has details"
        )
    return ValueError(message)




def check_close(code: int | None, reason: str | None, base_url: str, job_id: str) -> None:
    """Raise for a websocket the server closed with an error code (4004: no such job)."""
    if code is None or code in (1000, 1001):
        return
    reason = reason or f"closed with code {code}"
    if code == 4004:
        raise ValueError(no_job(job_id, reason))
    if code in (4001, 4003):
        raise AuthenticationError(f"the jobs API at {base_url} refused the token: {reason}")
    if 4000 <= code < 5000:
        raise ValueError(reason)
    raise NbclusterSystemError(f"the jobs API at {base_url} broke off the log of job {job_id!r}: {reason}")


async def drain(conn: Any) -> None:
    """Read a websocket until the server has closed it."""
    while await conn.read_message() is not None:
        pass
