"""The cluster page (``{base_url}nbcluster/``) in headless Chromium against a real
``jupyter server`` with the extension: create a cluster from the form, watch its nodes
arrive, scale it and see the autoscaler's decision, tail a job's log, stop it, and
find its processes gone. Once more under ``base_url=/prefix/``.

Clusters the page makes are detached process trees (their own sessions), so the
server's environment carries a tag of this test and every process with that tag is
checked for at the end: deleted through the API in a ``finally`` and killed (and the
test failed) if any survived. Every wait has a deadline; nothing sleeps.
"""

from __future__ import annotations

import json
import re
import secrets
import shlex
import sys
import urllib.error
import urllib.request
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psutil
import pytest

from tests.browser import JupyterProcess, chromium, kill_all, screenshot

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

#: The environment variable that marks every process a test's server starts.
TAG_ENV = "NBCLUSTER_PAGE_TEST_TAG"
#: Deadlines (ms, Playwright's unit): two shared cores start clusters slowly.
START_MS = 180_000
STEP_MS = 120_000
UI_MS = 30_000
#: The job the test submits: tasks on every node for a few seconds, then a result.
JOB = """\
import os
import sys
import time
import nbcluster

GATE = sys.argv[1]  # the tasks run until the test has seen them running
nbcluster.init()

@nbcluster.remote
def square(i):
    deadline = time.monotonic() + 120
    while not os.path.exists(GATE) and time.monotonic() < deadline:
        time.sleep(0.1)
    return i * i

print("started", flush=True)
print("sum of squares:", sum(nbcluster.get([square.remote(i) for i in range(9)])), flush=True)
"""


def tagged(tag: str, exclude: Collection[int] = ()) -> list[psutil.Process]:
    """Live processes whose environment carries ``tag`` (those of one test's server)."""
    found = []
    for proc in psutil.process_iter(["pid"]):
        if proc.pid in exclude:
            continue
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                continue
            if proc.environ().get(TAG_ENV) == tag:
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess, OSError):
            continue
    return found


def cluster_processes(tag: str, server: JupyterProcess) -> list[psutil.Process]:
    """The tagged processes that are not the server itself."""
    assert server.proc is not None
    return tagged(tag, exclude={server.proc.pid})


