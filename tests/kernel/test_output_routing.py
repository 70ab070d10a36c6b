"""Remote output under its cell, in a real ipykernel and through nbclient: a tqdm bar in
a task is one display area redrawn in place (not a pile of stderr lines);
``nbcluster.util.tqdm`` bars of several tasks merge into one view under the cell; a
chatty cell stops at ``output_limit`` lines with a summary; and output that arrives
after its cell ended lands under that cell in a headless (nbclient) run too."""

from __future__ import annotations

import json
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from nbcluster.driver import RemoteOutput
from nbcluster.kernel_ext.cell_output import CellOutput

from .harness import Kernel

pytestmark = pytest.mark.timeout(300)

START = "import nbcluster\n%load_ext nbcluster\n%cluster start --num-cpus 2"

TQDM_TASK = '''
import time
@nbcluster.remote
def steps():
    from tqdm import tqdm
    for _ in tqdm(range(20), desc="steps"):
        time.sleep(0.05)
    print("steps done")
    return 20
nbcluster.get(steps.remote())
'''


def _cell_messages(kernel: Kernel, msg_id: str, *types: str) -> list[dict]:
    return [m for m in kernel.messages if m["parent_header"].get("msg_id") == msg_id and m["msg_type"] in types]


def _text(msg: dict) -> str:
    return msg["content"]["data"].get("text/plain", "")


def test_tqdm_in_a_task_is_one_bar_redrawn_in_place(kernel: Kernel) -> None:
    kernel.execute(START)
    started = time.monotonic()
    cell = kernel.execute(TQDM_TASK)
    took = time.monotonic() - started
    displays = _cell_messages(kernel, cell, "display_data")
    assert len(displays) == 1, kernel.error(cell)
    display_id = displays[0]["content"]["transient"]["display_id"]
    updates = [m for m in _cell_messages(kernel, cell, "update_display_data")
               if m["content"]["transient"]["display_id"] == display_id]
    assert 3 <= len(updates) <= took * 10 + 3, [_text(u) for u in updates]  # at most ~10 a second
    assert "steps: 100%" in _text(updates[-1]) and "20/20" in _text(updates[-1])
    assert _text(updates[-1]).startswith("(steps pid=")
    streams = kernel.text(cell)
    assert "%|" not in streams  # no bar states as stderr lines
    assert "(steps pid=" in streams and "steps done" in streams
    assert kernel.result(cell) == "20"


def test_util_tqdm_bars_of_many_tasks_merge_under_the_cell(kernel: Kernel) -> None:
    kernel.execute(START)
    cell = kernel.execute('''
import time
from nbcluster.util.tqdm import tqdm

@nbcluster.remote
def shard(k):
    for _ in tqdm(range(10), desc=f"shard {k}"):
        time.sleep(0.05)
    return k

refs = [shard.remote(k) for k in range(2)]
with tqdm(total=2, desc="driver") as bar:
    for ref in refs:
        nbcluster.get(ref)
        bar.update(1)
''')
    assert kernel.error(cell) is None
    displays = _cell_messages(kernel, cell, "display_data")
    views = [m for m in displays if "application/vnd.jupyter.widget-view+json" in m["content"]["data"]]
    assert len(views) == 1, displays  # one merged view
    display_id = views[0]["content"]["transient"]["display_id"]
    kernel.collect(1.0)  # the last bar's close may follow the cell's end
    updates = [m for m in kernel.messages if m["msg_type"] == "update_display_data"
               and m["content"]["transient"]["display_id"] == display_id]
    final = _text(updates[-1])
    for label in ("shard 0: 100%", "shard 1: 100%", "driver: 100%"):
        assert label in final, final
    assert "<table" in updates[-1]["content"]["data"]["text/html"]


