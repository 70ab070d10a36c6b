"""The JupyterLab extension in a real JupyterLab 4 (headless Chromium, under a non-root
``base_url``, Jupyter's token login only): the sidebar lists a cluster a notebook started
within 2 s, attaches it with one click, scales it (the node count follows), inserts
``%cluster connect NAME`` into the notebook, and the command palette has the extension's
commands, one of which opens the cluster page as a tab.

The extension is the built one in ``nbcluster/labextension/``, found through
``JUPYTER_PATH`` (as an install places it in ``share/jupyter/labextensions/``), so the
test runs against the working tree whatever is installed.
"""

from __future__ import annotations

import json
import re
import secrets
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat
import pytest

from ..browser import ARTIFACTS, ROOT, JupyterProcess, chromium, kill_all, require_browser, screenshot
from .test_page_browser import TAG_ENV, describe, tagged, wait_gone

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

LAB_MS = 90_000
CELL_MS = 120_000
SCALE_MS = 120_000
#: The cluster a notebook starts must be in the sidebar this soon after its cell ends.
LISTED_WITHIN_S = 2.0
BASE_URL = "/jl/"
CELLS = [
    "%load_ext nbcluster\n%cluster start --autoscale 0:2 --num-cpus 1",
    "import nbcluster\nbig = nbcluster.remote(num_cpus=2)(lambda: 1).remote()  # no node type has 2 CPUs",
    "print('the cell the connect line goes below')",
    "%cluster stop",
]


def lab_server(tmp_path: Path, tag: str, notebook_name: str = "sidebar.ipynb", cells: list[str] = CELLS
               ) -> JupyterProcess:
    """`jupyter lab` with the server extension enabled in its own config and the built
    lab extension on its JUPYTER_PATH; no news or update checks (offline). Its root holds
    ``notebook_name`` with ``cells``."""
    root = tmp_path / "work"
    root.mkdir()
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(src) for src in cells])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    nbformat.write(notebook, root / notebook_name)
    data = tmp_path / "data"
    (data / "labextensions").mkdir(parents=True)
    (data / "labextensions" / "nbcluster").symlink_to(ROOT / "nbcluster" / "labextension")
    home = tmp_path / "jupyter"
    server = JupyterProcess(lab=True, root_dir=root, home=home, base_url=BASE_URL,
                            env={TAG_ENV: tag, "JUPYTER_PATH": str(data)})
    config = home / "config"
    config.mkdir(parents=True, exist_ok=True)
    (config / "jupyter_server_config.json").write_text(json.dumps({
        "ServerApp": {"jpserver_extensions": {"nbcluster": True}},
        "NbclusterApp": {"idle_timeout": 5.0},
    }))
    settings = config / "lab" / "user-settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false",
                                                                           "checkForUpdates": False}))
    return server


def in_lab(tmp_path: Path, drive: Callable[[Any, JupyterProcess], None], failure: str,
           notebook_name: str = "sidebar.ipynb", cells: list[str] = CELLS, env: dict[str, str] | None = None) -> None:
    """``drive(page, server)`` in Chromium against a fresh :func:`lab_server` (with
    ``env`` added); on failure a screenshot named ``failure`` and the server's log; a
    page error fails it; the server is stopped and checked for processes left."""
    require_browser()
    tag = secrets.token_hex(8)
    server = lab_server(tmp_path, tag, notebook_name, cells)
    server.env.update(env or {})
    try:
        server.start(timeout=120)
        with chromium() as browser:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(LAB_MS)
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            try:
                drive(page, server)
            except BaseException:
                screenshot(page, failure)
                print(f"--- jupyter lab log ---\n{server.log()}")
                raise
            assert not errors, errors
    finally:
        _cleanup(server, tag)


def test_sidebar_lists_scales_and_connects_a_notebook_cluster(tmp_path: Path) -> None:
    in_lab(tmp_path, _drive, "lab-sidebar-failure")


