"""openapi.yaml describes exactly the routes the extension registers (both directions)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

import nbcluster.server_ext

SPEC = Path(nbcluster.server_ext.__file__).parent / "openapi.yaml"
METHODS = ("get", "post", "put", "patch", "delete")


def _template(pattern: str) -> str:
    """A tornado route as an OpenAPI path: named groups become {name}, an unnamed
    group {path}, optional slashes go."""
    path = re.sub(r"\(\?P<(\w+)>(?:[^()]|\((?:[^()]|\([^()]*\))*\))*\)", r"{\1}", pattern)
    path = re.sub(r"\((?:[^()])*\)", "{path}", path)
    path = path.replace("/?", "").rstrip("$")
    return path.rstrip("/") or "/"


def _methods(handler: type) -> set[str]:
    from tornado.web import RequestHandler

    return {m for m in METHODS if getattr(handler, m) is not getattr(RequestHandler, m)}


def registered(app: Any) -> set[tuple[str, str]]:
    return {(_template(pattern), method) for pattern, handler, *_ in app.handlers for method in _methods(handler)}


def documented() -> set[tuple[str, str]]:
    spec = yaml.safe_load(SPEC.read_text())
    assert spec["openapi"].startswith("3.")
    return {(path.rstrip("/") or "/", method) for path, item in spec["paths"].items()
            for method in item if method in METHODS}


async def test_openapi_matches_the_handlers(jp_serverapp: Any) -> None:
    (app,) = jp_serverapp.extension_manager.extension_apps["nbcluster"]
    routes = registered(app)
    assert ("/nbcluster/api/clusters/{name}", "patch") in routes  # the template is right
    assert ("/nbcluster/api/clusters/{name}/jobs{rest}", "get") in routes or \
        ("/nbcluster/api/clusters/{name}/jobs/{rest}", "get") in routes
    routes = {(p.replace("jobs{rest}", "jobs/{rest}"), m) for p, m in routes}
    spec = documented()
    assert routes - spec == set(), "routes missing from openapi.yaml"
    assert spec - routes == set(), "openapi.yaml documents routes that do not exist"


def test_every_route_has_responses_and_refs_resolve() -> None:
    spec = yaml.safe_load(SPEC.read_text())
    text = SPEC.read_text()
    for ref in set(re.findall(r'\$ref: "#/([^"]+)"', text)):
        node = spec
        for part in ref.split("/"):
            node = node[part]
    for path, item in spec["paths"].items():
        for method in METHODS:
            if method in item:
                assert item[method].get("responses"), (path, method)
