"""The examples a newcomer runs first work, and leave nothing behind."""

from __future__ import annotations

import subprocess
import sys

from .conftest import ROOT


def run_example(name: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / name)],
        capture_output=True, text=True, timeout=120, cwd=str(ROOT),
    )
    assert proc.returncode == 0, proc.stderr
    return proc


def test_quickstart():
    proc = run_example("quickstart.py")
    assert "sum of squares: 285" in proc.stdout
    assert "sum of stored list: 499500" in proc.stdout
    assert "(slow_sum pid=" in proc.stdout


def test_autoscaling_example():
    proc = run_example("autoscaling.py")
    assert "4 tasks ran on 2 added nodes" in proc.stdout
    assert "worker nodes left after the idle timeout: 0" in proc.stdout
    assert "decision: Removing node" in proc.stdout
    assert "(autoscaler +" in proc.stderr
    assert "no node in the cluster has" not in proc.stderr  # the autoscaler adds one: no warning
