"""Remote output in a real JupyterLab 4 and a real Notebook 7 (headless Chromium through
the UI): a tqdm bar in a task is one output under its cell whose percentage grows in
place; a line a task prints after its cell ended (while another cell runs) lands under
the cell that submitted it."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat
import pytest

from ..browser import JupyterProcess, chromium, require_browser, screenshot
from .test_lab_browser import CELL_MS, LAB_MS, _lab_settings

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

CELLS = [
    "import time, nbcluster\n%load_ext nbcluster\n%cluster start --num-cpus 2",
    '''@nbcluster.remote
def steps():
    from tqdm import tqdm
    for _ in tqdm(range(40), desc="steps"):
        time.sleep(0.1)
    return "steps done"
nbcluster.get(steps.remote())''',
    '''@nbcluster.remote
def later():
    time.sleep(3)
    print("late line from the task")
ref = later.remote()''',
    "time.sleep(6)",
    "%cluster stop",
]

#: Reads the output nodes under the tqdm cell that show the bar.
BAR_JS = """(cell) => Array.from(cell.querySelectorAll('.jp-OutputArea-output'))
    .map(el => el.innerText).filter(t => t.includes('steps:'))"""


def test_tqdm_bar_in_place_and_late_output_in_jupyterlab(tmp_path: Path) -> None:
    in_lab(tmp_path, "output.ipynb", CELLS, _run, "lab-output-failure")


def test_tqdm_bar_in_place_and_late_output_in_notebook_7(tmp_path: Path) -> None:
    in_lab(tmp_path, "output.ipynb", CELLS, _run, "notebook7-output-failure", app="notebook")


def in_lab(tmp_path: Path, name: str, cells: list[str], run: Callable[[Any, JupyterProcess], None],
           failure_shot: str, app: str = "jupyterlab") -> None:
    """Write a notebook of ``cells`` as ``name``, serve it from a real JupyterLab (or
    ``app="notebook"``: Notebook 7) and call ``run(page, server)`` with a Chromium page
    (a screenshot and the server's log when it fails)."""
    require_browser()
    root = tmp_path / "lab"
    root.mkdir()
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(src) for src in cells])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    nbformat.write(notebook, root / name)
    server = JupyterProcess(lab=True, root_dir=root, home=tmp_path / "jupyter", app=app)
    _lab_settings(server.home)
    try:
        server.start(timeout=90)
        with chromium() as browser:
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            page.set_default_timeout(LAB_MS)
            try:
                run(page, server)
            except BaseException:
                screenshot(page, failure_shot)
                print(f"--- jupyter lab log ---\n{server.log()}")
                raise
    finally:
        server.stop()


def _run(page: Any, server: JupyterProcess) -> None:
    from playwright.sync_api import expect

    notebook7 = server.app == "notebook"
    page.goto(server.url("notebooks/output.ipynb" if notebook7 else "lab/tree/output.ipynb"))
    shot = "notebook7" if notebook7 else "lab"

    def cell(source: str) -> Any:
        return page.locator(".jp-Notebook .jp-Cell").filter(has=page.locator(".jp-InputArea", has_text=source))

    bar_cell, late_cell, sleep_cell = cell("tqdm(range(40)"), cell("def later"), cell("time.sleep(6)")
    expect(sleep_cell).to_have_count(1, timeout=LAB_MS)
    expect(page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']")).to_have_count(1, timeout=LAB_MS)
    cell("%cluster stop").locator(".jp-InputPrompt").click()  # the notebook has the focus
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_role("menuitem", name=re.compile(r"^Run All Cells")).click()
    expect(cell("%cluster start").locator(".jp-InputPrompt")).to_have_text(re.compile(r"\[(\*|\d+)\]:"))

    # The bar: always one output node under its cell, its percentage growing.
    seen: list[int] = []
    deadline = time.monotonic() + CELL_MS / 1000
    while not seen or seen[-1] < 100:
        assert time.monotonic() < deadline, f"the bar did not reach 100 %: {seen}"
        texts = bar_cell.evaluate(BAR_JS) if bar_cell.count() else []
        assert len(texts) <= 1, texts
        if texts:
            pct = int(re.search(r"steps:\s+(\d+)%", texts[0]).group(1))
            if not seen or pct != seen[-1]:
                seen.append(pct)
                if len(seen) == 3:
                    screenshot(page, f"{shot}-tqdm-in-place")
        page.wait_for_timeout(100)
    assert len(seen) >= 3 and seen == sorted(seen), seen  # several states, in order, in place
    expect(bar_cell.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")).to_have_count(0)
    expect(bar_cell.locator(".jp-OutputArea")).to_contain_text("steps done", timeout=CELL_MS)

    # The late line: under the cell that submitted the task, while the next cell sleeps.
    expect(late_cell.locator(".jp-OutputArea")).to_contain_text("late line from the task", timeout=CELL_MS)
    expect(sleep_cell.locator(".jp-InputPrompt")).to_have_text(re.compile(r"\[\*\]:"))  # still running then
    expect(sleep_cell.locator(".jp-OutputArea")).not_to_contain_text("late line")
    shown = late_cell.locator(".jp-OutputArea").inner_text()
    assert shown.count("late line from the task") == 1, shown  # once: the stream or the display area
    screenshot(page, f"{shot}-late-output")
    expect(cell("%cluster stop").locator(".jp-OutputArea")).to_contain_text("nbcluster: stopped", timeout=CELL_MS)
