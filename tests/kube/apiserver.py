"""The stand-in API server (see ``tests/kube/__init__.py``).

Objects live in memory in a :class:`Store`; every change gets the next
resourceVersion and is kept in a history that watches replay from. The HTTP
server listens on an address inside a network namespace (the socket is made there
by a thread that enters it), so processes in other namespaces reach it as they would
reach an API server; the test process uses the same :class:`Store` directly.
"""

from __future__ import annotations

import datetime
import json
import re
import socket
import threading
import urllib.parse
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from ..netns import in_netns

_PATH = re.compile(r"^/(?:api/v1|apis/(?P<group>[a-z0-9.]+)/v1)/namespaces/(?P<ns>[^/]+)/(?P<plural>[a-z]+)(?:/(?P<name>[^/]+))?$")
KINDS = {"pods": "Pod", "services": "Service", "secrets": "Secret", "configmaps": "ConfigMap",
         "deployments": "Deployment", "persistentvolumeclaims": "PersistentVolumeClaim",
         "serviceaccounts": "ServiceAccount", "roles": "Role", "rolebindings": "RoleBinding"}


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def matches(labels: dict[str, str], selector: str) -> bool:
    """Equality-based label selectors: ``a=b``, ``a==b``, ``a!=b``, ``a``, ``!a``, comma-joined."""
    for term in filter(None, (t.strip() for t in selector.split(","))):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key.strip()) == value.strip():
                return False
        elif "=" in term:
            key, value = re.split(r"==?", term, maxsplit=1)
            if labels.get(key.strip()) != value.strip():
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


def status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
            "reason": reason, "code": code}


class ApiError(Exception):
    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.body = status(code, reason, message)


