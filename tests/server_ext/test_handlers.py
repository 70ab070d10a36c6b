"""The REST API through pytest-jupyter's server: clusters made, scaled and deleted for
real (detached processes), errors, authentication and XSRF, the discovery file."""

from __future__ import annotations

import asyncio
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError

from nbcluster import state

from ..conftest import wait_for
from .conftest import body, gone, session_processes

API = ("nbcluster", "api")


async def call(jp_fetch: Any, method: str, *path: str, payload: Any = None, raw: bytes | None = None,
               **kwargs: Any) -> tuple[int, Any]:
    """(status, JSON body) of one API call; errors are answers, not exceptions."""
    data = raw if raw is not None else (json.dumps(payload).encode() if payload is not None else None)
    if data is None and method in ("POST", "PATCH"):
        data = b""
    try:
        response = await jp_fetch(*API, *path, method=method, body=data, request_timeout=120,
                                  allow_nonstandard_methods=True, **kwargs)
    except HTTPClientError as exc:
        response = exc.response
        assert response is not None, exc
    return response.code, body(response)


def discovery(runtime_dir: Path) -> dict[str, Any]:
    path = runtime_dir / "nbcluster-clusters.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    return json.loads(path.read_text())


def alive_workers(address: str, token: str) -> int:
    return sum(1 for n in state.list_nodes(address=address, token=token) if n.state == "ALIVE" and not n.is_head)


async def test_create_scale_adapt_delete(jp_fetch: Any, jp_serverapp: Any, jp_runtime_dir: Path) -> None:
    code, listed = await call(jp_fetch, "GET", "clusters")
    assert (code, listed) == (200, {"clusters": []})

    code, cluster = await call(jp_fetch, "POST", "clusters", payload={"name": "demo", "workers": 0})
    assert code == 201, cluster
    assert cluster["name"] == "demo" and cluster["origin"] == "created" and cluster["status"] == "running"
    assert cluster["autoscaler"] is True and cluster["nodes"] == {"alive": 1, "total": 1}
    assert cluster["workers"] == {"node_type": "worker", "running": 0, "pending": 0, "min": 0, "max": 0}
    assert cluster["resources"]["CPU"] == {"used": 0.0, "total": 1.0}
    assert cluster["spec"]["workers"] == 0 and cluster["drivers"] == []
    assert cluster["links"] == {"events": "clusters/demo/events", "jobs": "clusters/demo/jobs/"}
    host, port = cluster["address"].rsplit(":", 1)
    assert host == "127.0.0.1" and int(port) not in (0, 6380, 8265)

    # Kernels find it: the discovery file (0600) names it with a 0600 token file.
    listed = discovery(jp_runtime_dir)["clusters"]
    assert [(c["name"], c["address"]) for c in listed] == [("demo", cluster["address"])]
    token_file = Path(listed[0]["token_file"])
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    token = token_file.read_text().strip()
    session_dir = str(token_file.parent)
    pids = session_processes(session_dir)
    assert len(pids) == 2  # the head (GCS) and its node manager
    # Detached: sessions of their own, so they outlive the server's process group.
    assert all(os.getsid(p.pid) != os.getsid(0) for p in pids)

    code, got = await call(jp_fetch, "GET", "clusters", "demo")
    assert code == 200 and got["address"] == cluster["address"]
    code, listed = await call(jp_fetch, "GET", "clusters")
    assert [c["name"] for c in listed["clusters"]] == ["demo"]

    # Scale up: a worker node joins.
    code, scaled = await call(jp_fetch, "PATCH", "clusters", "demo", payload={"workers": 2})
    assert code == 200, scaled
    assert scaled["workers"]["min"] == 2 and scaled["workers"]["max"] == 2
    await asyncio.to_thread(wait_for, lambda: alive_workers(cluster["address"], token) == 2, 90.0,
                            message="2 worker nodes")
    code, nodes = await call(jp_fetch, "GET", "clusters", "demo", "nodes")
    assert code == 200 and sum(1 for n in nodes["nodes"] if n["state"] == "ALIVE") == 3
    code, autoscaler = await call(jp_fetch, "GET", "clusters", "demo", "autoscaler")
    assert code == 200 and autoscaler["enabled"] is True
    assert any("Adding" in e["message"] for e in autoscaler["events"])

    # Adapt: bounds 0..1 — the idle node above the new maximum goes (idle timeout 2 s).
    code, adapted = await call(jp_fetch, "PATCH", "clusters", "demo", payload={"adapt": {"minimum": 0, "maximum": 1}})
    assert code == 200 and (adapted["workers"]["min"], adapted["workers"]["max"]) == (0, 1)
    await asyncio.to_thread(wait_for, lambda: alive_workers(cluster["address"], token) <= 1, 90.0,
                            message="scale-down to at most 1 worker node")
    code, down = await call(jp_fetch, "PATCH", "clusters", "demo", payload={"workers": 0})
    assert code == 200
    await asyncio.to_thread(wait_for, lambda: alive_workers(cluster["address"], token) == 0, 90.0,
                            message="scale-down to no worker node")

    # Delete: the processes are gone when the answer comes, the discovery file forgets it.
    code, _ = await call(jp_fetch, "DELETE", "clusters", "demo")
    assert code == 204
    assert gone(pids)
    assert not Path(session_dir).exists()
    assert discovery(jp_runtime_dir) == {"clusters": []}
    code, missing = await call(jp_fetch, "GET", "clusters", "demo")
    assert code == 404 and "demo" in missing["message"]


