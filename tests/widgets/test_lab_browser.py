"""The widgets in a real JupyterLab: headless Chromium (Playwright) runs
``examples/quickstart.ipynb`` in ``jupyter lab`` with ipywidgets' lab extension.

What a user sees, checked in the page: the live widgets render through the widget
manager (not the static-HTML fallback); the nodes table lists the head; the
``progress()`` bar and the job's bar in the cluster view reach 100 %; a node started
from outside (another process, with the GCS endpoint and token from the kernel's
session directory) joins the nodes table, and leaves it, without re-running a cell;
during a burst of load reports the page gets about ten updates a second at most. Then
``%cluster stop`` stops the cluster, and nothing of it, of the outside nodes or of Lab
is left behind.

Screenshots go to ``test-artifacts/``; ``NBCLUSTER_README_IMAGE=1`` also rewrites the
README's ``docs/images/lab-widgets.png``.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from ..browser import ARTIFACTS, JupyterProcess, chromium, require_browser, screenshot
from ..conftest import ROOT, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]

README_IMAGE = ROOT / "docs" / "images" / "lab-widgets.png"

#: Deadlines (ms) for the page: two shared cores, other test runs beside this one.
LAB_MS = 90_000
CELL_MS = 120_000
UPDATE_MS = 30_000

#: The outside node's load reports: every ~30 ms, so the kernel's feed gets a burst.
FAST_REPORTS = {"heartbeat_interval_s": 0.03}
#: Nodes that join for the burst (besides the first outside node).
BURST_NODES = 2
#: NODE_STATE events counted for the burst measurement.
BURST_EVENTS = 200
#: Page updates allowed in any one second: the feed flushes at most every 0.1 s; two
#: more for network jitter (a late flush followed by one on time).
MAX_UPDATES_PER_S = 12

#: Records when the cluster view's DOM changes; one flush's messages (header, nodes,
#: ...) arrive within a few ms, so changes closer than 25 ms count as one update.
OBSERVE_JS = """(root) => {
    window.__nbcUpdates = [];
    const observer = new MutationObserver(() => window.__nbcUpdates.push(performance.now()));
    observer.observe(root, {subtree: true, childList: true, characterData: true, attributes: true});
    window.__nbcObserver = observer;
}"""
UPDATES_JS = """() => {
    window.__nbcObserver.disconnect();
    const times = window.__nbcUpdates, out = [];
    for (const t of times) if (!out.length || t - out[out.length - 1].last > 25) out.push({first: t, last: t});
                           else out[out.length - 1].last = t;
    return out.map(u => u.first / 1000);
}"""


def _lab_settings(home: Path) -> None:
    """No news or update checks (the machine is offline; no toast over the screenshots)."""
    path = home / "config" / "lab" / "user-settings" / "@jupyterlab" / "apputils-extension"
    path.mkdir(parents=True, exist_ok=True)
    (path / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))


def _kernel_head(server: JupyterProcess) -> Any:
    """The session of the cluster the notebook's kernel started (its head runs under
    the Lab server, in this test run's NBCLUSTER_TEMP_DIR, which the kernel inherits)."""
    from nbcluster.runtime.discovery import find_local_node

    node = find_local_node("auto")
    assert node is not None and node.node_endpoint is None, "no head session under $NBCLUSTER_TEMP_DIR"
    head_pid = node.session.read_address()["head_pid"]
    under_lab = {p.pid for p in psutil.Process(server.proc.pid).children(recursive=True)}
    assert head_pid in under_lab, f"the newest head (pid {head_pid}) is not the notebook kernel's"
    return node


def _start_outside_node(head: Any) -> Any:
    """A node that joins the kernel's cluster from another process, through the GCS
    endpoint and token in the head's session directory (the embedded head serves
    this machine only, so ``nbcluster start --address HOST:PORT`` cannot join it)."""
    from nbcluster.runtime.config import RuntimeConfig
    from nbcluster.runtime.launcher import NodeSpec, start_worker_node

    return start_worker_node(gcs_address=head.gcs_endpoint, token=head.token, spec=NodeSpec(num_cpus=1),
                             config=RuntimeConfig.load(FAST_REPORTS), link_latest=False)


