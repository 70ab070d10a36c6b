#!/usr/bin/env python3
"""Run the benchmark workloads (``workloads.py``; targets in ``README.md`` here) on nbcluster and on Ray in the same run; print one table.

    python benchmarks/microbench.py [--ray-python /opt/rayvenv/bin/python] [--only W1,W7,F]
                                    [--repeats 3] [--out-dir DIR]

nbcluster runs under this interpreter; Ray under ``--ray-python`` (default
/opt/rayvenv/bin/python when it exists).  The two runs go one after the other,
never concurrently (2-core machines).  Each run is ``benchmarks/workloads.py``
in its own process session with a time limit; a failed nbcluster run (e.g. the
package not importable yet) is reported and Ray's column is still printed.
``--nbcluster-json`` / ``--ray-json`` reuse results saved by an earlier run.

Ratio column: nbcluster / ray.  For rows marked "higher" a ratio above 1 means
nbcluster is better; for rows marked "lower" (times, footprint) a ratio below 1
means nbcluster is better.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(HERE)
WORKLOADS = os.path.join(HERE, "workloads.py")
DEFAULT_RAY_PYTHON = "/opt/rayvenv/bin/python"

# (result key, group, label, target kind, target value, target text)
# kinds: ratio_ge / ratio_le -> nbcluster/ray; abs_ge / abs_le / abs_lt -> nbcluster alone;
#        plus_le -> nbcluster <= ray + value;
#        w6a -> abs_lt on get ms plus no extra resident copy; None -> no target.
ROWS = [
    ("W1", "W1", "W1 tasks_sync", "ratio_ge", 1.0, ">=1.0x Ray"),
    ("W2", "W2", "W2 tasks_async", "ratio_ge", 1.0, ">=1.0x Ray"),
    ("W3", "W3", "W3 actor_calls_sync", "ratio_ge", 1.0, ">=1.0x Ray"),
    ("W4", "W4", "W4 actor_calls_async", "ratio_ge", 1.0, ">=1.0x Ray"),
    ("W5", "W5", "W5 put_get_small", "ratio_ge", 1.0, ">=1.0x Ray"),
    ("W6a", "W6", "W6a get 100MiB (driver)", "w6a", 5.0, "<5 ms, no copy"),
    ("W6b", "W6", "W6b ref->task sum", "ratio_ge", 1.0, ">=1.0x Ray"),
    ("W6put", "W6", "W6 put 100MiB", "ratio_ge", 1.0, ">=1.0x Ray"),
    ("W7", "W7", "W7 startup", "ratio_le", 0.3, "<=0.3x Ray"),
    ("W7shutdown", "W7", "W7 shutdown", "abs_le", 0.5, "<=0.5 s"),
    ("W8", "W8", "W8 task_with_1mb_arg", "ratio_ge", 1.0, ">=1.0x Ray"),
    ("W9", "W9", "W9 cpu_parallel wall", None, None, "(see eff)"),
    ("W9eff", "W9", "W9 efficiency", "abs_ge", 0.95, ">=0.95"),
    ("W10", "W10", "W10 many_waits", "ratio_le", 1.0, "<=1.0x Ray"),
    ("W11", "W11", "W11 nested", "ratio_ge", 1.0, ">=1.0x Ray"),
    ("W11peak", "W11", "W11 peak processes", "plus_le", 4, "<=Ray+4"),
    ("W12", "W12", "W12 cross_node", "abs_ge", 1.0, ">=1 GB/s"),
    ("W13", "W13", "W13 scale_up", None, None, "<=2 s + node start"),
    ("T12", "T", "T cross_node 100MiB", None, None, "(TLS cost)"),
    ("T12tls", "T", "T cross_node 100MiB TLS", None, None, "(TLS cost)"),
    ("T14", "T", "T cross_node tasks", None, None, "(TLS cost)"),
    ("T14tls", "T", "T cross_node tasks TLS", None, None, "(TLS cost)"),
    ("F_processes", "F", "F idle processes", None, None, "(info)"),
    ("F_threads", "F", "F idle threads", "ratio_le", 0.3, "<=0.3x Ray"),
    ("F_rss", "F", "F idle RSS sum", "ratio_le", 0.3, "<=0.3x Ray"),
    ("F_pss", "F", "F idle PSS sum", "ratio_le", 0.35, "<=0.35x Ray"),
]
W6A_MAX_COPY_MIB = 50.0  # a real copy of the 100 MiB array shows ~100 MiB


def fmt(x) -> str:
    if x is None:
        return "-"
    ax = abs(x)
    if ax >= 1000:
        return f"{x:,.0f}"
    if ax >= 100:
        return f"{x:.0f}"
    if ax >= 10:
        return f"{x:.1f}"
    if ax >= 1:
        return f"{x:.2f}"
    return f"{x:.3g}"


def cell(entry) -> str:
    if entry is None:
        return "-"
    if "median" in entry:
        return f"{fmt(entry['median'])} ({fmt(entry['min'])}-{fmt(entry['max'])})"
    if "skipped" in entry:
        return "skipped"
    if "error" in entry:
        return "error"
    return "?"


def lookup(res, key, group):
    if res is None:
        return None
    if key in res:
        return res[key]
    if group in res:  # a whole group failed or was skipped
        return res[group]
    if "_error" in res and group in res.get("_meta", {}).get("selected", []):
        return {"error": res["_error"]}
    return None


def check(kind, value, nb, ray):
    """Return 'PASS', 'FAIL' or 'n/a' for nbcluster's entry ``nb``."""
    if kind is None or nb is None or "median" not in nb:
        return "n/a"
    m = nb["median"]
    if kind == "w6a":
        copy = nb.get("extra", {}).get("sys_available_drop_after_read_mib_median", 0.0)
        return "PASS" if m < value and copy < W6A_MAX_COPY_MIB else "FAIL"
    if kind == "abs_ge":
        return "PASS" if m >= value else "FAIL"
    if kind == "abs_le":
        return "PASS" if m <= value else "FAIL"
    if ray is None or "median" not in ray or not ray["median"]:
        return "n/a"
    if kind == "plus_le":
        return "PASS" if m <= ray["median"] + value else "FAIL"
    r = m / ray["median"]
    if kind == "ratio_ge":
        return "PASS" if r >= value else "FAIL"
    if kind == "ratio_le":
        return "PASS" if r <= value else "FAIL"
    return "n/a"


