"""Remote output with no cell to go under, in a real JupyterLab 4 (headless Chromium
through the UI): it shows in the notebook's log console (level "info"), not under the
cell running then; and in the Jupyter server's log."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from ..browser import JupyterProcess, screenshot
from .test_lab_browser import CELL_MS, LAB_MS
from .test_lab_output_browser import in_lab

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

CELLS = [
    "import nbcluster\n%load_ext nbcluster\n%cluster start --num-cpus 1",
    '''@nbcluster.remote
def shout(text):
    print(text)
    return "returned"
nbcluster.driver.set_submission_context("")   # as work submitted outside any cell
nbcluster.get(shout.remote("a line that no cell owns"))''',
    "%cluster stop",
]


def test_output_with_no_cell_is_in_the_log_console(tmp_path: Path) -> None:
    in_lab(tmp_path, "console.ipynb", CELLS, _run, "lab-log-console-failure")


def _run(page: Any, server: JupyterProcess) -> None:
    from playwright.sync_api import expect

    page.goto(server.url("lab/tree/console.ipynb"))

    def cell(source: str) -> Any:
        return page.locator(".jp-Notebook .jp-Cell").filter(has=page.locator(".jp-InputArea", has_text=source))

    expect(cell("%cluster stop")).to_have_count(1, timeout=LAB_MS)
    expect(page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']")).to_have_count(1, timeout=LAB_MS)
    page.get_by_role("menuitem", name="View", exact=True).click()
    page.get_by_role("menuitem", name="Show Log Console").click()
    console = page.locator(".jp-LogConsolePanel")
    expect(console).to_be_visible()
    console_level = page.locator(".jp-LogConsole-toolbarLogLevel select, select[aria-label='Log level']").first
    console_level.select_option("info")

    cell("%cluster stop").locator(".jp-InputPrompt").click()  # the notebook has the focus
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_role("menuitem", name=re.compile(r"^Run All Cells")).click()
    task_cell = cell("def shout")
    expect(task_cell.locator(".jp-OutputArea")).to_contain_text("returned", timeout=CELL_MS)
    expect(console).to_contain_text("a line that no cell owns", timeout=CELL_MS)
    expect(console).to_contain_text(re.compile(r"\(shout pid=\d+\) a line that no cell owns"))
    expect(page.locator(".jp-Notebook .jp-OutputArea").filter(has_text="a line that no cell owns")).to_have_count(0)
    assert "a line that no cell owns" in server.log()  # and in the server's log (the kernel's stderr)
    screenshot(page, "lab-log-console")
    expect(cell("%cluster stop").locator(".jp-OutputArea")).to_contain_text("nbcluster: stopped", timeout=CELL_MS)
