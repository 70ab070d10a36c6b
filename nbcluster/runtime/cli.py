"""The ``nbcluster`` command."""

from __future__ import annotations

import argparse
import sys

from nbcluster._version import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nbcluster",
        description="nbcluster: a Python cluster runtime in the Ray model, built for Jupyter.",
    )
    parser.add_argument("--version", action="version", version=f"nbcluster {__version__}")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    parser.parse_args(argv)
    parser.print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())