async def test_bad_input(jp_fetch: Any, jp_serverapp: Any) -> None:
    cases = [
        ({"workers": -1}, "workers"),
        ({"workers": "two"}, "workers"),
        ({"workers": 1, "adapt": {"minimum": 0, "maximum": 1}}, "workers"),
        ({"adapt": {"minimum": 3, "maximum": 1}}, "adapt"),
        ({"adapt": [0, 1]}, "adapt"),
        ({"num_cpus": -2}, "num_cpus"),
        ({"bogus": 1}, "bogus"),
        ({"name": "no spaces"}, "name"),
        ({"autoscaling_config": "yaml"}, "autoscaling_config"),
        ({"autoscaling_config": {"available_node_types": {}}}, "available_node_types"),
        ({"autoscaling_config": {"available_node_types": {"w": {"resources": {"CPU": 1}, "max_workers": 1}},
                                 "provider": {"type": "nowhere"}}}, "provider.type"),
        ([1, 2], "JSON object"),
    ]
    for payload, named in cases:
        code, answer = await call(jp_fetch, "POST", "clusters", payload=payload)
        assert code == 400, (payload, answer)
        assert named in answer["message"], (payload, answer)
    code, answer = await call(jp_fetch, "POST", "clusters", raw=b"{not json")
    assert code == 400 and "JSON" in answer["message"]
    for payload, named in [({}, "name"), ({"name": "x"}, "address"), ({"name": "x", "address": "nohost"}, "address"),
                           ({"name": "x", "address": "127.0.0.1:1", "token": "a", "token_file": "/f"}, "token"),
                           ({"name": "x", "address": "127.0.0.1:1"}, "token"),
                           ({"name": "x", "address": "127.0.0.1:1", "token_file": "/nonexistent/token"}, "token_file"),
                           ({"name": "x", "address": "127.0.0.1:1", "token": "t"}, "cannot reach")]:
        code, answer = await call(jp_fetch, "POST", "attach", payload=payload)
        assert code == 400, (payload, answer)
        assert named in answer["message"], (payload, answer)
    # Nothing was started by any of them.
    code, listed = await call(jp_fetch, "GET", "clusters")
    assert listed == {"clusters": []}


async def test_unknown_cluster_is_404(jp_fetch: Any, jp_serverapp: Any) -> None:
    for method, path, payload in [
        ("GET", ("clusters", "nope"), None),
        ("PATCH", ("clusters", "nope"), {"workers": 1}),
        ("PATCH", ("clusters", "nope"), {"workers": "bad body, but the cluster is unknown first"}),
        ("DELETE", ("clusters", "nope"), None),
        ("GET", ("clusters", "nope", "nodes"), None),
        ("GET", ("clusters", "nope", "autoscaler"), None),
        ("GET", ("clusters", "nope", "events"), None),
        ("GET", ("clusters", "nope", "jobs", ""), None),
        ("POST", ("clusters", "nope", "jobs", "x", "stop"), {}),
    ]:
        code, answer = await call(jp_fetch, method, *path, payload=payload)
        assert code == 404, (method, path, answer)
        assert "nope" in answer["message"]


async def test_unauthenticated_requests_are_refused(jp_fetch: Any, jp_serverapp: Any) -> None:
    for method, path, payload in [("GET", ("clusters",), None), ("POST", ("clusters",), {"workers": 0}),
                                  ("POST", ("attach",), {}), ("GET", ("clusters", "x", "events"), None),
                                  ("DELETE", ("clusters", "x"), None), ("GET", ("clusters", "x", "jobs", ""), None)]:
        for auth in ("", "token wrong-token"):
            code, _ = await call(jp_fetch, method, *path, payload=payload, headers={"Authorization": auth})
            assert code in (401, 403), (method, path, auth, code)
    code, listed = await call(jp_fetch, "GET", "clusters")
    assert listed == {"clusters": []}


async def _login(jp_fetch: Any, token: str) -> dict[str, str]:
    """Log in with the token as a browser does; the cookies it gets."""
    cookies: dict[str, str] = {}

    def keep(response: Any) -> None:
        for header in response.headers.get_list("Set-Cookie"):
            name, _, rest = header.partition("=")
            cookies[name] = rest.split(";", 1)[0]

    first = await jp_fetch("login", method="GET", headers={"Authorization": ""})
    keep(first)
    assert "_xsrf" in cookies
    form = f"password={token}&_xsrf={cookies['_xsrf']}".encode()
    try:
        response = await jp_fetch("login", method="POST", body=form, follow_redirects=False,
                                  headers={"Authorization": "", "Cookie": f"_xsrf={cookies['_xsrf']}"})
    except HTTPClientError as exc:
        response = exc.response
    assert response.code == 302, response.code
    keep(response)
    assert any(name.startswith("username-") for name in cookies), cookies
    return cookies


