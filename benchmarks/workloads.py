#!/usr/bin/env python3
"""Backend-neutral microbenchmark workloads (W1..W13, T, F idle); their targets are in README.md here.

Run with the interpreter that has the backend installed:

    python benchmarks/workloads.py --backend nbcluster --json nb.json
    /opt/rayvenv/bin/python benchmarks/workloads.py --backend ray --json ray.json

The backend is imported with ``importlib.import_module(backend)`` and only the
API common to Ray and nbcluster is used: ``init(num_cpus=2)``, ``remote`` (on
functions and classes), ``.remote()``, ``get``, ``put``, ``wait(refs,
num_returns=1)`` and ``shutdown``.  No ``timeout=`` arguments are passed to
``get``/``wait``; every workload is bounded instead by a SIGALRM budget
(``--timeout``), child processes by a subprocess timeout, and every loop has a
fixed iteration count.

Definitions (GB = 1e9 bytes; MiB = 2**20 bytes):

W1  tasks_sync         N=1000 no-op tasks, each submitted and ``get`` one at a time.  tasks/s
W2  tasks_async        N=10000 no-op tasks submitted, then one ``get`` of all.        tasks/s
W3  actor_calls_sync   one actor, N=1000 no-op method calls, ``get`` each.            calls/s
W4  actor_calls_async  one actor, N=10000 calls, then ``get`` all.                    calls/s
W5  put_get_small      N=10000 times ``get(put(i))`` of a small int.                  ops/s
W6  large_object       a 100 MiB float64 array (13,107,200 elements):
      W6put  time of ``put(arr)`` -> GB/s; puts one after the other, each ref dropped
             right away (one warm-up put, then ``--repeats``).
      Then per repeat a fresh ``put`` (untimed), a short untimed settle, and:
      W6a    time of ``get(ref)`` in the driver, in ms (target < 5 ms; zero-copy).
             extra: GB/s, driver RSS delta and system-wide ``available`` memory drop
             across get + a full read (``.sum()``) of the result (a real copy shows
             ~100 MiB there), and whether the result is writeable.
      W6b    time of ``get(task.remote(ref))`` where the task returns ``arr.sum()``,
             -> GB/s of the array size (the ref already exists; extra also has
             GB/s over put + task, i.e. including that repeat's put).
W7  startup            fresh subprocess per repeat: ``init(num_cpus=2)`` -> result of the
                       first no-op task (W7, s; the import time is in extra), then
                       ``shutdown()`` (W7shutdown, s).  One discarded warm-up child
                       first (file cache), then ``--repeats`` children.
W8  task_with_1mb_arg  200 tasks each given the same 1 MiB float64 array by value
                       (a fresh serialisation per call), all submitted, then ``get``.  tasks/s
W9  cpu_parallel       4 tasks of a pure-Python loop calibrated (in the driver, alone,
                       before ``init``) to take ~1.0 s; submitted together on 2 CPUs.
                       W9 = wall s.  W9eff = ideal / wall with ideal = 4 * t_single / 2,
                       t_single being the median of 3 runs of the calibrated loop alone
                       in the driver before ``init`` (~1.0 s,
                       so ideal ~= 2.0 s: this is "efficiency vs 2.0 s", corrected for
                       the calibration's residual error).  extra.eff_vs_fixed_2s =
                       2.0 / wall is also recorded.
W10 many_waits         1000 tasks sleeping ``random.Random(12345).uniform(0, 0.010)`` s
                       each (same durations every repeat); ``wait(pending,
                       num_returns=1)`` until none is pending.  s (submit -> all done)
W11 nested             100 parent tasks, each submits 10 children and ``get``s them.
                       tasks/s counts all 1100 tasks (parents + children).
                       W11peak: the most processes under the driver at once during one
                       more such batch (sampled every 5 ms).
W12 cross_node         ``<backend>.cluster_utils.Cluster``, two node managers on this
                       machine: a task on node A makes a 100 MiB array, a task on node
                       B returns its ``.sum()``; GB/s of the pull and the sum.
W13 scale_up           an embedded cluster whose head has 0 CPUs, the autoscaler with one
                       1-CPU node type (max 1, idle timeout 1 s, local provider); each
                       repeat submits one task when no worker node exists: s from
                       submit to the task running on the new node; extra: submit ->
                       decision (autoscaler event), -> node registered (node event),
                       and scale-down (s from the task's end to the node's removal,
                       no task lost, resources balanced).  nbcluster only: Ray's local
                       harness (``AutoscalingCluster``) runs ``ray stop --force``,
                       which would end every Ray process on the machine.
T   tls_cost           the W12 cluster twice, without and with TLS between its nodes
                       (nbcluster: ``Cluster(head_node_args={"_tls": True})``, its own CA;
                       Ray: ``RAY_USE_TLS=1`` with a self-signed certificate made by
                       ``openssl``): T12/T12tls the W12 transfer, GB/s; T14/T14tls 2000
                       no-op tasks submitted from the driver (node A) to node B, then
                       one ``get`` of all, tasks/s.
F   idle               fresh subprocess per repeat: ``init`` + one no-op task, sleep 2 s,
                       then over ``psutil.Process().children(recursive=True)`` (the driver
                       excluded): F_processes, F_threads, F_rss (MiB, summed),
                       F_pss (MiB, summed ``memory_full_info().pss``).

``--client``: the in-cluster workloads (W1-W6, W8-W11) run from a driver with no node,
against a head started apart on this machine (``nbcluster start --head`` /
``ray start --head``, 2 CPUs, in a session of its own): nbcluster's client mode
(``init("nbcluster://127.0.0.1:PORT")``), Ray Client (``init("ray://127.0.0.1:PORT")``).
The head's processes are ended by session id at the end.

Every workload does a warm-up first (N/10 of the work, or one round), then
``--repeats`` measured rounds; the result is median, min and max.  W1-W6 and
W8-W11 share one cluster (one ``init``); W7, W12 and F run in fresh
subprocesses.  Output JSON: ``{id: {"unit", "median", "min", "max", "extra",
"values", "better", "name"}}`` plus ``"_meta"``; a failed workload is
``{"error": ...}``, a skipped one ``{"skipped": reason}``.  The script leaves no
processes behind: after ``shutdown()`` it waits for every descendant it saw and
kills (by pid) any that outlive a grace period, recording that in ``_meta``.
"""

