"""The notebook as driver, in a real ipykernel: %cluster, output under the right cell,
the stop button, kernel restarts, usage errors."""

from __future__ import annotations

import time

import psutil
import pytest

from ..conftest import wait_for
from .harness import Kernel


def started(kernel: Kernel, flags: str = "--num-cpus 2") -> None:
    cell = kernel.execute(f"%load_ext nbcluster\n%cluster start {flags}")
    assert kernel.error(cell) is None and "UsageError" not in kernel.text(cell, "stderr"), kernel.text(cell)
    assert "Connected to a cluster of" in kernel.text(cell)


def test_output_lands_under_the_cell_that_submitted_the_work(kernel: Kernel) -> None:
    started(kernel)
    cell1 = kernel.execute(
        "import nbcluster, time\n"
        "@nbcluster.remote\n"
        "def late():\n"
        "    time.sleep(1.5)\n"
        "    print('late hello')\n"
        "r = late.remote()\n"
        "print('cell 1 done')"
    )
    # Cell 2 runs while the task prints (a task's output is sent before its result).
    cell2 = kernel.execute("nbcluster.get(r)\ntime.sleep(0.5)\nprint('cell 2 done')")
    def displayed(msg_id: str) -> str:
        """What display updates with this parent show (the text of the last one)."""
        texts = [m["content"]["data"].get("text/plain", "") for m in kernel.messages
                 if m["parent_header"].get("msg_id") == msg_id and m["msg_type"] == "update_display_data"]
        return texts[-1] if texts else ""

    # Cell 1 ended with its task unfinished: it made a display area, which the late line fills.
    wait_for(lambda: kernel.collect(0.2) or "late hello" in displayed(cell1), timeout=30,
             message="the task's line under cell 1")
    assert kernel.text(cell1) == "cell 1 done\n"
    assert displayed(cell1).startswith("(late pid=") and displayed(cell1).endswith("late hello\n")
    area = [m for m in kernel.outputs(cell1) if m["msg_type"] == "display_data"]
    assert len(area) == 1 and area[0]["content"]["data"]["text/plain"] == ""
    # Not in the cell running when it arrived: only the same update of cell 1's area, for
    # headless clients that listen to nothing else.
    assert kernel.text(cell2) == "cell 2 done\n"
    mirrored = [m for m in kernel.messages if m["parent_header"].get("msg_id") == cell2
                and m["msg_type"] == "update_display_data"]
    assert mirrored and {m["content"]["transient"]["display_id"] for m in mirrored} == {
        area[0]["content"]["transient"]["display_id"]}
    # The cell that connected gets nothing of it either.
    assert all("late hello" not in kernel.text(m) for m in {msg["parent_header"].get("msg_id") for msg in
               kernel.messages} - {cell1})


def test_the_stop_button_interrupts_get_and_cancels_the_cells_tasks(kernel: Kernel, tmp_path) -> None:
    started(kernel)
    kernel.execute(
        "import nbcluster, os, time\n"
        "@nbcluster.remote\n"
        "def slow(mark):\n"
        "    open(mark, 'w').close()\n"
        "    time.sleep(60)\n"
    )
    first = tmp_path / "first"
    cell = kernel.execute(f"r = slow.remote({str(first)!r})\nnbcluster.get(r)", wait=False)
    wait_for(first.exists, timeout=30, message="the task running")
    asked = time.monotonic()
    kernel.km.interrupt_kernel()
    kernel.wait(cell, timeout=20)
    assert time.monotonic() - asked < 10  # the task sleeps 60 s
    assert kernel.error(cell)["ename"] == "KeyboardInterrupt"
    assert "cancelled 1 task(s) this cell submitted" in kernel.text(cell)
    check = kernel.execute(
        "from nbcluster.exceptions import TaskCancelledError\n"
        "try:\n    nbcluster.get(r, timeout=20)\nexcept TaskCancelledError:\n    print('CANCELLED')"
    )
    assert kernel.text(check) == "CANCELLED\n"
    kernel.execute("%config ClusterMagics.cancel_on_interrupt = False")
    second = tmp_path / "second"
    cell = kernel.execute(f"r2 = slow.remote({str(second)!r})\nnbcluster.get(r2)", wait=False)
    wait_for(second.exists, timeout=30, message="the second task running")
    kernel.km.interrupt_kernel()
    kernel.wait(cell, timeout=20)
    assert "cancelled" not in kernel.text(cell)
    still = kernel.execute("print(nbcluster.wait([r2], timeout=0.5)[1] == [r2])")
    assert kernel.text(still) == "True\n"  # still running


