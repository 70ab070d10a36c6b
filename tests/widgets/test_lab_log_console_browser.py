"""Remote output with no cell to go under, in a real JupyterLab 4 (headless Chromium
through the UI): it shows in the notebook's log console (level "info"), not under the
cell running then; and in the Jupyter server's log."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import nbformat
import pytest

from ..browser import JupyterProcess, chromium, require_browser, screenshot
from .test_lab_browser import CELL_MS, LAB_MS, _lab_settings

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
    require_browser()
    root = tmp_path / "lab"
    root.mkdir()
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(src) for src in CELLS])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    nbformat.write(notebook, root / "console.ipynb")
    server = JupyterProcess(lab=True, root_dir=root, home=tmp_path / "jupyter")
    _lab_settings(server.home)
    try:
        server.start(timeout=90)
        with chromium() as browser:
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            page.set_default_timeout(LAB_MS)
            try:
                _run(page, server)
            except BaseException:
                screenshot(page, "lab-log-console-failure")
                print(f"--- jupyter lab log ---\n{server.log()}")
                raise
    finally:
        server.stop()


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
