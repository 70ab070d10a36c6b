"""The example notebooks run top to bottom through nbclient on a real ipykernel."""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbclient import NotebookClient

from ..conftest import ROOT


def run(name: str, tmp_path: Path) -> list[str]:
    """Each code cell's outputs as one text (streams, results, displays)."""
    path = ROOT / "examples" / name
    notebook = nbformat.read(path, as_version=4)
    assert all(not c.get("outputs") for c in notebook.cells if c.cell_type == "code"), f"{name} is committed with outputs"
    NotebookClient(notebook, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    return cell_texts(notebook)


def cell_texts(notebook: nbformat.NotebookNode) -> list[str]:
    """Each code cell's outputs as one text (streams, results, displays, errors)."""
    texts = []
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        parts = []
        for out in cell.outputs:
            if out.output_type == "stream":
                parts.append(out.text)
            elif out.output_type in ("execute_result", "display_data"):
                parts.append(out.data.get("text/html", "") + out.data.get("text/plain", ""))
            elif out.output_type == "error":
                parts.append(f"ERROR {out.ename}: {out.evalue}")
        texts.append("".join(parts))
    return texts


def test_quickstart_notebook(tmp_path: Path) -> None:
    out = run("quickstart.ipynb", tmp_path)
    assert "Connected to a cluster of 1 node(s)" in out[0]
    assert "in all (in use: the live view below)" in out[0] and "used of" not in out[0]  # no stale figure
    assert out[1] == "[0, 1, 4, 9, 16, 25, 36, 49, 64, 81]"
    assert "finished" in out[2] and out[2].endswith("2470")  # progress() as it started, then the sum
    assert out[3] == "[1, 3, 6, 10]"
    assert "sum in a task: 499999500000.0" in out[4] and "same array back: True" in out[4]
    assert "(shout pid=" in out[5] and "HELLO FROM A WORKER" in out[5]
    assert "<table" in out[6] and "nodes alive" in out[6] and "CPU" in out[6]  # the cluster view
    assert "nbcluster: stopped" in out[7]


def test_remote_cells_notebook(tmp_path: Path) -> None:
    out = run("remote_cells.ipynb", tmp_path)
    assert "running in a worker: True" in out[3] and out[3].endswith("285")
    assert out[4] == ""  # -o ref: nothing shown, the ref kept
    assert out[5] == "45"
    assert "<b>made on the cluster</b>" in out[6]


def test_jobs_notebook(tmp_path: Path) -> None:
    out = run("jobs.ipynb", tmp_path)
    assert "submitted" in out[2] and "counted to 42" in out[2] and "SUCCEEDED" in out[2]
    assert "Job 'long-one' submitted" in out[3]
    assert "Job 'long-one' is stopping" in out[4]
    assert out[5].strip() == "STOPPED"
    assert "long-one" in out[6] and "STOPPED" in out[6]
