/* nbcluster's cluster page: the selected cluster, live — its header and summary, the
 * scale/adapt controls' state, nodes, autoscaler with its timeline, jobs and a job's log
 * tail, kept current by one EventSource.
 *
 * Live updates come from one EventSource per selected cluster
 * (api/clusters/{name}/events?replay=1), and one for the log shown
 * (api/clusters/{name}/jobs/{id}/logs/tail); nothing polls the server in a loop. Events
 * mark what to reload (nodes, autoscaler, jobs, the cluster's summary, a job's log) and
 * each reload is coalesced: single-flight, at most a few per second. What the page does
 * about a cluster (the list, the actions) reaches this module only as callbacks.
 */

import {$, API, api, badge, busy, coalesced, enc, machineMemory, setIfIdle, stopping} from "./lib.js";
import * as render from "./render.js";

const EVENT_KINDS = ["NODE_ADDED", "NODE_DEAD", "NODE_STATE", "JOB_STATE", "ACTOR_STATE", "AUTOSCALER",
  "TASK_COUNTERS"];
const TIMELINE_LENGTH = 100;
const LOG_TAIL_CHARS = 64 * 1024;
const JOB_DONE = new Set(["SUCCEEDED", "FAILED", "STOPPED"]);

/** Show the detail panel (a cluster is selected) or its placeholder. */
export function showDetail(on) {
  $("detail-body").hidden = !on;
  $("detail-empty").hidden = on;
}

/**
 * The selected cluster, live. ``callbacks``: ``onCluster(cluster)`` when its JSON changes
 * (the list shows it), ``onTotals(name)`` when its live totals do, ``onDeleted(name)``
 * when the server no longer knows it (the page closes the view). ``close()`` ends it.
 */
export class ClusterView {
  constructor(cluster, {onCluster, onTotals, onDeleted}) {
    this.callbacks = {onCluster, onTotals, onDeleted};
    this.name = cluster.name;
    this.cluster = cluster;
    this.nodes = null; // NodeState JSON
    this.autoscaler = null; // AutoscalerState JSON
    this.jobs = null; // JobDetails JSON
    this.progress = new Map(); // job id -> {finished, total}
    this.timeline = []; // {time, message}
    this.timelineKeys = new Set();
    this.lastSeq = -1;
    this.logJob = null; // the job whose log is shown
    this.logRunning = false;
    this.logSource = null; // its live tail (null: none, or fallen back to reloading)
    this.closed = false;
    this.source = null;
    this.retry = null;
    this.retryDelay = 1000;
    this.opened = false;
    this.reload = {
      cluster: coalesced(() => this.loadCluster(), 1000),
      nodes: coalesced(() => this.loadNodes(), 300),
      autoscaler: coalesced(() => this.loadAutoscaler(), 300),
      jobs: coalesced(() => this.loadJobs(), 500),
      log: coalesced(() => this.loadLog(), 1500),
    };
    this.renderSoon = coalesced(async () => this.renderLive(), 200);
    this.ticker = setInterval(() => render.durations(), 1000); // durations of running jobs; no requests

    showDetail(true);
    $("detail-name").textContent = this.name;
    $("nodes-body").replaceChildren();
    $("node-types-body").replaceChildren();
    $("demand-body").replaceChildren();
    $("timeline").replaceChildren();
    $("jobs-body").replaceChildren();
    $("log").hidden = true;
    $("controls-note").textContent = "";
    this.applyCluster(cluster, true);
    this.connect();
    for (const r of ["nodes", "autoscaler", "jobs"]) this.reload[r].request();
  }

  close() {
    this.closed = true;
    if (this.source) this.source.close();
    this.source = null;
    this.closeTail();
    clearTimeout(this.retry);
    clearInterval(this.ticker);
    for (const r of Object.values(this.reload)) r.cancel();
    this.renderSoon.cancel();
  }

  // the event stream ------------------------------------------------------------------
  connect() {
    if (this.closed) return;
    const source = new EventSource(`${API}clusters/${enc(this.name)}/events?replay=1`);
    this.source = source;
    this.setStream("connecting…", "connecting");
    source.onopen = () => {
      const again = this.opened;
      this.opened = true;
      this.retryDelay = 1000;
      this.setStream("live", "live");
      // After a reconnect: what changed while we were away may have no event left.
      if (again) for (const r of ["cluster", "nodes", "autoscaler", "jobs"]) this.reload[r].request();
    };
    source.addEventListener("snapshot", (e) => this.applyCluster(this.parse(e), false));
    source.addEventListener("deleted", () => this.onDeleted());
    source.addEventListener("unreachable", (e) => this.onUnreachable(this.parse(e)));
    for (const kind of EVENT_KINDS) source.addEventListener(kind, (e) => this.onEvent(this.parse(e)));
    source.onerror = () => {
      if (this.closed || source !== this.source) return;
      if (source.readyState === EventSource.CLOSED) {
        // Refused (an HTTP error) or ended for good: find out why, then try again later.
        this.source = null;
        this.setStream("disconnected", "down");
        this.checkGone();
      } else {
        this.setStream("reconnecting…", "connecting"); // the browser reconnects by itself
      }
    };
  }