def wait_gone(procs: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Wait up to ``timeout`` s for ``procs`` to exit; the ones still alive."""
    _, alive = psutil.wait_procs(procs, timeout=timeout)
    left = []
    for proc in alive:
        try:
            if proc.status() != psutil.STATUS_ZOMBIE:
                left.append(proc)
        except psutil.NoSuchProcess:
            pass
    return left


def describe(procs: list[psutil.Process]) -> list[str]:
    out = []
    for proc in procs:
        try:
            out.append(f"{proc.pid}: {' '.join(proc.cmdline())[:160]}")
        except psutil.Error:
            out.append(str(proc.pid))
    return out


@contextmanager
def page_server(base_url: str = "/") -> Iterator[tuple[JupyterProcess, str]]:
    """A ``jupyter server`` with the extension enabled, and its processes' tag. On exit
    every cluster it knows is deleted, the server stops, and no tagged process may be
    left (survivors are killed and fail the test)."""
    tag = secrets.token_hex(8)
    server = JupyterProcess(base_url=base_url, env={TAG_ENV: tag})
    config_dir = server.home / "config"
    config_dir.mkdir(parents=True, exist_ok=True)
    (config_dir / "jupyter_server_config.json").write_text(json.dumps({
        "ServerApp": {"jpserver_extensions": {"nbcluster": True}},
        "NbclusterApp": {"idle_timeout": 5.0},
    }))
    try:
        server.start(timeout=120.0)
    except BaseException:
        server.__exit__(None, None, None)
        raise
    problems: list[str] = []
    try:
        yield server, tag
    finally:
        try:
            status, body = server.request("GET", "nbcluster/api/clusters", timeout=60.0)
            for cluster in body.get("clusters", []) if status == 200 and isinstance(body, dict) else []:
                status, answer = server.request("DELETE", f"nbcluster/api/clusters/{cluster['name']}", timeout=120.0)
                if status not in (204, 404):
                    problems.append(f"DELETE {cluster['name']}: {status} {answer}")
        except OSError as exc:
            problems.append(f"could not delete the clusters: {exc}")
        log = server.log()
        server.__exit__(None, None, None)
        left = wait_gone(tagged(tag), timeout=30.0)
        if left:
            problems.append(f"processes left behind: {describe(left)}")
            kill_all(left)
        if problems:
            pytest.fail("; ".join(problems) + f"\nserver log:\n{log}")


def watch_errors(page: Any) -> list[str]:
    """Script errors on ``page`` (uncaught exceptions), collected as they happen."""
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    return errors


def count_with_text(page: Any, selector: str, text: str) -> int:
    return page.evaluate(
        "([sel, text]) => [...document.querySelectorAll(sel)].filter((e) => e.textContent.includes(text)).length",
        [selector, text],
    )


def test_page_creates_scales_and_stops_a_cluster(tmp_path: Path) -> None:
    with page_server() as (server, tag), chromium() as browser:
        from playwright.sync_api import expect

        context = browser.new_context(viewport={"width": 1280, "height": 1000})
        try:
            page = context.new_page()
            errors = watch_errors(page)
            scripts: list[str] = []
            page.on("request", lambda r: r.resource_type == "script" and scripts.append(r.url))
            page.goto(server.url("nbcluster/"))  # ?token= logs in: a cookie from now on
            expect(page.locator("body")).to_have_attribute("data-ready", "true", timeout=UI_MS)
            # Each module once, under one URL (a second URL would run it, and its state, twice).
            assert sorted(url.split("/nbcluster/", 1)[1] for url in scripts) == [
                "static/app.js", "static/lib.js", "static/render.js", "static/view.js"], scripts
            assert "token=" not in page.url, "the page keeps the token out of the address bar"
            assert any(c["name"] == "_xsrf" for c in context.cookies()), "the page sets Jupyter's _xsrf cookie"
            expect(page.locator("#clusters-empty")).to_be_visible()

            # A body the server refuses: its message is shown by the form.
            page.fill("#create-name", "pagetest")
            page.fill("#create-cpus", "1")
            page.fill("#create-worker-cpus", "1")
            page.check("#create-mode-fixed")
            page.fill("#create-workers", "300")
            page.click("#create-submit")
            expect(page.locator("#create-error")).to_contain_text("workers must be a whole number", timeout=UI_MS)

            # Create: one head and one worker node.
            page.fill("#create-workers", "1")
            page.click("#create-submit")
            row = page.locator('#cluster-list li[data-name="pagetest"]')
            expect(row).to_be_visible(timeout=START_MS)
            expect(page.locator("#detail-name")).to_have_text("pagetest")
            expect(page.locator("#stream-status")).to_have_attribute("data-state", "live", timeout=UI_MS)
            alive = page.locator('#nodes-body tr[data-state="ALIVE"]')
            expect(alive).to_have_count(2, timeout=START_MS)
            expect(page.locator('#nodes-body tr[data-node-type="worker"][data-state="ALIVE"]')).to_have_count(1)
            expect(page.locator("#sum-nodes")).to_have_attribute("data-alive", "2", timeout=UI_MS)
            procs = cluster_processes(tag, server)
            assert procs, "the cluster's processes carry the server's environment"

            # Scale to two workers: the autoscaler says so, and the node appears.
            adding = count_with_text(page, "#timeline li", "Adding")
            page.fill("#scale-workers", "2")
            page.click("#scale-submit")
            page.wait_for_function(
                "([n]) => [...document.querySelectorAll('#timeline li')]"
                ".filter((e) => e.textContent.includes('Adding')).length > n",
                arg=[adding], timeout=STEP_MS,
            )
            expect(alive).to_have_count(3, timeout=STEP_MS)
            expect(page.locator("#sum-nodes")).to_have_attribute("data-alive", "3", timeout=UI_MS)
            # Memory is the machine's, counted once for its three nodes (not the logical resource).
            machine = str(psutil.virtual_memory().total)
            expect(page.locator("#sum-memory [role=meter]")).to_have_attribute("aria-valuemax", machine,
                                                                                timeout=UI_MS)
            status, model = server.request("GET", "nbcluster/api/clusters/pagetest")
            assert status == 200 and model["memory"]["machines"] == 1, model
            assert model["memory"]["total"] == int(machine), model
            worker_type = page.locator('#node-types-body tr[data-node-type="worker"]')
            expect(worker_type.locator('td[data-field="running"]')).to_have_text("2", timeout=STEP_MS)

            # A job through the jobs proxy: its row, the nodes busy with its tasks, its log tail.
            gate = tmp_path / "gate"
            entrypoint = f"{shlex.quote(sys.executable)} -c {shlex.quote(JOB)} {shlex.quote(str(gate))}"
            status, submitted = server.request("POST", "nbcluster/api/clusters/pagetest/jobs/",
                                               {"entrypoint": entrypoint,
                                                "metadata": {"notebook_path": "work/squares.ipynb"}})
            assert status == 200, submitted
            job_id = submitted["submission_id"]
            job_row = page.locator(f'#jobs-body tr[data-job-id="{job_id}"]')
            expect(job_row).to_be_visible(timeout=STEP_MS)
            # A job from a notebook is shown by its notebook; its command line is the cell's title.
            expect(job_row.locator("td.entry")).to_have_text("work/squares.ipynb")
            expect(job_row.locator("td.entry")).to_have_attribute("title", entrypoint)
            job_row.locator("button").click()
            expect(page.locator("#log-text")).to_contain_text("started", timeout=STEP_MS)  # followed while it runs
            expect(page.locator("#log-text")).to_have_attribute("data-state", "live")  # by its live tail
            page.wait_for_function(  # load reports (NODE_STATE events) update the rows live
                "() => [...document.querySelectorAll('#nodes-body tr td.num')].some((td) => Number(td.textContent) > 0)",
                timeout=STEP_MS,
            )
            expect(job_row).to_contain_text(re.compile(r"\d+/9 tasks"), timeout=STEP_MS)  # TASK_COUNTERS events
            shot = screenshot(page, "server-page")
            assert shot.stat().st_size > 10_000
            gate.touch()  # let the job's tasks end
            expect(page.locator("#log-text")).to_contain_text("sum of squares: 204", timeout=STEP_MS)
            expect(job_row).to_have_attribute("data-status", "SUCCEEDED", timeout=STEP_MS)
            expect(page.locator("#log-text")).to_have_attribute("data-state", "loaded", timeout=STEP_MS)  # tail ended

            # Stop, confirmed in the dialog: the row goes, and so do the processes.
            procs = cluster_processes(tag, server)
            page.click("#stop-button")
            expect(page.locator("#confirm-dialog")).to_be_visible()
            page.click("#confirm-ok")
            expect(row).to_have_count(0, timeout=STEP_MS)
            expect(page.locator("#notice-text")).to_contain_text("pagetest stopped")
            expect(page.locator("#detail-empty")).to_be_visible()
            left = wait_gone(procs, timeout=30.0)
            assert not left, f"the cluster's processes survived its deletion: {describe(left)}"
            assert not cluster_processes(tag, server), describe(cluster_processes(tag, server))
            assert server.request("GET", "nbcluster/api/clusters")[1] == {"clusters": []}
            screenshot(page, "server-page-stopped")
            assert errors == [], errors
        except BaseException:
            for shown in context.pages:  # what the page showed when it failed
                screenshot(shown, "server-page-failure")
            raise
        finally:
            context.close()


def test_page_under_a_base_url() -> None:
    with page_server(base_url="/prefix/") as (server, tag), chromium() as browser:
        from playwright.sync_api import expect

        status, cluster = server.request("POST", "nbcluster/api/clusters",
                                         {"name": "prefixed", "num_cpus": 1, "workers": 0}, timeout=180.0)
        assert status == 201, cluster
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        try:
            page = context.new_page()
            errors = watch_errors(page)

            # Not logged in: Jupyter's login page, under the prefix.
            page.goto(server.url("nbcluster/", token=False))
            expect(page).to_have_url(re.compile(r"/prefix/login\?next="), timeout=UI_MS)

            # Without the trailing slash: redirected to the page, which logs in with the token.
            page.goto(server.url("nbcluster"))
            expect(page.locator("body")).to_have_attribute("data-ready", "true", timeout=UI_MS)
            assert urlsplit(page.url).path == "/prefix/nbcluster/"
            assert urlsplit(page.locator("#link-lab").evaluate("(a) => a.href")).path == "/prefix/lab"
            xsrf = [c for c in context.cookies() if c["name"] == "_xsrf"]
            assert xsrf and xsrf[0]["path"] == "/prefix/", xsrf

            # The only cluster is shown at once; its stream and API calls go under the prefix.
            row = page.locator('#cluster-list li[data-name="prefixed"]')
            expect(row).to_be_visible(timeout=UI_MS)
            expect(page.locator("#detail-name")).to_have_text("prefixed")
            expect(page.locator("#stream-status")).to_have_attribute("data-state", "live", timeout=UI_MS)
            expect(page.locator('#nodes-body tr[data-state="ALIVE"]')).to_have_count(1, timeout=STEP_MS)
            screenshot(page, "server-page-prefix")

            # The page's requests carry only Jupyter's credentials: a DELETE with XSRF works.
            procs = cluster_processes(tag, server)
            assert procs
            row.locator("button.stop").click()
            page.click("#confirm-ok")
            expect(row).to_have_count(0, timeout=STEP_MS)
            expect(page.locator("#clusters-empty")).to_be_visible()
            left = wait_gone(procs, timeout=30.0)
            assert not left, f"the cluster's processes survived its deletion: {describe(left)}"

            # A cluster made in code on this machine is offered, and attaches with one click.
            from nbcluster.cluster_utils import Cluster

            script = Cluster(initialize_head=True, head_node_args={"num_cpus": 1}, shutdown_at_exit=False)
            try:
                page.click("#refresh-clusters")
                found = page.locator(f'#local-list li[data-address="{script.address}"]')
                expect(found).to_be_visible(timeout=UI_MS)
                found.locator("button").click()
                name = f"local-{script.address.rsplit(':', 1)[1]}"
                attached = page.locator(f'#cluster-list li[data-name="{name}"]')
                expect(attached).to_be_visible(timeout=STEP_MS)
                expect(page.locator("#detail-name")).to_have_text(name)
                expect(page.locator('#nodes-body tr[data-state="ALIVE"]')).to_have_count(1, timeout=STEP_MS)
                expect(found).to_have_count(0)  # known now: not offered again
                attached.locator("button.stop").click()  # "Forget": it keeps running
                page.click("#confirm-ok")
                expect(attached).to_have_count(0, timeout=STEP_MS)
                expect(found).to_be_visible(timeout=UI_MS)
                assert script.head_node.alive()
                # Clusters added and removed elsewhere (here the REST API) show without a reload.
                status, _ = server.request("POST", "nbcluster/api/attach", {"name": "elsewhere", "address": script.address})
                assert status == 201
                elsewhere = page.locator('#cluster-list li[data-name="elsewhere"]')
                expect(elsewhere).to_be_visible(timeout=UI_MS)
                status, _ = server.request("DELETE", "nbcluster/api/clusters/elsewhere")
                assert status == 204
                expect(elsewhere).to_have_count(0, timeout=UI_MS)
            finally:
                script.shutdown()
            assert errors == [], errors
        except BaseException:
            for shown in context.pages:
                screenshot(shown, "server-page-prefix-failure")
            raise
        finally:
            context.close()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def test_page_and_static_files_need_a_login() -> None:
    """The page and its files answer only to a logged-in user (no browser needed)."""
    with page_server() as (server, _tag):
        opener = urllib.request.build_opener(_NoRedirect())
        for path in ("nbcluster/", "nbcluster/static/app.js"):
            try:
                with opener.open(server.url(path, token=False), timeout=30.0) as response:
                    status = response.status
            except urllib.error.HTTPError as exc:
                status = exc.code
            assert status in (302, 403), (path, status)
        status, text = server.request("GET", "nbcluster/static/view.js")
        assert status == 200 and "EventSource" in text, (status, str(text)[:200])
        # The script's modules: JavaScript, revalidated on each load against a content ETag
        # (their URLs carry no version), an unchanged one answered with a 304.
        for name in ("app.js", "lib.js", "render.js", "view.js"):
            url = server.url(f"nbcluster/static/{name}", token=False)
            auth = {"Authorization": f"token {server.token}"}
            with urllib.request.urlopen(urllib.request.Request(url, headers=auth), timeout=30.0) as response:
                assert response.headers.get_content_type() == "text/javascript", (name, response.headers)
                assert response.headers.get_all("Cache-Control") == ["no-cache"], (name, response.headers)
                assert response.headers["Expires"] is None, (name, response.headers)
                etag = response.headers["ETag"]
            assert etag, (name, response.headers)
            try:
                with opener.open(urllib.request.Request(url, headers={**auth, "If-None-Match": etag}),
                                 timeout=30.0) as response:
                    status = response.status
            except urllib.error.HTTPError as exc:
                status = exc.code
            assert status == 304, (name, status)
        status, text = server.request("GET", "nbcluster/")
        assert status == 200 and 'name="nbcluster-base-url" content="/"' in text, (status, str(text)[:300])