def _drive(page: Any, server: JupyterProcess) -> None:
    from playwright.sync_api import expect

    page.goto(server.url("lab/tree/sidebar.ipynb"))

    def cell(source: str) -> Any:
        return page.locator(".jp-Notebook .jp-Cell").filter(has=page.locator(".jp-InputArea", has_text=source))

    def run(source: str) -> None:
        cell(source).locator(".jp-InputPrompt").click()
        page.get_by_role("menuitem", name="Run", exact=True).click()
        page.locator("#jp-mainmenu-run li[data-command='notebook:run-cell']").click()

    start_cell, stop_cell = cell("%cluster start"), cell("%cluster stop")
    expect(stop_cell).to_have_count(1)
    expect(page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']")).to_have_count(1)
    expect(page.get_by_text("Python 3 (ipykernel) | Idle")).to_be_visible()

    # The sidebar: a tab of the left area; empty, live (the list's stream answered).
    page.locator(".jp-SideBar.jp-mod-left .lm-TabBar-tab[data-id='nbcluster-sidebar']").click()
    sidebar = page.locator("#nbcluster-sidebar")
    expect(sidebar).to_be_visible()
    expect(sidebar.locator("[data-part='empty']")).to_contain_text("No clusters yet")
    expect(sidebar.locator("[data-part='error']")).to_be_hidden()

    # A notebook starts a cluster: the sidebar offers it within 2 s of the cell's end.
    run("%cluster start")
    expect(start_cell.locator(".jp-InputPrompt")).to_have_text(re.compile(r"\[\d+\]:"), timeout=CELL_MS)
    ended = time.monotonic()
    local_row = sidebar.locator("[data-testid='nbc-local-row']")
    expect(local_row).to_have_count(1, timeout=int(LISTED_WITHIN_S * 1000))
    listed_after = time.monotonic() - ended
    assert listed_after <= LISTED_WITHIN_S, listed_after
    print(f"the notebook's cluster was in the sidebar {listed_after:.2f} s after its cell ended")
    address = local_row.get_attribute("data-address")
    assert address and re.fullmatch(r"[\d.]+:\d+", address), address
    name = f"local-{address.rsplit(':', 1)[1]}"

    # One click attaches it: a cluster of the server, selected, live, one node (the head).
    local_row.locator("[data-action='attach']").click()
    row = sidebar.locator(f"[data-testid='nbc-cluster'][data-name='{name}']")
    expect(row).to_have_attribute("data-status", "running")
    expect(row).to_have_class(re.compile("nbc-selected"))
    expect(row.locator(".nbc-stream")).to_have_attribute("data-state", "live")
    expect(row).to_have_attribute("data-alive", "1")
    expect(row.locator("[data-testid='nbc-node'][data-state='ALIVE']")).to_have_count(1)
    expect(row.locator("[data-testid='nbc-autoscaler']")).to_have_attribute("data-enabled", "true")
    expect(sidebar.locator("[data-testid='nbc-local-row']")).to_have_count(0)
    # The notebook's own driver is a job of the cluster, shown by its notebook, not the kernel's command line.
    driver = row.locator("[data-testid='nbc-job'][data-status='RUNNING']")
    expect(driver).to_have_count(1)
    expect(driver.locator(".nbc-ellipsis")).to_have_text("sidebar.ipynb")
    expect(driver.locator(".nbc-ellipsis")).to_have_attribute("title", re.compile(r"/sidebar\.ipynb$"))

    # Scale to one worker: the autoscaler adds a node, the sidebar's count follows.
    row.locator("[data-part='scale']").fill("1")
    row.locator("[data-testid='nbc-scale-form'] button").click()
    expect(row.locator("[data-part='note']")).to_have_text("Asked for 1 worker.")
    expect(row).to_have_attribute("data-alive", "2", timeout=SCALE_MS)
    expect(row.locator("[data-testid='nbc-node'][data-state='ALIVE']")).to_have_count(2)
    expect(row.locator("[data-testid='nbc-cluster-meta']")).to_contain_text("2/2 nodes")
    expect(row.locator("[data-testid='nbc-timeline-item']").first).to_be_visible()

    # Adapt between 1 and 2 workers: the autoscaler's bounds follow.
    row.locator("[data-part='min']").fill("1")
    row.locator("[data-part='max']").fill("2")
    row.locator("[data-testid='nbc-adapt-form'] button").click()
    expect(row.locator("[data-part='note']")).to_have_text("Adapting between 1 and 2 workers.")
    expect(row.locator(".nbc-node-type[data-node-type='worker']")).to_contain_text("1–2")
    status, body = server.request("GET", f"nbcluster/api/clusters/{name}")
    assert status == 200 and (body["workers"]["min"], body["workers"]["max"]) == (1, 2), body

    # A task no node type can hold: the sidebar says why the autoscaler does not scale for it.
    run("no node type has 2 CPUs")
    demand = row.locator("[data-testid='nbc-demand-row']")
    expect(demand).to_have_count(1, timeout=CELL_MS)
    expect(demand).to_contain_text("CPU: 2")
    assert demand.locator(".nbc-muted").inner_text().strip(), "a demand row without its reason"
    _shoot(page, sidebar, "lab-sidebar")

    # Insert connect: a new cell below the active one, in the notebook the user works in.
    cell("the cell the connect line goes below").locator(".jp-InputArea-editor").click()
    cells_before = page.locator(".jp-Notebook .jp-Cell").count()
    row.locator("[data-action='insert']").click()
    expect(page.locator(".jp-Notebook .jp-Cell")).to_have_count(cells_before + 1)
    inserted = page.locator(".jp-Notebook .jp-Cell").nth(3)
    expect(inserted.locator(".jp-InputArea")).to_contain_text(f"%cluster connect {name}")
    expect(inserted.locator(".jp-InputArea")).to_contain_text("%load_ext nbcluster")
    _shoot(page, None, "lab-sidebar-insert")

    # Hidden, the sidebar ends its streams; shown again, it follows the same cluster anew.
    aborted: list[str] = []
    page.on("requestfailed", lambda request: aborted.append(  # less ServerConnection's cache buster
        re.sub(r"[?&]\d+$", "", request.url.split("/nbcluster/api/", 1)[-1])))
    page.locator(".jp-SideBar.jp-mod-left .lm-TabBar-tab[data-id='filebrowser']").click()
    expect(sidebar).to_be_hidden()
    deadline = time.monotonic() + 30
    while not {"events", f"clusters/{name}/events?replay=1"} <= set(aborted):
        assert time.monotonic() < deadline, f"the hidden sidebar kept its streams open: ended {aborted}"
        page.wait_for_timeout(100)
    page.locator(".jp-SideBar.jp-mod-left .lm-TabBar-tab[data-id='nbcluster-sidebar']").click()
    expect(row).to_have_class(re.compile("nbc-selected"))
    expect(row.locator(".nbc-stream")).to_have_attribute("data-state", "live")
    expect(row).to_have_attribute("data-alive", "2")

    # The command palette has the extension's commands; one opens the cluster page as a tab.
    page.keyboard.press("Control+Shift+C")
    palette = page.locator("#command-palette")
    palette.locator("input").fill("nbcluster")
    for label in ("Start a Cluster", "Open the Cluster Page", "Insert %cluster connect into the Notebook",
                  "Show the Clusters Sidebar"):
        expect(palette.locator(".lm-CommandPalette-item", has_text=label)).to_have_count(1)
    palette.locator(".lm-CommandPalette-item", has_text="Open the Cluster Page").click()
    frame = page.frame_locator(".nbc-page-tab iframe")
    expect(frame.locator(f"#cluster-list li[data-name='{name}']")).to_be_visible()

    # Start a cluster on the server from the sidebar's form, then stop it.
    sidebar.locator("[data-action='new']").click()
    form = sidebar.locator("[data-testid='nbc-create']")
    form.locator("[name='name']").fill("bad name")
    form.locator("button[type='submit']").click()
    expect(form.locator(".nbc-form-error")).to_contain_text("Name:")
    form.locator("[name='name']").fill("side")
    form.locator("[name='workers']").fill("0")
    form.locator("button[type='submit']").click()
    made = sidebar.locator("[data-testid='nbc-cluster'][data-name='side']")
    expect(made).to_have_attribute("data-status", "running", timeout=CELL_MS)
    expect(made).to_have_class(re.compile("nbc-selected"))
    expect(made).to_have_attribute("data-alive", "1", timeout=CELL_MS)

    # A job on it: its row in the sidebar, its log in a tab.
    status, submitted = server.request("POST", "nbcluster/api/clusters/side/jobs/",
                                       {"entrypoint": f"{sys.executable} -c \"print('hello from the job')\""})
    assert status == 200, submitted
    job = made.locator(f"[data-testid='nbc-job'][data-job-id='{submitted['submission_id']}']")
    expect(job).to_have_attribute("data-status", "SUCCEEDED", timeout=CELL_MS)
    job.locator("button").click()
    expect(page.locator("[data-testid='nbc-log-text']")).to_contain_text("hello from the job", timeout=CELL_MS)
    expect(page.locator("[data-testid='nbc-log-state']")).to_have_text("the job ended")
    made.locator("[data-action='stop']").click()
    page.locator(".jp-Dialog").get_by_role("button", name="Stop").click()
    expect(made).to_have_count(0, timeout=CELL_MS)
    status, body = server.request("GET", "nbcluster/api/clusters")
    assert status == 200 and [c["name"] for c in body["clusters"]] == [name], body

    # The notebook stops its cluster: the sidebar sees it go.
    page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab", has_text="sidebar.ipynb").click()
    run("%cluster stop")
    expect(stop_cell.locator(".jp-OutputArea")).to_contain_text("nbcluster: stopped", timeout=CELL_MS)
    expect(row).to_have_attribute("data-status", "unreachable", timeout=CELL_MS)


def _shoot(page: Any, element: Any, name: str) -> None:
    """A screenshot among the test's artifacts (docs/images/ has copies of them)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    target = element if element is not None else page
    target.screenshot(path=str(ARTIFACTS / f"{name}.png"))


def _cleanup(server: JupyterProcess, tag: str) -> None:
    """Forget the clusters the server knows, stop it, and fail on processes left."""
    problems: list[str] = []
    if server.proc is not None:
        try:
            status, body = server.request("GET", "nbcluster/api/clusters", timeout=60.0)
            for cluster in body.get("clusters", []) if status == 200 and isinstance(body, dict) else []:
                server.request("DELETE", f"nbcluster/api/clusters/{cluster['name']}", timeout=120.0)
        except OSError as exc:
            problems.append(f"could not delete the clusters: {exc}")
    server.stop()
    left = wait_gone(tagged(tag), timeout=30.0)
    if left:
        problems.append(f"processes left behind: {describe(left)}")
        kill_all(left)
    if problems:
        pytest.fail("; ".join(problems))
