"""The package's shape, read from its source: the import graph, sizes, docstrings.

Used by ``tests/test_architecture.py`` and, to print the figures, as a script::

    python -m tests.architecture

Every ``import`` counts, also one inside a function (a lazy import hides a cycle, it
does not remove it); imports under ``if TYPE_CHECKING:`` do not (they never run).
Importing ``a.b.c`` also runs the ``__init__`` of ``a`` and ``a.b``; those implicit edges
are left out, as import linters do, so a package may re-export its modules.
"""

from __future__ import annotations

import ast
import dataclasses
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "nbcluster"

#: Integrations: they may use the runtime only through its public interface.
INTEGRATIONS = ("nbcluster.kernel_ext", "nbcluster.server_ext", "nbcluster.widgets")
#: The runtime's public interface for integrations: these modules, names in their ``__all__``.
PUBLIC_RUNTIME = ("nbcluster.runtime",)
#: Heavy dependencies: the Jupyter stack (optional: ``import nbcluster`` stays Jupyter-free),
#: and grpc, yaml, asyncssh and kubernetes, which a worker or a local driver never needs (tens of ms at every
#: process start). A function-level import may defer a module that needs one of them.
HEAVY = ("IPython", "ipykernel", "ipywidgets", "jupyter_client", "jupyter_core", "jupyter_server", "nbclient",
         "nbformat", "tornado", "traitlets", "grpc", "yaml", "asyncssh", "kubernetes")
#: Hooks Jupyter looks up on the package root by name (``%load_ext nbcluster``, the
#: server extension's entry points): they load an integration on demand.
ENTRY_POINTS = ("nbcluster",)
#: Limits for hand-written modules.
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 80


@dataclasses.dataclass(frozen=True)
class Import:
    """``importer`` imports ``names`` from ``module`` (``names`` empty for ``import module``)."""

    importer: str
    module: str
    names: tuple[str, ...]
    line: int
    lazy: bool  # inside a function


def _rel(path: Path) -> str:
    """``path`` relative to the repository (as it is when outside it)."""
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def generated(path: Path) -> bool:
    return path.name.endswith(("_pb2.py", "_pb2_grpc.py", "_pb2.pyi"))


def modules(root: Path = PACKAGE) -> dict[str, Path]:
    """Module name → file, for every hand-written module under ``root``."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        if generated(path):
            continue
        rel = path.relative_to(root.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _walk_imports(tree: ast.AST) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    def visit(node: ast.AST, lazy: bool) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for sub in child.orelse:
                    yield from visit(sub, lazy)
                continue
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                yield child, lazy
            yield from visit(child, lazy or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)))

    yield from visit(tree, False)


def imports(name: str, path: Path) -> list[Import]:
    """The imports of one module, relative ones resolved."""
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = []
    for node, lazy in _walk_imports(tree):
        if isinstance(node, ast.Import):
            out.extend(Import(name, alias.name, (), node.lineno, lazy) for alias in node.names)
            continue
        base = node.module or ""
        if node.level:
            anchor = package.split(".")
            anchor = anchor[: len(anchor) - (node.level - 1)]
            base = ".".join([*anchor, base] if base else anchor)
        out.append(Import(name, base, tuple(a.name for a in node.names), node.lineno, lazy))
    return out


def targets(imp: Import, mods: dict[str, Path]) -> set[str]:
    """The package modules one import runs (``from pkg import mod`` counts as ``pkg.mod``)."""
    if imp.module not in mods:
        return set()
    found = {f"{imp.module}.{n}" for n in imp.names if f"{imp.module}.{n}" in mods}
    if not imp.names or any(f"{imp.module}.{n}" not in mods for n in imp.names):
        found.add(imp.module)
    return found - {imp.importer}


def edges(mods: dict[str, Path] | None = None) -> dict[str, set[str]]:
    """Module → the package modules it imports. A Jupyter entry point's deferred import
    of an integration is left out (see :data:`ENTRY_POINTS`)."""
    mods = mods or modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for name, path in mods.items():
        for imp in imports(name, path):
            found = targets(imp, mods)
            if imp.lazy and name in ENTRY_POINTS:
                found = {t for t in found if not t.startswith(INTEGRATIONS)}
            graph[name] |= found
    return graph


#: The runtime's layers, lowest first: a module may import its own layer and those below.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("nbcluster.runtime.protocol",),
    ("nbcluster.runtime.transport",),
    ("nbcluster.runtime.objects", "nbcluster.runtime.core"),
    ("nbcluster.runtime.node", "nbcluster.runtime.gcs"),
    ("nbcluster.runtime.driver_init", "nbcluster.runtime.submission", "nbcluster.runtime.api"),
)


def layer(module: str) -> int | None:
    """The index in :data:`LAYERS` of ``module``'s layer (None: not in one)."""
    for i, prefixes in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return i
    return None


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """Imports from a layer of :data:`LAYERS` into a higher one."""
    found = []
    for importer, deps in sorted(graph.items()):
        low = layer(importer)
        found.extend(f"{importer} imports {dep}" for dep in sorted(deps)
                     if low is not None and (layer(dep) or -1) > low)
    return found