from __future__ import annotations

import argparse
import atexit
import importlib
import json
import os
import platform
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from types import SimpleNamespace

RESULT_MARK = "NBBENCH_RESULT "
MIB = 1 << 20
GB = 1e9
GROUPS = ["W1", "W2", "W3", "W4", "W5", "W6", "W7", "W8", "W9", "W10", "W11", "W12", "W13", "T", "F"]
#: T14: tasks sent from node A's driver to node B.
CROSS_TASKS = 2000
IN_CLUSTER = ["W1", "W2", "W3", "W4", "W5", "W6", "W8", "W9", "W10", "W11"]
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
pc = time.perf_counter


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


class WorkloadTimeout(Exception):
    pass


def _on_alarm(signum, frame):
    raise WorkloadTimeout("workload exceeded its time budget")


def row(name, unit, better, values, extra=None) -> dict:
    return {
        "name": name,
        "unit": unit,
        "better": better,
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "values": list(values),
        "extra": extra or {},
    }


def settle(seconds: float = 0.3) -> None:
    """Untimed pause between measured steps so dropped refs are freed."""
    import gc

    gc.collect()
    time.sleep(seconds)


def spin(n: int) -> int:
    """A pure-Python CPU-bound loop (W9)."""
    x = 0
    for i in range(n):
        x += i * i
    return x


# --------------------------------------------------------------------------- processes


def descendants():
    import psutil

    out = []
    for p in psutil.Process().children(recursive=True):
        try:
            out.append((p.pid, p.create_time()))
        except psutil.Error:
            pass
    return out


class PeakProcesses:
    """The most descendant processes of the driver (the runtime's) seen at once while
    the block runs, sampled every 5 ms on a thread (W11)."""

    def __init__(self) -> None:
        import threading

        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, len(descendants()))

    def __enter__(self) -> "PeakProcesses":
        self.peak = len(descendants())
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


def reap(snapshot, grace: float = 10.0) -> int:
    """Wait up to ``grace`` s for the listed (pid, create_time) processes to exit;
    kill survivors (only if pid and create time still match).  Returns how many
    had to be killed."""
    import psutil

    def alive():
        procs = []
        for pid, ctime in snapshot:
            try:
                p = psutil.Process(pid)
                if abs(p.create_time() - ctime) < 0.01 and p.status() != psutil.STATUS_ZOMBIE:
                    procs.append(p)
            except psutil.Error:
                pass
        return procs

    deadline = time.monotonic() + grace
    left = alive()
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = alive()
    for p in left:
        try:
            p.kill()
        except psutil.Error:
            pass
    if left:
        psutil.wait_procs(left, timeout=5)
    return len(left)


