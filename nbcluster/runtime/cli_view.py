"""Text for the terminal: ``nbcluster status`` and the tables of ``nbcluster list``.

Pure functions of the state API's snapshots, so they are tested without a cluster.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from nbcluster.runtime.bundles import is_group_resource
from nbcluster.runtime.state import ActorState, AutoscalerState, JobState, NodeState, PlacementGroupState, TaskState

#: Resources every node has that ``status`` shows in their own columns or not at all.
_SYSTEM_RESOURCES = ("CPU", "GPU", "memory", "object_store_memory")


def human_bytes(n: float) -> str:
    """``n`` bytes as B, KiB, MiB, GiB or TiB."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def _amount(x: float) -> str:
    return f"{x:g}"


def _used_total(total: float, available: float) -> str:
    return f"{_amount(total - available)}/{_amount(total)}"


def _custom(resources: dict[str, float]) -> list[str]:
    """Custom resource names; a placement group's (``CPU_group_...``) are left out: its
    bundles show in their own section."""
    return sorted(
        k for k in resources if k not in _SYSTEM_RESOURCES and not k.startswith("node:") and not is_group_resource(k)
    )


def _shape(demand: dict[str, float]) -> str:
    return ", ".join(f"{k}: {_amount(v)}" for k, v in sorted(demand.items()) if v) or "(no resources)"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Left-aligned columns, two spaces apart, trailing blanks trimmed."""
    cells = [list(map(str, headers))] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells)


def _clip(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _clock(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) if t else "-"


def _duration(start: float, end: float) -> str:
    if not start:
        return "-"
    seconds = (end or time.time()) - start
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.1f} s"


def in_state(items: Sequence[Any], state: str) -> list[Any]:
    """The items a listing's ``--state`` keeps: their shown state (a draining node's is
    DRAINING; a job's is its status) equal to ``state``, in any case."""
    def shown(item: Any) -> str:
        if isinstance(item, NodeState):
            return item.shown_state
        return str(getattr(item, "state", getattr(item, "status", "")))
    return [i for i in items if shown(i).upper() == state.upper()]


def node_rows(nodes: Sequence[NodeState]) -> tuple[list[str], list[list[Any]]]:
    """Headers and rows of ``nbcluster list nodes``."""
    headers = ["NODE_ID", "STATE", "ADDRESS", "CPU", "GPU", "OTHER RESOURCES", "MEMORY", "OBJECT STORE", "WORKERS"]
    rows = []
    for n in sorted(nodes, key=lambda n: (n.state != "ALIVE", not n.is_head, n.start_time)):
        total, avail = n.resources_total, n.resources_available
        other = " ".join(f"{k} {_used_total(total[k], avail.get(k, 0))}" for k in _custom(total)) or "-"
        rows.append([
            n.node_id,
            n.shown_state,
            (n.address or n.node_ip) + (" (head)" if n.is_head else ""),
            _used_total(total.get("CPU", 0), avail.get("CPU", 0)),
            _used_total(total["GPU"], avail.get("GPU", 0)) if total.get("GPU") else "-",
            other,
            f"{human_bytes(n.memory_used)} / {human_bytes(n.memory_total)}" if n.memory_total else "-",
            f"{human_bytes(n.object_store_used)} / {human_bytes(n.object_store_capacity)}",
            n.num_workers if n.state == "ALIVE" else "-",
        ])
    return headers, rows


def actor_rows(actors: Sequence[ActorState]) -> tuple[list[str], list[list[Any]]]:
    """Headers and rows of ``nbcluster list actors``."""
    headers = ["ACTOR_ID", "CLASS", "STATE", "NAME", "NODE", "PID", "RESTARTS", "DEATH CAUSE"]
    rows = [
        [a.actor_id, a.class_name, a.state, a.name or "-", a.node_id[:12] or "-", a.pid or "-",
         f"{a.num_restarts}/{'inf' if a.max_restarts < 0 else a.max_restarts}", _clip(a.death_cause, 50) or "-"]
        for a in actors
    ]
    return headers, rows