class _EventCounter:
    """Counts one cluster's events of a kind on a thread of its own (``watch``, no
    driver), until ``stop()``."""

    def __init__(self, address: str, token: str, kind: str) -> None:
        self.times: list[float] = []
        self._stop = threading.Event()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(address, token, kind), daemon=True)
        self._thread.start()

    def _run(self, address: str, token: str, kind: str) -> None:
        import nbcluster.events

        async def count() -> None:
            async for event in nbcluster.events.watch(address, token):
                if event.kind == kind:
                    self.times.append(time.monotonic())
                if self._stop.is_set():
                    return

        try:
            asyncio.run(count())
        except BaseException as exc:  # noqa: BLE001 - reported by stop()
            self.error = exc

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        assert not self._thread.is_alive(), "the event counter did not stop"
        if self.error is not None:
            raise self.error


def _max_per_second(times: list[float]) -> int:
    return max((sum(1 for t in times if start <= t < start + 1.0) for start in times), default=0)


def test_quickstart_in_jupyterlab(tmp_path: Path) -> None:
    require_browser()
    root = tmp_path / "lab"
    root.mkdir()
    shutil.copy(ROOT / "examples" / "quickstart.ipynb", root / "quickstart.ipynb")
    server = JupyterProcess(lab=True, root_dir=root, home=tmp_path / "jupyter")
    _lab_settings(server.home)
    outside: list[Any] = []  # nodes started from outside, stopped whatever happens
    started = time.monotonic()
    try:
        server.start(timeout=90)
        with chromium() as browser:
            page = browser.new_page(viewport={"width": 1100, "height": 1000}, device_scale_factor=2)
            page.set_default_timeout(LAB_MS)
            try:
                head_pid = _run_quickstart(page, server, outside)
            except BaseException:
                screenshot(page, "lab-failure")
                print(f"--- jupyter lab log ---\n{server.log()}")
                raise
        wait_for(lambda: not psutil.pid_exists(head_pid), timeout=30, message="the kernel's head to exit")
    finally:
        for node in outside:
            node.stop()
        server.stop()
        print(f"browser test took {time.monotonic() - started:.1f} s; screenshots in {ARTIFACTS}")