def kill_session(sid: int, grace: float = 0.0) -> int:
    """Kill (by pid) every process of session ``sid`` -- a session this script made
    with start_new_session=True for a child -- that is still there after ``grace`` s."""
    import psutil

    def members():
        out = []
        for p in psutil.process_iter():
            try:
                if (p.pid != os.getpid() and os.getsid(p.pid) == sid
                        and p.status() != psutil.STATUS_ZOMBIE):
                    out.append(p)
            except (psutil.Error, OSError):
                pass
        return out

    deadline = time.monotonic() + grace
    victims = members()
    while victims and time.monotonic() < deadline:
        time.sleep(0.1)
        victims = members()
    for p in victims:
        try:
            p.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(victims, timeout=5)
    return len(victims)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_head_apart(backend: str, root: str) -> tuple[subprocess.Popen, str, dict]:
    """A head with 2 CPUs in a session of its own (``--client``): (process, the
    address a client-mode driver connects to, init kwargs)."""
    env = dict(os.environ)
    if backend == "nbcluster":
        env["NBCLUSTER_TEMP_DIR"] = root
        cmd = [sys.executable, "-m", "nbcluster.runtime.cli", "start", "--head", "--block", "--port", "0",
               "--num-cpus", "2", "--node-ip-address", "127.0.0.1", "--include-dashboard", "false"]
    else:
        port, client_port = free_port(), free_port()
        # Ray's token authentication is off on both ends (nbcluster's token is checked): the
        # client would otherwise need ~/.ray/auth_token, a file outside this run.
        env["RAY_AUTH_MODE"] = os.environ["RAY_AUTH_MODE"] = "disabled"
        cmd = [os.path.join(os.path.dirname(sys.executable), "ray"), "start", "--head", "--block",
               f"--port={port}", f"--ray-client-server-port={client_port}", "--num-cpus=2",
               "--node-ip-address=127.0.0.1", "--include-dashboard=false", f"--temp-dir={root}"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            start_new_session=True)
    if backend == "ray":
        return proc, f"ray://127.0.0.1:{client_port}", {}
    deadline = time.monotonic() + 60
    assert proc.stdout is not None
    for line in proc.stdout:
        if "head node at " in line:
            address = line.split("head node at ", 1)[1].split()[0]
            token = next(p for p in sorted(os.listdir(root)) if p.startswith("session_2"))
            return proc, f"nbcluster://{address}", {"token_file": os.path.join(root, token, "token")}
        if time.monotonic() > deadline:
            break
    raise RuntimeError("the nbcluster head did not start")


def init_client(rt, address: str, kwargs: dict) -> None:
    """Connect in client mode, retrying while the head is still starting (60 s)."""
    deadline = time.monotonic() + 60
    while True:
        try:
            rt.init(address=address, **kwargs)
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def run_child(args, mode: str, timeout: float, tls: bool = False) -> dict:
    """Run this script in a fresh process (own session) in ``--child mode``."""
    cmd = [sys.executable, os.path.abspath(__file__), "--backend", args.backend,
           "--child", mode, "--repeats", str(args.repeats)] + (["--tls"] if tls else [])
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, cwd=os.getcwd())
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        killed = kill_session(proc.pid)
        proc.kill()
        proc.communicate()
        raise RuntimeError(f"child {mode} timed out after {timeout} s (killed {killed} processes)") from None
    finally:
        # anything still in the child's session (its cluster) is ours to end
        leftover = kill_session(proc.pid, grace=5.0)
    result = None
    for line in out.splitlines():
        if line.startswith(RESULT_MARK):
            result = json.loads(line[len(RESULT_MARK):])
    if result is None:
        tail = "\n".join((err or "").splitlines()[-30:])
        raise RuntimeError(f"child {mode} exited {proc.returncode} without a result:\n{tail}")
    if "error" in result:
        raise RuntimeError(f"child {mode}: {result['error']}")
    result["leftover_killed"] = leftover + reap([tuple(x) for x in result.get("descendants", [])], grace=5)
    return result


# --------------------------------------------------------------------------- remotes


def define_remotes(rt):
    @rt.remote
    def noop():
        return None

    @rt.remote
    def arr_sum(arr):
        return float(arr.sum())

    @rt.remote
    def take_arr(arr):
        return int(arr.nbytes)

    @rt.remote
    def spin_task(n):
        return spin(n)

    @rt.remote
    def sleep_task(s):
        time.sleep(s)
        return s

    @rt.remote
    def child(i):
        return i

    @rt.remote
    def parent(i):
        return sum(rt.get([child.remote(j) for j in range(10)]))

    def make_actor():
        # Decorated on first use, so the task workloads run on a backend without actors.
        class Actor:
            def noop(self):
                return None

        return rt.remote(Actor).remote()

    return SimpleNamespace(noop=noop, arr_sum=arr_sum, take_arr=take_arr, spin_task=spin_task,
                           sleep_task=sleep_task, child=child, parent=parent, make_actor=make_actor)


# --------------------------------------------------------------------------- workloads


