"""``nbcluster.get(refs, progress=True)`` and ``wait(..., progress=True)`` in a notebook:
a live widget under the cell whose bar moves as refs arrive (a real ipykernel), and
the finished state in the notebook nbclient saves."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from .harness import Kernel

pytestmark = pytest.mark.timeout(300)

START = "import nbcluster\n%load_ext nbcluster\n%cluster start --num-cpus 2"

TASKS = '''
import time
@nbcluster.remote
def step(i):
    time.sleep(0.1)
    return i
'''

GET = "sum(nbcluster.get([step.remote(i) for i in range(20)], progress=True))"
WAIT = "ready, _ = nbcluster.wait([step.remote(i) for i in range(8)], num_returns=4, progress=True)\nlen(ready)"


def test_the_widget_moves_as_refs_arrive(kernel: Kernel) -> None:
    kernel.execute(START)
    kernel.execute(TASKS)
    cell = kernel.execute(GET)
    assert kernel.error(cell) is None and kernel.result(cell) == "190"
    views = [m for m in kernel.outputs(cell) if m["msg_type"] == "display_data"
             and "application/vnd.jupyter.widget-view+json" in m["content"]["data"]]
    assert len(views) == 1, kernel.outputs(cell)
    # The bar's value as the kernel sent it to the frontend: several growing states, ending full.
    values = [m["content"]["data"]["state"]["value"] for m in kernel.messages
              if m["msg_type"] == "comm_msg" and m["parent_header"].get("msg_id") == cell
              and isinstance(m["content"]["data"].get("state", {}).get("value"), float)]
    assert len(values) >= 3 and values == sorted(values) and values[-1] == 1.0, values
    display_id = views[0]["content"]["transient"]["display_id"]
    final = [m for m in kernel.messages if m["msg_type"] == "update_display_data"
             and m["content"]["transient"]["display_id"] == display_id]
    assert final and "get: 100%" in final[-1]["content"]["data"]["text/plain"]


def test_a_headless_run_saves_the_finished_bars(tmp_path: Path) -> None:
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(src) for src in (START, TASKS, GET, WAIT)])
    NotebookClient(notebook, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    path = tmp_path / "progress.ipynb"
    nbformat.write(notebook, path)
    saved = nbformat.read(path, as_version=4)

    def shown(i: int) -> tuple[str, str, str]:
        outputs = saved.cells[i].outputs
        bars = [o for o in outputs if o.output_type == "display_data" and "text/html" in o.data]
        assert len(bars) == 1, outputs  # (the wait leaves tasks running: their late-output area too)
        result = next(o.data["text/plain"] for o in outputs if o.output_type == "execute_result")
        return bars[0].data["text/plain"], bars[0].data["text/html"], result

    text, html, result = shown(2)
    assert result == "190"
    assert "get: 100%" in text and "20/20" in text and "(driver pid=" in text, text
    assert "<table" in html and "20/20" in html
    text, _, result = shown(3)
    assert result == "4" and "wait: 100%" in text and "4/4" in text, text
