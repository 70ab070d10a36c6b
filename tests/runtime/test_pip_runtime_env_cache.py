"""A node's cache of runtime_env virtualenvs (``runtime_env/venvs.py``), with real
installers and processes but no cluster: one build for concurrent callers, unused
environments removed past the cache size or idle timeout, ones in use never."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from nbcluster.exceptions import RuntimeEnvSetupError
from nbcluster.runtime.runtime_env import venvs
from nbcluster.runtime.runtime_env.pip_spec import PipSpec, parse_pip

from ..conftest import ROOT
from .test_pip_runtime_env import build_wheel


@pytest.fixture(scope="module")
def wheels(tmp_path_factory) -> Path:
    return build_wheel(tmp_path_factory.mktemp("wheels"), "nbc_cache_pkg", "1.0")


def _spec(wheels: Path, requirement: str) -> PipSpec:
    return parse_pip("pip", {"packages": [requirement], "pip_install_options": ["--no-index", "--find-links",
                                                                                  str(wheels)]}, local_paths=False)


def _ensure_in_subprocesses(session: Path, spec: PipSpec, count: int) -> list[subprocess.Popen]:
    """``count`` processes that each ensure ``spec``'s environment and exit (releasing it)."""
    code = textwrap.dedent(f"""
        from pathlib import Path
        from nbcluster.runtime.runtime_env import venvs
        from nbcluster.runtime.runtime_env.pip_spec import PipSpec
        spec = PipSpec("pip", {spec.packages!r}, False, {spec.install_options!r})
        print(venvs.ensure_venv(Path({str(session)!r}), spec, timeout=120).built)
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return [subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True)
            for _ in range(count)]


def _built_lines(session: Path) -> list[str]:
    return (session / venvs.CACHE_DIR / venvs.BUILD_LOG).read_text().splitlines()


def test_concurrent_processes_build_an_environment_once(tmp_path, wheels):
    procs = _ensure_in_subprocesses(tmp_path, _spec(wheels, "nbc_cache_pkg"), 3)
    outputs = sorted(p.communicate(timeout=120)[0].strip() for p in procs)
    assert outputs == ["False", "False", "True"]
    assert len(_built_lines(tmp_path)) == 1


def test_unused_environments_go_past_the_cache_size_or_idle_timeout_and_used_ones_stay(tmp_path, wheels):
    root = tmp_path / venvs.CACHE_DIR
    old, idle = _spec(wheels, "nbc_cache_pkg==1.0"), _spec(wheels, "nbc_cache_pkg>=1")
    for spec in (old, idle):  # built by processes that have ended: unused
        for proc in _ensure_in_subprocesses(tmp_path, spec, 1):
            assert proc.communicate(timeout=120)[0].strip() == "True"
    stale = time.time() - 3600
    os.utime(root / idle.hash / ".ready", (stale, stale))
    os.utime(root / old.hash / ".ready", (time.time() - 100, time.time() - 100))
    held = venvs.ensure_venv(tmp_path, _spec(wheels, "nbc_cache_pkg"), timeout=120)  # in use by this process
    assert held.built
    # Building it collected the unused one idle past the timeout; the newest two stay.
    assert not (root / idle.hash).exists() and (root / old.hash).is_dir()
    assert venvs.collect(root, cache_size=1, idle_timeout_s=7200) == [root / old.hash]
    assert venvs.collect(root, cache_size=0, idle_timeout_s=0) == []  # in use: kept
    assert (held.site_packages / "nbc_cache_pkg" / "__init__.py").is_file()
    again = venvs.ensure_venv(tmp_path, _spec(wheels, "nbc_cache_pkg"), timeout=120)
    assert not again.built and again.path == held.path


def test_a_failed_build_leaves_nothing_half_made(tmp_path, wheels):
    spec = _spec(wheels, "nbc_missing_pkg")
    with pytest.raises(RuntimeEnvSetupError, match="nbc_missing_pkg|nbc-missing-pkg"):
        venvs.ensure_venv(tmp_path, spec, timeout=120)
    root = tmp_path / venvs.CACHE_DIR
    assert not (root / spec.hash).exists() and "nbc" in (root / f"{spec.hash}.failed").read_text()
