"""A cluster a notebook started, seen from a real ``jupyter server`` with the extension
and its page in headless Chromium: the page offers it under "Running on this machine"
(no "No clusters yet" beside it) with its uptime from the GCS's start time, not from
a directory's mtime; once attached, its driver is named by the kernel's notebook, and
that name follows a rename of the session (PATCH /api/sessions/ID) live, on the page and in
the driver's job."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import re
import time
from typing import Any

import pytest

from tests.browser import chromium, screenshot

from .test_e2e import Kernel
from .test_page_browser import UI_MS, page_server, watch_errors

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def execute(server: Any, kernel_id: str, code: str) -> str:
    """Run ``code`` in the server's kernel (over its websocket, on a thread of its own:
    Playwright's sync API owns this one); what it printed. Fails on an error."""

    async def run() -> tuple[dict, str]:
        kernel = await Kernel(server, kernel_id).__aenter__()
        try:
            return await kernel.execute(code)
        finally:
            kernel.ws.close()
            while await kernel.ws.read_message() is not None:  # None: closed, its socket too
                pass

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        reply, out = pool.submit(asyncio.run, run()).result(timeout=300)
    assert reply["status"] == "ok", out
    return out


def test_a_notebook_cluster_on_the_page_and_a_renamed_notebook() -> None:
    with page_server() as (server, _tag), chromium() as browser:
        from playwright.sync_api import expect

        code, session = server.request("POST", "api/sessions", {
            "path": "old name.ipynb", "type": "notebook", "name": "old name.ipynb", "kernel": {"name": "python3"}})
        assert code == 201, session
        kernel_id = session["kernel"]["id"]
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        try:
            out = execute(server, kernel_id, "%load_ext nbcluster\n%cluster start --num-cpus 1\n"
                          "import nbcluster\nhead = nbcluster.state.get_head_state()\n"
                          "print('HEAD', head.gcs_address, head.start_time, head.session_dir)")
            address, start_time, session_dir = re.search(r"HEAD (\S+) (\S+) (.+)", out).groups()
            # The session directory's mtime an hour back: an uptime read from it would say "up 1h00m".
            hour_ago = time.time() - 3600
            os.utime(session_dir, (hour_ago, hour_ago))

            code, local = server.request("GET", "nbcluster/api/local")
            assert code == 200
            (found,) = [c for c in local["clusters"] if c["address"] == address]
            assert found["started"] == pytest.approx(float(start_time)), found

            page = context.new_page()
            errors = watch_errors(page)
            page.goto(server.url("nbcluster/"))
            expect(page.locator("body")).to_have_attribute("data-ready", "true", timeout=UI_MS)
            row = page.locator(f'[data-testid="local-row"][data-address="{address}"]')
            expect(row).to_be_visible(timeout=UI_MS)
            uptime = row.locator('[data-testid="local-uptime"]').text_content()
            assert re.fullmatch(r"up (\d+s|[1-4]m\d\ds)", uptime), uptime  # seconds or minutes, not an hour
            expect(page.locator("#clusters-empty")).to_be_hidden()  # a cluster runs: not "No clusters yet"
            screenshot(page, "server-page-local-cluster")

            # Attached, it lists the notebook's kernel as its driver, by the notebook's name...
            row.locator('[data-testid="attach-local"]').click()
            name = f"local-{address.rsplit(':', 1)[1]}"
            expect(page.locator("#detail-name")).to_have_text(name, timeout=UI_MS)
            expect(page.locator("#sum-drivers")).to_contain_text("old name.ipynb", timeout=UI_MS)
            code, cluster = server.request("GET", f"nbcluster/api/clusters/{name}")
            assert [(d["kernel_id"], d["notebook_path"]) for d in cluster["drivers"]] == [(kernel_id, "old name.ipynb")]

            # ... and by its new name once the notebook is renamed (what JupyterLab does to its session):
            # on the page at once (no reload), and in the job the kernel's driver has in the GCS.
            code, renamed = server.request("PATCH", f"api/sessions/{session['id']}", {"path": "new/renamed.ipynb"})
            assert code == 200 and renamed["path"] == "new/renamed.ipynb", renamed
            code, cluster = server.request("GET", f"nbcluster/api/clusters/{name}")
            assert [d["notebook_path"] for d in cluster["drivers"]] == ["new/renamed.ipynb"], cluster["drivers"]
            expect(page.locator("#sum-drivers")).to_contain_text("new/renamed.ipynb", timeout=UI_MS)
            out = execute(server, kernel_id, "import time\ndeadline = time.monotonic() + 60\n"
                          "while not (path := nbcluster.state.list_jobs()[0].metadata['notebook_path'])"
                          ".endswith('/new/renamed.ipynb'):\n"
                          "    assert time.monotonic() < deadline, path\n    time.sleep(0.05)\nprint('PATH', path)")
            assert f"PATH {server.root_dir}/new/renamed.ipynb" in out, out
            assert errors == [], errors
        finally:
            context.close()
            try:
                execute(server, kernel_id, "%cluster stop")
            finally:
                server.request("DELETE", f"api/sessions/{session['id']}")
