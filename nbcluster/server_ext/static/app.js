/* nbcluster's cluster page: the clusters the Jupyter server knows, and the selected
 * one live (nodes, autoscaler, jobs with a log tail).
 *
 * Plain browser JavaScript in native ES modules, no build step and nothing from the
 * network but this server. This module is the entry point (index.html loads it): the
 * list of clusters, the create/scale/adapt/stop actions and main(). The selected
 * cluster's view is view.js (its tables render.js), the shared helpers lib.js.
 *
 * Modules import each other by plain relative paths, never with a ?v= query: a module
 * under two URLs would load (and keep its state) twice. The server makes the browser
 * revalidate each of them instead (see page.py).
 */

import {$, API, api, badge, busy, clearNotice, enc, fmtDuration, fmtNum, h, notify, stopping} from "./lib.js";
import {ClusterView, showDetail} from "./view.js";

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

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
    : "", cluster.origin === "attached" ? "attached" : "", providerText(cluster)].filter(Boolean).join(" · ");
}

/** "kubernetes: jhub" for a cluster the server made on Kubernetes (its namespace). */
function providerText(cluster) {
  return cluster.provider === "kubernetes" ? `kubernetes: ${(cluster.spec || {}).namespace || "?"}` : "";
}

function updateListMeta(name) {
  const cluster = clusters.get(name);
  const item = [...document.querySelectorAll("#cluster-list li")].find((li) => li.dataset.name === name);
  if (cluster && item) item.querySelector(".cluster-meta").textContent = metaText(cluster);
}

let localCount = 0; // clusters running on this machine that the server does not know yet

/** "No clusters yet" only when none runs here either (a notebook's is listed below, to attach). */
function renderEmpty() {
  $("clusters-empty").hidden = clusters.size > 0 || localCount > 0;
}