def test_a_chatty_cell_stops_at_the_limit_with_a_summary(kernel: Kernel) -> None:
    kernel.execute(START)
    kernel.execute("%config ClusterMagics.output_limit = 10")
    cell = kernel.execute('''
@nbcluster.remote
def chatty():
    for i in range(50):
        print("line", i)
nbcluster.get(chatty.remote())
''')
    lines = kernel.text(cell).splitlines()
    assert len(lines) == 10 and lines[0].endswith("line 0"), lines
    summaries = [_text(m) for m in kernel.messages if m["parent_header"].get("msg_id") == cell
                 and m["msg_type"] in ("display_data", "update_display_data")]
    assert summaries and summaries[-1].startswith("… 40 more lines not shown"), summaries


LATE_NOTEBOOK = [
    START,
    TQDM_TASK,
    '''
@nbcluster.remote
def later():
    time.sleep(3)
    print("late line from the task")
    return 1
ref = later.remote()   # the cell ends at once; the line comes 3 s later
''',
    "time.sleep(6)   # meanwhile this cell runs",
    "nbcluster.get(ref)",
]


def test_headless_run_keeps_late_output_and_bars_under_their_cells(tmp_path: Path) -> None:
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(src) for src in LATE_NOTEBOOK])
    NotebookClient(notebook, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    path = tmp_path / "late.ipynb"
    nbformat.write(notebook, path)
    saved = nbformat.read(path, as_version=4)

    def text(i: int) -> str:
        out = []
        for o in saved.cells[i].outputs:
            out.append(o.get("text", "") if o.output_type == "stream" else json.dumps(o.get("data", {})))
        return "".join(out)

    # The tqdm bar: one display with its final state, no stderr lines of bar states.
    bars = [o for o in saved.cells[1].outputs if o.output_type == "display_data"]
    assert len(bars) == 1 and "steps: 100%" in bars[0].data["text/plain"], saved.cells[1].outputs
    assert not any(o.output_type == "stream" and "%|" in o.text for o in saved.cells[1].outputs)
    # The late line: under the cell that submitted the task, not the one running then.
    assert "late line from the task" in text(2), saved.cells[2].outputs
    assert "late line from the task" not in text(3) + text(4)


def _out(text: str, redraw: bool = False, stream: str = "stdout") -> RemoteOutput:
    return RemoteOutput(source="f", pid=1, node_ip="", context="c", stream=stream, text=text, redraw=redraw)


def test_cell_output_messages() -> None:
    cell = CellOutput(parent={}, limit=3)
    messages = cell.take(_out("10%", redraw=True), late=False)
    assert [m.msg_type for m in messages] == ["display_data"]
    area = messages[0].content["transient"]["display_id"]
    messages = cell.take(_out("50%", redraw=True), late=False)
    assert messages[0].msg_type == "update_display_data"
    assert messages[0].content["data"]["text/plain"] == "(f pid=1) 50%"
    # The line's end: its final state in the area, then the lines that follow as a stream.
    messages = cell.take(_out("100%\na\nb\nc\n"), late=False)
    assert [m.msg_type for m in messages] == ["update_display_data", "stream", "display_data"]
    assert messages[0].content["transient"]["display_id"] == area
    assert messages[1].content["text"] == "(f pid=1) a\n(f pid=1) b\n"  # the area counts as one line
    assert messages[2].content["data"]["text/plain"].startswith("… 1 more line not shown")


def test_cell_output_after_the_cell_ended() -> None:
    # With a late area, everything goes into it, by display updates only.
    cell = CellOutput(parent={}, limit=100)
    cell.make_late_area()
    cell.take(_out("x\n"), late=True)
    cell.take(_out("1/2", redraw=True), late=True)
    messages = cell.take(_out("2/2", redraw=True), late=True)
    assert [m.msg_type for m in messages] == ["update_display_data"]
    assert messages[0].content["transient"]["display_id"] == cell.late_id
    assert messages[0].content["data"]["text/plain"] == "(f pid=1) x\n(f pid=1) 2/2\n"
    # Without one (the cell's work had finished), late lines are a stream as before.
    bare = CellOutput(parent={})
    assert [m.msg_type for m in bare.take(_out("y\n"), late=True)] == ["stream"]