def task_rows(tasks: Sequence[TaskState]) -> tuple[list[str], list[list[Any]]]:
    """Headers and rows of ``nbcluster list tasks``."""
    headers = ["TASK_ID", "NAME", "STATE", "NODE", "ATTEMPT", "DURATION", "ERROR"]
    rows = [
        [t.task_id, _clip(t.name, 40), t.state, t.node_id[:12] or "-", t.attempt,
         _duration(t.start_time, t.end_time), _clip(t.error.strip().splitlines()[-1] if t.error.strip() else "-", 50)]
        for t in tasks
    ]
    return headers, rows


def _job_entry(job: JobState, width: int) -> str:
    """What a job runs; a notebook's path clipped at its start, where its file's name is not."""
    notebook = job.metadata.get("notebook_path", "")
    if not notebook:
        return _clip(job.entrypoint, width)
    return notebook if len(notebook) <= width else "…" + notebook[-(width - 1):]


def job_rows(jobs: Sequence[JobState]) -> tuple[list[str], list[list[Any]]]:
    """Headers and rows of ``nbcluster list jobs``: a driver in a Jupyter kernel is shown by
    its notebook (``notebook_path``, which follows renames), not the kernel's command line."""
    headers = ["JOB_ID", "SUBMISSION_ID", "TYPE", "STATUS", "DRIVER_PID", "STARTED", "ENTRYPOINT"]
    rows = [[j.job_id, j.submission_id or "-", j.type, j.status, j.driver_pid or "-", _clock(j.start_time),
             _job_entry(j, 60)] for j in jobs]
    return headers, rows


def placement_group_rows(groups: Sequence[PlacementGroupState]) -> tuple[list[str], list[list[Any]]]:
    """Headers and rows of ``nbcluster list placement-groups``."""
    headers = ["PLACEMENT_GROUP_ID", "NAME", "STATE", "STRATEGY", "BUNDLES", "NODES", "REASON"]
    rows = [
        [g.placement_group_id, g.name or "-", g.state, g.strategy,
         " ".join("{" + _shape(b) + "}" for b in g.bundles),
         " ".join(n[:8] or "-" for n in g.bundles_to_node_id) if any(g.bundles_to_node_id) else "-",
         _clip(g.reason, 50) or "-"]
        for g in groups
    ]
    return headers, rows


def placement_group_lines(groups: Sequence[PlacementGroupState]) -> list[str]:
    """The placement group section of ``nbcluster status``: counts by state, and the
    groups that wait, with why."""
    live = [g for g in groups if g.state != "REMOVED"]
    counts = Counter(g.state for g in live)
    lines = ["Placement groups" + (f" ({', '.join(f'{n} {s}' for s, n in sorted(counts.items()))})" if live else "")]
    for g in live:
        if g.state in ("PENDING", "RESCHEDULING"):
            bundles = " ".join("{" + _shape(b) + "}" for b in g.bundles)
            lines.append(f"  {g.name or g.placement_group_id[:12]} {g.state} {g.strategy} {bundles}: {g.reason or 'waiting'}")
    if not live:
        lines.append("  (none)")
    return lines


ROWS: dict[str, Callable[[Any], tuple[list[str], list[list[Any]]]]] = {
    "nodes": node_rows,
    "actors": actor_rows,
    "tasks": task_rows,
    "jobs": job_rows,
    "placement-groups": placement_group_rows,
}


