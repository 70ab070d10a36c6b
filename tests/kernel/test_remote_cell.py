"""``%%remote`` in a real Jupyter kernel: the cell runs as one task on the kernel's cluster.

One kernel serves the module; each test that needs a cluster starts one inside the
kernel (``nbcluster.init``) and shuts it down, so the leak check after every test sees
no cluster process left (the kernel itself predates the tests).
"""

from __future__ import annotations

import ast
import queue
import time
import traceback
from collections.abc import Iterator
from typing import Any

import pytest

from nbcluster.kernel_ext.remote_cell import _make_cell_function, free_names, remote_cell_usage

from ..conftest import run_python, wait_for

REGISTER = """
from IPython.core.magic import register_cell_magic
from nbcluster.kernel_ext.remote_cell import run_remote_cell
get_ipython().register_magic_function(lambda line, cell: run_remote_cell(get_ipython(), line, cell), 'cell', 'remote')
"""


class Run:
    """What executing one piece of code produced: its iopub messages and its reply."""

    def __init__(self, messages: list[dict], reply: dict) -> None:
        self.messages = messages
        self.reply = reply

    def of_type(self, msg_type: str) -> list[dict]:
        return [m["content"] for m in self.messages if m["msg_type"] == msg_type]

    @property
    def results(self) -> list[dict]:
        return [c["data"] for c in self.of_type("execute_result")]

    @property
    def error(self) -> dict | None:
        """The reply's error (a UsageError is printed, not published: only the reply has it)."""
        return self.reply if self.reply["status"] == "error" else None


class Kernel:
    def __init__(self, km: Any, kc: Any) -> None:
        self.km = km
        self.kc = kc

    def execute(self, code: str, timeout: float = 60.0) -> Run:
        """Run ``code``: the iopub messages it caused, up to its ``idle`` status, and the reply."""
        msg_id = self.kc.execute(code)
        messages = self._iopub_until_idle(msg_id, timeout)
        while True:
            reply = self.kc.get_shell_msg(timeout=timeout)
            if reply["parent_header"].get("msg_id") == msg_id:
                return Run(messages, reply["content"])

    def _iopub_until_idle(self, msg_id: str, timeout: float) -> list[dict]:
        messages = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                msg = self.kc.get_iopub_msg(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"no idle status within {timeout} s; got {messages}")
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            messages.append(msg)
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                return messages

    def ok(self, code: str, timeout: float = 60.0) -> Run:
        run = self.execute(code, timeout)
        error = run.error
        assert error is None, f"{code!r} failed: {error['ename']}: {error['evalue']}\n" + "\n".join(error["traceback"])
        return run

    def value(self, expression: str) -> Any:
        """The value of a Python literal ``expression`` evaluated in the kernel."""
        found = self.ok(expression).results
        assert len(found) == 1, f"{expression!r} gave {found}"
        return ast.literal_eval(found[0]["text/plain"])


@pytest.fixture(scope="module")
def kernel() -> Iterator[Kernel]:
    from jupyter_client.manager import start_new_kernel

    km, kc = start_new_kernel(kernel_name="python3")
    try:
        k = Kernel(km, kc)
        k.ok(REGISTER)
        yield k
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=False)


@pytest.fixture
def connected(kernel: Kernel) -> Iterator[Kernel]:
    """The kernel, with an nbcluster cluster of its own for this test."""
    kernel.ok("import nbcluster\nassert not nbcluster.is_initialized()\nnbcluster.init(num_cpus=2);")
    try:
        yield kernel
    finally:
        kernel.ok("nbcluster.shutdown()")


def task_count(k: Kernel) -> int:
    return k.value("len(nbcluster.state.list_tasks())")


def usage_error(run: Run) -> str:
    """The message of the UsageError ``run`` ended with (IPython prints it on stderr)."""
    assert run.error is not None and run.error["ename"] == "UsageError", run.error
    printed = "".join(c["text"] for c in run.of_type("stream") if c["name"] == "stderr")
    assert printed == f"UsageError: {run.error['evalue']}\n"
    return run.error["evalue"]


# -- in the kernel ---------------------------------------------------------------------------
def test_cell_uses_user_variables_and_functions_and_returns_the_last_value(connected: Kernel) -> None:
    k = connected
    k.ok("base = 40\ndef add(a, b):\n    return a + b\nimport math")
    run = k.ok("%%remote\nassigned = add(base, 1)\nassigned + int(math.sqrt(1))")
    assert run.results == [{"text/plain": "42"}]
    # It ran elsewhere: what the cell assigned stays there.
    assert k.value("'assigned' in globals()") is False