def test_a_kernel_restart_stops_its_cluster_and_the_next_start_works(kernel: Kernel) -> None:
    started(kernel)
    pid = kernel.km.provisioner.pid if hasattr(kernel.km, "provisioner") else None
    kernel_proc = psutil.Process(pid) if pid else None
    children = kernel_proc.children(recursive=True) if kernel_proc else []
    assert children, "the cluster's processes are the kernel's children"
    kernel.km.restart_kernel(now=False)
    kernel.kc.wait_for_ready(timeout=60)
    wait_for(lambda: not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in children),
             timeout=20, message="the old kernel's cluster gone")
    started(kernel, "--num-cpus 1")
    cell = kernel.execute("import nbcluster\nprint(nbcluster.get(nbcluster.put(41)) + 1)")
    assert kernel.text(cell) == "42\n"


def test_bad_subcommands_and_flags_are_usage_errors_with_the_help_line(kernel: Kernel) -> None:
    cell = kernel.execute("%load_ext nbcluster\n%cluster bogus")
    err = kernel.text(cell, "stderr")
    assert "UsageError: %cluster: unknown subcommand 'bogus'; use one of connect, start" in err
    cell = kernel.execute("%cluster start --num-cpus many")
    err = kernel.text(cell, "stderr")
    assert "UsageError: %cluster start: argument --num-cpus: invalid float value: 'many'" in err
    assert "usage: %cluster start [--num-cpus NUM_CPUS]" in err
    cell = kernel.execute("%cluster status")
    assert "not connected; %cluster connect or %cluster start first" in kernel.text(cell, "stderr")
    cell = kernel.execute("%cluster help connect")
    assert "--token-file" in kernel.text(cell) and "--wait-nodes" in kernel.text(cell)
    reply = kernel.kc.execute("%cluster?", reply=True, timeout=30)  # help comes as a pager payload
    pages = "".join(p.get("data", {}).get("text/plain", "") for p in reply["content"]["payload"])
    assert "Use an nbcluster cluster from this notebook." in pages and "%cluster adapt MIN MAX" in pages


def test_connect_attaches_to_a_running_cluster_and_disconnect_leaves_it_running(kernel: Kernel, tmp_path) -> None:
    from nbcluster.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    try:
        token_file = tmp_path / "token"
        token_file.write_text(cluster.head_node._handle.token)
        cell = kernel.execute(f"%load_ext nbcluster\n%cluster connect {cluster.address} --token-file {token_file}")
        out = kernel.text(cell)
        assert "Connected to a cluster of 1 node(s)" in out, kernel.text(cell, "stderr")
        assert cluster.head_node._handle.token not in "".join(str(m["content"]) for m in kernel.messages)
        cell = kernel.execute("import nbcluster\nprint(nbcluster.get(nbcluster.put('here')))")
        assert kernel.text(cell) == "here\n"
        cell = kernel.execute("%cluster disconnect")
        assert "the cluster keeps running" in kernel.text(cell)
        assert cluster.head_node.alive()
    finally:
        cluster.shutdown()