  /** The head went away (the server ends the stream): try again later, not at once. */
  onUnreachable(data) {
    if (this.closed) return;
    if (this.source) this.source.close();
    this.source = null;
    const why = data && data.message ? `: ${data.message}` : "";
    this.setStream(`cluster unreachable${why}`, "down");
    this.reload.cluster.request();
    clearTimeout(this.retry);
    this.retry = setTimeout(() => this.checkGone(), this.retryDelay);
    this.retryDelay = Math.min(this.retryDelay * 2, 30000);
  }

  parse(e) {
    try { return JSON.parse(e.data); } catch (exc) { return null; }
  }

  async checkGone() {
    try {
      const cluster = await api("GET", `clusters/${enc(this.name)}`);
      if (this.closed) return;
      this.applyCluster(cluster, false);
      this.retry = setTimeout(() => this.connect(), this.retryDelay);
      this.retryDelay = Math.min(this.retryDelay * 2, 30000);
    } catch (exc) {
      if (this.closed) return;
      if (exc.status === 404) { this.onDeleted(); return; }
      this.setStream(`disconnected: ${exc.message}`, "down");
      this.retry = setTimeout(() => this.checkGone(), this.retryDelay);
      this.retryDelay = Math.min(this.retryDelay * 2, 30000);
    }
  }

  setStream(text, kind) {
    const el = $("stream-status");
    el.textContent = text;
    el.dataset.state = kind;
  }

  onDeleted() {
    if (this.closed) return;
    this.callbacks.onDeleted(this.name);
  }

  onEvent(ev) {
    if (this.closed || !ev) return;
    if (typeof ev.seq === "number") {
      if (ev.seq <= this.lastSeq) return; // a reconnect replays what we have seen
      this.lastSeq = ev.seq;
    }
    const data = ev.data || {};
    switch (ev.kind) {
      case "NODE_ADDED":
      case "NODE_DEAD":
        this.reload.nodes.request();
        this.reload.cluster.request();
        if (this.autoscalerEnabled()) this.reload.autoscaler.request();
        break;
      case "NODE_STATE":
        if (!this.applyLoad(ev)) this.reload.nodes.request();
        // Launches, removals and drained demand come without an autoscaler event of their own.
        if (this.autoscalerMoving()) this.reload.autoscaler.request();
        break;
      case "AUTOSCALER":
        this.addSentence(ev.time, ev.message);
        this.reload.autoscaler.request();
        this.reload.cluster.request();
        break;
      case "JOB_STATE":
        this.reload.jobs.request();
        if (this.logJob && !this.logSource && this.jobMatches(this.logJob, ev.job_id, data)) {
          this.reload.log.request();
        }
        break;
      case "TASK_COUNTERS":
        if (ev.job_id) {
          this.progress.set(ev.job_id, {finished: Number(data.finished) || 0, total: Number(data.total) || 0});
          this.renderSoon.request();
        }
        break;
      default:
        break;
    }
    // Without its live tail, a running job's log is followed on the stream's beat.
    if (this.logJob && this.logRunning && !this.logSource) this.reload.log.request();
  }

  // loads -------------------------------------------------------------------------------
  async guarded(what, fn) {
    try {
      await fn();
    } catch (exc) {
      if (this.closed) return;
      if (exc.status === 404 && what !== "log") { this.checkGone(); return; }
      this.setStream(`could not load the ${what}: ${exc.message}`, "down");
    }
  }

  loadCluster() {
    return this.guarded("cluster", async () => {
      const cluster = await api("GET", `clusters/${enc(this.name)}`);
      if (!this.closed) this.applyCluster(cluster, false);
    });
  }

  loadNodes() {
    return this.guarded("nodes", async () => {
      const data = await api("GET", `clusters/${enc(this.name)}/nodes`);
      if (this.closed) return;
      this.nodes = data.nodes || [];
      this.renderNodes();
      this.renderSummary();
    });
  }

