"""The package's shape stays as docs/architecture.md describes it: its modules import
each other in one direction (no cycle, also none hidden by a function-level import;
the runtime's layers only downward),
function-level imports only defer a heavy optional dependency, no hand-written module
or function outgrows what a newcomer can read, and every public name is documented.

Each check is also run on a planted violation, to show it can fail.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

from . import architecture as arch


def test_the_module_graph_has_no_cycle() -> None:
    found = arch.cycles(arch.edges())
    assert found == [], "import cycles (a function-level import counts):\n" + "\n".join(" <-> ".join(c) for c in found)


def _package(tmp_path: Path, files: dict[str, str]) -> dict[str, Path]:
    root = tmp_path / "nbcluster"
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return arch.modules(root)


def test_a_cycle_hidden_in_a_function_is_found(tmp_path: Path) -> None:
    mods = _package(tmp_path, {
        "__init__.py": "",
        "runtime/__init__.py": "",
        "runtime/a.py": "from nbcluster.runtime import b\n",
        "runtime/b.py": "def f():\n    from . import a\n    return a\n",
        "runtime/c.py": "from nbcluster.runtime import a\n",
    })
    assert arch.cycles(arch.edges(mods)) == [["nbcluster.runtime.a", "nbcluster.runtime.b"]]


def test_the_runtimes_layers_point_one_way() -> None:
    found = arch.upward_imports(arch.edges())
    assert found == [], "imports into a higher layer (see LAYERS):\n" + "\n".join(found)


def test_an_upward_import_is_found(tmp_path: Path) -> None:
    mods = _package(tmp_path, {
        "__init__.py": "",
        "runtime/__init__.py": "",
        "runtime/transport/__init__.py": "from nbcluster.runtime.protocol import wire\n",
        "runtime/protocol/__init__.py": "",
        "runtime/protocol/wire.py": "def f():\n    from nbcluster.runtime import transport\n",
    })
    assert arch.upward_imports(arch.edges(mods)) == [
        "nbcluster.runtime.protocol.wire imports nbcluster.runtime.transport"]


def test_an_import_for_type_checking_only_is_no_edge(tmp_path: Path) -> None:
    mods = _package(tmp_path, {
        "__init__.py": "",
        "a.py": "from nbcluster import b\n",
        "b.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from nbcluster import a\n",
    })
    assert arch.cycles(arch.edges(mods)) == []


def test_function_level_imports_only_defer_heavy_dependencies() -> None:
    found = arch.needless_lazy_imports()
    assert found == [], (
        "function-level imports of light nbcluster modules (import them at the top; "
        "a cycle they hid is a design bug):\n" + "\n".join(found)
    )


def test_a_needless_function_level_import_is_found(tmp_path: Path) -> None:
    mods = _package(tmp_path, {
        "__init__.py": "",
        "light.py": "import json\n",
        "heavy.py": "import ipywidgets\n",
        "user.py": "def f():\n    from nbcluster import light\n\ndef g():\n    from nbcluster import heavy\n",
    })
    found = arch.needless_lazy_imports(mods)
    assert len(found) == 1 and "nbcluster.light" in found[0], found


def test_no_module_or_function_is_too_long() -> None:
    big = [s for s in arch.module_sizes() if s.lines > arch.MAX_MODULE_LINES]
    long = [s for s in arch.function_sizes() if s.lines > arch.MAX_FUNCTION_LINES]
    assert big == [] and long == [], (
        f"modules over {arch.MAX_MODULE_LINES} lines: {big}\nfunctions over {arch.MAX_FUNCTION_LINES} lines: {long}"
    )


def test_a_long_function_is_measured(tmp_path: Path) -> None:
    body = "".join(f"    x{i} = {i}\n" for i in range(arch.MAX_FUNCTION_LINES))
    mods = _package(tmp_path, {"__init__.py": "", "big.py": "def f():\n" + body})
    (size,) = arch.function_sizes(mods)
    assert size.lines == arch.MAX_FUNCTION_LINES + 1 and size.where.endswith(" f")


def test_every_public_name_has_a_docstring() -> None:
    missing = [where for where, documented in arch.public_definitions() if not documented]
    assert missing == [], f"{len(missing)} public names without a docstring:\n" + "\n".join(missing)


def test_an_undocumented_public_name_is_found(tmp_path: Path) -> None:
    mods = _package(tmp_path, {
        "__init__.py": '"""The package."""\n',
        "m.py": '"""A module."""\n\ndef documented():\n    """Yes."""\n\ndef bare():\n    pass\n\n'
                'def _private():\n    pass\n',
    })
    missing = [w for w, d in arch.public_definitions(mods) if not d]
    assert len(missing) == 1 and missing[0].endswith(" bare"), missing
