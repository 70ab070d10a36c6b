"""Task output: print and logging reach the driver, prefixed with the function name
and pid, before the task's result; and stay in the session's log files."""

from __future__ import annotations

import re

from ..conftest import run_python

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
