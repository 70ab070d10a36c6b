"""A notebook renamed in JupyterLab's own UI (File > Rename Notebook…, headless Chromium):
the notebook's live cluster view names its driver by the new name without a cell run,
and so does the Clusters sidebar for the cluster (a notebook's, attached)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from ..browser import JupyterProcess, screenshot
from .test_lab_sidebar_browser import CELL_MS, in_lab

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

CELLS = ["%load_ext nbcluster\n%cluster start --num-cpus 1", "%cluster stop"]
#: The new name must show this soon after the rename dialog closes.
RENAMED_MS = 15_000


def test_a_notebook_renamed_in_jupyterlab_keeps_its_name_in_its_views(tmp_path: Path) -> None:
    in_lab(tmp_path, _drive, "lab-rename-failure", "before.ipynb", CELLS)


def _drive(page: Any, server: JupyterProcess) -> None:
    from playwright.sync_api import expect

    page.goto(server.url("lab/tree/before.ipynb"))

    def run(source: str) -> Any:
        cell = page.locator(".jp-Notebook .jp-Cell").filter(has=page.locator(".jp-InputArea", has_text=source))
        cell.locator(".jp-InputPrompt").click()
        page.get_by_role("menuitem", name="Run", exact=True).click()
        page.locator("#jp-mainmenu-run li[data-command='notebook:run-cell']").click()
        return cell

    expect(page.get_by_text("Python 3 (ipykernel) | Idle")).to_be_visible()
    jobs = run("%cluster start").locator(".jupyter-widgets.nbc-cluster .nbc-cluster-jobs")
    expect(jobs).to_contain_text("before.ipynb", timeout=CELL_MS)

    # The server knows the notebook's cluster (attached by address): the sidebar lists its driver.
    code, local = server.request("GET", "nbcluster/api/local")
    assert code == 200 and len(local["clusters"]) == 1, local
    code, cluster = server.request("POST", "nbcluster/api/attach",
                                   {"name": "nb", "address": local["clusters"][0]["address"]})
    assert code in (200, 201), cluster
    page.locator(".jp-SideBar.jp-mod-left .lm-TabBar-tab[data-id='nbcluster-sidebar']").click()
    meta = page.locator("#nbcluster-sidebar [data-testid='nbc-cluster'][data-name='nb'] [data-testid='nbc-cluster-meta']")
    expect(meta).to_contain_text("before.ipynb")

    # JupyterLab's own rename: the file, then its session (path and name).
    page.locator("#jp-MainMenu .lm-MenuBar-item", has_text="File").click()
    page.locator(".lm-Menu-item[data-command='docmanager:rename']").click()
    dialog = page.locator(".jp-Dialog")
    dialog.locator("input").fill("after.ipynb")
    dialog.get_by_role("button", name="Rename").click()
    expect(page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab", has_text="after.ipynb")).to_be_visible()
    expect(jobs).to_contain_text("after.ipynb", timeout=RENAMED_MS)
    expect(jobs).not_to_contain_text("before.ipynb")
    expect(meta).to_contain_text("after.ipynb", timeout=RENAMED_MS)
    screenshot(page, "lab-renamed-notebook")

    stop = run("%cluster stop")
    expect(stop.locator(".jp-OutputArea")).to_contain_text("nbcluster: stopped", timeout=CELL_MS)
    expect(stop.locator(".jp-InputPrompt")).to_have_text(re.compile(r"\[\d+\]:"))