class Store:
    """The objects, their resourceVersions and the change history watches read."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.rv = 0
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.history: list[tuple[int, str, str, str, dict[str, Any]]] = []  # rv, plural, ns, type, object
        self.requests: list[tuple[str, str]] = []  # (method, path): what clients asked
        #: The namespaces that exist (None: any does). Creating in another one is 404, as
        #: in Kubernetes (listing in it finds nothing).
        self.namespaces: set[str] | None = None

    def _record(self, plural: str, ns: str, kind: str, obj: dict[str, Any]) -> dict[str, Any]:
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        snapshot = json.loads(json.dumps(obj))
        self.history.append((self.rv, plural, ns, kind, snapshot))
        self.cond.notify_all()
        return snapshot

    def create(self, plural: str, ns: str, obj: dict[str, Any]) -> dict[str, Any]:
        with self.cond:
            meta = obj.setdefault("metadata", {})
            name = meta.get("name")
            if not name:
                raise ApiError(422, "Invalid", f"{KINDS[plural]} has no metadata.name")
            if self.namespaces is not None and ns not in self.namespaces:
                raise ApiError(404, "NotFound", f'namespaces "{ns}" not found')
            if (plural, ns, name) in self.objects:
                raise ApiError(409, "AlreadyExists", f'{plural} "{name}" already exists')
            meta.update(namespace=ns, uid=str(uuid.uuid4()), creationTimestamp=now())
            obj.setdefault("kind", KINDS[plural])
            if plural == "pods":
                obj["status"] = {"phase": "Pending"}
            self.objects[(plural, ns, name)] = obj
            return self._record(plural, ns, "ADDED", obj)

    def get(self, plural: str, ns: str, name: str) -> dict[str, Any]:
        with self.cond:
            obj = self.objects.get((plural, ns, name))
            if obj is None:
                raise ApiError(404, "NotFound", f'{plural} "{name}" not found')
            return json.loads(json.dumps(obj))

    def list(self, plural: str, ns: str, selector: str = "") -> tuple[list[dict[str, Any]], int]:
        with self.cond:
            items = [json.loads(json.dumps(o)) for (p, n, _), o in sorted(self.objects.items())
                     if p == plural and n == ns and matches(o["metadata"].get("labels") or {}, selector)]
            return items, self.rv

    def update(self, plural: str, ns: str, name: str, change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
        with self.cond:
            obj = self.objects.get((plural, ns, name))
            if obj is None:
                raise ApiError(404, "NotFound", f'{plural} "{name}" not found')
            change(obj)
            return self._record(plural, ns, "MODIFIED", obj)

    def delete(self, plural: str, ns: str, name: str, grace: int | None = None) -> dict[str, Any]:
        """A pod gets a deletionTimestamp (the kubelet stops it, then removes it); other
        objects go at once."""
        with self.cond:
            obj = self.objects.get((plural, ns, name))
            if obj is None:
                raise ApiError(404, "NotFound", f'{plural} "{name}" not found')
            if plural != "pods":
                return self.remove(plural, ns, name)
            if "deletionTimestamp" in obj["metadata"]:
                return json.loads(json.dumps(obj))
            if grace is None:
                grace = obj.get("spec", {}).get("terminationGracePeriodSeconds", 30)
            obj["metadata"].update(deletionTimestamp=now(), deletionGracePeriodSeconds=grace)
            return self._record(plural, ns, "MODIFIED", obj)

    def remove(self, plural: str, ns: str, name: str) -> dict[str, Any]:
        with self.cond:
            obj = self.objects.pop((plural, ns, name))
            return self._record(plural, ns, "DELETED", obj)

    def events(self, plural: str, ns: str, selector: str, after: int, timeout: float):
        """Yield (type, object) of changes after resourceVersion ``after`` until ``timeout``."""
        deadline = threading.Event()
        timer = threading.Timer(timeout, deadline.set)
        timer.start()
        try:
            while not deadline.is_set():
                with self.cond:
                    found = [(k, o) for rv, p, n, k, o in self.history
                             if rv > after and p == plural and n == ns
                             and matches(o["metadata"].get("labels") or {}, selector)]
                    if not found:
                        self.cond.wait(0.5)
                        continue
                    after = max(int(o["metadata"]["resourceVersion"]) for _, o in found)
                yield from found
        finally:
            timer.cancel()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    store: Store

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def _route(self) -> tuple[str, str, str | None, dict[str, str]]:
        url = urllib.parse.urlsplit(self.path)
        match = _PATH.match(url.path)
        if not match or match["plural"] not in KINDS:
            raise ApiError(404, "NotFound", f"the server could not find the requested resource ({url.path})")
        query = dict(urllib.parse.parse_qsl(url.query))
        self.store.requests.append((self.command, url.path))
        return match["plural"], match["ns"], match["name"], query

    def _send(self, code: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(length) or b"{}")

    def _serve(self, work: Callable[[], tuple[int, dict[str, Any]] | None]) -> None:
        try:
            result = work()
        except ApiError as exc:
            self._send(exc.body["code"], exc.body)
            return
        if result is not None:
            self._send(*result)

    def do_GET(self) -> None:  # noqa: N802 - the http.server name
        def work() -> tuple[int, dict[str, Any]] | None:
            plural, ns, name, query = self._route()
            if name:
                return 200, self.store.get(plural, ns, name)
            selector = query.get("labelSelector", "")
            if query.get("watch") in ("true", "1"):
                self._watch(plural, ns, selector, query)
                return None
            items, rv = self.store.list(plural, ns, selector)
            return 200, {"kind": KINDS[plural] + "List", "apiVersion": "v1", "metadata": {"resourceVersion": str(rv)},
                         "items": items}
        self._serve(work)

    def _watch(self, plural: str, ns: str, selector: str, query: dict[str, str]) -> None:
        """A watch: one JSON event per line, each its own HTTP chunk (as the API server)."""
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

        def send(kind: str, obj: dict[str, Any]) -> None:
            line = json.dumps({"type": kind, "object": obj}).encode() + b"\n"
            self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
            self.wfile.flush()

        after = int(query.get("resourceVersion") or 0)
        try:
            if after == 0:  # "any": the current objects first, as ADDED
                items, after = self.store.list(plural, ns, selector)
                for obj in items:
                    send("ADDED", obj)
            for kind, obj in self.store.events(plural, ns, selector, after, float(query.get("timeoutSeconds", 30))):
                send(kind, obj)
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def do_POST(self) -> None:  # noqa: N802
        def work() -> tuple[int, dict[str, Any]]:
            plural, ns, _, _ = self._route()
            return 201, self.store.create(plural, ns, self._body())
        self._serve(work)

    def do_DELETE(self) -> None:  # noqa: N802
        def work() -> tuple[int, dict[str, Any]]:
            plural, ns, name, query = self._route()
            body = self._body()
            grace = body.get("gracePeriodSeconds", query.get("gracePeriodSeconds"))
            return 200, self.store.delete(plural, ns, name or "", None if grace is None else int(grace))
        self._serve(work)


def _socket_in_netns(netns: str, ip: str) -> socket.socket:
    """A listening TCP socket on ``ip`` inside network namespace ``netns``."""

    def make() -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((ip, 0))
        sock.listen(64)
        return sock

    return in_netns(netns, make)


class ApiServer:
    """The HTTP server over a :class:`Store`, listening at ``ip`` in ``netns`` (None:
    this process's namespace)."""

    def __init__(self, store: Store, netns: str | None = None, ip: str = "127.0.0.1") -> None:
        self.store = store
        handler = type("Handler", (_Handler,), {"store": store})
        self.server = ThreadingHTTPServer((ip, 0), handler, bind_and_activate=netns is None)
        self.server.daemon_threads = True
        if netns is not None:
            self.server.socket.close()
            self.server.socket = _socket_in_netns(netns, ip)
        self.url = f"http://{ip}:{self.server.socket.getsockname()[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self._thread.start()

    def write_kubeconfig(self, path: Path, namespace: str) -> Path:
        """A kubeconfig for the official client (JSON is YAML)."""
        path.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "standin",
            "clusters": [{"name": "standin", "cluster": {"server": self.url}}],
            "users": [{"name": "standin", "user": {"token": "standin"}}],
            "contexts": [{"name": "standin", "context": {"cluster": "standin", "user": "standin",
                                                          "namespace": namespace}}],
        }))
        return path

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
