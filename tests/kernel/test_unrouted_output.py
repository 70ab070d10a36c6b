"""Remote output with no cell to go under — its cell forgotten, or submitted outside any
cell — is never lost and never lands in the cell running then: a real ipykernel sends it
as a ``stream`` message with no parent (JupyterLab's log console lists those) and writes
it to its stderr (the Jupyter server's log)."""

from __future__ import annotations

import pytest

from .harness import Kernel

pytestmark = pytest.mark.timeout(300)

START = "import nbcluster, time\n%load_ext nbcluster\n%cluster start --num-cpus 2"

LATER = '''
@nbcluster.remote
def later(text, delay):
    time.sleep(delay)
    print(text)
    return 1
'''


def _unrouted(kernel: Kernel, text: str) -> list[dict]:
    return [m for m in kernel.messages if m["msg_type"] == "stream" and text in m["content"]["text"]
            and not m["parent_header"]]


def _in_cells(kernel: Kernel, text: str) -> list[dict]:
    return [m for m in kernel.messages if m["parent_header"] and text in str(m["content"])
            and m["msg_type"] in ("stream", "display_data", "update_display_data")]


def test_output_of_a_forgotten_cell_goes_to_the_log_console(kernel: Kernel) -> None:
    kernel.execute(START)
    kernel.execute(LATER)
    kernel.execute("import nbcluster.kernel_ext.routing as routing\nrouting.REMEMBERED_CELLS = 1")
    kernel.execute('ref = later.remote("line of a forgotten cell", 2.0)')
    waiting = kernel.execute("pass  # this cell's start forgets the one that submitted")
    kernel.execute("time.sleep(4)")  # the line arrives while this cell runs
    kernel.collect(1.0)
    (shown,) = _unrouted(kernel, "line of a forgotten cell")
    assert shown["content"]["name"] == "stdout" and shown["content"]["text"].startswith("(later pid=")
    assert not _in_cells(kernel, "line of a forgotten cell"), "it went under a cell"
    assert kernel.error(waiting) is None


def test_output_of_work_outside_any_cell_goes_to_the_log_console(kernel: Kernel) -> None:
    kernel.execute(START)
    kernel.execute(LATER)
    cell = kernel.execute('nbcluster.driver.set_submission_context("")\n'
                          'nbcluster.get(later.remote("line from outside any cell", 0.0))')
    kernel.collect(1.0)
    assert kernel.result(cell) == "1"
    assert len(_unrouted(kernel, "line from outside any cell")) == 1
    assert not _in_cells(kernel, "line from outside any cell")
