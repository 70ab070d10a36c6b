"""Every install enables both extensions: ``pip install -e .``, ``pip install .`` and the
wheel each place ``etc/jupyter/jupyter_server_config.d/nbcluster.json`` (the server
extension) and ``share/jupyter/labextensions/nbcluster/`` (the prebuilt lab extension),
and ``jupyter server extension list`` / ``jupyter labextension list`` — pointed at that
install alone, its package imported from it — show them enabled and OK.

Each install goes to a prefix of its own under the test's temp dir (``--prefix``,
``--no-deps``: the project itself, not its dependencies), never into this Python — and
with ``--ignore-installed``: without it pip first *uninstalls* the nbcluster this Python
runs (a ``--prefix`` install does), which took it from under the rest of a CI run.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..conftest import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

PIP = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
SITE = f"lib/python{sys.version_info.major}.{sys.version_info.minor}/site-packages"


def _pip(*args: str) -> None:
    _wait_pip(_start_pip(*args))


def _start_pip(*args: str) -> subprocess.Popen:
    if args[0] == "install":
        args = ("install", "--ignore-installed", *args[1:])
    return subprocess.Popen([*PIP, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT)


@pytest.fixture(autouse=True)
def this_install_kept() -> Iterator[None]:
    """The nbcluster this Python runs (and its command) is still there after the test."""
    script = Path(sys.executable).parent / "nbcluster"
    before = _installed(), script.exists()
    yield
    assert (_installed(), script.exists()) == before, "a test install removed this Python's nbcluster"


def _installed() -> str:
    proc = subprocess.run([sys.executable, "-c", "import nbcluster; print(nbcluster.__file__)"], capture_output=True,
                          text=True, cwd="/", env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    return proc.stdout.strip() or proc.stderr.strip().splitlines()[-1]


def _wait_pip(proc: subprocess.Popen) -> None:
    try:
        out, _ = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, f"{' '.join(proc.args)}:\n{out}"


def _import_path(prefix: Path) -> list[str]:
    """Where Python finds nbcluster in ``prefix``: its site-packages, and what its .pth
    files add (an editable install's source tree)."""
    site = prefix / SITE
    paths = [str(site)]
    for pth in site.glob("*.pth"):
        paths += [line.strip() for line in pth.read_text().splitlines() if line.strip() and not line.startswith("import")]
    return paths


def _jupyter(prefix: Path, tmp: Path, *args: str) -> str:
    """``jupyter ARGS`` (colours stripped) with ``prefix``'s Jupyter config dir as the
    user's (``jupyter server extension list`` lists the user's, this Python's and the
    system's), its data dir first on the data path, and nbcluster imported from it."""
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(prefix / "etc" / "jupyter"),
               JUPYTER_PATH=str(prefix / "share" / "jupyter"), JUPYTER_DATA_DIR=str(tmp / "user-data"),
               PYTHONPATH=os.pathsep.join(_import_path(prefix)))
    env.pop("JUPYTER_PLATFORM_DIRS", None)
    proc = subprocess.run([sys.executable, "-m", "jupyter", *args], capture_output=True, text=True, timeout=120,
                          env=env, cwd=tmp)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return re.sub(r"\x1b\[[0-9;]*m", "", proc.stdout + proc.stderr)


def _section(listing: str, heading: str) -> str:
    """The lines of ``listing`` under ``heading`` (up to the next unindented line)."""
    lines = listing.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == heading)
    out = []
    for line in lines[start + 1:]:
        if line.startswith("Extension package "):  # "... took 0.4s to import", between the lines
            continue
        if line.strip() and not line[0].isspace():
            break
        out.append(line.strip())
    return "\n".join(out)


def _check_enabled(prefix: Path, tmp: Path, source: Path) -> None:
    from nbcluster import __version__

    config = prefix / "etc" / "jupyter" / "jupyter_server_config.d" / "nbcluster.json"
    assert config.read_text() == (ROOT / "jupyter-config" / "jupyter_server_config.d" / "nbcluster.json").read_text()
    labext = prefix / "share" / "jupyter" / "labextensions" / "nbcluster"
    assert (labext / "package.json").read_bytes() == (ROOT / "nbcluster" / "labextension" / "package.json").read_bytes()
    assert (labext / "install.json").is_file()
    where = subprocess.run([sys.executable, "-c", "import nbcluster; print(nbcluster.__file__)"], capture_output=True,
                           text=True, env=dict(os.environ, PYTHONPATH=os.pathsep.join(_import_path(prefix))),
                           cwd=tmp, timeout=60)
    assert Path(where.stdout.strip()).parent.parent == source, where.stdout + where.stderr

    server = _jupyter(prefix, tmp, "server", "extension", "list")
    section = _section(server, f"Config dir: {prefix / 'etc' / 'jupyter'}")
    assert "nbcluster enabled" in section and f"nbcluster {__version__} OK" in section, server
    lab = _jupyter(prefix, tmp, "labextension", "list")
    section = _section(lab, str(prefix / "share" / "jupyter" / "labextensions"))
    assert f"nbcluster v{__version__} enabled OK (python, nbcluster)" in section, lab


def test_editable_install_enables_both_extensions(tmp_path: Path) -> None:
    prefix = tmp_path / "editable"
    _pip("install", "--no-deps", "--prefix", str(prefix), "-e", str(ROOT))
    _check_enabled(prefix, tmp_path, ROOT)


def test_wheel_and_plain_install_enable_both_extensions(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    installing = _start_pip("install", "--no-deps", "--prefix", str(plain), str(ROOT))  # meanwhile: the wheel
    try:
        _pip("wheel", "--no-deps", "-w", str(tmp_path / "dist"), str(ROOT))
        (wheel,) = (tmp_path / "dist").glob("nbcluster-*.whl")
        prefix = tmp_path / "wheel"
        _pip("install", "--no-deps", "--prefix", str(prefix), str(wheel))
        _check_enabled(prefix, tmp_path, prefix / SITE)
    finally:
        _wait_pip(installing)
    _check_enabled(plain, tmp_path, plain / SITE)
