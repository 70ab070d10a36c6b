"""Layers point one way: the runtime never imports Jupyter packages."""

from __future__ import annotations

from .conftest import run_python


def test_runtime_imports_and_runs_with_jupyter_packages_blocked():
    proc = run_python(
        """
        import sys
        for name in ("IPython", "ipykernel", "ipywidgets", "jupyter_server", "traitlets", "tornado"):
            sys.modules[name] = None  # any import of these now fails
        import nbcluster
        nbcluster.init(num_cpus=1)

        @nbcluster.remote
        def f():
            return "ok"

        print("RESULT", nbcluster.get(f.remote()))
        nbcluster.shutdown()
        """
    )
    assert "RESULT ok" in proc.stdout


def test_cli_version():
    import subprocess

    from nbcluster import __version__

    out = subprocess.run(["nbcluster", "--version"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == f"nbcluster {__version__}"
