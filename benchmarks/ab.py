#!/usr/bin/env python3
"""A/B: nbcluster workloads of two checkouts, interleaved in one run (A B A B ...).

Each round runs ``workloads.py --backend nbcluster`` of checkout A, then of checkout B
(each checkout with its own ``benchmarks/workloads.py``, so its own package), in fresh
processes; the table gives each workload's median over the rounds and the ratio B/A.
Interleaving makes the machine's load fall on both sides alike, so on a shared machine
only the ratio means something.

    git worktree add /tmp/base fbcf394 --detach
    python benchmarks/ab.py /tmp/base . --only W1,W3 --rounds 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile


def run_once(tree: str, only: str, repeats: int, timeout: float, out: str) -> dict:
    script = os.path.join(os.path.abspath(tree), "benchmarks", "workloads.py")
    # The checkout's own package, here and in every process it starts (some start with
    # ``python -m``, which puts the working directory first on sys.path).
    env = dict(os.environ, PYTHONPATH=os.path.abspath(tree))
    cmd = [sys.executable, script, "--backend", "nbcluster", "--only", only,
           "--repeats", str(repeats), "--json", out]
    subprocess.run(cmd, env=env, cwd=tree, timeout=timeout, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with open(out) as f:
        return json.load(f)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("a", help="checkout A (the baseline)")
    ap.add_argument("b", help="checkout B")
    ap.add_argument("--only", default="W1,W3", help="workload groups, as workloads.py --only")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=3, help="workloads.py --repeats per run")
    ap.add_argument("--timeout", type=float, default=600.0, help="per run, s")
    args = ap.parse_args()
    for tree in (args.a, args.b):
        if not os.path.isfile(os.path.join(tree, "benchmarks", "workloads.py")):
            ap.error(f"{tree} has no benchmarks/workloads.py: give the root of an nbcluster checkout")

    values: dict[str, dict[str, list[float]]] = {"A": {}, "B": {}}
    units: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="nbab-") as tmp:
        for rnd in range(args.rounds):
            for side, tree in (("A", args.a), ("B", args.b)):
                res = run_once(tree, args.only, args.repeats, args.timeout, os.path.join(tmp, f"{side}.json"))
                for key, row in res.items():
                    if isinstance(row, dict) and "median" in row:
                        values[side].setdefault(key, []).append(row["median"])
                        units[key] = row["unit"]
                    elif isinstance(row, dict) and "error" in row:
                        print(f"round {rnd + 1} {side} {key}: {row['error'].splitlines()[0]}", file=sys.stderr)
            line = "  ".join(f"{k} {values['A'][k][-1]:.4g}/{values['B'][k][-1]:.4g}"
                             for k in values["A"] if k in values["B"])
            print(f"round {rnd + 1}/{args.rounds} (A/B): {line}", file=sys.stderr, flush=True)

    print(f"{'workload':<10} {'unit':<10} {'A median':>12} {'B median':>12} {'B/A':>7}   rounds")
    for key in values["A"]:
        if key not in values["B"]:
            continue
        a, b = statistics.median(values["A"][key]), statistics.median(values["B"][key])
        print(f"{key:<10} {units[key]:<10} {a:>12.4g} {b:>12.4g} {b / a:>7.3f}   {len(values['A'][key])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
