"""The integrations (kernel_ext, server_ext, widgets) use the runtime only through its
public interface (``nbcluster.runtime``'s ``__all__`` and the top-level facades), and
the facades use no ``_private`` name of the runtime: see docs/architecture.md."""

from __future__ import annotations

import textwrap
from pathlib import Path

from tests import architecture

PLANTED = """
    from nbcluster.runtime.api import _core
    from nbcluster.runtime.cli import start_head
    from nbcluster.runtime import start_head as fine, not_exported
    from nbcluster import __version__
    import nbcluster.driver

    def hook():
        return nbcluster.driver._private_thing, _core().task_context
"""


def test_no_integration_or_facade_uses_runtime_internals():
    assert architecture.private_uses() == []


def test_runtime_interface_names_exist_and_are_documented():
    import nbcluster.runtime as runtime

    for name in runtime.__all__:
        value = getattr(runtime, name)
        assert (getattr(value, "__doc__", None) or "").strip() or isinstance(value, str), name


def _with(tmp_path: Path, name: str, text: str) -> dict[str, Path]:
    path = tmp_path / (name.rpartition(".")[2] + ".py")
    path.write_text(textwrap.dedent(text))
    return {**architecture.modules(), name: path}


def test_a_planted_integration_violation_is_reported(tmp_path: Path):
    found = architecture.private_uses(_with(tmp_path, "nbcluster.widgets.planted", PLANTED))
    planted = [f.split(" ", 1)[1] for f in found if "planted.py" in f]
    assert sorted(planted) == sorted([
        "imports nbcluster.runtime.api",
        "imports nbcluster.runtime.cli",
        "imports nbcluster.runtime.not_exported",
        "uses ._private_thing",
    ])
    assert all(f.startswith(str(tmp_path)) for f in found)


def test_a_planted_facade_violation_is_reported(tmp_path: Path):
    found = architecture.private_uses(_with(tmp_path, "nbcluster.planted", PLANTED))
    assert sorted(f.split(" ", 1)[1] for f in found) == sorted([
        "imports nbcluster.runtime.api._core",
        "uses ._private_thing",
    ])
