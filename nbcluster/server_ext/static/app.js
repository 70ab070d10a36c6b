/* nbcluster's cluster page: the clusters the Jupyter server knows, and the selected
 * one live (nodes, autoscaler, jobs with a log tail).
 *
 * Plain browser JavaScript, no build step and nothing from the network but this
 * server. Every URL is resolved against the page's own address ({base_url}nbcluster/),
 * so the page works under a base_url and behind proxies. The only credentials are
 * Jupyter's: its login cookie, and the _xsrf cookie sent back as X-XSRFToken on
 * requests that change something.
 *
 * Live updates come from one EventSource per selected cluster
 * (api/clusters/{name}/events?replay=1); nothing polls the server in a loop. Events
 * mark what to reload (nodes, autoscaler, jobs, the cluster's summary, a job's log) and
 * each reload is coalesced: single-flight, at most a few per second.
 */
"use strict";

(() => {
  // -- addresses ------------------------------------------------------------------------
  const META = (name) => document.querySelector(`meta[name="${name}"]`)?.content || "";
  const BASE_URL = META("nbcluster-base-url") || "/";

  /** "{prefix}nbcluster/" as the browser sees it (a proxy may have changed the prefix). */
  function pageRoot() {
    const path = location.pathname;
    const at = path.lastIndexOf("/nbcluster/");
    if (at >= 0) return path.slice(0, at + "/nbcluster/".length);
    return BASE_URL.replace(/\/?$/, "/") + "nbcluster/";
  }
  const ROOT = pageRoot();
  const API = ROOT + "api/";
  const enc = encodeURIComponent;

  const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
  const EVENT_KINDS = ["NODE_ADDED", "NODE_DEAD", "NODE_STATE", "JOB_STATE", "ACTOR_STATE", "AUTOSCALER",
    "TASK_COUNTERS"];
  const TIMELINE_LENGTH = 100;
  const DEAD_NODES_SHOWN = 10;
  const LOG_TAIL_CHARS = 64 * 1024;
  const JOB_DONE = new Set(["SUCCEEDED", "FAILED", "STOPPED"]);

  // -- small helpers --------------------------------------------------------------------
  const $ = (id) => document.getElementById(id);

  /** An element: h("td", {class: "num"}, "3"). Text is never parsed as HTML. */
  function h(tag, props, ...children) {
    const el = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") el.className = value;
      else if (key === "dataset") Object.assign(el.dataset, value);
      else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
      else el.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      el.append(child instanceof Node ? child : String(child));
    }
    return el;
  }

  function fmtNum(n) {
    if (n === null || n === undefined || Number.isNaN(Number(n))) return "?";
    n = Number(n);
    if (Number.isInteger(n)) return String(n);
    return String(Math.round(n * 100) / 100);
  }

  function fmtBytes(n) {
    n = Number(n) || 0;
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
    return `${i === 0 ? n : n.toFixed(n >= 10 ? 0 : 1)} ${units[i]}`;
  }

  function fmtDuration(seconds) {
    if (!(seconds >= 0)) return "";
    const s = Math.floor(seconds);
    if (s < 60) return `${s}s`;
    if (s < 3600) return `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, "0")}s`;
    return `${Math.floor(s / 3600)}h ${String(Math.floor(s / 60) % 60).padStart(2, "0")}m`;
  }

  function fmtClock(epochSeconds) {
    const d = new Date(epochSeconds * 1000);
    return d.toLocaleTimeString([], {hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false});
  }

  function fmtShape(shape) {
    const keys = Object.keys(shape || {}).sort();
    return keys.length ? keys.map((k) => `${k}: ${fmtNum(shape[k])}`).join(", ") : "{}";
  }

  /** A horizontal bar with its text, announced as a meter. */
  function bar(used, total, text, label) {
    const fraction = total > 0 ? Math.min(1, Math.max(0, used / total)) : 0;
    const fill = h("span", {class: "bar-fill"});
    fill.style.width = `${(fraction * 100).toFixed(1)}%`;
    const level = fraction >= 0.9 ? "high" : fraction >= 0.6 ? "mid" : "low";
    return h("span", {class: "bar-cell"},
      h("span", {class: `bar bar-${level}`, role: "meter", "aria-label": label, "aria-valuemin": 0,
        "aria-valuemax": total || 0, "aria-valuenow": used || 0, "aria-valuetext": text}, fill),
      h("span", {class: "bar-text"}, text));
  }

  /**
   * Physical memory of the machines ``nodes`` run on: every node on a machine reports
   * that machine's memory, so each machine (by hostname) counts once — as the server's
   * Cluster JSON "memory" does (the logical "memory" resource is something else).
   */
  function machineMemory(nodes) {
    const machines = new Map();
    for (const n of nodes) {
      const total = Number(n.memory_total) || 0;
      if (total <= 0) continue;
      const key = n.hostname || n.node_ip || n.node_id;
      const seen = machines.get(key) || {used: 0, total: 0};
      machines.set(key, {used: Math.max(seen.used, Number(n.memory_used) || 0), total: Math.max(seen.total, total)});
    }
    let used = 0;
    let total = 0;
    for (const m of machines.values()) { used += m.used; total += m.total; }
    return {used, total, machines: machines.size};
  }

  function badge(text, kind) {
    return h("span", {class: `badge badge-${String(kind || text).toLowerCase()}`}, text);
  }

  // -- the REST API ---------------------------------------------------------------------
  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  function xsrfToken() {
    const match = document.cookie.match(/(?:^|;\s*)_xsrf=([^;]*)/);
    return match ? decodeURIComponent(match[1]) : "";
  }

  function errorText(status, statusText, data) {
    if (data && typeof data === "object") {
      const text = data.message || data.error || data.reason;
      if (text) return String(text);
    } else if (typeof data === "string" && data.trim() && data.length < 300 && !data.includes("<")) {
      return data.trim();
    }
    if (status === 403 || status === 401) {
      return `Not allowed (${status}): your Jupyter login may have expired. Reload the page to log in again.`;
    }
    if (status === 404) return "Not found (404): the cluster may have been stopped.";
    return `The server answered ${status} ${statusText || ""}`.trim();
  }

  /** One call of the REST API: the decoded answer, or an ApiError with the server's message. */
  async function api(method, path, body) {
    const headers = {Accept: "application/json"};
    if (method !== "GET" && method !== "HEAD") headers["X-XSRFToken"] = xsrfToken();
    const init = {method, headers, credentials: "same-origin", cache: "no-store"};
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(API + path, init);
    } catch (exc) {
      throw new ApiError(0, "The Jupyter server does not answer. Is it still running?");
    }
    const text = await response.text();
    let data = null;
    if (text) {
      try { data = JSON.parse(text); } catch (exc) { data = text; }
    }
    if (!response.ok) throw new ApiError(response.status, errorText(response.status, response.statusText, data));
    return data;
  }

  // -- messages -------------------------------------------------------------------------
  let noticeTimer = null;

  function notify(text, kind = "error") {
    const box = $("notice");
    $("notice-text").textContent = text;
    box.dataset.kind = kind;
    box.setAttribute("role", kind === "error" ? "alert" : "status");
    box.hidden = false;
    clearTimeout(noticeTimer);
    if (kind !== "error") noticeTimer = setTimeout(() => { box.hidden = true; }, 8000);
  }

  function clearNotice() {
    clearTimeout(noticeTimer);
    $("notice").hidden = true;
  }

  /**
   * A reload that runs at most once at a time and at most once per ``gap`` ms; asking
   * while it runs runs it once more afterwards. ``request()`` asks, ``cancel()`` ends it.
   */
  function coalesced(fn, gap) {
    let timer = null;
    let running = false;
    let again = false;
    let last = 0;
    let closed = false;
    async function run() {
      timer = null;
      if (closed) return;
      running = true;
      again = false;
      last = Date.now();
      try {
        await fn();
      } finally {
        running = false;
      }
      if (again && !closed) request();
    }
    function request() {
      if (closed || timer !== null) return;
      if (running) { again = true; return; }
      timer = setTimeout(run, Math.max(0, last + gap - Date.now()));
    }
    return {request, cancel() { closed = true; clearTimeout(timer); }};
  }

  // -- the list of clusters -------------------------------------------------------------
  const clusters = new Map();
  let view = null; // the ClusterView of the selected cluster

  /** "3/3 nodes · CPU 1/3": live from the open view for the selected cluster. */
  function metaText(cluster) {
    let alive = (cluster.nodes || {}).alive ?? 0;
    let total = (cluster.nodes || {}).total ?? 0;
    let cpu = (cluster.resources || {}).CPU;
    if (view !== null && view.name === cluster.name && view.nodes !== null) {
      ({alive, total, cpu} = view.totals());
    }
    return [`${fmtNum(alive)}/${fmtNum(total)} nodes`, cpu && cpu.total ? `CPU ${fmtNum(cpu.used)}/${fmtNum(cpu.total)}`
      : "", cluster.origin === "attached" ? "attached" : ""].filter(Boolean).join(" · ");
  }

  function updateListMeta(name) {
    const cluster = clusters.get(name);
    const item = [...document.querySelectorAll("#cluster-list li")].find((li) => li.dataset.name === name);
    if (cluster && item) item.querySelector(".cluster-meta").textContent = metaText(cluster);
  }

  function renderList() {
    const list = $("cluster-list");
    const names = [...clusters.keys()].sort();
    $("clusters-empty").hidden = names.length > 0;
    list.replaceChildren(...names.map((name) => {
      const c = clusters.get(name);
      const selected = view !== null && view.name === name;
      return h("li", {class: `cluster${selected ? " selected" : ""}`, dataset: {name, status: c.status || ""},
        "data-testid": "cluster-row"},
        h("button", {type: "button", class: "cluster-select", "aria-current": selected ? "true" : null,
          title: `Show ${name}`, onclick: () => select(name)},
          h("span", {class: "cluster-name"}, name),
          h("span", {class: "cluster-meta"}, metaText(c))),
        badge(c.status || "unknown"),
        h("button", {type: "button", class: "button danger small stop", "aria-label": `Stop ${name}`,
          "data-testid": "stop-row", onclick: () => confirmStop(name)}, c.origin === "attached" ? "Forget" : "Stop"));
    }));
  }

  async function loadClusters() {
    try {
      const data = await api("GET", "clusters");
      const seen = new Set();
      for (const c of data.clusters || []) {
        clusters.set(c.name, c);
        seen.add(c.name);
      }
      for (const name of [...clusters.keys()]) if (!seen.has(name)) clusters.delete(name);
      renderList();
      if (view !== null && !clusters.has(view.name)) closeView(`Cluster ${view.name} is gone.`);
      else if (view !== null) view.applyCluster(clusters.get(view.name));
      return true;
    } catch (exc) {
      notify(`Could not list the clusters: ${exc.message}`);
      return false;
    }
  }

  function upsertCluster(cluster) {
    if (!cluster || !cluster.name) return;
    clusters.set(cluster.name, cluster);
    renderList();
  }

  function select(name) {
    if (view !== null && view.name === name) return;
    if (view !== null) view.close();
    view = null;
    const cluster = clusters.get(name);
    if (!cluster) { showDetail(false); renderList(); return; }
    view = new ClusterView(cluster);
    history.replaceState(null, "", `${location.pathname}${location.search}#cluster=${enc(name)}`);
    renderList();
  }

  function closeView(message) {
    if (view !== null) view.close();
    view = null;
    showDetail(false);
    history.replaceState(null, "", `${location.pathname}${location.search}`);
    renderList();
    if (message) notify(message, "info");
  }

  function showDetail(on) {
    $("detail-body").hidden = !on;
    $("detail-empty").hidden = on;
  }

  // -- the selected cluster -------------------------------------------------------------
  class ClusterView {
    constructor(cluster) {
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
      this.ticker = setInterval(() => this.tick(), 1000); // durations of running jobs; no requests

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
      const name = this.name;
      clusters.delete(name);
      closeView(stopping.has(name) ? "" : `Cluster ${name} was stopped.`);
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
          // Launches and removals finish without an autoscaler event of their own.
          if (this.autoscalerMoving()) this.reload.autoscaler.request();
          break;
        case "AUTOSCALER":
          this.addSentence(ev.time, ev.message);
          this.reload.autoscaler.request();
          this.reload.cluster.request();
          break;
        case "JOB_STATE":
          this.reload.jobs.request();
          if (this.logJob && this.jobMatches(this.logJob, ev.job_id, data)) this.reload.log.request();
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
      // A running job's log grows without events of its own: follow it on the stream's beat.
      if (this.logJob && this.logRunning) this.reload.log.request();
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
          const job = this.jobs.find((j) => this.jobId(j) === this.logJob);
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
      upsertCluster(cluster);
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

    autoscalerMoving() {
      const types = (this.autoscaler && this.autoscaler.node_types) || [];
      return types.some((t) => t.pending || t.stopping);
    }

    jobId(job) {
      return job.submission_id || job.job_id || "";
    }

    jobMatches(shownId, eventJobId, data) {
      const job = (this.jobs || []).find((j) => this.jobId(j) === shownId);
      return shownId === data.submission_id || (job && job.job_id === eventJobId) || shownId === eventJobId;
    }

    showLog(jobId) {
      this.logJob = jobId;
      const job = (this.jobs || []).find((j) => this.jobId(j) === jobId);
      this.logRunning = Boolean(job && !JOB_DONE.has(job.status));
      $("log-job").textContent = jobId;
      $("log-text").textContent = "loading…";
      $("log-text").dataset.state = "loading";
      $("log").hidden = false;
      this.renderJobs();
      this.reload.log.request();
    }

    hideLog() {
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
      const c = this.cluster;
      const t = this.totals();
      $("sum-address").textContent = c.address || "—";
      $("sum-origin").textContent = c.origin || "—";
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
      updateListMeta(this.name);
      const drivers = c.drivers || [];
      $("sum-drivers").replaceChildren(...(drivers.length ? drivers.map((d) => h("span", {class: "driver"},
        d.notebook_path || (d.kernel_id ? `kernel ${d.kernel_id.slice(0, 8)}` : `job ${d.job_id || "?"}`)))
        : ["none"]));
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
      const nodes = [...(this.nodes || [])];
      const rank = (n) => (n.state === "ALIVE" ? 0 : 1);
      nodes.sort((a, b) => rank(a) - rank(b) || Number(b.is_head) - Number(a.is_head) ||
        (a.start_time || 0) - (b.start_time || 0));
      const dead = nodes.filter((n) => n.state !== "ALIVE");
      const shown = nodes.filter((n) => n.state === "ALIVE").concat(dead.slice(-DEAD_NODES_SHOWN));
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
      }) : [h("tr", {}, h("td", {colspan: 6, class: "empty"}, this.nodes === null ? "loading…" : "No nodes."))]));
    }

    renderAutoscaler() {
      const a = this.autoscaler || {enabled: false};
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

    renderTimeline() {
      const items = [...this.timeline].reverse(); // newest first
      $("timeline-empty").hidden = items.length > 0;
      $("timeline").replaceChildren(...items.map((e) => h("li", {"data-testid": "timeline-item"},
        h("time", {datetime: new Date(e.time * 1000).toISOString()}, fmtClock(e.time)),
        h("span", {class: "sentence"}, e.message))));
    }

    renderJobs() {
      const jobs = [...(this.jobs || [])].sort((a, b) => (b.start_time || 0) - (a.start_time || 0));
      $("jobs-empty").hidden = jobs.length > 0;
      $("jobs-table").hidden = jobs.length === 0;
      const now = Date.now();
      $("jobs-body").replaceChildren(...jobs.map((j) => {
        const id = this.jobId(j);
        const own = j.progress && j.progress.submitted ? {finished: j.progress.finished, total: j.progress.submitted}
          : null;
        const progress = this.progress.get(j.job_id) || own;
        const entry = j.entrypoint || "";
        const shown = entry.length > 80 ? entry.slice(0, 79) + "…" : entry;
        const duration = h("td", {class: "num duration", dataset: j.start_time && !j.end_time ?
          {start: String(j.start_time)} : {}},
        j.start_time ? fmtDuration(((j.end_time || now) - j.start_time) / 1000) : "");
        return h("tr", {class: this.logJob === id ? "selected" : "", dataset: {jobId: id, status: j.status},
          "data-testid": "job-row"},
          h("td", {class: "mono"}, h("button", {type: "button", class: "link", title: "Show its log",
            "aria-pressed": this.logJob === id ? "true" : "false", onclick: () => this.showLog(id)}, id)),
          h("td", {}, String(j.type || "").toLowerCase()),
          h("td", {}, badge(j.status), progress && progress.total ? h("span", {class: "muted"},
            ` ${progress.finished}/${progress.total} tasks`) : null),
          h("td", {class: "mono entry", title: entry}, shown),
          duration);
      }));
    }

    tick() {
      const now = Date.now();
      for (const cell of document.querySelectorAll("#jobs-body td.duration[data-start]")) {
        cell.textContent = fmtDuration((now - Number(cell.dataset.start)) / 1000);
      }
    }
  }

  function setIfIdle(id, value) {
    const input = $(id);
    if (document.activeElement === input || value === undefined || value === null) return;
    input.value = String(value);
  }

  // -- actions --------------------------------------------------------------------------
  const busy = new Set(); // clusters with a scale/adapt request under way
  const stopping = new Set(); // clusters being stopped from this page

  function readInt(id, label, {min = 0, optional = false} = {}) {
    const raw = $(id).value.trim();
    if (raw === "") {
      if (optional) return undefined;
      throw new Error(`${label}: enter a whole number.`);
    }
    const n = Number(raw);
    if (!Number.isInteger(n) || n < min) throw new Error(`${label} must be a whole number of at least ${min}.`);
    return n;
  }

  function createBody() {
    const body = {};
    const name = $("create-name").value.trim();
    if (name) {
      if (!NAME_RE.test(name)) {
        throw new Error("Name: start with a letter or digit, then letters, digits, _ . or -; at most 64.");
      }
      if (clusters.has(name)) throw new Error(`A cluster named ${name} exists already: choose another name.`);
      body.name = name;
    }
    const cpus = readInt("create-cpus", "Head CPUs", {optional: true});
    if (cpus !== undefined) body.num_cpus = cpus;
    const workerCpus = readInt("create-worker-cpus", "CPUs per worker", {min: 1, optional: true});
    if (workerCpus !== undefined) body.worker_cpus = workerCpus;
    const mode = document.querySelector('input[name="mode"]:checked').value;
    if (mode === "fixed") body.workers = readInt("create-workers", "Workers");
    if (mode === "adapt") {
      const minimum = readInt("create-min", "Minimum");
      const maximum = readInt("create-max", "Maximum");
      if (maximum < minimum) throw new Error("The maximum must be at least the minimum.");
      body.adapt = {minimum, maximum};
    }
    return body;
  }

  function syncMode() {
    const mode = document.querySelector('input[name="mode"]:checked').value;
    $("create-fixed").hidden = mode !== "fixed";
    $("create-adapt").hidden = mode !== "adapt";
  }

  async function onCreate(event) {
    event.preventDefault();
    const error = $("create-error");
    error.hidden = true;
    let body;
    try {
      body = createBody();
    } catch (exc) {
      error.textContent = exc.message;
      error.hidden = false;
      return;
    }
    const button = $("create-submit");
    button.disabled = true;
    button.textContent = "Starting…";
    $("create-form").setAttribute("aria-busy", "true");
    try {
      const cluster = await api("POST", "clusters", body);
      upsertCluster(cluster);
      $("create-name").value = "";
      notify(`Cluster ${cluster.name} started.`, "info");
      select(cluster.name);
    } catch (exc) {
      error.textContent = exc.message;
      error.hidden = false;
    } finally {
      button.disabled = false;
      button.textContent = "Start cluster";
      $("create-form").removeAttribute("aria-busy");
    }
  }

  async function patch(name, body, done) {
    const note = $("controls-note");
    busy.add(name);
    if (view && view.name === name) view.renderControls();
    note.dataset.kind = "result";
    note.textContent = "sending…";
    try {
      const cluster = await api("PATCH", `clusters/${enc(name)}`, body);
      upsertCluster(cluster);
      if (view && view.name === name) {
        view.applyCluster(cluster, true);
        view.reload.autoscaler.request();
      }
      note.textContent = done;
    } catch (exc) {
      note.textContent = "";
      notify(`${name}: ${exc.message}`);
    } finally {
      busy.delete(name);
      if (view && view.name === name) view.renderControls();
    }
  }

  function onScale(event) {
    event.preventDefault();
    if (!view) return;
    let workers;
    try {
      workers = readInt("scale-workers", "Workers");
    } catch (exc) {
      notify(exc.message);
      return;
    }
    patch(view.name, {workers}, `Asked for ${workers} worker${workers === 1 ? "" : "s"}.`);
  }

  function onAdapt(event) {
    event.preventDefault();
    if (!view) return;
    let minimum;
    let maximum;
    try {
      minimum = readInt("adapt-min", "Minimum");
      maximum = readInt("adapt-max", "Maximum");
      if (maximum < minimum) throw new Error("The maximum must be at least the minimum.");
    } catch (exc) {
      notify(exc.message);
      return;
    }
    patch(view.name, {adapt: {minimum, maximum}}, `Adapting between ${minimum} and ${maximum} workers.`);
  }

  function ask(text) {
    const dialog = $("confirm-dialog");
    $("confirm-text").textContent = text;
    return new Promise((resolve) => {
      dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), {once: true});
      dialog.returnValue = "cancel";
      dialog.showModal();
      $("confirm-cancel").focus();
    });
  }

  async function confirmStop(name) {
    const cluster = clusters.get(name);
    if (!cluster || stopping.has(name)) return;
    const attached = cluster.origin === "attached";
    $("confirm-title").textContent = attached ? `Forget ${name}?` : `Stop ${name}?`;
    $("confirm-ok").textContent = attached ? "Forget" : "Stop";
    const ok = await ask(attached
      ? `The server forgets ${name}; the cluster itself keeps running.`
      : `All processes of ${name} stop, with the work running on it. Notebooks connected to it lose it.`);
    if (!ok) return;
    stopping.add(name);
    if (view && view.name === name) view.renderControls();
    try {
      await api("DELETE", `clusters/${enc(name)}`);
      clusters.delete(name);
      if (view && view.name === name) closeView("");
      renderList();
      notify(attached ? `Forgot ${name}.` : `Cluster ${name} stopped.`, "info");
    } catch (exc) {
      if (exc.status === 404) {
        clusters.delete(name);
        if (view && view.name === name) closeView("");
        renderList();
      }
      notify(`Could not stop ${name}: ${exc.message}`);
    } finally {
      stopping.delete(name);
      if (view && view.name === name) view.renderControls();
    }
  }

  // -- start ----------------------------------------------------------------------------
  async function main() {
    // A ?token= in the address has logged us in (a cookie now): keep it out of history.
    const params = new URLSearchParams(location.search);
    if (params.has("token")) {
      params.delete("token");
      const query = params.toString();
      history.replaceState(null, "", `${location.pathname}${query ? "?" + query : ""}${location.hash}`);
    }
    $("notice-close").addEventListener("click", clearNotice);
    $("create-form").addEventListener("submit", onCreate);
    for (const radio of document.querySelectorAll('input[name="mode"]')) radio.addEventListener("change", syncMode);
    $("scale-form").addEventListener("submit", onScale);
    $("adapt-form").addEventListener("submit", onAdapt);
    $("stop-button").addEventListener("click", () => view && confirmStop(view.name));
    $("refresh-clusters").addEventListener("click", loadClusters);
    $("log-close").addEventListener("click", () => view && view.hideLog());
    $("log-refresh").addEventListener("click", () => view && view.reload.log.request());
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible") loadClusters();
    });
    window.addEventListener("pagehide", () => view && view.close());
    window.addEventListener("pageshow", (e) => { if (e.persisted) location.reload(); });
    syncMode();
    showDetail(false);
    document.body.dataset.ready = "loading";
    await loadClusters();
    const wanted = decodeURIComponent((location.hash.match(/cluster=([^&]+)/) || [])[1] || "");
    if (wanted && clusters.has(wanted)) select(wanted);
    else if (clusters.size === 1) select([...clusters.keys()][0]);
    document.body.dataset.ready = "true";
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", main);
  else main();
})();
