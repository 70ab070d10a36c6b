#!/usr/bin/env python3
"""A/B: two nbcluster checkouts side by side, their measurements interleaved finely.

Each checkout gets a driver process of its own (its own package on ``PYTHONPATH``, its
own cluster from ``init(num_cpus=2)``, the remote functions of its own
``benchmarks/workloads.py``). Both start and warm up; then the drivers take turns: a
short batch of one workload in A, the same in B, then B before A (A B B A ...), while
the other cluster idles. A batch is a fraction of a second, so a shared machine's load
falls on both sides alike. The table gives each side's median rate with the median of
the per-round ratios B/A, and each side's 90th percentile (the batches that ran while
the machine was quiet) with their ratio.

    git worktree add /tmp/base fbcf394 --detach
    python benchmarks/ab.py /tmp/base . --only W1,W3 --rounds 30

Workloads (as in workloads.py, in batches of ``--batch`` calls): W1 ``get(f.remote())``
one at a time, W2 ``get([f.remote() ...])``, W3 ``get(actor.m.remote())`` one at a
time, W4 ``get([actor.m.remote() ...])``, W5 ``get(put(i))``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

#: Starts the child's answers (anything else on its stdout, say a task's output, is passed on).
MARK = "NBAB "
#: Calls per batch by workload (``--batch`` scales them).
BATCH = {"W1": 300, "W2": 2000, "W3": 300, "W4": 2000, "W5": 2000}


def child(tree: str) -> None:
    """A driver for one checkout: reads ``WORKLOAD N`` lines, answers the seconds taken."""
    sys.path.insert(0, os.path.join(tree, "benchmarks"))
    import nbcluster
    import workloads

    r = workloads.define_remotes(nbcluster)
    actor = r.make_actor()
    get, put, noop = nbcluster.get, nbcluster.put, r.noop
    ops = {
        "W1": lambda n: [get(noop.remote()) for _ in range(n)],
        "W2": lambda n: get([noop.remote() for _ in range(n)]),
        "W3": lambda n: [get(actor.noop.remote()) for _ in range(n)],
        "W4": lambda n: get([actor.noop.remote() for _ in range(n)]),
        "W5": lambda n: [get(put(i)) for i in range(n)],
    }
    for op in ops.values():  # warm: workers started, code paths taken
        op(200)
    print(MARK + "ready", flush=True)
    for line in sys.stdin:
        name, n = line.split()
        start = time.perf_counter()
        ops[name](int(n))
        print(MARK + json.dumps(time.perf_counter() - start), flush=True)
    nbcluster.shutdown()


def p90(values: list[float]) -> float:
    """The 90th percentile: a batch that ran while nothing else did (on a shared
    machine most of the slow ones waited for a CPU)."""
    return statistics.quantiles(values, n=10)[-1] if len(values) > 1 else values[0]


def start(tree: str) -> subprocess.Popen:
    tree = os.path.abspath(tree)
    # The checkout's own package here and in every process its cluster starts (some
    # start with ``python -m``, which puts the working directory first on sys.path).
    env = dict(os.environ, PYTHONPATH=tree)
    return subprocess.Popen([sys.executable, os.path.abspath(__file__), "--child", tree], cwd=tree, env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def ask(proc: subprocess.Popen, line: str) -> str:
    assert proc.stdin is not None and proc.stdout is not None
    if line:
        proc.stdin.write(line + "\n")
        proc.stdin.flush()
    while True:
        answer = proc.stdout.readline()
        if not answer:
            raise RuntimeError(f"a driver ended early (exit code {proc.wait()}); its error is above")
        if answer.startswith(MARK):
            return answer[len(MARK):]
        sys.stdout.write(answer)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("a", nargs="?", help="checkout A (the baseline)")
    ap.add_argument("b", nargs="?", help="checkout B")
    ap.add_argument("--only", default="W1,W3", help=f"workloads, of {','.join(BATCH)}")
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--batch", type=float, default=1.0, help="scale the calls per batch")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child)
        return 0
    if not args.a or not args.b:
        ap.error("give two checkouts: A (the baseline) and B")
    only = [w.strip().upper() for w in args.only.split(",") if w.strip()]
    if not only or set(only) - set(BATCH):
        ap.error(f"--only takes workloads of {', '.join(BATCH)}, got {args.only!r}")
    for tree in (args.a, args.b):
        if not os.path.isfile(os.path.join(tree, "benchmarks", "workloads.py")):
            ap.error(f"{tree} has no benchmarks/workloads.py: give the root of an nbcluster checkout")

    procs = {"A": start(args.a), "B": start(args.b)}
    rates: dict[str, dict[str, list[float]]] = {w: {"A": [], "B": []} for w in only}
    try:
        for proc in procs.values():
            ask(proc, "")  # "ready"
        for rnd in range(args.rounds):
            order = ("A", "B") if rnd % 2 == 0 else ("B", "A")
            for w in only:
                n = max(1, round(BATCH[w] * args.batch))
                for side in order:
                    rates[w][side].append(n / json.loads(ask(procs[side], f"{w} {n}")))
            line = "  ".join(f"{w} {rates[w]['A'][-1]:.0f}/{rates[w]['B'][-1]:.0f}" for w in only)
            print(f"round {rnd + 1}/{args.rounds} (A/B): {line}", file=sys.stderr, flush=True)
    finally:
        for proc in procs.values():
            if proc.stdin is not None:
                proc.stdin.close()
        for proc in procs.values():
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    print(f"{'workload':<9} {'A median/s':>11} {'B median/s':>11} {'B/A median of rounds':>21}"
          f" {'A p90/s':>9} {'B p90/s':>9} {'B/A p90':>8}   rounds")
    for w in only:
        a, b = rates[w]["A"], rates[w]["B"]
        ratio = statistics.median(y / x for x, y in zip(a, b))
        a90, b90 = p90(a), p90(b)
        print(f"{w:<9} {statistics.median(a):>11.0f} {statistics.median(b):>11.0f} {ratio:>21.3f}"
              f" {a90:>9.0f} {b90:>9.0f} {b90 / a90:>8.3f}   {len(a)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
