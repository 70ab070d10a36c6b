"""``get(refs, progress=...)`` and ``wait(..., progress=...)``: a progress function sees
every arrival, once, in order; ``progress=True`` in a script is one redrawn line on
stderr that ends at 100%; a get that times out closes its bar where it stood; bad
values are refused. (In a notebook the bar is a widget: tests/kernel/test_get_progress.py.)"""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from typing import Any

import pytest

import nbcluster

from ..conftest import FAST_CONFIG, ROOT, run_python


@nbcluster.remote
def slow(i: int, delay: float = 0.02) -> int:
    import time

    time.sleep(delay)
    return i


def _recorder() -> tuple[list[tuple[int, int]], Any]:
    seen: list[tuple[int, int]] = []
    lock = threading.Lock()

    def progress(done: int, total: int) -> None:
        with lock:
            seen.append((done, total))

    return seen, progress


def test_the_progress_function_sees_every_arrival_of_a_get(cluster: Any) -> None:
    ready = nbcluster.put(0)  # already there when the get starts: counted too
    refs = [ready] + [slow.remote(i) for i in range(1, 40)]
    seen, progress = _recorder()
    assert nbcluster.get(refs, progress=progress) == list(range(40))
    assert seen == [(n, 40) for n in range(1, 41)]
    # one ref, not a list: one arrival
    seen, progress = _recorder()
    assert nbcluster.get(slow.remote(7), progress=progress) == 7
    assert seen == [(1, 1)]


def test_wait_counts_up_to_num_returns(cluster: Any) -> None:
    refs = [slow.remote(i, 0.01 if i < 3 else 5.0) for i in range(6)]
    seen, progress = _recorder()
    ready, not_ready = nbcluster.wait(refs, num_returns=3, progress=progress, timeout=30)
    assert len(ready) == 3 and len(not_ready) == 3
    assert seen == [(1, 3), (2, 3), (3, 3)]
    for ref in not_ready:
        nbcluster.cancel(ref)


def test_a_get_that_times_out_stops_counting(cluster: Any) -> None:
    fast, stuck = slow.remote(1, 0.0), slow.remote(2, 30.0)
    nbcluster.get(fast)
    seen, progress = _recorder()
    with pytest.raises(nbcluster.exceptions.GetTimeoutError):
        nbcluster.get([fast, stuck], timeout=0.5, progress=progress)
    assert seen == [(1, 2)]
    nbcluster.cancel(stuck, force=True)


def test_bad_progress_values_are_refused(cluster: Any) -> None:
    ref = nbcluster.put(1)
    with pytest.raises(TypeError, match="progress must be True, False or a function"):
        nbcluster.get(ref, progress=3)
    with pytest.raises(TypeError, match="progress must be True, False or a function"):
        nbcluster.wait([ref], progress="yes")


def test_progress_true_in_a_script_is_one_line_on_stderr() -> None:
    code = """
import time, nbcluster
nbcluster.init(num_cpus=2)

@nbcluster.remote
def f(i):
    time.sleep(0.05)
    return i

print("SUM", sum(nbcluster.get([f.remote(i) for i in range(30)], progress=True)))
nbcluster.shutdown()
"""
    # Bytes, not text: text mode would turn each "\\r" into a newline.
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=120, cwd=ROOT)
    err = proc.stderr.decode()
    assert proc.returncode == 0, err
    assert "SUM 435" in proc.stdout.decode()
    states = re.findall(r"get: +(\d+)%\|", err)
    assert len(states) >= 3 and [int(s) for s in states] == sorted(int(s) for s in states), err  # growing
    assert re.search(r"\(driver pid=\d+\) get: 100%\|#+\| 30/30 .*\n", err), err  # the final state on its line
    assert re.search(r"get: +\d+%[^\n]*\r", err), err  # the open bar redrawn in place


def test_a_client_mode_driver_sees_every_arrival_too() -> None:
    """Client mode: the proxy says which refs are ready (polled), each arrival counted once."""
    from nbcluster.cluster_utils import Cluster

    head = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "port": 0, "node_ip_address": "127.0.0.1",
                                                          "_system_config": FAST_CONFIG})
    try:
        out = run_python(f"""
            import threading, time
            import nbcluster
            info = nbcluster.init(address="nbcluster://{head.address}", token_file={str(head.token_file)!r})
            assert info.client_mode, info

            @nbcluster.remote
            def slow(i):
                time.sleep(0.1)
                return i

            seen, lock = [], threading.Lock()
            def progress(done, total):
                with lock:
                    seen.append((done, total))

            values = nbcluster.get([slow.remote(i) for i in range(12)], progress=progress)
            ready, _ = nbcluster.wait([slow.remote(i) for i in range(4)], num_returns=2, progress=progress)
            print("VALUES", values == list(range(12)), "SEEN", seen)
            nbcluster.shutdown()
            """, timeout=120).stdout
    finally:
        head.shutdown()
    assert "VALUES True" in out, out
    seen = eval(out.split("SEEN", 1)[1].strip().splitlines()[0])  # noqa: S307 - our own list of tuples
    assert seen == [(n, 12) for n in range(1, 13)] + [(1, 2), (2, 2)], seen