  loadAutoscaler() {
    return this.guarded("autoscaler", async () => {
      const data = await api("GET", `clusters/${enc(this.name)}/autoscaler`);
      if (this.closed) return;
      this.autoscaler = data || {enabled: false};
      for (const e of this.autoscaler.events || []) this.addSentence(e.time, e.message, false);
      this.renderAutoscaler();
      this.renderTimeline();
      this.renderControls();
    });
  }

  loadJobs() {
    return this.guarded("jobs", async () => {
      const data = await api("GET", `clusters/${enc(this.name)}/jobs/`);
      if (this.closed) return;
      this.jobs = Array.isArray(data) ? data : (data && data.jobs) || [];
      this.renderJobs();
      if (this.logJob) {
        const job = this.jobs.find((j) => render.jobId(j) === this.logJob);
        this.logRunning = Boolean(job && !JOB_DONE.has(job.status));
      }
    });
  }

  loadLog() {
    const jobId = this.logJob;
    if (!jobId) return Promise.resolve();
    return this.guarded("log", async () => {
      const pre = $("log-text");
      try {
        const data = await api("GET", `clusters/${enc(this.name)}/jobs/${enc(jobId)}/logs`);
        if (this.closed || this.logJob !== jobId) return;
        let text = (data && typeof data === "object" ? data.logs : data) || "";
        if (text.length > LOG_TAIL_CHARS) text = "…\n" + text.slice(text.length - LOG_TAIL_CHARS);
        const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 8;
        pre.textContent = text || "(no output yet)";
        pre.dataset.state = "loaded";
        if (atBottom) pre.scrollTop = pre.scrollHeight;
      } catch (exc) {
        if (this.closed || this.logJob !== jobId) return;
        pre.textContent = `No log: ${exc.message}`;
        pre.dataset.state = "error";
      }
    });
  }

  // state changes ---------------------------------------------------------------------
  applyCluster(cluster, first) {
    if (!cluster || cluster.name !== this.name) return;
    this.cluster = cluster;
    this.callbacks.onCluster(cluster);
    const status = $("detail-status");
    status.replaceChildren(badge(cluster.status || "unknown"));
    status.dataset.status = cluster.status || "";
    this.renderSummary();
    this.renderControls(first);
  }

  applyLoad(ev) {
    const node = (this.nodes || []).find((n) => n.node_id === ev.node_id);
    if (!node) return this.nodes === null; // unknown node: reload the list (unless it is loading)
    const data = ev.data || {};
    if (data.available && typeof data.available === "object") node.resources_available = data.available;
    if (data.tasks_running !== undefined) node.tasks_running = Number(data.tasks_running);
    if (data.object_store_used !== undefined) node.object_store_used = Number(data.object_store_used);
    if (data.memory_used !== undefined) node.memory_used = Number(data.memory_used);
    if (data.memory_total !== undefined) node.memory_total = Number(data.memory_total);
    this.renderSoon.request();
    return true;
  }

  addSentence(time, message, render = true) {
    if (!message) return;
    const key = `${Number(time).toFixed(2)}|${message}`;
    if (this.timelineKeys.has(key)) return;
    this.timelineKeys.add(key);
    this.timeline.push({time: Number(time) || 0, message});
    this.timeline.sort((a, b) => a.time - b.time);
    if (this.timeline.length > TIMELINE_LENGTH) this.timeline.splice(0, this.timeline.length - TIMELINE_LENGTH);
    if (render) this.renderTimeline();
  }

  autoscalerEnabled() {
    return this.autoscaler === null ? Boolean(this.cluster.autoscaler) : Boolean(this.autoscaler.enabled);
  }

  /** Load reports may change the autoscaler's view: a launch or removal under way, or
   * demand shown (it drains without an autoscaler event; a node reports when its queue empties). */
  autoscalerMoving() {
    const types = (this.autoscaler && this.autoscaler.node_types) || [];
    const demand = (this.autoscaler && this.autoscaler.demand) || [];
    return demand.length > 0 || types.some((t) => t.pending || t.stopping);
  }

  jobMatches(shownId, eventJobId, data) {
    const job = (this.jobs || []).find((j) => render.jobId(j) === shownId);
    return shownId === data.submission_id || (job && job.job_id === eventJobId) || shownId === eventJobId;
  }