def test_cell_runs_in_another_process(connected: Kernel) -> None:
    k = connected
    k.ok("import os\nkernel_pid = os.getpid()")
    worker_pid, shipped = k.value("%%remote\nimport os\n(os.getpid(), kernel_pid)")
    assert shipped == k.value("kernel_pid")
    assert worker_pid != shipped


def test_final_statement_or_semicolon_gives_no_output(connected: Kernel) -> None:
    k = connected
    for cell in ("%%remote\nx = 1", "%%remote\nx = 1\nx + 1;", "%%remote\nNone"):
        assert k.ok(cell).results == [], cell


def test_display_inside_the_cell_is_shown_in_order(connected: Kernel) -> None:
    k = connected
    run = k.ok(
        "%%remote\nfrom IPython.display import HTML, display\n"
        "display(HTML('<b>first</b>'))\ndisplay({'n': 1})\n'done'"
    )
    kinds = [m["msg_type"] for m in run.messages if m["msg_type"] in ("display_data", "execute_result")]
    assert kinds == ["display_data", "display_data", "execute_result"]
    first, second = run.of_type("display_data")
    assert first["data"]["text/html"] == "<b>first</b>"
    assert second["data"]["text/plain"] == "{'n': 1}"
    assert run.results == [{"text/plain": "'done'"}]
    # display was patched for the cell only: later tasks on that worker see IPython's own.
    cell_pid = k.value("%%remote\nimport os\ndisplay(1)\nos.getpid()")
    k.ok(
        "@nbcluster.remote\ndef probe():\n    import os, IPython.display as d, IPython.core.display_functions as f\n"
        "    return os.getpid(), d.display is f.display and f.display.__module__ == f.__name__"
    )
    seen: dict[int, bool] = {}
    for _ in range(20):
        seen = dict(k.value("nbcluster.get([probe.remote() for _ in range(4)])"))
        if cell_pid in seen:
            assert seen[cell_pid] is True
            break
    else:
        pytest.fail(f"no probe ran on the cell's worker {cell_pid}: {seen}")


def test_output_name_stores_the_ref_of_the_value(connected: Kernel) -> None:
    k = connected
    run = k.ok("%%remote -o r\nimport time\ntime.sleep(0.5)\ndisplay('shown nowhere')\n6 * 7")
    assert run.results == [] and run.of_type("display_data") == []
    assert k.value("type(r).__name__") == "ObjectRef"
    assert k.value("nbcluster.get(r)") == 42


def test_unpicklable_variable_is_a_usage_error_and_nothing_is_submitted(connected: Kernel) -> None:
    k = connected
    k.ok("import threading\nlock = threading.Lock()\nother = 1")
    k.value("%%remote\n1")  # a task, so the count below is not trivially zero
    deadline = time.monotonic() + 10
    while task_count(k) < 1:
        assert time.monotonic() < deadline, "the first task never reached the task table"
        time.sleep(0.1)
    before = task_count(k)

    message = usage_error(k.execute("%%remote\nwith lock:\n    other + 1"))
    assert message == (
        "cannot ship `lock` (_thread.lock) to the cluster: cannot pickle '_thread.lock' object; "
        "create it inside the cell instead"
    )
    deadline = time.monotonic() + 2.0  # task events reach the head about 1 s after submission
    while time.monotonic() < deadline:
        assert task_count(k) == before
        time.sleep(0.2)


def test_remote_exception_shows_as_the_cell_error(connected: Kernel) -> None:
    k = connected
    run = k.execute("%%remote\nfrom IPython.display import display\ndisplay('before')\nraise ValueError('boom')")
    [shown] = run.of_type("error")
    assert run.error is not None and "ValueError" in run.error["ename"] and "ValueError" in shown["ename"]
    assert "boom" in run.error["evalue"]
    assert "raise ValueError('boom')" in run.error["evalue"]  # the remote traceback shows the cell's line
    assert [d["data"]["text/plain"] for d in run.of_type("display_data")] == ["'before'"]
    # A name the kernel does not have is the worker's NameError.
    error = k.execute("%%remote\nnot_defined_anywhere + 1").error
    assert error is not None and "NameError" in error["ename"] and "not_defined_anywhere" in error["evalue"]


