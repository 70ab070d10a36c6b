/* nbcluster's cluster page: the selected cluster's panels drawn from the server's JSON —
 * summary, nodes, autoscaler (node types, pending demand), its timeline and the jobs.
 *
 * Plain functions of their data; they only write the DOM of the detail panel, and only
 * as text (through h()). The view (view.js) decides when to call them.
 */

import {$, badge, bar, fmtBytes, fmtClock, fmtDuration, fmtNum, fmtShape, h} from "./lib.js";

const DEAD_NODES_SHOWN = 10;

/** A job's id as the page shows it: its submission id, else its job id. */
export function jobId(job) {
  return job.submission_id || job.job_id || "";
}

/** What a job runs, as the page shows it: a driver in a Jupyter kernel by its notebook
 * (its notebook_path, which follows renames), else its entrypoint (as `nbcluster list jobs`). */
export function jobRuns(job) {
  return (job.metadata && job.metadata.notebook_path) || job.entrypoint || "";
}

/** The summary list: address, origin, nodes alive, CPU/memory/store bars, drivers. */
export function summary(c, t) {
  $("sum-address").textContent = c.address || "—";
  $("sum-origin").textContent = c.provider === "kubernetes"
    ? `created on Kubernetes, namespace ${(c.spec || {}).namespace}` : c.origin || "—";
  const nodes = $("sum-nodes");
  nodes.textContent = `${fmtNum(t.alive)} / ${fmtNum(t.total)}`;
  nodes.dataset.alive = String(t.alive);
  nodes.dataset.total = String(t.total);
  const put = (id, value, fmt, label) => {
    const el = $(id);
    if (!value || !value.total) { el.textContent = "—"; return; }
    el.replaceChildren(bar(value.used, value.total, `${fmt(value.used)} / ${fmt(value.total)}`, label));
  };
  put("sum-cpu", t.cpu, fmtNum, "CPU used");
  put("sum-memory", t.memory, fmtBytes, "Machine memory used");
  $("sum-memory").title = t.memory && t.memory.machines ? `physical memory of ${t.memory.machines} machine` +
    `${t.memory.machines === 1 ? "" : "s"}, each counted once` : "";
  put("sum-store", t.store, fmtBytes, "Object store used");
  const drivers = c.drivers || [];
  $("sum-drivers").replaceChildren(...(drivers.length ? drivers.map((d) => h("span", {class: "driver"},
    d.notebook_path || (d.kernel_id ? `kernel ${d.kernel_id.slice(0, 8)}` : `job ${d.job_id || "?"}`)))
    : ["none"]));
}

/** The nodes table: the live ones (head first), then the last few dead; null: loading. */
export function nodes(list) {
  const sorted = [...(list || [])];
  const rank = (n) => (n.state === "ALIVE" ? 0 : 1);
  sorted.sort((a, b) => rank(a) - rank(b) || Number(b.is_head) - Number(a.is_head) ||
    (a.start_time || 0) - (b.start_time || 0));
  const dead = sorted.filter((n) => n.state !== "ALIVE");
  const shown = sorted.filter((n) => n.state === "ALIVE").concat(dead.slice(-DEAD_NODES_SHOWN));
  $("nodes-body").replaceChildren(...(shown.length ? shown.map((n) => {
    const total = Number(n.resources_total.CPU) || 0;
    const used = total - (n.resources_available.CPU ?? total);
    const type = n.node_type || (n.is_head ? "head" : "worker");
    return h("tr", {class: `node node-${String(n.state).toLowerCase()}`, dataset: {nodeId: n.node_id,
      state: n.state, nodeType: type}, "data-testid": "node-row"},
      h("td", {class: "mono", title: n.node_id}, n.node_id.slice(0, 8), n.is_head ? h("span",
        {class: "tag"}, "head") : null),
      h("td", {class: "mono"}, n.address || n.node_ip || ""),
      h("td", {}, type),
      h("td", {title: n.death_reason || null}, badge(n.state), n.draining ? badge("draining") : null),
      h("td", {}, bar(used, total, `${fmtNum(used)} / ${fmtNum(total)}`, `CPU used on ${n.node_id.slice(0, 8)}`)),
      h("td", {class: "num"}, fmtNum(n.tasks_running || 0)));
  }) : [h("tr", {}, h("td", {colspan: 6, class: "empty"}, list === null ? "loading…" : "No nodes."))]));
}

