"""The cluster page's pending demand in headless Chromium against a real ``jupyter
server``: a job's tasks wait for a worker the autoscaler launches (demand shown), and
the demand table empties within 2 s of the last task ending — a drain comes with no
autoscaler event; load reports reload it while demand is shown."""

from __future__ import annotations

import re
import shlex
import sys
import time

import pytest

from tests.browser import chromium, screenshot

from .test_page_browser import START_MS, STEP_MS, UI_MS, page_server, watch_errors

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

JOB = """\
import time
import nbcluster

nbcluster.init()

@nbcluster.remote
def work():
    time.sleep(1.0)
    return time.time()

print("LAST-END", max(nbcluster.get([work.remote() for _ in range(3)])), flush=True)
"""

#: Records in the page when the demand table last went from rows to none.
WATCH_JS = """() => {
  const body = document.getElementById("demand-body");
  window.demandSeen = body.children.length > 0;
  window.demandEmptiedAt = null;
  new MutationObserver(() => {
    if (body.children.length > 0) { window.demandSeen = true; window.demandEmptiedAt = null; }
    else if (window.demandSeen && window.demandEmptiedAt === null) window.demandEmptiedAt = Date.now() / 1000;
  }).observe(body, {childList: true});
}"""


def test_pending_demand_empties_when_the_tasks_end() -> None:
    with page_server() as (server, _tag), chromium() as browser:
        from playwright.sync_api import expect

        code, cluster = server.request("POST", "nbcluster/api/clusters", {
            "name": "demand", "num_cpus": 0, "worker_cpus": 1, "adapt": {"minimum": 0, "maximum": 1}})
        assert code == 201, cluster
        context = browser.new_context(viewport={"width": 1280, "height": 1000})
        try:
            page = context.new_page()
            errors = watch_errors(page)
            page.goto(server.url("nbcluster/"))
            expect(page.locator("body")).to_have_attribute("data-ready", "true", timeout=UI_MS)
            page.locator('#cluster-list li[data-name="demand"] .cluster-select').click()
            expect(page.locator("#stream-status")).to_have_attribute("data-state", "live", timeout=UI_MS)
            page.evaluate(WATCH_JS)

            entrypoint = f"{shlex.quote(sys.executable)} -c {shlex.quote(JOB)}"
            code, submitted = server.request("POST", "nbcluster/api/clusters/demand/jobs/", {"entrypoint": entrypoint})
            assert code == 200, submitted
            expect(page.locator('#demand-body tr[data-testid="demand-row"]').first).to_be_visible(timeout=STEP_MS)
            screenshot(page, "server-page-demand")
            job_id = submitted["submission_id"]

            def last_end() -> float | None:
                code, logs = server.request("GET", f"nbcluster/api/clusters/demand/jobs/{job_id}/logs")
                found = re.search(r"LAST-END ([0-9.]+)", str(logs)) if code == 200 else None
                return float(found.group(1)) if found else None

            page.wait_for_function("() => window.demandEmptiedAt !== null", timeout=START_MS)
            expect(page.locator("#demand-empty")).to_be_visible()
            end, deadline = None, time.monotonic() + STEP_MS / 1000
            while end is None:  # the job's log has the time its last task ended
                assert time.monotonic() < deadline, "the job did not print when its last task ended"
                page.wait_for_timeout(200)
                end = last_end()
            emptied = page.evaluate("() => window.demandEmptiedAt")
            assert emptied - end <= 2.0, f"the demand emptied {emptied - end:.1f} s after the last task ended"
            assert errors == [], errors
        finally:
            context.close()
