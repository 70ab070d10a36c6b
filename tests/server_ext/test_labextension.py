"""The JupyterLab extension as shipped: the built assets in ``nbcluster/labextension/``
match their TypeScript sources (``labextension/build.py`` records a hash of them), name
the package and version JupyterLab expects, and the list stream the sidebar follows
(``events``) sends the clusters a notebook or script starts on this machine (``local``)
as they come and go."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import time
from typing import Any

from nbcluster import __version__

from ..conftest import FAST_CONFIG, ROOT
from .conftest import until
from .test_attach import _events
from .test_handlers import call

BUILT = ROOT / "nbcluster" / "labextension"


def _build_script() -> Any:
    spec = importlib.util.spec_from_file_location("labextension_build", ROOT / "labextension" / "build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_built_extension_matches_its_sources() -> None:
    """Change labextension/src (or style, package.json, the lock) without running
    `python labextension/build.py` and this fails."""
    build = _build_script()
    assert build.stale() == ""
    assert (BUILT / "sources.sha256").read_text().strip() == build.sources_hash()


def test_built_extension_is_what_jupyterlab_loads() -> None:
    package = json.loads((BUILT / "package.json").read_text())
    assert package["name"] == "nbcluster" and package["version"] == __version__
    assert (BUILT / package["jupyterlab"]["_build"]["load"]).is_file()
    assert (BUILT / "static" / "style.js").is_file()
    install = json.loads((ROOT / "install.json").read_text())
    assert install["packageManager"] == "python" and install["packageName"] == "nbcluster"
    shipped = b"".join(p.read_bytes() for p in (BUILT / "static").glob("*.js"))
    for command in (b"nbcluster:start-cluster", b"nbcluster:open-page", b"nbcluster:insert-connect"):
        assert command in shipped, command


async def test_list_stream_sends_clusters_on_this_machine(jp_fetch: Any, jp_serverapp: Any) -> None:
    """A cluster a script starts while the stream is open shows up in a ``local`` event
    within the stream's look interval (plus the time to make the event); once attached
    it is in ``clusters`` and no longer ``local``; stopped, it leaves."""
    from nbcluster.cluster_utils import Cluster
    from nbcluster.server_ext.events_handler import ClusterListEventsHandler

    chunks: list[str] = []
    stream = asyncio.ensure_future(jp_fetch("nbcluster", "api", "events", streaming_callback=chunks.append,
                                            request_timeout=120))

    def local_lists() -> list[list[str]]:
        return [[c["address"] for c in d["clusters"]] for k, d in _events([c.decode() for c in chunks]) if k == "local"]

    cluster = None
    try:
        await until(lambda: local_lists() == [[]], 60.0, "the first local event, empty")
        cluster = await asyncio.to_thread(lambda: Cluster(
            initialize_head=True, head_node_args={"num_cpus": 1, "_system_config": FAST_CONFIG},
            shutdown_at_exit=False))
        address, started = cluster.address, time.monotonic()
        await until(lambda: [address] in local_lists(), 30.0, "the script's cluster in a local event")
        # The server looks every local_poll_s (1 s): seen within a few s even on a loaded machine.
        assert time.monotonic() - started < 2 * ClusterListEventsHandler.local_poll_s + 3.0
        code, _ = await call(jp_fetch, "POST", "attach", payload={"name": "script", "address": address})
        assert code == 201

        def attached() -> bool:
            events = _events([c.decode() for c in chunks])
            return (any(k == "clusters" and [c["name"] for c in d["clusters"]] == ["script"] for k, d in events)
                    and local_lists()[-1] == [])

        await until(attached, 30.0, "the attached cluster in clusters, gone from local")
        code, _ = await call(jp_fetch, "DELETE", "clusters", "script")
        assert code == 204
        await asyncio.to_thread(cluster.shutdown)
        cluster = None
        await until(lambda: local_lists()[-1] == [], 30.0, "the stopped cluster gone from local")
    finally:
        stream.cancel()
        if cluster is not None:
            await asyncio.to_thread(cluster.shutdown)
