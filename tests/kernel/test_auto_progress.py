"""``auto_progress(N)`` in a real kernel: a live view under the cells that submit more
than N tasks, and none under the others."""

from __future__ import annotations

from ..conftest import wait_for
from .harness import Kernel
from .test_magics import started

WIDGET = "application/vnd.jupyter.widget-view+json"


def views(kernel: Kernel, cell: str) -> list[dict]:
    return [m["content"]["data"] for m in kernel.outputs(cell)
            if m["msg_type"] == "display_data" and WIDGET in m["content"]["data"]]


def test_cells_over_the_threshold_get_a_progress_view(kernel: Kernel) -> None:
    started(kernel)
    setup = kernel.execute(
        "import time, nbcluster, nbcluster.widgets, ipywidgets\n"
        "from nbcluster.widgets import ProgressWidget\n"
        "@nbcluster.remote\n"
        "def step(i):\n"
        "    time.sleep(0.02)\n"
        "    return i\n"
        "nbcluster.widgets.auto_progress(5)\n"
    )
    assert kernel.error(setup) is None, kernel.error(setup)

    small = kernel.execute("assert nbcluster.get([step.remote(i) for i in range(5)]) == list(range(5))")
    assert kernel.error(small) is None, kernel.error(small)
    assert views(kernel, small) == [], "5 tasks are not more than 5: no view"

    big = kernel.execute("total = sum(nbcluster.get([step.remote(i) for i in range(30)]))\ntotal")
    assert kernel.error(big) is None, kernel.error(big)
    shown = views(kernel, big)
    assert len(shown) == 1, f"one view under the cell, got {len(shown)}"
    assert "ProgressWidget 6 tasks" in shown[0]["text/plain"], "shown as the 6th task was submitted"

    def state() -> str:
        probe = kernel.execute(
            "_v = [w for w in list(ipywidgets.Widget.widgets.values()) if isinstance(w, ProgressWidget)]\n"
            "print(len(_v), _v[-1].totals['finished'], _v[-1].totals['total'], _v[-1].done)"
        )
        assert kernel.error(probe) is None, kernel.error(probe)
        return kernel.text(probe, "stdout").strip()

    wait_for(lambda: state() == "1 30 30 True", timeout=30, message="the cell's view at 30/30 and done")

    kernel.execute("nbcluster.widgets.auto_progress(None)")
    after = kernel.execute("nbcluster.get([step.remote(i) for i in range(20)])")
    assert views(kernel, after) == [], "turned off: no view"
    live = kernel.execute("_job_view = nbcluster.widgets.progress()")  # follows the job: never done
    assert kernel.error(live) is None, kernel.error(live)
    stop = kernel.execute("%cluster stop")
    assert kernel.error(stop) is None
    probe = kernel.execute(
        "from nbcluster.widgets._feed import feed\n"
        "print(_job_view.frozen, _job_view in feed.views, '(stopped)' in _job_view._header.value)"
    )
    assert kernel.error(probe) is None, kernel.error(probe)
    assert kernel.text(probe, "stdout").strip() == "True False True", "%cluster stop freezes every live view"
