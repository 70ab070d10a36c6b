"""Task output: print and logging reach the driver, prefixed with the function name
and pid, before the task's result; and stay in the session's log files. Lines redrawn
with carriage returns (progress bars) reach a script's terminal as rate-limited
``"\r"``-terminated redraws; ``nbcluster.util.tqdm`` bars as one merged line."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap

from nbcluster.runtime.core.output import _compact, visible

from ..conftest import ROOT, run_python

DRIVER = """
    import glob, logging, os, sys
    import nbcluster
    info = nbcluster.init(num_cpus=1, log_to_driver={log_to_driver})

    @nbcluster.remote
    def chatty(x):
        print("hello from the task", x)
        print("second line")
        logging.getLogger("user").warning("a warning from the task")
        sys.stderr.write("raw stderr\\n")
        return os.getpid()

    pid = nbcluster.get(chatty.remote(7))
    print("AFTER-GET", pid, flush=True)
    logs = ""
    for path in glob.glob(os.path.join(info.session_dir, "logs", "worker-*")):
        logs += open(path).read()
    print("LOGFILES-HAVE-OUTPUT", "hello from the task 7" in logs and "a warning from the task" in logs)
    nbcluster.shutdown()
"""


def test_print_and_logging_reach_the_driver_prefixed():
    proc = run_python(DRIVER.format(log_to_driver=True))
    pid = re.search(r"AFTER-GET (\d+)", proc.stdout).group(1)
    out_lines = proc.stdout.splitlines()
    prefix = f"(chatty pid={pid}) "
    assert out_lines.index(prefix + "hello from the task 7") < out_lines.index(f"AFTER-GET {pid}")
    assert prefix + "second line" in out_lines
    assert prefix + "a warning from the task" in proc.stderr.splitlines()
    assert prefix + "raw stderr" in proc.stderr.splitlines()
    assert "LOGFILES-HAVE-OUTPUT True" in proc.stdout


def test_log_to_driver_false_keeps_output_in_log_files_only():
    proc = run_python(DRIVER.format(log_to_driver=False))
    assert "(chatty pid=" not in proc.stdout + proc.stderr
    assert "LOGFILES-HAVE-OUTPUT True" in proc.stdout


REDRAWS = """
    import sys, time
    import nbcluster
    nbcluster.init(num_cpus=2)

    @nbcluster.remote
    def counting():
        for i in range(1, 31):                    # 30 states over ~1.5 s, no newline between them
            sys.stderr.write(f"\\rstep {i:2d}/30")
            time.sleep(0.05)
        sys.stderr.write("\\n")
        print("after the bar")

    @nbcluster.remote
    def shard(k):
        from nbcluster.util.tqdm import tqdm
        for _ in tqdm(range(10), desc=f"shard {k}"):
            time.sleep(0.03)
        return k

    nbcluster.get(counting.remote())
    print("BARS", nbcluster.get([shard.remote(k) for k in range(2)]), flush=True)
    nbcluster.shutdown()
"""


def test_carriage_return_redraws_reach_a_script_in_place():
    # Bytes, not text: text mode would turn each "\\r" into a newline.
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(REDRAWS)], capture_output=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr.decode()
    err, stdout = proc.stderr.decode(), proc.stdout.decode()
    redraws = re.findall(r"\(counting pid=\d+\) step +(\d+)/30 *\r", err)
    # At most ~10 a second over ~1.5 s, the latest state each time; then the final line.
    assert 3 <= len(redraws) <= 20, err
    assert [int(n) for n in redraws] == sorted(int(n) for n in redraws)
    assert re.search(r"\(counting pid=\d+\) step 30/30 *\n", err), err
    assert "\rstep" not in err  # the history of a redrawn line is not forwarded
    assert re.search(r"\(counting pid=\d+\) after the bar\n", stdout)
    # util.tqdm: each bar's final state on a line of its own, the open ones merged on one line.
    for k in (0, 1):
        assert re.search(rf"\(shard pid=\d+\) shard {k}: 100%\|#+\| 10/10 .*\n", err), err
    assert "BARS [0, 1]" in stdout


def test_visible_text_of_a_redrawn_line():
    assert visible("plain") == "plain"
    assert visible("\r 10%\r 20%") == " 20%"
    assert visible("50%\r") == "50%"  # a trailing return leaves the line shown
    assert visible("a\rb\r\r") == "b"
    assert visible(_compact("\r1\r2\r3")) == "3"
    assert visible(_compact("\r1\r2\r") + "4") == "4"
    assert len(_compact("\r" + "\rx" * 1000)) < 10  # a long-redrawn line stays small