def _run_quickstart(page: Any, server: JupyterProcess, outside: list[Any]) -> int:
    """Everything the test does in the page; returns the pid of the kernel's head."""
    from playwright.sync_api import expect

    page.goto(server.url("lab/tree/quickstart.ipynb"))

    def cell(source: str) -> Any:
        """The notebook cell whose input contains ``source``."""
        return page.locator(".jp-Notebook .jp-Cell").filter(has=page.locator(".jp-InputArea", has_text=source))

    start_cell, progress_cell = cell("%cluster start"), cell("display(progress())")
    status_cell, stop_cell = cell("%cluster status"), cell("%cluster stop")
    # The notebook is loaded and its kernel is up and idle.
    expect(stop_cell).to_have_count(1, timeout=LAB_MS)
    expect(page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']")).to_have_count(1, timeout=LAB_MS)
    # More room for the notebook (and the screenshots): collapse the file browser.
    page.locator(".jp-SideBar.jp-mod-left .lm-TabBar-tab[data-id='filebrowser']").click()
    expect(page.locator("#jp-left-stack")).to_be_hidden()

    # Run > Run All Above Selected Cell, with the last cell (`%cluster stop`) selected.
    stop_cell.locator(".jp-InputPrompt").click()
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_role("menuitem", name=re.compile(r"^Run All Above Selected Cell")).click()
    expect(start_cell.locator(".jp-InputPrompt")).to_have_text(re.compile(r"\[(\*|\d+)\]:"))  # queued or ran

    # The live view, through the widget manager: no static-HTML fallback, no error.
    view = status_cell.locator(".jupyter-widgets.nbc-cluster")
    expect(view).to_be_visible(timeout=CELL_MS)
    expect(status_cell.locator(".jp-OutputArea-output[data-mime-type='text/html']")).to_have_count(0)
    expect(page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")).to_have_count(0)
    expect(page.get_by_text(re.compile("Error displaying widget|Loading widget"))).to_have_count(0)
    expect(start_cell.locator(".jp-OutputArea")).to_contain_text("Connected to a cluster of 1 node(s)")

    # The nodes table: the head, alive.
    header = view.locator(".nbc-cluster-header")
    nodes = view.locator(".nbc-cluster-nodes table tr")
    expect(nodes).to_have_count(2, timeout=UPDATE_MS)  # the column titles, the head
    expect(nodes.nth(1)).to_contain_text("head")
    expect(nodes.nth(1)).to_contain_text("ALIVE")
    expect(header).to_contain_text("1/1 nodes alive")

    # progress(): slow_square's bar reaches 100 % (green), 20 of 20 finished.
    slow = progress_cell.locator(".widget-hprogress").filter(has=page.locator(".widget-label", has_text="slow_square"))
    expect(slow).to_have_count(1, timeout=CELL_MS)
    expect(slow.locator(".progress-bar")).to_have_attribute("style", re.compile(r"width: 100%"), timeout=UPDATE_MS)
    expect(slow.locator(".progress-bar")).to_have_class(re.compile("progress-bar-success"))
    expect(slow.locator("xpath=..")).to_contain_text("20/20")
    expect(progress_cell.locator(".jp-OutputArea-executeResult")).to_contain_text("2470")
    # ... and so does the notebook's job in the cluster view's jobs panel.
    job_bar = view.locator(".nbc-cluster-jobs .widget-hprogress .progress-bar")
    expect(job_bar).to_have_count(1, timeout=UPDATE_MS)
    expect(job_bar).to_have_attribute("style", re.compile(r"width: 100%"), timeout=UPDATE_MS)
    expect(status_cell.locator(".jp-InputPrompt")).to_have_text(re.compile(r"\[\d+\]:"), timeout=CELL_MS)
    screenshot(page, "lab-quickstart-ran")

    # A node started from outside: it joins the table live, no cell re-run.
    head = _kernel_head(server)
    head_pid = int(head.session.read_address()["head_pid"])
    outside.append(_start_outside_node(head))
    expect(nodes).to_have_count(3, timeout=UPDATE_MS)
    expect(header).to_contain_text("2/2 nodes alive", timeout=UPDATE_MS)
    expect(nodes.filter(has_text="worker")).to_contain_text("ALIVE")
    status_cell.evaluate("el => el.scrollIntoView({block: 'center'})")
    screenshot(page, "lab-node-added")
    _readme_image(page, status_cell)

    # A burst of load reports (two more nodes join; each of the three reports up to ~10
    # times a second): the page gets at most ~10 updates a second.
    outside.extend(_start_outside_node(head) for _ in range(BURST_NODES))
    alive = 2 + BURST_NODES
    expect(header).to_contain_text(f"{alive}/{alive} nodes alive", timeout=UPDATE_MS)
    view.evaluate(OBSERVE_JS)
    counter = _EventCounter(head.gcs_address, head.token, "NODE_STATE")
    try:
        wait_for(lambda: len(counter.times) >= BURST_EVENTS, timeout=60, message=f"{BURST_EVENTS} load reports")
    finally:
        counter.stop()
    updates = view.evaluate(UPDATES_JS)
    events = counter.times[:BURST_EVENTS]
    event_rate = (len(events) - 1) / (events[-1] - events[0])
    print(f"\nburst: {len(events)} NODE_STATE events at {event_rate:.0f}/s; the page got {len(updates)} updates "
          f"over {updates[-1] - updates[0] if updates else 0:.1f} s, at most {_max_per_second(updates)} in one second")
    assert event_rate > MAX_UPDATES_PER_S, f"not a burst: {event_rate:.1f} events/s"
    assert updates, "the cluster view did not change during the burst"
    assert _max_per_second(updates) <= MAX_UPDATES_PER_S, f"updates not coalesced: {updates}"

    # The outside nodes stop: the table says so, still without a re-run.
    while outside:
        outside.pop().stop()
    expect(header).to_contain_text(re.compile(r"\b1/\d nodes alive"), timeout=UPDATE_MS)

    # The last cell: %cluster stop.
    stop_cell.locator(".jp-InputPrompt").click()
    page.keyboard.press("Control+Enter")
    expect(stop_cell.locator(".jp-OutputArea")).to_contain_text("nbcluster: stopped", timeout=CELL_MS)
    # The view stays in the notebook with its last state, marked as stopped.
    expect(header).to_contain_text("(stopped)", timeout=UPDATE_MS)
    expect(view.locator(".nbc-cluster-nodes")).to_contain_text("ALIVE")
    screenshot(page, "lab-stopped")
    return head_pid


def _readme_image(page: Any, status_cell: Any) -> None:
    """The README's picture: the `%cluster status` cell, its cluster view with two
    nodes and a finished job. Saved as an artifact; written to docs/images/ only when
    NBCLUSTER_README_IMAGE=1 (it is committed, not remade by every run)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    box = status_cell.bounding_box()
    assert box is not None
    pad = 8  # around the cell, but not into the next one (selected: a blue frame)
    clip = {"x": max(0, box["x"] - pad), "y": max(0, box["y"] - pad),
            "width": box["width"] + 2 * pad, "height": box["height"] + pad - 4}
    path = ARTIFACTS / "lab-widgets.png"
    page.screenshot(path=str(path), clip=clip)
    if os.environ.get("NBCLUSTER_README_IMAGE") == "1":
        README_IMAGE.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, README_IMAGE)
