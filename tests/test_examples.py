"""The examples a newcomer runs first work, and leave nothing behind."""

from __future__ import annotations

import subprocess
import sys

from .conftest import ROOT


def test_quickstart():
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "quickstart.py")],
        capture_output=True, text=True, timeout=120, cwd=str(ROOT),
    )
    assert proc.returncode == 0, proc.stderr
    assert "sum of squares: 285" in proc.stdout
    assert "sum of stored list: 499500" in proc.stdout
    assert "(slow_sum pid=" in proc.stdout