def test_interrupt_stops_the_cell_and_its_task(connected: Kernel) -> None:
    k = connected
    msg_id = k.kc.execute("%%remote\nimport time\ntime.sleep(60)")
    from nbcluster import state  # the kernel is busy: ask its cluster (the newest on this machine) directly

    wait_for(lambda: [t.state for t in state.list_tasks(address="auto")] == ["RUNNING"], timeout=30,
             message="the cell's task running")
    k.km.interrupt_kernel()
    messages = k._iopub_until_idle(msg_id, timeout=30)
    assert [m["content"]["ename"] for m in messages if m["msg_type"] == "error"] == ["KeyboardInterrupt"]
    deadline = time.monotonic() + 20
    while (states := k.value("[t.state for t in nbcluster.state.list_tasks()]")) != ["CANCELLED"]:
        assert time.monotonic() < deadline, states
        time.sleep(0.2)


BAD_FLAGS = [
    ("--num-cpus many", "--num-cpus"),
    ("--num-cpus -1", "--num-cpus"),
    ("--num-gpus -2", "--num-gpus"),
    ("--retries x", "--retries"),
    ("--retries -3", "--retries"),
    ("--resources '{bad'", "--resources must be a JSON object such as '{\"accel\": 1}'"),
    ("--resources '[1]'", "--resources must be a JSON object"),
    ("--resources '{\"accel\": \"lots\"}'", "--resources"),
    ("-o 1x", "-o"),
    ("--bogus", "--bogus"),
]


def test_bad_flags_are_usage_errors(kernel: Kernel) -> None:
    for line, named in BAD_FLAGS:
        message = usage_error(kernel.execute(f"%%remote {line}\n1"))
        assert named in message and "\n" not in message, (line, message)


def test_not_connected_is_a_usage_error(kernel: Kernel) -> None:
    kernel.ok("import nbcluster\nassert not nbcluster.is_initialized()")
    message = usage_error(kernel.execute("%%remote\n1"))
    assert message == "%%remote: not connected; run %cluster connect or %cluster start first"


# -- without a kernel ------------------------------------------------------------------------
def test_help_lists_every_flag() -> None:
    help_text = remote_cell_usage.__doc__
    for flag in ("%%remote", "--num-cpus N", "--num-gpus N", "--resources JSON", "--retries K", "-o NAME"):
        assert flag in help_text


@pytest.mark.parametrize(
    ("cell", "free"),
    [
        ("x = 1\nx", set()),
        ("y = y + 1", {"y"}),
        ("z += 1", {"z"}),
        ("print(a)\na = 2", {"a", "print"}),
        ("def f(p):\n    q = p + g\n    return q\nf(h)", {"g", "h"}),
        ("import numpy as np\nnp.zeros(n)", {"n"}),
        ("for i in range(3):\n    total = i + offset", {"range", "offset"}),
        ("[c * k for c in data]", {"data", "k"}),
        ("class K:\n    w = v", {"v"}),
        ("def rec(n):\n    return rec(n - 1)", set()),
    ],
)
def test_free_names(cell: str, free: set[str]) -> None:
    assert free_names(cell) == free


def test_worker_side_runs_without_this_module_or_ipython(tmp_path: Any) -> None:
    """The cell function travels by value: a worker without IPython still runs cells
    (displays fall back to text/plain) and never imports nbcluster.kernel_ext."""
    import cloudpickle

    (tmp_path / "fn.pkl").write_bytes(cloudpickle.dumps(_make_cell_function()))
    proc = run_python(
        f"""
        import sys
        sys.modules["IPython"] = None  # any import of IPython now fails
        import cloudpickle
        fn = cloudpickle.loads(open({str(tmp_path / "fn.pkl")!r}, "rb").read())
        value, displays = fn("display([1, 2])\\nx = base + 1\\nx", "<remote-cell-t>", {{"base": 41}}, {{"m": "math"}})
        print("RESULT", value, displays, any(m.startswith("nbcluster.kernel_ext") for m in sys.modules))
        """
    )
    assert "RESULT 42 [({'text/plain': '[1, 2]'}, {})] False" in proc.stdout


def test_worker_side_keeps_displays_on_error_and_restores_display() -> None:
    import IPython.core.display_functions as display_functions
    import IPython.display

    fn = _make_cell_function()
    with pytest.raises(ZeroDivisionError) as info:
        fn("from IPython.display import display\ndisplay('x')\n1 / 0", "<remote-cell-e>", {}, {})
    assert info.value._nbcluster_cell_displays == [({"text/plain": "'x'"}, {})]
    shown = "".join(traceback.format_exception(info.value))
    assert 'File "<remote-cell-e>", line 3' in shown and "1 / 0" in shown  # the cell's source is known
    assert IPython.display.display is display_functions.display
    assert display_functions.display.__module__ == "IPython.core.display_functions"