def autoscaler_lines(auto: AutoscalerState) -> list[str]:
    """Per node type counts, waiting demand classified, the recent decisions."""
    lines = [
        f"Autoscaler (cluster {auto.cluster_name}: max_workers {auto.max_workers}, "
        f"idle timeout {auto.idle_timeout_s:g} s)",
        table(
            ["NODE_TYPE", "RUNNING", "PENDING", "STOPPING", "MIN", "MAX", "RESOURCES"],
            [[t.name, t.running, t.pending, t.stopping, t.min_workers, t.max_workers, "{" + _shape(t.resources) + "}"]
             for t in auto.node_types if t.max_workers or t.running or t.pending]
        ),
        "",
        "Pending demand",
    ]
    for d in auto.demand:
        what = f"{d.count} {'requested bundle' if d.kind == 'request' else 'pending ' + d.kind}{'s' if d.count != 1 else ''}"
        lines.append(f"  {{{_shape(d.shape)}}}: {what}; {d.status}: {d.reason}")
    if not auto.demand:
        lines.append("  (none)")
    lines += ["", "Recent autoscaler events"]
    lines += [f"  {_clock(e.time)}  {e.message}" for e in auto.events[-10:]] or ["  (none)"]
    return lines


def _draining_lines(nodes: Sequence[NodeState], now: float | None) -> list[str]:
    """Why each draining node drains, and when it will have left."""
    lines = []
    for n in nodes:
        if n.draining:
            left = max(0.0, n.drain_deadline - (now or time.time()))
            until = f"; leaving within {left:.0f} s" if n.drain_deadline else ""
            lines.append(f"  {n.node_id[:12]} is draining: {n.drain_reason or 'it takes no new work'}{until}")
    return lines


def status_text(
    address: str, nodes: Sequence[NodeState], now: float | None = None, autoscaler: AutoscalerState | None = None,
    placement_groups: Sequence[PlacementGroupState] = (),
) -> str:
    """What ``nbcluster status`` prints: nodes, cluster-wide use, pending demand (and
    the autoscaler's view, when the cluster has one), placement groups."""
    alive = [n for n in nodes if n.state == "ALIVE"]
    dead = sorted((n for n in nodes if n.state != "ALIVE"), key=lambda n: -n.end_time)
    lines = [
        f"======== nbcluster status {_clock(now or time.time())} ========",
        f"Cluster at {address}: {len(alive)} node{'s' if len(alive) != 1 else ''} alive, {len(dead)} dead",
        "",
        "Nodes",
        table(*node_rows(alive)) if alive else "  (none)",
        *_draining_lines(alive, now),
        "",
        "Resources in use (alive nodes)",
    ]
    totals: Counter[str] = Counter()
    avails: Counter[str] = Counter()
    for n in alive:
        totals.update(n.resources_total)
        avails.update(n.resources_available)
    names = [k for k in ("CPU", "GPU") if totals.get(k)] + _custom(dict(totals))
    usage = [[f"  {k}", f"{_amount(totals[k] - avails[k])} / {_amount(totals[k])}"] for k in names]
    used = sum(n.object_store_used for n in alive)
    capacity = sum(n.object_store_capacity for n in alive)
    usage.append(["  object store", f"{human_bytes(used)} / {human_bytes(capacity)}"])
    lines.append(table(["", ""], usage).split("\n", 1)[1])
    if autoscaler is not None and autoscaler.enabled:
        lines += [""] + autoscaler_lines(autoscaler)
    else:
        lines += ["", "Pending demand (requests for workers that wait for resources)"]
        demand = Counter(_shape(d) for n in alive for d in n.pending_demand)
        lines += [f"  {{{shape}}}: {count} waiting" for shape, count in demand.most_common()] or ["  (none)"]
    lines += [""] + placement_group_lines(placement_groups)
    if dead:
        lines += ["", "Dead nodes (most recent first)"]
        lines.append(table(
            ["NODE_ID", "ADDRESS", "DIED", "REASON"],
            [[n.node_id, n.address or n.node_ip, _clock(n.end_time), _clip(n.death_reason, 60) or "-"]
             for n in dead[:10]],
        ))
        if len(dead) > 10:
            lines.append(f"  ... and {len(dead) - 10} more (nbcluster list nodes)")
    return "\n".join(lines)
