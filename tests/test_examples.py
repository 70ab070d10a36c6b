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


def test_ray_port_placement_group_gang():
    """Written against Ray's API: only its import line is nbcluster's."""
    proc = _ray_port("placement_group_gang.py")
    assert "placement group ready: CREATED" in proc.stdout
    assert "step 2: sum 10, every worker now holds 2.5" in proc.stdout
    assert "helpers: [0, 1, 4, 9, 16, 25, 36, 49] all in the group: True" in proc.stdout
    assert "removed; CPUs free again: 5.0" in proc.stdout


def _ray_port(name: str) -> subprocess.CompletedProcess:
    """Run a program written against Ray's API whose only nbcluster line is its import."""
    source = (ROOT / "examples" / "ray_port" / name).read_text()
    assert "import nbcluster as ray" in source and source.count("nbcluster") == 1
    return run_example(f"ray_port/{name}")


def test_ray_port_parameter_server():
    out = _ray_port("parameter_server.py").stdout
    assert "synchronous: loss 50.5 -> below 0.01: True" in out
    assert "asynchronous: 60 updates, loss below 0.01: True" in out
    assert "weights: [1, 2, 3, 4, 5]" in out
    assert "pool: 2 ordered, 3 unordered, has_next: False" in out


def test_ray_port_streaming_pipeline():
    out = _ray_port("streaming_pipeline.py").stdout
    assert "transformed: [0, 2000, 4000, 6000, 8000, 10000]" in out
    assert "items taken after ray.wait: 3" in out
    assert "running totals: [0, 2000, 6000, 12000, 20000, 30000]" in out
    assert "items before the error: [0, 1] then: True" in out
