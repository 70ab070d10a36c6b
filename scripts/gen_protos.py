#!/usr/bin/env python
"""Regenerate the protocol modules from nbcluster/runtime/protocol/*.proto.

    python scripts/gen_protos.py          # rewrite the *_pb2.py / *_pb2.pyi files
    python scripts/gen_protos.py --check  # exit 1 when the committed files are stale

Needs `grpcio-tools` (a test extra). The generated files are committed; a test runs
`--check` so the .proto files and the modules never drift apart.
"""

from __future__ import annotations

import argparse
import filecmp
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "nbcluster" / "runtime" / "protocol"


def generate(out_dir: Path) -> list[Path]:
    """Run protoc for every .proto file, writing modules under ``out_dir``."""
    from importlib.resources import files

    from grpc_tools import protoc

    protos = sorted(PROTO_DIR.glob("*.proto"))
    args = [
        "protoc",
        f"-I{ROOT}",
        f"-I{files('grpc_tools') / '_proto'}",  # google/protobuf/descriptor.proto (method options)
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        *[str(p.relative_to(ROOT)) for p in protos],
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    rel = PROTO_DIR.relative_to(ROOT)
    return sorted((out_dir / rel).glob("*_pb2.py*"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare, write nothing")
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        generated = generate(Path(tmp))
        rel = PROTO_DIR.relative_to(ROOT)
        stale = []
        for path in generated:
            target = PROTO_DIR / path.name
            if not target.exists() or not filecmp.cmp(path, target, shallow=False):
                stale.append(target)
                if not opts.check:
                    target.write_bytes(path.read_bytes())
        expected = {p.name for p in generated}
        extra = [p for p in PROTO_DIR.glob("*_pb2.py*") if p.name not in expected]
    if opts.check:
        for path in stale:
            print(f"stale: {path.relative_to(ROOT)} (run python scripts/gen_protos.py)")
        for path in extra:
            print(f"orphan: {path.relative_to(ROOT)} has no .proto in {rel}")
        return 1 if stale or extra else 0
    for path in extra:
        path.unlink()
    print(f"generated {len(generated)} files in {rel}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