def ray_alone(kind, value, ray):
    """For absolute targets, what Ray itself scores (shown for reference)."""
    if kind in ("abs_ge", "abs_le", "w6a") and ray is not None and "median" in ray:
        return check(kind, value, ray, None)
    return None


def run_backend(backend, python, args, out_dir) -> tuple[dict | None, str]:
    """Run workloads.py for one backend; return (results or None, error text)."""
    json_out = os.path.join(out_dir, f"{backend}.json")
    log_path = os.path.join(out_dir, f"{backend}.log")
    cmd = [python, WORKLOADS, "--backend", backend, "--repeats", str(args.repeats),
           "--json", json_out, "--timeout", str(args.workload_timeout)]
    if args.only:
        cmd += ["--only", args.only]
    if args.client:
        cmd += ["--client"]
    env = dict(os.environ)
    if backend == "nbcluster":
        pp = env.get("PYTHONPATH", "")
        env["PYTHONPATH"] = REPO_ROOT + (os.pathsep + pp if pp else "")
    else:
        env.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    print(f"== {backend}: {' '.join(cmd)}", flush=True)
    print(f"   log: {log_path}", flush=True)
    err = ""
    timed_out = threading.Event()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                env=env, cwd=REPO_ROOT, start_new_session=True)

        def on_timeout():
            timed_out.set()
            _kill_session(proc.pid)

        watchdog = threading.Timer(args.run_timeout, on_timeout)
        watchdog.start()
        try:
            assert proc.stdout is not None
            for line in proc.stdout:  # ends at EOF: the run exited or was killed
                log.write(line)
                if line.startswith("[bench]"):
                    print(f"   {line.rstrip()}", flush=True)
            proc.wait()
        finally:
            watchdog.cancel()
            if timed_out.is_set():
                err = f"run exceeded {args.run_timeout} s; killed"
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            time.sleep(0.5)
            killed = _kill_session(proc.pid)
            if killed:
                print(f"   killed {killed} leftover processes of the {backend} run", flush=True)
    res = None
    if os.path.exists(json_out):
        with open(json_out) as f:
            res = json.load(f)
    if res is None:
        tail = "".join(open(log_path).readlines()[-20:])
        return None, (err or f"exit code {proc.returncode}, no results") + "\n" + tail
    if "_error" in res:
        err = (err + "; " if err else "") + res["_error"]
    elif proc.returncode not in (0, None) and not err:
        err = f"exit code {proc.returncode}"
    return res, err


