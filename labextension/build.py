"""Build the JupyterLab extension into ``nbcluster/labextension/`` (committed: ``pip install``
needs no Node), and record a hash of its sources there, which ``--check`` compares
(the tests run it, so sources changed without a rebuild fail them).

    python labextension/build.py           # npm ci if needed, tsc, webpack, record the hash
    python labextension/build.py --check   # exit 1 when the built extension is stale

Needs Node (``node``, ``npm``) and JupyterLab (its ``staging`` directory is the core the
extension is built against: the shared packages JupyterLab provides at run time).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUT = ROOT / "nbcluster" / "labextension"
HASH_FILE = OUT / "sources.sha256"
#: What the built extension is made from (node_modules and build output excluded).
SOURCES = ["package.json", "package-lock.json", "tsconfig.json", "src", "style"]


def sources_hash() -> str:
    """sha256 over the sources' relative paths and contents, in path order."""
    digest = hashlib.sha256()
    files = []
    for name in SOURCES:
        path = HERE / name
        files.extend(sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path])
    for path in files:
        digest.update(path.relative_to(HERE).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def stale() -> str:
    """Why the built extension does not match its sources ("" when it does)."""
    if not (OUT / "package.json").is_file():
        return f"{OUT / 'package.json'} is missing"
    built = json.loads((OUT / "package.json").read_text())
    from nbcluster._version import __version__

    if built.get("version") != __version__:
        return f"the built extension is version {built.get('version')}, nbcluster {__version__}"
    if not HASH_FILE.is_file() or HASH_FILE.read_text().strip() != sources_hash():
        return "labextension/ changed since the last build"
    return ""


def build() -> None:
    import jupyterlab

    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is not on PATH: install Node.js 18 or later (apt-get install nodejs npm)")
    package = json.loads((HERE / "package.json").read_text())
    from nbcluster._version import __version__

    if package["version"] != __version__:
        sys.exit(f"labextension/package.json has version {package['version']}; set it to nbcluster's {__version__}")
    if not (HERE / "node_modules").is_dir():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=HERE, check=True)
    shutil.rmtree(HERE / "lib", ignore_errors=True)
    (HERE / "tsconfig.tsbuildinfo").unlink(missing_ok=True)
    shutil.rmtree(OUT / "static", ignore_errors=True)
    subprocess.run(["npx", "tsc", "--sourceMap", "false"], cwd=HERE, check=True)
    core = Path(jupyterlab.__file__).resolve().parent / "staging"
    builder = HERE / "node_modules" / "@jupyterlab" / "builder" / "lib" / "build-labextension.js"
    subprocess.run(["node", str(builder), "--core-path", str(core), "."], cwd=HERE, check=True)
    HASH_FILE.write_text(sources_hash() + "\n")
    print(f"built {OUT.relative_to(ROOT)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when the built extension is stale")
    args = parser.parse_args()
    if args.check:
        why = stale()
        if why:
            sys.exit(f"nbcluster/labextension is stale: {why}; rebuild with `python labextension/build.py`")
        print("nbcluster/labextension matches its sources")
        return
    build()


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