def heavy_modules(mods: dict[str, Path] | None = None) -> set[str]:
    """Package modules that import (at module level, directly or through another package
    module) one of :data:`HEAVY`."""
    mods = mods or modules()
    direct: dict[str, set[str]] = {}
    heavy = set()
    for name, path in mods.items():
        eager = [i for i in imports(name, path) if not i.lazy]
        if any(i.module.split(".")[0] in HEAVY for i in eager):
            heavy.add(name)
        direct[name] = set().union(*(targets(i, mods) for i in eager)) if eager else set()
    changed = True
    while changed:
        changed = False
        for name, deps in direct.items():
            if name not in heavy and deps & heavy:
                heavy.add(name)
                changed = True
    return heavy


def needless_lazy_imports(mods: dict[str, Path] | None = None) -> list[str]:
    """Function-level imports of package modules that load nothing heavy."""
    mods = mods or modules()
    heavy = heavy_modules(mods)
    found = []
    for name, path in mods.items():
        for imp in imports(name, path):
            light = targets(imp, mods) - heavy
            if name in ENTRY_POINTS:
                light = {t for t in light if not t.startswith(INTEGRATIONS)}
            if imp.lazy and light:
                found.append(f"{name}:{imp.line} imports {', '.join(sorted(light))}")
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))

    def strong(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return sorted(found)


def lazy_imports(mods: dict[str, Path] | None = None) -> list[Import]:
    """Function-level imports of the package's own modules."""
    mods = mods or modules()
    return [i for name, path in mods.items() for i in imports(name, path) if i.lazy and i.module.startswith("nbcluster")]


def private_uses(mods: dict[str, Path] | None = None) -> list[str]:
    """Where an integration uses the runtime other than through its public interface:
    a module of ``nbcluster.runtime`` other than the package itself, a name outside its
    ``__all__``, or any ``_private`` name of an ``nbcluster`` module outside the integrations;
    and where a facade (a top-level ``nbcluster`` module) uses a ``_private`` name of the
    runtime."""
    mods = mods or modules()
    public = _public_names()
    own = _own_private_names([p for n, p in mods.items() if n.startswith(INTEGRATIONS)])
    found = []
    for name, path in mods.items():
        if name.startswith(INTEGRATIONS):
            found.extend(_integration_uses(name, path, public, own))
        elif name.count(".") == 1 and name.startswith("nbcluster.") and not name.startswith("nbcluster.runtime"):
            found.extend(_facade_uses(name, path))
    return found


def _integration_uses(name: str, path: Path, public: dict[str, set[str]], own: set[str]) -> list[str]:
    found = []
    tree = ast.parse(path.read_text(), str(path))
    for imp in imports(name, path):
        where = f"{_rel(path)}:{imp.line}"
        if imp.module.startswith(INTEGRATIONS) or not imp.module.startswith("nbcluster"):
            continue
        if imp.module.startswith("nbcluster.runtime") and imp.module not in PUBLIC_RUNTIME:
            found.append(f"{where} imports {imp.module}")
            continue
        for n in imp.names:
            if _private(n) or (imp.module in PUBLIC_RUNTIME and n not in public[imp.module]):
                found.append(f"{where} imports {imp.module}.{n}")
    found.extend(
        f"{_rel(path)}:{node.lineno} uses .{node.attr}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and _private(node.attr) and node.attr not in own
    )
    return found


def _facade_uses(name: str, path: Path) -> list[str]:
    """A facade's imports of ``_private`` runtime names, and its uses of ``._private``
    attributes it does not define itself."""
    found = []
    tree = ast.parse(path.read_text(), str(path))
    own = _own_private_names([path])
    for imp in imports(name, path):
        if imp.module.startswith("nbcluster.runtime"):
            found.extend(f"{_rel(path)}:{imp.line} imports {imp.module}.{n}"
                         for n in imp.names if _private(n))
    found.extend(
        f"{_rel(path)}:{node.lineno} uses .{node.attr}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and _private(node.attr) and node.attr not in own
    )
    return found


def _private(name: str) -> bool:
    """``_name``, but not a ``__dunder__`` or an IPython-style ``_repr_x_`` hook."""
    return name.startswith("_") and not name.endswith("_")


def _own_private_names(paths: Iterable[Path]) -> set[str]:
    """Private names the integrations define themselves (functions, methods, attributes
    they assign): using those is their own business."""
    own = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                own.add(node.name)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                own.add(node.attr)
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                own.add(node.target.id)  # a dataclass's field
    return {n for n in own if _private(n)}


def _public_names() -> dict[str, set[str]]:
    out = {}
    for module in PUBLIC_RUNTIME:
        path = modules()[module]
        out[module] = set(_dunder_all(ast.parse(path.read_text())))
    return out


def _dunder_all(tree: ast.Module) -> list[str]:
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            return [ast.literal_eval(e) for e in node.value.elts]  # type: ignore[attr-defined]
    return []


@dataclasses.dataclass(frozen=True)
class Size:
    where: str
    lines: int


def module_sizes(mods: dict[str, Path] | None = None) -> list[Size]:
    mods = mods or modules()
    return sorted((Size(str(_rel(p)), len(p.read_text().splitlines())) for p in mods.values()),
                  key=lambda s: -s.lines)


def function_sizes(mods: dict[str, Path] | None = None) -> list[Size]:
    mods = mods or modules()
    out = []
    for path in mods.values():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                out.append(Size(f"{_rel(path)}:{node.lineno} {node.name}",
                                node.end_lineno - node.lineno + 1))  # type: ignore[operator]
    return sorted(out, key=lambda s: -s.lines)


def public_definitions(mods: dict[str, Path] | None = None) -> Iterator[tuple[str, bool]]:
    """(where, has a docstring) for each public module, top-level function or class and
    public method of a public class, in public modules (no ``_`` in the dotted name)."""
    mods = mods or modules()
    for name, path in mods.items():
        if any(part.startswith("_") for part in name.split(".")):
            continue
        tree = ast.parse(path.read_text())
        rel = _rel(path)
        yield f"{rel} (module)", ast.get_docstring(tree) is not None
        for node in tree.body:
            yield from _documented(node, f"{rel}:")


def _documented(node: ast.AST, prefix: str) -> Iterable[tuple[str, bool]]:
    if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) or node.name.startswith("_"):
        return
    yield f"{prefix}{node.lineno} {node.name}", ast.get_docstring(node) is not None
    if isinstance(node, ast.ClassDef):
        for child in node.body:
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) and _is_override(child):
                continue
            yield from _documented(child, f"{prefix}{node.name}.")