def _kill_session(sid: int) -> int:
    """Kill by pid whatever is left in the session we created for a run."""
    n = 0
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        pid = int(name)
        try:
            if os.getsid(pid) == sid:
                os.kill(pid, 9)
                n += 1
        except (ProcessLookupError, PermissionError, OSError):
            pass
    return n


def _cell_of(res, entry) -> str:
    if res is None:
        return "not run"
    if entry is None and "_error" in res:
        return "failed"
    return cell(entry)


def print_table(nb, ray, nb_err, ray_err) -> None:
    header = ["workload", "unit", "better", "nbcluster median (min-max)",
              "ray median (min-max)", "nb/ray", "target", "ok"]
    lines = []
    for key, group, label, kind, value, ttext in ROWS:
        n_e, r_e = lookup(nb, key, group), lookup(ray, key, group)
        if n_e is None and r_e is None:
            continue
        src = n_e if n_e and "unit" in n_e else r_e if r_e and "unit" in r_e else {}
        unit = src.get("unit", "")
        better = src.get("better", "")
        ratio = "-"
        if n_e and r_e and "median" in n_e and "median" in r_e and r_e["median"]:
            ratio = f"{n_e['median'] / r_e['median']:.2f}x"
        ok = check(kind, value, n_e, r_e)
        ra = ray_alone(kind, value, r_e)
        if ra and ok == "n/a":
            ok = f"n/a (ray {ra})"
        lines.append([label, unit, better, _cell_of(nb, n_e), _cell_of(ray, r_e), ratio, ttext, ok])
    widths = [max(len(str(r[i])) for r in lines + [header]) for i in range(len(header))]
    sep = "  "
    print(sep.join(h.ljust(w) for h, w in zip(header, widths)))
    print(sep.join("-" * w for w in widths))
    for r in lines:
        print(sep.join(str(c).ljust(w) for c, w in zip(r, widths)))
    print()
    for name, res, err in (("nbcluster", nb, nb_err), ("ray", ray, ray_err)):
        if res is None and not err:
            continue
        meta = (res or {}).get("_meta", {})
        ver = meta.get("version")
        status = "FAILED: " + err.strip() if err else "ok"
        print(f"{name}: {('version ' + str(ver) + ', ') if ver else ''}{status}")
    notes = []
    for name, res in (("nbcluster", nb), ("ray", ray)):
        if not res:
            continue
        for key, fmt_s in (("W6a", "{n}: W6a get {m} ms, {gb} GB/s, RSS +{rss} MiB, available -{av} MiB after reading it, writeable={w}"),
                           ("W7", "{n}: W7 import {imp} s (not in startup), processes at first result {pr}, leftovers killed {lk}"),
                           ("W9", "{n}: W9 single loop alone {ts} s -> ideal wall {iw} s; 2.0 s/wall = {e2}")):
            e = res.get(key)
            if not e or "extra" not in e:
                continue
            x = e["extra"]
            if key == "W6a":
                notes.append(fmt_s.format(n=name, m=fmt(e["median"]), gb=fmt(x.get("gb_per_s_median")),
                                          rss=fmt(x.get("driver_rss_delta_after_read_mib_median")),
                                          av=fmt(x.get("sys_available_drop_after_read_mib_median")),
                                          w=x.get("result_writeable")))
            elif key == "W7":
                notes.append(fmt_s.format(n=name, imp=[round(v, 2) for v in x.get("import_s", [])],
                                          pr=x.get("processes_at_first_result"),
                                          lk=x.get("leftover_killed")))
            elif key == "W9":
                notes.append(fmt_s.format(n=name, ts=fmt(x.get("t_single_s")), iw=fmt(x.get("ideal_wall_s")),
                                          e2=[round(v, 3) for v in x.get("eff_vs_fixed_2s", [])]))
        for key in ("W12", "W13"):
            e = res.get(key)
            if e and "skipped" in e:
                notes.append(f"{name}: {key} skipped: {e['skipped']}")
            elif e and "error" in e:
                notes.append(f"{name}: {key} error: {e['error'].strip().splitlines()[0]}")
        for key, e in res.items():
            if isinstance(e, dict) and "error" in e and key not in ("W12", "W13"):
                first = e["error"].strip().splitlines()[0] if e["error"].strip() else "?"
                notes.append(f"{name}: {key} error: {first}")
    if notes:
        print("notes:")
        for n in notes:
            print("  " + n)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ray-python", default=None,
                    help=f"interpreter with ray installed (default {DEFAULT_RAY_PYTHON} if present)")
    ap.add_argument("--no-ray", action="store_true", help="skip the Ray run")
    ap.add_argument("--client", action="store_true",
                    help="in-cluster workloads from a driver with no node: nbcluster client mode vs Ray Client")
    ap.add_argument("--no-nbcluster", action="store_true", help="skip the nbcluster run")
    ap.add_argument("--only", default="", help="comma-separated groups, e.g. W1,W6,W7,F")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out-dir", default=None, help="where to keep JSON and logs (default: a temp dir)")
    ap.add_argument("--nbcluster-json", help="use these saved nbcluster results instead of running")
    ap.add_argument("--ray-json", help="use these saved Ray results instead of running")
    ap.add_argument("--workload-timeout", type=float, default=300.0, help="per workload, s")
    ap.add_argument("--run-timeout", type=float, default=3600.0, help="per backend run, s")
    args = ap.parse_args()

    out_dir = args.out_dir or tempfile.mkdtemp(prefix="nbbench-")
    os.makedirs(out_dir, exist_ok=True)

    nb = ray = None
    nb_err = ray_err = ""
    if args.nbcluster_json:
        with open(args.nbcluster_json) as f:
            nb = json.load(f)
        nb_err = nb.get("_error", "")
    elif not args.no_nbcluster:
        nb, nb_err = run_backend("nbcluster", sys.executable, args, out_dir)
        if nb_err:
            print(f"!! nbcluster run failed: {nb_err.strip()}", flush=True)

    ray_python = args.ray_python
    if ray_python is None and os.path.exists(DEFAULT_RAY_PYTHON):
        ray_python = DEFAULT_RAY_PYTHON
    if args.ray_json:
        with open(args.ray_json) as f:
            ray = json.load(f)
        ray_err = ray.get("_error", "")
    elif not args.no_ray:
        if ray_python:
            ray, ray_err = run_backend("ray", ray_python, args, out_dir)
            if ray_err:
                print(f"!! ray run failed: {ray_err.strip()}", flush=True)
        else:
            print("!! no Ray interpreter (--ray-python, or /opt/rayvenv/bin/python): Ray column skipped")

    print()
    print(f"results and logs: {out_dir}")
    print()
    print_table(nb, ray, nb_err, ray_err)
    return 0 if nb is not None and not nb_err else 1


if __name__ == "__main__":
    sys.exit(main())