def test_after_a_failed_connect_remote_work_is_refused_not_run_locally(kernel: Kernel, tmp_path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("t" * 32 + "\n")
    token_file.chmod(0o600)
    cell = kernel.execute(f"%load_ext nbcluster\n%cluster connect 127.0.0.1:9 --token-file {token_file}")
    assert "UsageError: %cluster connect:" in kernel.text(cell) and "127.0.0.1:9" in kernel.text(cell)
    cell = kernel.execute(
        "import nbcluster\n@nbcluster.remote\ndef f():\n    return 1\nnbcluster.get(f.remote())"
    )
    error = kernel.error(cell)
    assert error["ename"] == "ClusterConnectionError", error
    assert "connecting to the cluster at 127.0.0.1:9 failed" in error["evalue"]
    cell = kernel.execute("print(nbcluster.is_initialized())")
    assert kernel.text(cell) == "False\n"  # no local cluster was started behind the user's back


def test_cell_code_ships_by_value_and_unpicklable_names_are_named(kernel: Kernel) -> None:
    started(kernel)
    cell = kernel.execute(
        "import nbcluster, threading\n"
        "FACTOR = 7\n"
        "def helper(x):\n"
        "    return x * FACTOR\n"
        "@nbcluster.remote\n"
        "class Scaler:\n"
        "    def scale(self, x):\n"
        "        return helper(x)\n"
        "s = Scaler.remote()\n"
        "print(nbcluster.get(s.scale.remote(6)))"
    )
    assert kernel.text(cell) == "42\n", kernel.text(cell, "stderr")
    cell = kernel.execute(
        "lock = threading.Lock()\n"
        "@nbcluster.remote\n"
        "def uses_lock():\n"
        "    return lock.locked()\n"
        "uses_lock.remote()"
    )
    error = kernel.error(cell)
    assert error["ename"] == "TypeError"
    assert "Cannot ship function 'uses_lock' to the cluster: it uses `lock` (_thread.lock)" in error["evalue"]


def test_adapt_and_scale_an_autoscaled_cluster(kernel: Kernel) -> None:
    started(kernel, "--num-cpus 1 --autoscale 0:1")
    cell = kernel.execute("%cluster adapt 1 2")
    assert "the autoscaler keeps 1 to 2 worker node(s)" in kernel.text(cell), kernel.text(cell, "stderr")
    count = ("import nbcluster, time\n"
             "def workers():\n"
             "    return sum(1 for n in nbcluster.state.list_nodes() if n.state == 'ALIVE' and not n.is_head)\n"
             "deadline = time.monotonic() + 60\n"
             "while workers() != {n} and time.monotonic() < deadline:\n"
             "    time.sleep(0.2)\n"
             "print(workers())")
    cell = kernel.execute(count.format(n=1))
    assert kernel.text(cell) == "1\n"  # min_workers=1 launched one
    cell = kernel.execute("%cluster scale 2")
    assert "keeps 2 to 2" in kernel.text(cell)
    cell = kernel.execute(count.format(n=2))
    assert kernel.text(cell) == "2\n"
    cell = kernel.execute("%cluster adapt 3 1")
    assert "UsageError" in kernel.text(cell, "stderr") and "above max_workers" in kernel.text(cell, "stderr")
    cell = kernel.execute("print([e.message for e in nbcluster.state.get_autoscaler_state().events "
                          "if e.message.startswith('Bounds')])")
    assert "min_workers=2, max_workers=2" in kernel.text(cell)


def test_scale_refuses_a_fixed_cluster(kernel: Kernel) -> None:
    started(kernel)
    cell = kernel.execute("%cluster scale 3")
    assert "this cluster's size is fixed" in kernel.text(cell, "stderr")


def test_submit_runs_a_notebook_as_a_job_and_keeps_the_executed_notebook(kernel: Kernel, tmp_path) -> None:
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    good = new_notebook(cells=[
        new_code_cell("%load_ext nbcluster\n%cluster connect"),
        new_code_cell("import nbcluster\n@nbcluster.remote\ndef cube(x):\n    return x ** 3\n"
                      "print('cubes', nbcluster.get([cube.remote(i) for i in range(4)]))"),
    ])
    bad = new_notebook(cells=[new_code_cell("print('before')"), new_code_cell("1 / 0")])
    for notebook in (good, bad):
        notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(good, tmp_path / "cubes.ipynb")
    nbformat.write(bad, tmp_path / "broken.ipynb")
    started(kernel)
    cell = kernel.execute(f"%cluster submit --notebook {tmp_path / 'cubes.ipynb'}", timeout=180)
    out = kernel.text(cell)
    assert "cubes [0, 1, 8, 27]" in out and "SUCCEEDED" in out, out + kernel.text(cell, "stderr")
    executed = nbformat.read(tmp_path / "cubes.executed.ipynb", as_version=4)
    assert "cubes [0, 1, 8, 27]" in executed.cells[1].outputs[0]["text"]
    assert not (tmp_path / "cubes.ipynb").read_text().count('"outputs": [\n     {')  # the original untouched
    cell = kernel.execute(f"%cluster submit --notebook {tmp_path / 'broken.ipynb'}", timeout=180)
    out = kernel.text(cell)
    assert "FAILED" in out and "ZeroDivisionError" in out, out
    broken = nbformat.read(tmp_path / "broken.executed.ipynb", as_version=4)
    assert broken.cells[1].outputs[0]["ename"] == "ZeroDivisionError"
    cell = kernel.execute(f"%cluster submit --notebook {tmp_path / 'missing.ipynb'}")
    assert "is not a notebook file" in kernel.text(cell, "stderr")


def test_subcommand_help_with_a_question_mark(kernel: Kernel) -> None:
    kernel.execute("%load_ext nbcluster")
    cell = kernel.execute("%cluster connect?")
    out = kernel.text(cell)
    assert "%cluster connect: make this kernel a driver" in out and "--token-file" in out, out


def test_connect_finds_clusters_the_jupyter_server_lists(tmp_path, monkeypatch) -> None:
    import json

    from IPython.core.error import UsageError

    from nbcluster.kernel_ext.magics import ClusterMagics, discovery_path

    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path))
    monkeypatch.delenv("NBCLUSTER_ADDRESS", raising=False)
    assert ClusterMagics._resolve(None) == ("auto", None)  # no list: this machine's cluster
    listed = {"clusters": [{"name": "big", "address": "10.0.0.5:6380", "token_file": "/secret/token"}]}
    discovery_path().write_text(json.dumps(listed))
    assert ClusterMagics._resolve(None) == ("10.0.0.5:6380", "/secret/token")  # the only one
    assert ClusterMagics._resolve("big") == ("10.0.0.5:6380", "/secret/token")
    assert ClusterMagics._resolve("h:1234") == ("h:1234", None)
    with pytest.raises(UsageError, match=r"'small' is neither a cluster the Jupyter server lists \(big; from"):
        ClusterMagics._resolve("small")