  showLog(jobId) {
    this.logJob = jobId;
    const job = (this.jobs || []).find((j) => render.jobId(j) === jobId);
    this.logRunning = Boolean(job && !JOB_DONE.has(job.status));
    $("log-job").textContent = jobId;
    $("log-text").textContent = "loading…";
    $("log-text").dataset.state = "loading";
    $("log").hidden = false;
    this.renderJobs();
    this.tail(jobId);
  }

  /** Follow a job's log live: the whole log, then each new chunk, until the job ends. */
  tail(jobId) {
    this.closeTail();
    const pre = $("log-text");
    const source = new EventSource(`${API}clusters/${enc(this.name)}/jobs/${enc(jobId)}/logs/tail`);
    this.logSource = source;
    let text = "";
    source.addEventListener("log", (msg) => {
      if (this.logSource !== source) return;
      text += JSON.parse(msg.data).text || "";
      if (text.length > LOG_TAIL_CHARS) text = "…\n" + text.slice(text.length - LOG_TAIL_CHARS);
      const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 8;
      pre.textContent = text;
      pre.dataset.state = "live";
      if (atBottom) pre.scrollTop = pre.scrollHeight;
    });
    source.addEventListener("end", (msg) => {
      if (this.logSource !== source) return;
      const end = JSON.parse(msg.data);
      this.closeTail();
      if (end.code === 1000) {
        pre.textContent = text || "(no output)";
        pre.dataset.state = "loaded";
      } else {
        pre.textContent = `No log: ${end.reason || `the tail closed (${end.code})`}`;
        pre.dataset.state = "error";
      }
    });
    source.onerror = () => {
      if (this.logSource !== source || source.readyState !== EventSource.CLOSED) return;
      this.closeTail(); // the tail is not available: fall back to reloading the log
      this.reload.log.request();
    };
  }

  closeTail() {
    if (this.logSource) this.logSource.close();
    this.logSource = null;
  }

  hideLog() {
    this.closeTail();
    this.logJob = null;
    $("log").hidden = true;
    this.renderJobs();
  }

  // rendering -------------------------------------------------------------------------
  renderLive() {
    if (this.closed) return;
    this.renderNodes();
    this.renderSummary();
    this.renderJobs();
  }

  totals() {
    if (this.nodes === null) {
      const r = this.cluster.resources || {};
      const n = this.cluster.nodes || {};
      return {alive: n.alive ?? 0, total: n.total ?? 0, cpu: r.CPU, memory: this.cluster.memory,
        store: r.object_store_memory};
    }
    const alive = this.nodes.filter((n) => n.state === "ALIVE");
    const sum = (f) => alive.reduce((acc, n) => acc + (Number(f(n)) || 0), 0);
    const used = (key) => sum((n) => (n.resources_total[key] || 0) - (n.resources_available[key] ??
      n.resources_total[key] ?? 0));
    return {
      alive: alive.length,
      total: this.nodes.length,
      cpu: {used: used("CPU"), total: sum((n) => n.resources_total.CPU || 0)},
      memory: machineMemory(alive),
      store: {used: sum((n) => n.object_store_used), total: sum((n) => n.object_store_capacity)},
    };
  }


  renderSummary() {
    render.summary(this.cluster, this.totals());
    this.callbacks.onTotals(this.name);
  }

  renderControls(prefill = false) {
    const c = this.cluster;
    const canScale = c.autoscaler !== false; // unknown: let the server answer
    for (const id of ["scale-workers", "scale-submit", "adapt-min", "adapt-max", "adapt-submit"]) {
      $(id).disabled = !canScale || busy.has(this.name);
    }
    $("controls").dataset.scalable = String(canScale);
    if (!canScale) $("controls-note").textContent = "No autoscaler: this cluster's nodes are fixed.";
    else if ($("controls-note").dataset.kind !== "result") $("controls-note").textContent = "";
    const w = c.workers;
    if (w && prefill) {
      setIfIdle("scale-workers", w.min === w.max ? w.max : w.running);
      setIfIdle("adapt-min", w.min);
      setIfIdle("adapt-max", w.max);
    }
    const stop = $("stop-button");
    stop.textContent = stopping.has(this.name) ? "Stopping…" : c.origin === "attached" ? "Forget cluster"
      : "Stop cluster";
    stop.disabled = stopping.has(this.name);
  }

  renderNodes() {
    render.nodes(this.nodes);
  }

  renderAutoscaler() {
    render.autoscaler(this.autoscaler);
  }

  renderTimeline() {
    render.timeline(this.timeline);
  }

  renderJobs() {
    render.jobs(this.jobs, {progress: this.progress, logJob: this.logJob, onShowLog: (id) => this.showLog(id)});
  }
}
