"""runtime_env ``pip``/``uv``: packages installed into a virtualenv built once per node,
keyed by the spec, reused by every worker with the same spec, a bad package raised as
RuntimeEnvSetupError with the installer's message while other work goes on, the cache
in the session directory (removed on stop). No internet: the packages are wheels built
here, installed with ``--no-index --find-links``.

Run twice: with uv on the node's PATH (``pip`` installs with uv) and without it
(``python -m pip``; ``uv`` is then a setup error)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

import nbcluster
from nbcluster.exceptions import RuntimeEnvSetupError
from nbcluster.runtime.runtime_env import RuntimeEnv
from nbcluster.runtime.runtime_env.venvs import BUILD_LOG

from ..conftest import FAST_CONFIG, wait_for

#: First-use and cached-use task latencies, printed at the end (``pytest -s``) for the docs.
TIMES: dict[str, float] = {}


def build_wheel(root: Path, name: str, version: str) -> Path:
    """A wheel of a one-module package ``name`` (``VALUE = "<name> <version>"``) in ``root/wheels``."""
    project = root / f"{name}-{version}"
    (project / name).mkdir(parents=True)
    (project / name / "__init__.py").write_text(f"VALUE = {name + ' ' + version!r}\n")
    (project / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n'
        f'[project]\nname = "{name}"\nversion = "{version}"\n')
    wheels = root / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--no-index", "-w", str(wheels), str(project)], check=True, capture_output=True, timeout=120)
    return wheels


def spec(wheels: Path, *packages: str, key: str = "pip") -> dict:
    options = "pip_install_options" if key == "pip" else "uv_pip_install_options"
    return {key: {"packages": list(packages), options: ["--no-index", "--find-links", str(wheels)]}}


@pytest.fixture(scope="module")
def wheels(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("wheels")
    build_wheel(root, "nbc_pkg_a", "1.0")
    return build_wheel(root, "nbc_pkg_b", "2.0")


def _path_without_uv() -> str:
    return os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep)
                           if p and not os.path.exists(os.path.join(p, "uv")))


@pytest.fixture(scope="module", params=["uv", "pip"])
def cluster(request, wheels):
    """A cluster whose nodes have uv on PATH, or not (then pip installs)."""
    if request.param == "uv":
        assert shutil.which("uv"), "uv must be installed for these tests (pip install uv)"
    saved = os.environ["PATH"]
    if request.param == "pip":
        os.environ["PATH"] = _path_without_uv()
    try:
        nbcluster.init(num_cpus=2, _system_config=FAST_CONFIG)
        yield request.param
    finally:
        nbcluster.shutdown()
        os.environ["PATH"] = saved


def _import(module: str, hold: float) -> tuple:
    import importlib

    time.sleep(hold)
    mod = importlib.import_module(module)
    return getattr(mod, "VALUE", None), mod.__file__, os.getpid()


@nbcluster.remote
def imported(module: str) -> tuple:
    return _import(module, 0.0)


@nbcluster.remote
def imported_slowly(module: str) -> tuple:
    return _import(module, 0.5)


def _builds(module_file: str) -> list[str]:
    cache = Path(module_file).parents[5]  # <cache>/<hash>/lib/pythonX.Y/site-packages/<pkg>/__init__.py
    return (cache / BUILD_LOG).read_text().splitlines()


def _timed(ref_of) -> tuple:
    start = time.perf_counter()
    value = nbcluster.get(ref_of(), timeout=120)
    return value, time.perf_counter() - start


def test_first_use_builds_once_and_every_worker_reuses_it(cluster, wheels):
    env = spec(wheels, "nbc_pkg_a")
    (value, file, pid1), first = _timed(lambda: imported.options(runtime_env=env).remote("nbc_pkg_a"))
    value2, file2, pid2 = nbcluster.get(imported.options(runtime_env=env).remote("nbc_pkg_a"), timeout=60)
    assert value == value2 == "nbc_pkg_a 1.0" and file == file2
    # Two workers ask for a new environment at once: one builds it, the other waits for it.
    pinned = spec(wheels, "nbc_pkg_a==1.0")
    together = nbcluster.get([imported_slowly.options(runtime_env=pinned).remote("nbc_pkg_a") for _ in range(2)])
    pids = {r[2] for r in together}
    assert len(pids) == 2 and len({r[1] for r in together}) == 1
    assert len([line for line in _builds(file) if line.endswith(": nbc_pkg_a==1.0")]) == 1
    (_, _, _), warm = _timed(lambda: imported.options(runtime_env=env).remote("nbc_pkg_a"))

    # A fresh worker (an actor's) with the same spec reuses the environment: no build.
    @nbcluster.remote
    class Reader:
        def read(self):
            import nbc_pkg_a

            return nbc_pkg_a.VALUE, os.getpid()

    start = time.perf_counter()
    reader = Reader.options(runtime_env=env).remote()
    actor_value, actor_pid = nbcluster.get(reader.read.remote(), timeout=60)
    fresh = time.perf_counter() - start
    assert actor_value == "nbc_pkg_a 1.0" and actor_pid not in pids | {pid1, pid2}
    builds = [line for line in _builds(file) if line.endswith(": nbc_pkg_a")]
    assert len(builds) == 1, builds
    assert ("via uv" if cluster == "uv" else "via pip") in builds[0]
    # The job's plain tasks do not see the package.
    with pytest.raises(ModuleNotFoundError):
        nbcluster.get(imported.remote("nbc_pkg_a"), timeout=60)
    nbcluster.kill(reader)
    TIMES.update({f"{cluster}: first use (build)": first, f"{cluster}: cached, warm worker": warm,
                  f"{cluster}: cached, new worker (actor)": fresh})


def test_two_specs_two_environments(cluster, wheels):
    a_value, a_file, _ = nbcluster.get(imported.options(runtime_env=spec(wheels, "nbc_pkg_a")).remote("nbc_pkg_a"))
    both = spec(wheels, "nbc_pkg_a", "nbc_pkg_b")
    b_value, b_file, _ = nbcluster.get(imported.options(runtime_env=both).remote("nbc_pkg_b"), timeout=60)
    assert (a_value, b_value) == ("nbc_pkg_a 1.0", "nbc_pkg_b 2.0")
    assert Path(a_file).parents[4] != Path(b_file).parents[4]
    assert RuntimeEnv.parse(spec(wheels, "nbc_pkg_a")).hash != RuntimeEnv.parse(both).hash


def test_a_bad_package_raises_the_installers_message_and_other_work_goes_on(cluster, wheels):
    bad = imported.options(runtime_env=spec(wheels, "nbc_no_such_pkg"), max_retries=0).remote("x")
    plain = [imported.remote("os") for _ in range(4)]
    with pytest.raises(RuntimeEnvSetupError) as info:
        nbcluster.get(bad, timeout=120)
    message = str(info.value)
    assert "nbc_no_such_pkg" in message or "nbc-no-such-pkg" in message
    assert ("not found in the provided package locations" in message if cluster == "uv"
            else "No matching distribution found for nbc_no_such_pkg" in message), message
    assert len(nbcluster.get(plain, timeout=60)) == 4
    assert nbcluster.get(imported.options(runtime_env=spec(wheels, "nbc_pkg_b")).remote("nbc_pkg_b"))[0] == "nbc_pkg_b 2.0"


def test_uv_asked_for(cluster, wheels):
    ref = imported.options(runtime_env=spec(wheels, "nbc_pkg_b", key="uv"), max_retries=0).remote("nbc_pkg_b")
    if cluster == "uv":
        value, file, _ = nbcluster.get(ref, timeout=60)
        assert value == "nbc_pkg_b 2.0" and any(line.startswith(Path(file).parents[4].name + " uv via uv")
                                                for line in _builds(file))
    else:
        with pytest.raises(RuntimeEnvSetupError, match=r"needs uv on the node's PATH.*pip install uv.*'pip'"):
            nbcluster.get(ref, timeout=60)


def test_stop_removes_the_environments(cluster, wheels):
    _, file, _ = nbcluster.get(imported.options(runtime_env=spec(wheels, "nbc_pkg_a")).remote("nbc_pkg_a"))
    cache = Path(file).parents[5]
    assert cache.is_dir()
    nbcluster.shutdown()
    wait_for(lambda: not cache.exists(), timeout=15, message="the session's virtualenvs removed")
    for name, seconds in TIMES.items():
        print(f"runtime_env pip latency {name}: {seconds:.2f}s")