/** The autoscaler's node types and pending demand (or the note that there is none). */
export function autoscaler(state) {
  const a = state || {enabled: false};
  $("autoscaler").dataset.enabled = String(Boolean(a.enabled));
  $("autoscaler-off").hidden = Boolean(a.enabled);
  $("autoscaler-on").hidden = !a.enabled;
  if (!a.enabled) return;
  $("node-types-body").replaceChildren(...(a.node_types || []).map((t) => h("tr",
    {dataset: {nodeType: t.name}, "data-testid": "node-type-row"},
    h("td", {}, t.name, h("span", {class: "muted"}, ` ${fmtShape(t.resources)}`)),
    h("td", {class: "num", dataset: {field: "running"}}, fmtNum(t.running)),
    h("td", {class: "num", dataset: {field: "pending"}}, fmtNum(t.pending)),
    h("td", {class: "num"}, fmtNum(t.stopping)),
    h("td", {class: "num"}, fmtNum(t.min_workers)),
    h("td", {class: "num"}, fmtNum(t.max_workers)))));
  const demand = a.demand || [];
  $("demand-empty").hidden = demand.length > 0;
  $("demand-table").hidden = demand.length === 0;
  $("demand-body").replaceChildren(...demand.map((d) => h("tr", {"data-testid": "demand-row"},
    h("td", {class: "mono"}, fmtShape(d.shape)),
    h("td", {}, d.kind),
    h("td", {class: "num"}, fmtNum(d.count)),
    h("td", {}, badge(d.status, `demand-${d.status}`)),
    h("td", {}, d.reason || ""))));
}

/** The autoscaler's sentences ({time, message}, oldest first), shown newest first. */
export function timeline(entries) {
  const items = [...entries].reverse(); // newest first
  $("timeline-empty").hidden = items.length > 0;
  $("timeline").replaceChildren(...items.map((e) => h("li", {"data-testid": "timeline-item"},
    h("time", {datetime: new Date(e.time * 1000).toISOString()}, fmtClock(e.time)),
    h("span", {class: "sentence"}, e.message))));
}

/**
 * The jobs table, newest first. ``progress``: job id -> {finished, total} from the event
 * stream; ``logJob``: the job whose log is shown; ``onShowLog(id)``: a job's button.
 */
export function jobs(list, {progress, logJob, onShowLog}) {
  const sorted = [...(list || [])].sort((a, b) => (b.start_time || 0) - (a.start_time || 0));
  $("jobs-empty").hidden = sorted.length > 0;
  $("jobs-table").hidden = sorted.length === 0;
  const now = Date.now();
  $("jobs-body").replaceChildren(...sorted.map((j) => {
    const id = jobId(j);
    const own = j.progress && j.progress.submitted ? {finished: j.progress.finished, total: j.progress.submitted}
      : null;
    const counts = progress.get(j.job_id) || own;
    const entry = jobRuns(j);
    const shown = entry.length > 80 ? "…" + entry.slice(-79) : entry;
    const duration = h("td", {class: "num duration", dataset: j.start_time && !j.end_time ?
      {start: String(j.start_time)} : {}},
    j.start_time ? fmtDuration(((j.end_time || now) - j.start_time) / 1000) : "");
    return h("tr", {class: logJob === id ? "selected" : "", dataset: {jobId: id, status: j.status},
      "data-testid": "job-row"},
      h("td", {class: "mono"}, h("button", {type: "button", class: "link", title: "Show its log",
        "aria-pressed": logJob === id ? "true" : "false", onclick: () => onShowLog(id)}, id)),
      h("td", {}, String(j.type || "").toLowerCase()),
      h("td", {}, badge(j.status), counts && counts.total ? h("span", {class: "muted"},
        ` ${counts.finished}/${counts.total} tasks`) : null),
      h("td", {class: "mono entry", title: j.entrypoint || entry}, shown),
      duration);
  }));
}

/** Advance the durations of running jobs (no requests). */
export function durations() {
  const now = Date.now();
  for (const cell of document.querySelectorAll("#jobs-body td.duration[data-start]")) {
    cell.textContent = fmtDuration((now - Number(cell.dataset.start)) / 1000);
  }
}