class Bench:
    def __init__(self, rt, args, calib=None):
        self.rt = rt
        self.args = args
        self.r = define_remotes(rt)
        self.calib = calib

    def rate(self, name, unit, n, fn, warm_n):
        fn(warm_n)
        vals = []
        for _ in range(self.args.repeats):
            t = pc()
            fn(n)
            vals.append(n / (pc() - t))
        return row(name, unit, "higher", vals, {"n": n})

    def W1(self):
        rt, noop = self.rt, self.r.noop

        def go(n):
            for _ in range(n):
                rt.get(noop.remote())
        return {"W1": self.rate("tasks_sync", "tasks/s", 1000, go, 100)}

    def W2(self):
        rt, noop = self.rt, self.r.noop

        def go(n):
            rt.get([noop.remote() for _ in range(n)])
        return {"W2": self.rate("tasks_async", "tasks/s", 10000, go, 1000)}

    def W3(self):
        rt = self.rt
        actor = self.r.make_actor()

        def go(n):
            for _ in range(n):
                rt.get(actor.noop.remote())
        return {"W3": self.rate("actor_calls_sync", "calls/s", 1000, go, 100)}

    def W4(self):
        rt = self.rt
        actor = self.r.make_actor()

        def go(n):
            rt.get([actor.noop.remote() for _ in range(n)])
        return {"W4": self.rate("actor_calls_async", "calls/s", 10000, go, 1000)}

    def W5(self):
        rt = self.rt

        def go(n):
            for i in range(n):
                if rt.get(rt.put(i)) != i:
                    raise AssertionError("put/get returned a different value")
        return {"W5": self.rate("put_get_small", "ops/s", 10000, go, 1000)}

    def W6(self):
        import numpy as np
        import psutil

        rt = self.rt
        me = psutil.Process()
        arr = np.random.default_rng(0).random(100 * MIB // 8)
        nbytes = arr.nbytes
        expect = float(arr.sum())
        # put rate: put and drop the ref, one after the other (warm-up, then repeats)
        put_s = []
        for i in range(self.args.repeats + 1):
            t = pc()
            ref = rt.put(arr)
            if i:
                put_s.append(pc() - t)
            del ref
        settle()
        # warm-up: one get and two concurrent sum tasks (warms both workers)
        ref = rt.put(arr)
        got = rt.get(ref)
        del got
        rt.get([self.r.arr_sum.remote(ref), self.r.arr_sum.remote(ref)])
        del ref
        settle()
        get_s, task_s, rss_d, rss_d_touch, avail_d, writeable = [], [], [], [], [], []
        put2_s = []
        for _ in range(self.args.repeats):
            t = pc()
            ref = rt.put(arr)
            put2_s.append(pc() - t)
            settle()
            rss0, av0 = me.memory_info().rss, psutil.virtual_memory().available
            t = pc()
            got = rt.get(ref)
            get_s.append(pc() - t)
            rss1 = me.memory_info().rss
            s = float(got.sum())
            rss2, av2 = me.memory_info().rss, psutil.virtual_memory().available
            if abs(s - expect) > 1e-6 * abs(expect):
                raise AssertionError("driver get returned wrong data")
            rss_d.append((rss1 - rss0) / MIB)
            rss_d_touch.append((rss2 - rss0) / MIB)
            avail_d.append((av0 - av2) / MIB)
            writeable.append(bool(getattr(getattr(got, "flags", None), "writeable", True)))
            del got
            t = pc()
            s = rt.get(self.r.arr_sum.remote(ref))
            task_s.append(pc() - t)
            if abs(s - expect) > 1e-6 * abs(expect):
                raise AssertionError("task sum returned wrong data")
            del ref
            settle()
        med = statistics.median
        return {
            "W6put": row("large_object put", "GB/s", "higher", [nbytes / GB / x for x in put_s],
                         {"nbytes": nbytes, "put_ms": [x * 1e3 for x in put_s]}),
            "W6a": row("large_object driver get", "ms", "lower", [x * 1e3 for x in get_s],
                       {"nbytes": nbytes, "gb_per_s_median": nbytes / GB / med(get_s),
                        "driver_rss_delta_mib_median": med(rss_d),
                        "driver_rss_delta_after_read_mib_median": med(rss_d_touch),
                        "sys_available_drop_after_read_mib_median": med(avail_d),
                        "result_writeable": writeable}),
            "W6b": row("large_object ref->task sum", "GB/s", "higher",
                       [nbytes / GB / x for x in task_s],
                       {"nbytes": nbytes, "task_ms": [x * 1e3 for x in task_s],
                        "put_plus_task_gb_per_s": [nbytes / GB / (a + b)
                                                   for a, b in zip(put2_s, task_s)]}),
        }

    def W8(self):
        import numpy as np

        rt, take = self.rt, self.r.take_arr
        arr = np.ones(MIB // 8)

        def go(n):
            out = rt.get([take.remote(arr) for _ in range(n)])
            if out[0] != MIB:
                raise AssertionError("bad result")
        return {"W8": self.rate("task_with_1mb_arg", "tasks/s", 200, go, 20)}

    def W9(self):
        rt, spin_task = self.rt, self.r.spin_task
        n, t_single = self.calib["n"], self.calib["t_single"]
        rt.get([spin_task.remote(n // 20) for _ in range(2)])  # warm-up
        walls = []
        for _ in range(self.args.repeats):
            t = pc()
            rt.get([spin_task.remote(n) for _ in range(4)])
            walls.append(pc() - t)
        ideal = 4 * t_single / 2
        extra = {"loop_n": n, "t_single_s": t_single, "t_single_runs": self.calib["t_single_runs"],
                 "ideal_wall_s": ideal,
                 "eff_vs_fixed_2s": [2.0 / w for w in walls]}
        return {
            "W9": row("cpu_parallel wall", "s", "lower", walls, extra),
            "W9eff": row("cpu_parallel efficiency", "ratio", "higher", [ideal / w for w in walls],
                         extra),
        }

    def W10(self):
        rt, sleep_task = self.rt, self.r.sleep_task
        rng = random.Random(12345)
        durs = [rng.uniform(0.0, 0.010) for _ in range(1000)]

        def go(ds):
            pending = [sleep_task.remote(d) for d in ds]
            for _ in range(len(ds) + 1):  # bounded: each wait returns >= 1 ready ref
                if not pending:
                    break
                ready, pending = rt.wait(pending, num_returns=1)
                if not ready:
                    raise AssertionError("wait returned no ready ref")
            if pending:
                raise AssertionError("refs still pending after N waits")

        go(durs[:100])
        vals = []
        for _ in range(self.args.repeats):
            t = pc()
            go(durs)
            vals.append(pc() - t)
        return {"W10": row("many_waits", "s", "lower", vals,
                           {"n": 1000, "seed": 12345, "sum_sleep_s": sum(durs)})}

    def W11(self):
        rt, parent = self.rt, self.r.parent

        def go(n_parents):
            out = rt.get([parent.remote(i) for i in range(n_parents)])
            if out[0] != 45:
                raise AssertionError("bad nested result")

        parent_rate = self.rate("nested", "tasks/s", 100, go, 10)
        with PeakProcesses() as peak:  # a run of its own: sampling costs the driver CPU
            go(100)
        vals = [v * 11 for v in parent_rate["values"]]  # 1 parent + 10 children each
        return {"W11": row("nested", "tasks/s", "higher", vals,
                           {"parents": 100, "children_each": 10, "counted_tasks": 1100,
                            "parents_per_s_median": parent_rate["median"]}),
                "W11peak": row("nested peak processes", "count", "lower", [peak.peak])}


def calibrate_spin(target: float = 1.0):
    n = 200_000
    for _ in range(20):  # bounded
        t = pc()
        spin(n)
        dt = pc() - t
        if dt > 0.1:
            break
        n *= 4
    n = max(1, int(n * target / dt))
    runs = []
    for _ in range(3):
        t = pc()
        spin(n)
        runs.append(pc() - t)
    return {"n": n, "t_single": statistics.median(runs), "t_single_runs": runs}


# --------------------------------------------------------------------------- children


def child_main(args) -> dict:
    import psutil

    mode = args.child
    if mode == "startup":
        t0 = pc()
        rt = importlib.import_module(args.backend)
        import_s = pc() - t0
        t1 = pc()
        rt.init(num_cpus=2)
        init_s = pc() - t1

        @rt.remote
        def noop():
            return 1

        if rt.get(noop.remote()) != 1:
            raise AssertionError("bad first result")
        startup_s = pc() - t1
        snap = descendants()
        t2 = pc()
        rt.shutdown()
        shutdown_s = pc() - t2
        alive = sum(1 for pid, _ in snap if psutil.pid_exists(pid)
                    and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
        return {"import_s": import_s, "init_s": init_s, "startup_s": startup_s,
                "shutdown_s": shutdown_s, "processes_at_first_result": len(snap),
                "alive_right_after_shutdown": alive, "descendants": snap}

    if mode == "idle":
        rt = importlib.import_module(args.backend)
        rt.init(num_cpus=2)
        snap = []
        try:
            @rt.remote
            def noop():
                return 1

            rt.get(noop.remote())
            time.sleep(2.0)
            me = psutil.Process()
            procs = []
            for p in me.children(recursive=True):
                try:
                    with p.oneshot():
                        procs.append({
                            "pid": p.pid, "name": p.name(),
                            "cmd": " ".join(p.cmdline())[:120],
                            "threads": p.num_threads(),
                            "rss_mib": p.memory_info().rss / MIB,
                            "pss_mib": p.memory_full_info().pss / MIB,
                        })
                except psutil.Error:
                    pass
            snap = descendants()
            return {
                "processes": len(procs),
                "threads": sum(p["threads"] for p in procs),
                "rss_mib": sum(p["rss_mib"] for p in procs),
                "pss_mib": sum(p["pss_mib"] for p in procs),
                "driver_threads": me.num_threads(),
                "driver_rss_mib": me.memory_info().rss / MIB,
                "per_process": procs,
                "descendants": snap,
            }
        finally:
            rt.shutdown()

    if mode == "cross_node":
        return child_cross_node(args)
    if mode == "scale_up":
        return child_scale_up(args)
    raise SystemExit(f"unknown child mode {mode}")


def ray_tls_env(directory: str) -> None:
    """Ray's TLS between its processes: a self-signed certificate (also its CA) for
    this machine's addresses (Ray's nodes dial its network address), made with
    openssl, named in Ray's environment variables."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("10.255.255.255", 9))  # no packet is sent
        ip = probe.getsockname()[0]
    cert, key = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=ray",
                    "-addext", f"subjectAltName=IP:127.0.0.1,IP:{ip},DNS:localhost"],
                   check=True, capture_output=True, timeout=60)
    os.environ.update(RAY_USE_TLS="1", RAY_TLS_SERVER_CERT=cert, RAY_TLS_SERVER_KEY=key, RAY_TLS_CA_CERT=cert)


def child_cross_node(args) -> dict:
    import numpy as np

    certs = tempfile.TemporaryDirectory(prefix="raytls-")
    if args.tls and args.backend == "ray":
        ray_tls_env(certs.name)
    rt = importlib.import_module(args.backend)
    Cluster = importlib.import_module(f"{args.backend}.cluster_utils").Cluster

    head = {"num_cpus": 1, "resources": {"node_a": 1}, "object_store_memory": 1 << 30}
    if args.tls and args.backend == "nbcluster":
        head["_tls"] = True
    cluster = Cluster(initialize_head=True, head_node_args=head)
    snap = []
    try:
        cluster.add_node(num_cpus=1, resources={"node_b": 1}, object_store_memory=1 << 30)
        cluster.wait_for_nodes()
        rt.init(address=cluster.address)
        n = 100 * MIB // 8

        @rt.remote(resources={"node_a": 0.01})
        def make():
            return np.ones(n)

        @rt.remote(resources={"node_b": 0.01})
        def consume(arr):
            return float(arr.sum())

        def once():
            ref = make.remote()
            rt.wait([ref], fetch_local=False)
            t = pc()
            s = rt.get(consume.remote(ref))
            dt = pc() - t
            if s != n:
                raise AssertionError("bad cross-node sum")
            return dt

        once()
        vals = [n * 8 / GB / once() for _ in range(args.repeats)]

        @rt.remote(resources={"node_b": 0.001})
        def noop_b():
            return 1

        def tasks_b():
            t = pc()
            if sum(rt.get([noop_b.remote() for _ in range(CROSS_TASKS)])) != CROSS_TASKS:
                raise AssertionError("bad cross-node results")
            return CROSS_TASKS / (pc() - t)

        tasks_b()
        task_vals = [tasks_b() for _ in range(args.repeats)]
        snap = descendants()
        return {"values": vals, "task_values": task_vals, "nbytes": n * 8, "descendants": snap}
    finally:
        rt.shutdown()
        cluster.shutdown()
        certs.cleanup()


def child_scale_up(args) -> dict:
    import threading

    rt = importlib.import_module(args.backend)
    from nbcluster.state import get_autoscaler_state, list_nodes

    config = {
        "max_workers": 1, "idle_timeout_minutes": 1 / 60, "head_node_type": "head",
        "available_node_types": {"head": {"resources": {"CPU": 0}},
                                 "cpu_worker": {"resources": {"CPU": 1}, "max_workers": 1}},
    }
    rt.init(autoscaling_config=config, autoscaler_events=False)
    snap = []
    try:
        @rt.remote
        def started():
            return time.time(), rt.get_runtime_context().get_node_id()

        def workers():
            return [n for n in list_nodes() if n.state == "ALIVE" and not n.is_head]

        totals, decide, register, down = [], [], [], []
        for i in range(args.repeats + 1):  # the first is a warm-up
            deadline = time.monotonic() + 60
            while workers():
                if time.monotonic() > deadline:
                    raise AssertionError("a worker node outlived the idle timeout")
                time.sleep(0.02)
            seen: dict[str, float] = {}
            stop = threading.Event()

            def watch(seen=seen, stop=stop):
                while not stop.is_set():
                    for n in workers():
                        seen.setdefault(n.node_id, time.time())
                    time.sleep(0.01)

            watcher = threading.Thread(target=watch, daemon=True)
            watcher.start()
            t0 = time.time()
            t_run, node = rt.get(started.remote(), timeout=120)
            t_end = time.time()
            stop.set()
            watcher.join()
            events = [e for e in get_autoscaler_state().events if e.time >= t0 - 0.5]
            adding = next(e.time for e in events if e.message.startswith("Adding"))
            deadline = time.monotonic() + 60
            while any(n.node_id == node for n in workers()):
                if time.monotonic() > deadline:
                    raise AssertionError("the idle node was not removed")
                time.sleep(0.02)
            t_gone = time.time()
            if i == 0:
                continue
            totals.append(t_run - t0)
            decide.append(adding - t0)
            register.append(seen.get(node, t_run) - t0)
            down.append(t_gone - t_end)
        nodes = list_nodes()
        removed = [n for n in nodes if not n.is_head]
        balanced = all(n.resources_available == n.resources_total for n in nodes if n.state == "ALIVE")
        snap = descendants()
        return {"values": totals, "decision_s": decide, "registered_s": register, "scale_down_s": down,
                "idle_timeout_s": 1.0, "removed_by_autoscaler": sum("autoscaler" in n.death_reason for n in removed),
                "nodes_launched": len(removed), "balanced": balanced, "descendants": snap}
    finally:
        rt.shutdown()


# --------------------------------------------------------------------------- main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--backend", required=True, choices=["ray", "nbcluster"])
    ap.add_argument("--only", default="", help="comma-separated groups, e.g. W1,W6,W7,F")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", dest="json_out", help="write results here")
    ap.add_argument("--timeout", type=float, default=300.0, help="budget per workload, s")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--tls", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--client", action="store_true",
                    help="in-cluster workloads from a driver with no node (client mode / Ray Client)")
    args = ap.parse_args()

    if args.backend == "ray":
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no phoning home
        if not args.child:  # Ray keeps its session directories: give them a root of this run's, removed at exit
            os.environ["RAY_TMPDIR"] = tempfile.mkdtemp(prefix="raybench-")
            atexit.register(shutil.rmtree, os.environ["RAY_TMPDIR"], True)
    else:
        # benchmarks/ is sys.path[0]; make the repo's package importable, here and in
        # any worker processes the runtime starts.
        if REPO_ROOT not in sys.path:
            sys.path.insert(1, REPO_ROOT)
        pp = os.environ.get("PYTHONPATH", "")
        if REPO_ROOT not in pp.split(os.pathsep):
            os.environ["PYTHONPATH"] = REPO_ROOT + (os.pathsep + pp if pp else "")

    if args.child:
        try:
            res = child_main(args)
        except BaseException as exc:  # report, don't hang the parent
            res = {"error": f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"}
        print(RESULT_MARK + json.dumps(res), flush=True)
        return 0

    only = [g.strip().upper() for g in args.only.split(",") if g.strip()]
    bad = [g for g in only if g not in GROUPS]
    if bad:
        ap.error(f"unknown workloads {bad}; choose from {GROUPS}")
    selected = [g for g in GROUPS if not only or g in only]

    results: dict = {"_meta": {
        "backend": args.backend, "python": sys.version.split()[0],
        "executable": sys.executable, "platform": platform.platform(),
        "cpus": os.cpu_count(), "repeats": args.repeats, "selected": selected,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"), "client": args.client,
    }}

    def save():
        if args.json_out:
            tmp = args.json_out + ".tmp"
            with open(tmp, "w") as f:
                json.dump(results, f, indent=1)
            os.replace(tmp, args.json_out)

    try:
        rt = importlib.import_module(args.backend)
    except BaseException as exc:
        results["_error"] = f"import {args.backend} failed: {type(exc).__name__}: {exc}"
        log(results["_error"])
        save()
        return 2
    version = getattr(rt, "__version__", None)
    if version is None:
        try:
            from importlib.metadata import version as dist_version

            version = dist_version(args.backend)
        except Exception:
            version = None
    results["_meta"]["version"] = version
    log(f"{args.backend} {results['_meta']['version']} on {sys.executable}")
    signal.signal(signal.SIGALRM, _on_alarm)

    def record(group, fn):
        log(f"{group} ...")
        signal.alarm(int(args.timeout))
        try:
            out = fn()
            signal.alarm(0)
            results.update(out)
            for k, v in out.items():
                if "median" in v:
                    log(f"{k}: {v['median']:.4g} {v['unit']} (min {v['min']:.4g}, max {v['max']:.4g})")
                else:
                    log(f"{k}: {v}")
        except BaseException as exc:
            signal.alarm(0)
            results[group] = {"error": f"{type(exc).__name__}: {exc}"}
            log(f"{group} failed: {type(exc).__name__}: {exc}")
            traceback.print_exc()
            if isinstance(exc, KeyboardInterrupt):
                raise
        save()

    in_cluster = [g for g in IN_CLUSTER if g in selected]
    calib = None
    if "W9" in selected:
        calib = calibrate_spin()
        log(f"W9 calibration: n={calib['n']} t_single={calib['t_single']:.3f} s")
    head, head_root = None, ""
    if in_cluster:
        snap = []
        try:
            signal.alarm(int(args.timeout))
            if args.client:
                root = head_root = tempfile.mkdtemp(prefix=f"{args.backend}-head-")
                atexit.register(shutil.rmtree, root, True)
                head, address, kwargs = start_head_apart(args.backend, root)
                init_client(rt, address, kwargs)
            else:
                rt.init(num_cpus=2)
            bench = Bench(rt, args, calib)
            rt.get(bench.r.noop.remote())
            signal.alarm(0)
            for g in in_cluster:
                record(g, getattr(bench, g))
        except BaseException as exc:
            signal.alarm(0)
            results["_error"] = f"cluster run failed: {type(exc).__name__}: {exc}"
            log(results["_error"])
            traceback.print_exc()
        finally:
            signal.alarm(0)
            snap = descendants()
            t = pc()
            try:
                rt.shutdown()
            except BaseException as exc:
                log(f"shutdown failed: {exc}")
            results["_meta"]["main_shutdown_s"] = pc() - t
            results["_meta"]["main_leftover_killed"] = reap(snap)
            if head is not None:  # the head apart: stopped as a user would, then its session, by id
                if args.backend == "nbcluster":  # (a node killed outright would leave its store in /dev/shm)
                    subprocess.run([sys.executable, "-m", "nbcluster.runtime.cli", "stop"], timeout=60,
                                   env={**os.environ, "NBCLUSTER_TEMP_DIR": head_root}, capture_output=True)
                head.terminate()
                try:
                    head.wait(30)
                except subprocess.TimeoutExpired:
                    pass
                results["_meta"]["head_leftover_killed"] = kill_session(head.pid, grace=5.0)
                head.communicate()
            save()

    if "W7" in selected:
        def w7():
            tmo = min(args.timeout, 120)
            run_child(args, "startup", tmo)  # warm-up (file cache), discarded
            runs = [run_child(args, "startup", tmo) for _ in range(args.repeats)]
            extra = {k: [r[k] for r in runs] for k in
                     ("import_s", "init_s", "processes_at_first_result",
                      "alive_right_after_shutdown", "leftover_killed")}
            return {
                "W7": row("startup", "s", "lower", [r["startup_s"] for r in runs], extra),
                "W7shutdown": row("shutdown", "s", "lower", [r["shutdown_s"] for r in runs], extra),
            }
        record("W7", w7)

    if "W12" in selected:
        def w12():
            r = run_child(args, "cross_node", min(args.timeout, 240))
            return {"W12": row("cross_node", "GB/s", "higher", r["values"],
                               {"nbytes": r["nbytes"], "how": f"{args.backend}.cluster_utils.Cluster, 2 node managers",
                                "leftover_killed": r["leftover_killed"]})}
        record("W12", w12)

    if "T" in selected:
        def tls_cost():
            out = {}
            for tls, suffix in ((False, ""), (True, "tls")):
                r = run_child(args, "cross_node", min(args.timeout, 240), tls=tls)
                how = {"tls": tls, "leftover_killed": r["leftover_killed"]}
                out[f"T12{suffix}"] = row("cross_node" + (" TLS" if tls else ""), "GB/s", "higher", r["values"], how)
                out[f"T14{suffix}"] = row("cross_node tasks" + (" TLS" if tls else ""), "tasks/s", "higher",
                                          r["task_values"], how)
            return out
        record("T", tls_cost)

    if "W13" in selected:
        if args.backend != "nbcluster":
            results["W13"] = {"skipped": "Ray's local autoscaling harness (AutoscalingCluster) runs "
                                         "`ray stop --force`, ending every Ray process on the machine"}
            save()
        else:
            def w13():
                r = run_child(args, "scale_up", min(args.timeout, 300))
                extra = {k: r[k] for k in ("decision_s", "registered_s", "scale_down_s", "idle_timeout_s",
                                           "removed_by_autoscaler", "nodes_launched", "balanced",
                                           "leftover_killed")}
                return {"W13": row("scale_up", "s", "lower", r["values"], extra)}
            record("W13", w13)

    if "F" in selected:
        def f_idle():
            runs = [run_child(args, "idle", min(args.timeout, 120)) for _ in range(args.repeats)]
            last = runs[-1]
            extra = {"per_process_last_run": last["per_process"],
                     "driver_threads": [r["driver_threads"] for r in runs],
                     "driver_rss_mib": [r["driver_rss_mib"] for r in runs],
                     "leftover_killed": [r["leftover_killed"] for r in runs]}
            return {
                "F_processes": row("idle processes", "count", "lower", [r["processes"] for r in runs]),
                "F_threads": row("idle threads", "count", "lower", [r["threads"] for r in runs]),
                "F_rss": row("idle RSS (sum)", "MiB", "lower", [r["rss_mib"] for r in runs]),
                "F_pss": row("idle PSS (sum)", "MiB", "lower", [r["pss_mib"] for r in runs], extra),
            }
        record("F", f_idle)

    results["_meta"]["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    save()
    return 1 if "_error" in results else 0


if __name__ == "__main__":
    sys.exit(main())