function renderList() {
  const list = $("cluster-list");
  const names = [...clusters.keys()].sort();
  renderEmpty();
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

/** The server's list of clusters replaces ours (from a reload or the list's stream). */
function applyClusters(list) {
  const seen = new Set();
  for (const c of list || []) {
    clusters.set(c.name, c);
    seen.add(c.name);
  }
  for (const name of [...clusters.keys()]) if (!seen.has(name)) clusters.delete(name);
  renderList();
  if (view !== null && !clusters.has(view.name)) {
    closeView(stopping.has(view.name) ? "" : `Cluster ${view.name} is gone.`);
  } else if (view !== null) view.applyCluster(clusters.get(view.name));
}

/** The list, live: the server sends it again whenever a cluster comes, goes or changes
 * status (made or stopped from another tab, a notebook, the REST API). */
function followList() {
  const source = new EventSource(`${API}events`);
  source.addEventListener("clusters", (msg) => applyClusters(JSON.parse(msg.data).clusters));
  window.addEventListener("pagehide", () => source.close());
}

async function loadClusters() {
  try {
    const data = await api("GET", "clusters");
    applyClusters(data.clusters);
    await loadLocal();
    return true;
  } catch (exc) {
    notify(`Could not list the clusters: ${exc.message}`);
    return false;
  }
}

// -- clusters running on this machine that the server does not know yet -------------------
async function loadLocal() {
  let found = [];
  try {
    found = (await api("GET", "local")).clusters || [];
  } catch (exc) {
    notify(`Could not look for clusters on this machine: ${exc.message}`);
  }
  localCount = found.length;
  $("local-section").hidden = found.length === 0;
  renderEmpty();
  $("local-list").replaceChildren(...found.map((c) => h("li", {class: "cluster", dataset: {address: c.address},
    "data-testid": "local-row"},
    h("span", {class: "local-address mono", title: c.session_dir}, c.address),
    h("span", {class: "cluster-meta", "data-testid": "local-uptime"},
      c.started ? `up ${fmtDuration(Date.now() / 1000 - c.started)}` : "not answering"),
    h("button", {type: "button", class: "button small", "data-testid": "attach-local",
      "aria-label": `Attach the cluster at ${c.address}`, onclick: (event) => attachLocal(c.address, event.target)},
      "Attach"))));
}

async function attachLocal(address, button) {
  const port = address.split(":").pop();
  let name = `local-${port}`;
  for (let i = 2; clusters.has(name); i += 1) name = `local-${port}-${i}`;
  button.disabled = true;
  try {
    const cluster = await api("POST", "attach", {name, address});
    upsertCluster(cluster);
    notify(`Attached the cluster at ${address} as ${name}.`, "info");
    select(name);
  } catch (exc) {
    notify(`Could not attach ${address}: ${exc.message}`);
  } finally {
    button.disabled = false;
    await loadLocal();
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
  view = new ClusterView(cluster, {onCluster: upsertCluster, onTotals: updateListMeta, onDeleted});
  history.replaceState(null, "", `${location.pathname}${location.search}#cluster=${enc(name)}`);
  renderList();
}

/** The selected cluster is gone from the server (its stream or a reload says so). */
function onDeleted(name) {
  clusters.delete(name);
  closeView(stopping.has(name) ? "" : `Cluster ${name} was stopped.`);
}

function closeView(message) {
  if (view !== null) view.close();
  view = null;
  showDetail(false);
  history.replaceState(null, "", `${location.pathname}${location.search}`);
  renderList();
  if (message) notify(message, "info");
}

// -- actions --------------------------------------------------------------------------

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

function readNumber(id, label) {
  const raw = $(id).value.trim();
  if (raw === "") return undefined;
  const n = Number(raw);
  if (!Number.isFinite(n)) throw new Error(`${label} must be a number.`);
  return n;
}

function selectedProvider() {
  return document.querySelector('input[name="provider"]:checked').value;
}

/** A cluster on Kubernetes: the fields as typed; the server checks them (as the
 * %cluster magic's options) and says what is wrong. */
function kubernetesBody(name) {
  const body = {provider: "kubernetes"};
  if (name) body.name = name;
  for (const [id, key] of [["create-namespace", "namespace"], ["create-image", "image"]]) {
    const value = $(id).value.trim();
    if (value) body[key] = value;
  }
  const most = readInt("create-workers-max", "Worker pods at most", {optional: true});
  if (most !== undefined) body.workers_max = most;
  const cpus = readNumber("create-worker-cpus", "CPUs per worker");
  if (cpus !== undefined) body.worker_cpus = cpus;
  return body;
}

function createBody() {
  const body = {};
  const name = $("create-name").value.trim();
  if (name && clusters.has(name)) throw new Error(`A cluster named ${name} exists already: choose another name.`);
  if (selectedProvider() === "kubernetes") return kubernetesBody(name);
  if (name) {
    if (!NAME_RE.test(name)) {
      throw new Error("Name: start with a letter or digit, then letters, digits, _ . or -; at most 64.");
    }
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

/** Show the fields of the chosen provider only. */
function syncProvider() {
  const provider = selectedProvider();
  for (const el of document.querySelectorAll("#create-form [data-provider]")) el.hidden = el.dataset.provider !== provider;
  $("create-name").placeholder = provider === "kubernetes" ? "nb-USER (default)" : "(automatic)";
  const cpus = $("create-worker-cpus");
  cpus.step = provider === "kubernetes" ? "any" : "1";
  cpus.min = provider === "kubernetes" ? "0" : "1";
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
  button.textContent = body.provider === "kubernetes" ? "Deploying…" : "Starting…";
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
    : cluster.provider === "kubernetes"
      ? `Every object of ${name} in namespace ${(cluster.spec || {}).namespace} is deleted: its pods, with the work ` +
        "running on them, its Service, Secrets, ConfigMap and RBAC. Notebooks connected to it lose it."
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
    if (attached) await loadLocal(); // a forgotten cluster on this machine is offered again
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
  for (const radio of document.querySelectorAll('input[name="provider"]')) {
    radio.addEventListener("change", syncProvider);
  }
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
  syncProvider();
  showDetail(false);
  document.body.dataset.ready = "loading";
  await loadClusters();
  followList();
  const wanted = decodeURIComponent((location.hash.match(/cluster=([^&]+)/) || [])[1] || "");
  if (wanted && clusters.has(wanted)) select(wanted);
  else if (clusters.size === 1) select([...clusters.keys()][0]);
  document.body.dataset.ready = "true";
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", main);
else main();