def _is_override(node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """Methods whose meaning a base class or protocol documents (``get``/``post`` of a
    handler, ``connection_made``, ``emit``...): decorated ``@override`` or named as a
    well-known hook."""
    return any(isinstance(d, ast.Name) and d.id == "override" for d in node.decorator_list)


def report() -> str:
    mods = modules()
    graph = edges(mods)
    lines = [f"modules: {len(mods)}"]
    found = cycles(graph)
    lines.append(f"import cycles: {len(found)}")
    lines.extend(f"  {' <-> '.join(c)}" for c in found)
    lazy = lazy_imports(mods)
    lines.append(f"function-level imports of nbcluster modules: {len(lazy)}")
    needless = needless_lazy_imports(mods)
    lines.append(f"  of which load nothing heavy: {len(needless)}")
    big = [s for s in module_sizes(mods) if s.lines > MAX_MODULE_LINES]
    lines.append(f"modules over {MAX_MODULE_LINES} lines: {len(big)}")
    lines.extend(f"  {s.lines:5d} {s.where}" for s in big)
    long = [s for s in function_sizes(mods) if s.lines > MAX_FUNCTION_LINES]
    lines.append(f"functions over {MAX_FUNCTION_LINES} lines: {len(long)}")
    lines.extend(f"  {s.lines:5d} {s.where}" for s in long)
    defs = list(public_definitions(mods))
    lines.append(f"public definitions with a docstring: {sum(d for _, d in defs)} of {len(defs)}")
    private = private_uses(mods)
    lines.append(f"integrations' uses of runtime internals: {len(private)}")
    lines.extend(f"  {p}" for p in private)
    return "\n".join(lines)


if __name__ == "__main__":
    print(report())
