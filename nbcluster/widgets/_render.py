"""The ClusterWidget's panels as HTML, from plain rows (shared by the live widget
and its static HTML repr)."""

from __future__ import annotations

import time
from typing import Any

from nbcluster.state import AutoscalerState, machine_memory

from ._display import bar_html, esc, fmt_bytes, fmt_duration

__all__ = ["autoscaler_html", "header_html", "header_text", "job_label", "jobs_table_html", "nodes_html", "totals"]

_TABLE = '<table style="border-collapse:collapse;font-size:12px">'
_TH = '<th style="text-align:left;padding:2px 8px">{}</th>'
_TD = '<td style="text-align:left;padding:2px 8px">{}</td>'


def _table(headers: list[str], rows: list[list[str]]) -> str:
    head = "<tr>" + "".join(_TH.format(esc(h)) for h in headers) + "</tr>"
    body = "".join("<tr>" + "".join(_TD.format(c) for c in row) + "</tr>" for row in rows)
    return f"{_TABLE}{head}{body}</table>"


def totals(rows: list[dict[str, Any]]) -> dict[str, float]:
    alive = [r for r in rows if r["state"] == "ALIVE"]
    memory = machine_memory(rows)  # each machine once: its nodes all report its memory
    return {
        "memory_used": memory["used"],
        "memory_total": memory["total"],
        "alive": len(alive),
        "total": len(rows),
        "cpu_used": sum(r["cpu_used"] for r in alive),
        "cpu_total": sum(r["cpu_total"] for r in alive),
        "gpu_used": sum(r["gpu_used"] for r in alive),
        "gpu_total": sum(r["gpu_total"] for r in alive),
        "store_used": sum(r["object_store_used"] for r in alive),
        "store_total": sum(r["object_store_capacity"] for r in alive),
    }


def header_text(address: str, start_time: float, rows: list[dict[str, Any]]) -> str:
    t = totals(rows)
    uptime = fmt_duration(time.time() - start_time) if start_time else "?"
    text = (
        f"nbcluster {address or 'connected'}, up {uptime}: {t['alive']}/{t['total']} nodes alive, "
        f"CPU {t['cpu_used']:g}/{t['cpu_total']:g}"
    )
    if t["gpu_total"]:
        text += f", GPU {t['gpu_used']:g}/{t['gpu_total']:g}"
    if t["memory_total"]:
        text += f", memory {fmt_bytes(t['memory_used'])}/{fmt_bytes(t['memory_total'])}"
    return text + f", object store {fmt_bytes(t['store_used'])}/{fmt_bytes(t['store_total'])}"


def header_html(address: str, start_time: float, rows: list[dict[str, Any]]) -> str:
    return f"<b>{esc(header_text(address, start_time, rows))}</b>"


def nodes_html(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "<i>no nodes</i>"
    out = []
    for r in rows:
        state = r["state"] + (" (draining)" if r.get("draining") else "")
        out.append([
            esc(r["short_id"]),
            esc(r["address"]),
            esc(r["node_type"]),
            esc(state),
            bar_html(r["cpu_used"], r["cpu_total"], f"{r['cpu_used']:g}/{r['cpu_total']:g}"),
            bar_html(r.get("memory_used", 0), r.get("memory_total", 0),
                     f"{fmt_bytes(r.get('memory_used', 0))}/{fmt_bytes(r.get('memory_total', 0))}"),
            bar_html(r["object_store_used"], r["object_store_capacity"],
                     f"{fmt_bytes(r['object_store_used'])}/{fmt_bytes(r['object_store_capacity'])}"),
            esc(r["tasks_running"]),
        ])
    return _table(["node", "address", "type", "state", "CPU", "memory", "object store", "tasks"], out)


def autoscaler_html(state: AutoscalerState | None, timeline: list[str]) -> str:
    if state is None or not state.enabled:
        return ""
    types = _table(
        ["node type", "running", "pending", "stopping", "min", "max"],
        [[esc(t.name), esc(t.running), esc(t.pending), esc(t.stopping), esc(t.min_workers), esc(t.max_workers)]
         for t in state.node_types],
    )
    parts = [f"<b>Autoscaler</b>{types}"]
    if state.demand:
        demand = _table(
            ["demand", "kind", "count", "status", "reason"],
            [[esc(_shape(d.shape)), esc(d.kind), esc(d.count), f"<b>{esc(d.status)}</b>", esc(d.reason)]
             for d in state.demand],
        )
        parts.append(f"<b>Pending demand</b>{demand}")
    if timeline:
        items = "".join(f"<li>{esc(line)}</li>" for line in timeline[-10:])
        parts.append(f'<b>Decisions</b><ul style="margin:2px 0;font-size:12px">{items}</ul>')
    return "".join(parts)


def _shape(shape: dict[str, float]) -> str:
    return ", ".join(f"{k}: {v:g}" for k, v in sorted(shape.items())) or "{}"


def job_label(job: dict[str, Any]) -> str:
    """One job's row as HTML (the progress bar is a widget beside it)."""
    end = job["end_time"] or time.time()
    duration = fmt_duration(end - job["start_time"]) if job["start_time"] else ""
    entry = job["entrypoint"] if len(job["entrypoint"]) <= 60 else job["entrypoint"][:59] + "…"
    return (
        f'<span style="font-family:monospace;font-size:12px">{esc(job["display_id"])}</span> '
        f"{esc(job['type'])} <b>{esc(job['status'])}</b> {esc(duration)} "
        f'<code style="font-size:11px">{esc(entry)}</code>'
    )


def jobs_table_html(jobs: list[dict[str, Any]], progress: dict[str, tuple[int, int]]) -> str:
    if not jobs:
        return "<i>no jobs</i>"
    rows = []
    for job in jobs:
        finished, total = progress.get(job["job_id"], (0, 0))
        rows.append([job_label(job), bar_html(finished, total, f"{finished}/{total} tasks")])
    return _table(["job", "progress"], rows)
