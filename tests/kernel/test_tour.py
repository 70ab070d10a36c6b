"""``examples/tour.ipynb``: run headless (nbclient, a real ipykernel) it tells the whole
story — start, tasks with their output, progress, actors, autoscaling, a job followed,
stop — and the outputs committed with it are such a run of the same cells.

To record a new run after changing the tour: ``python -m tests.kernel.test_tour``
(from the repository root)."""

from __future__ import annotations

import copy
import re
import sys
import tempfile
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from ..conftest import ROOT
from .test_notebooks import cell_texts

pytestmark = pytest.mark.timeout(600)

TOUR = ROOT / "examples" / "tour.ipynb"

#: A live widget's view: a saved notebook keeps no widget state, so only the static
#: HTML and text it was shown with stay.
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def execute(notebook: nbformat.NotebookNode, cwd: Path) -> nbformat.NotebookNode:
    """``notebook`` run top to bottom in a fresh kernel, with its outputs as a frontend
    without the widget manager keeps them."""
    ran = copy.deepcopy(notebook)
    for cell in ran.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    NotebookClient(ran, timeout=300, kernel_name="python3", store_widget_state=False,
                   resources={"metadata": {"path": str(cwd)}}).execute()
    for cell in ran.cells:
        for out in cell.get("outputs", []):
            out.get("data", {}).pop(WIDGET_VIEW, None)
    ran.metadata.pop("widgets", None)
    return ran


def check(notebook: nbformat.NotebookNode) -> None:
    """What a run of the tour shows, cell by cell."""
    (start, tasks, progress, actors, autoscaling, job_file, job, jobs, status, stop) = cell_texts(notebook)
    for text in cell_texts(notebook):
        assert "ERROR" not in text and "Traceback" not in text, text
    assert "Connected to a cluster of 1 node(s)" in start and "<table" in start  # and the live view's snapshot
    assert tasks.rstrip().endswith("[0, 1, 4, 9]")
    assert all(re.search(rf"\(square pid=\d+\) squaring {i}\n", tasks) for i in range(4)), tasks
    assert progress.rstrip().endswith("3")
    for bar in ("shard 0: 100%", "shard 1: 100%", "shard 2: 100%", "get: 100%"):
        assert bar in progress, progress
    assert actors.rstrip().endswith("[1, 3, 6, 10]") and "(Counter pid=" in actors and "counter at 10" in actors
    assert re.search(r"autoscaler: Adding \d+ nodes? of type worker", autoscaling), autoscaling
    assert re.search(r"6 tasks ran on [1-3] nodes", autoscaling) and "get: 100%" in autoscaling, autoscaling
    assert "Autoscaler" in status and "Decisions" in status and re.search(r"[23]/[23] nodes alive", status), status
    assert "nbcluster.init()" in job_file
    assert "doubled: [0, 2, 4, 6, 8]" in job and "SUCCEEDED" in job, job
    assert "SUCCEEDED" in jobs, jobs
    assert "nbcluster: stopped" in stop, stop


def test_the_tour_runs_and_its_saved_outputs_are_a_run_of_it(tmp_path: Path) -> None:
    committed = nbformat.read(TOUR, as_version=4)
    nbformat.validate(committed)
    check(committed)  # the outputs committed are a run's...
    assert WIDGET_VIEW not in TOUR.read_text() and "widgets" not in committed.metadata
    assert TOUR.stat().st_size < 200_000, "the tour is committed small"
    fresh = execute(committed, tmp_path)
    check(fresh)  # ... and a run now shows the same
    assert [c.source for c in fresh.cells] == [c.source for c in committed.cells]


if __name__ == "__main__":  # record a run into examples/tour.ipynb
    with tempfile.TemporaryDirectory() as cwd:
        ran = execute(nbformat.read(TOUR, as_version=4), Path(cwd))
    check(ran)
    nbformat.write(ran, TOUR)
    print(f"wrote {TOUR} ({TOUR.stat().st_size} bytes)", file=sys.stderr)
