"""The page's script as files (no server, no browser): index.html loads one ES module,
the modules import each other by plain relative paths (one URL per module, so each runs
once), without cycles, and none of them parses HTML."""

from __future__ import annotations

import re

from nbcluster.server_ext.page import STATIC_DIR

IMPORT_RE = re.compile(r"""^\s*(?:import|export)\b[^;'"]*?\bfrom\s*["']([^"']+)["']|^\s*import\s*["']([^"']+)["']""", re.M)
DYNAMIC_RE = re.compile(r"""\bimport\s*\(""")


def _imports() -> dict[str, list[str]]:
    graph = {}
    for path in sorted(STATIC_DIR.glob("*.js")):
        text = path.read_text(encoding="utf-8")
        assert not DYNAMIC_RE.search(text), f"{path.name}: dynamic import()"
        graph[path.name] = [a or b for a, b in IMPORT_RE.findall(text)]
    return graph


def test_index_loads_the_entry_module_without_a_version() -> None:
    html = (STATIC_DIR / "index.html").read_text(encoding="utf-8")
    scripts = re.findall(r"<script\b[^>]*>", html)
    assert scripts == ['<script type="module" src="static/app.js">'], scripts
    assert "<script>" not in html and "importmap" not in html  # the CSP allows no inline script


def test_modules_import_each_other_by_one_plain_path() -> None:
    graph = _imports()
    assert {"app.js", "lib.js", "view.js"} <= set(graph), graph
    for name, specifiers in graph.items():
        for spec in specifiers:
            # "./x.js", never "./x.js?v=..." nor another directory: one URL per module.
            assert re.fullmatch(r"\./[a-z][a-z0-9_-]*\.js", spec), (name, spec)
            assert (STATIC_DIR / spec[2:]).is_file(), (name, spec)
            assert spec != "./app.js", f"{name} imports the entry module"


def test_modules_have_no_import_cycle() -> None:
    graph = {name: [spec[2:] for spec in specs] for name, specs in _imports().items()}
    done: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, " -> ".join((*path, name))
        if name in done:
            return
        for dep in graph[name]:
            visit(dep, (*path, name))
        done.add(name)

    for name in graph:
        visit(name, ())


def test_modules_never_parse_html() -> None:
    for path in sorted(STATIC_DIR.glob("*.js")):
        text = path.read_text(encoding="utf-8")
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
            assert sink not in text, f"{path.name} uses {sink}"