async def test_cookie_mutation_needs_xsrf(jp_fetch: Any, jp_serverapp: Any) -> None:
    cookies = await _login(jp_fetch, jp_serverapp.identity_provider.token)
    cookie = "; ".join(f"{k}={v}" for k, v in cookies.items())
    # A read with the cookie alone works.
    code, listed = await call(jp_fetch, "GET", "clusters", headers={"Authorization": "", "Cookie": cookie})
    assert code == 200 and listed == {"clusters": []}
    # A mutation with the cookie but without the XSRF header is refused, before the body is read.
    for method, path in [("POST", ("clusters",)), ("POST", ("attach",)), ("PATCH", ("clusters", "x")),
                         ("DELETE", ("clusters", "x")), ("POST", ("clusters", "x", "jobs", "y", "stop"))]:
        code, answer = await call(jp_fetch, method, *path, payload={"bogus": 1},
                                  headers={"Authorization": "", "Cookie": cookie})
        assert code == 403, (method, path, code, answer)
        assert "xsrf" in json.dumps(answer).lower()
    # With it, the request goes through (and the bad body is what is refused).
    code, answer = await call(jp_fetch, "POST", "clusters", payload={"bogus": 1},
                              headers={"Authorization": "", "Cookie": cookie, "X-XSRFToken": cookies["_xsrf"]})
    assert code == 400 and "bogus" in answer["message"]


async def test_duplicate_name_is_409_and_default_names(jp_fetch: Any, jp_serverapp: Any,
                                                      jp_runtime_dir: Path) -> None:
    code, first = await call(jp_fetch, "POST", "clusters")  # no body: the server's default spec
    assert code == 201, first
    assert first["name"] == "cluster-1" and first["spec"]["workers"] == 0 and first["spec"]["num_cpus"] == 1.0
    try:
        code, answer = await call(jp_fetch, "POST", "clusters", payload={"name": "cluster-1"})
        assert code == 409 and "cluster-1" in answer["message"]
        code, answer = await call(jp_fetch, "POST", "attach",
                                  payload={"name": "cluster-1", "address": first["address"], "token": "x"})
        assert code == 409
        # The same cluster attached under another name (as a notebook user would).
        token = Path(discovery(jp_runtime_dir)["clusters"][0]["token_file"]).read_text()
        code, attached = await call(jp_fetch, "POST", "attach",
                                    payload={"name": "again", "address": first["address"], "token": token})
        assert code == 201 and attached["origin"] == "attached" and attached["nodes"]["alive"] == 1
        code, _ = await call(jp_fetch, "DELETE", "clusters", "again")
        assert code == 204
    finally:
        code, _ = await call(jp_fetch, "DELETE", "clusters", "cluster-1")
        assert code == 204


async def test_server_stop_stops_created_clusters(jp_fetch: Any, jp_serverapp: Any, jp_runtime_dir: Path) -> None:
    code, cluster = await call(jp_fetch, "POST", "clusters", payload={"name": "short"})
    assert code == 201
    session_dir = str(Path(discovery(jp_runtime_dir)["clusters"][0]["token_file"]).parent)
    pids = session_processes(session_dir)
    extension = jp_serverapp.extension_manager.extension_apps["nbcluster"]
    (app,) = extension
    await app.stop_extension()  # what the server does when it stops (stop_clusters_on_shutdown)
    assert gone(pids)
    assert discovery(jp_runtime_dir) == {"clusters": []}


async def test_start_clusters_with_the_server(jp_serverapp: Any, jp_fetch: Any) -> None:
    (app,) = jp_serverapp.extension_manager.extension_apps["nbcluster"]
    app.start_clusters = [{"name": "boot", "workers": 0}, {"name": "bad", "workers": -1}]
    await app._start_jupyter_server_extension(jp_serverapp)
    code, listed = await call(jp_fetch, "GET", "clusters")
    assert [c["name"] for c in listed["clusters"]] == ["boot"]  # the bad one is logged and skipped
    await app._start_jupyter_server_extension(jp_serverapp)  # again: "boot" runs, nothing new
    code, listed = await call(jp_fetch, "GET", "clusters")
    assert [c["name"] for c in listed["clusters"]] == ["boot"]
    code, _ = await call(jp_fetch, "DELETE", "clusters", "boot")
    assert code == 204


@pytest.mark.parametrize("key", ["workers", "worker_cpus", "idle_timeout"])
def test_bad_traitlets_are_refused(key: str) -> None:
    from traitlets import TraitError

    from nbcluster.server_ext.app import NbclusterApp

    with pytest.raises(TraitError, match=key):
        NbclusterApp(**{key: -1})
