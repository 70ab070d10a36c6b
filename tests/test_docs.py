"""The documentation builds (``mkdocs build --strict``: a broken link, a missing page or
an API reference that no longer resolves fails it) and points nowhere outside the
repository."""

from __future__ import annotations

import re
import subprocess
import sys

from .conftest import ROOT

#: Notes of the team that live beside the repository, not in it.
OUTSIDE = re.compile(r"\.\./shared|\b(DESIGN|STYLE|BENCHMARKS)\.md\b")


def test_the_docs_build_with_warnings_as_errors(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"),
                           "-d", str(tmp_path / "site")], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    api = (tmp_path / "site" / "api" / "index.html").read_text()
    for name in ("nbcluster.init", "JobSubmissionClient", "PermissionDeniedError", "list_nodes"):
        assert name in api, f"the API reference lost {name}"


def test_nothing_points_outside_the_repository():
    found = []
    files = [ROOT / "README.md", ROOT / "mkdocs.yml", ROOT / "pyproject.toml"]
    suffixes = (".py", ".md", ".js", ".css", ".yaml", ".json", ".ipynb", ".proto")
    for folder in ("nbcluster", "tests", "benchmarks", "docs", "examples", "scripts"):
        files += [p for p in (ROOT / folder).rglob("*") if p.suffix in suffixes]
    for path in files:
        if path == ROOT / "tests" / "test_docs.py":
            continue
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if OUTSIDE.search(line):
                found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not found, "\n".join(found)