def test_a_kernel_driver_tells_its_kernel_id_and_notebook_in_its_job(tmp_path) -> None:
    """As a Jupyter server starts kernels: connection file kernel-<id>.json, the
    notebook's path in JPY_SESSION_NAME."""
    import os
    import uuid

    kernel_id = str(uuid.uuid4())
    kernel = Kernel(connection_file=str(tmp_path / f"kernel-{kernel_id}.json"),
                    env=dict(os.environ, JPY_SESSION_NAME="work/analysis.ipynb"))
    try:
        started(kernel)
        probe = kernel.execute(
            "import nbcluster.state\n"
            "print([dict(sorted(j.metadata.items())) for j in nbcluster.state.list_jobs()\n"
            "       if j.type == 'DRIVER' and j.status == 'RUNNING'])"
        )
        assert kernel.error(probe) is None, kernel.error(probe)
        assert kernel.text(probe, "stdout").strip() == str(
            [{"kernel_id": kernel_id, "notebook_path": "work/analysis.ipynb"}])
        kernel.execute("%cluster stop")
    finally:
        kernel.close()


def test_start_with_a_port_takes_nodes_from_a_terminal(kernel: Kernel) -> None:
    """`%cluster start --port P` serves the kernel's cluster on P and prints the command
    that joins it; a node started with that command from a terminal runs its tasks."""
    import re
    import socket

    from tests.browser import free_port
    from tests.cli_tools import Machine

    port = free_port()
    cell = kernel.execute(f"%load_ext nbcluster\n%cluster start --num-cpus 1 --port {port}")
    joined = re.search(r"nbcluster start --address (\S+) --token-file (\S+)", kernel.text(cell))
    assert joined, kernel.text(cell) + kernel.text(cell, "stderr")
    assert joined.group(1) == f"127.0.0.1:{port}"
    terminal = Machine("terminal")
    try:
        terminal.run("start", "--address", joined.group(1), "--token-file", joined.group(2), "--num-cpus", "1",
                     "--resources", '{"joined": 1}')
        cell = kernel.execute(
            "import nbcluster\n"
            "@nbcluster.remote(resources={'joined': 1})\n"
            "def where():\n"
            "    return nbcluster.get_runtime_context().get_node_id()\n"
            "here = nbcluster.get_runtime_context().get_node_id()\n"
            "print(len([n for n in nbcluster.nodes() if n['Alive']]), nbcluster.get(where.remote(), timeout=60) != here)"
        )
        assert kernel.text(cell) == "2 True\n", kernel.error(cell)
    finally:
        terminal.close()
    cell = kernel.execute("%cluster stop")
    assert not kernel.error(cell)

    with socket.socket() as taken:  # a port in use is a usage error naming it; the next start works
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        used = taken.getsockname()[1]
        cell = kernel.execute(f"%cluster start --num-cpus 1 --port {used}")
        err = kernel.text(cell, "stderr")
        assert "UsageError" in err and f"cannot listen on 127.0.0.1:{used}: the port is in use" in err, err
    cell = kernel.execute("%cluster start --num-cpus 1 --autoscale 0:1 --port 1")
    assert "--port and --host are for a cluster that nodes join by hand" in kernel.text(cell, "stderr")
    cell = kernel.execute("%cluster start --num-cpus 1\nprint(nbcluster.get(nbcluster.put(7)))")
    assert kernel.text(cell).endswith("7\n"), kernel.text(cell, "stderr")
