/* nbcluster's cluster page, the pieces every module shares: the page's addresses, DOM
 * and text helpers, number formatting, the REST API client, the notice bar, coalesced
 * reloads and the page's shared state.
 *
 * Every URL is resolved against the page's own address ({base_url}nbcluster/), so the
 * page works under a base_url and behind proxies. The only credentials are Jupyter's:
 * its login cookie, and the _xsrf cookie sent back as X-XSRFToken on requests that
 * change something. Text from the server is always inserted as text (h() never parses
 * HTML).
 *
 * Imported without a version query by every module (see index.html and page.py): one
 * URL, so one instance of this module and of its state.
 */

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
export const ROOT = pageRoot();
export const API = ROOT + "api/";
export const enc = encodeURIComponent;

// -- small helpers --------------------------------------------------------------------
export const $ = (id) => document.getElementById(id);

/** An element: h("td", {class: "num"}, "3"). Text is never parsed as HTML. */
export function h(tag, props, ...children) {
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

export function fmtNum(n) {
  if (n === null || n === undefined || Number.isNaN(Number(n))) return "?";
  n = Number(n);
  if (Number.isInteger(n)) return String(n);
  return String(Math.round(n * 100) / 100);
}

export function fmtBytes(n) {
  n = Number(n) || 0;
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
  return `${i === 0 ? n : n.toFixed(n >= 10 ? 0 : 1)} ${units[i]}`;
}

export function fmtDuration(seconds) {
  if (!(seconds >= 0)) return "";
  const s = Math.floor(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h ${String(Math.floor(s / 60) % 60).padStart(2, "0")}m`;
}

export function fmtClock(epochSeconds) {
  const d = new Date(epochSeconds * 1000);
  return d.toLocaleTimeString([], {hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false});
}

export function fmtShape(shape) {
  const keys = Object.keys(shape || {}).sort();
  return keys.length ? keys.map((k) => `${k}: ${fmtNum(shape[k])}`).join(", ") : "{}";
}

/** A horizontal bar with its text, announced as a meter. */
export function bar(used, total, text, label) {
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
export function machineMemory(nodes) {
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

export function badge(text, kind) {
  return h("span", {class: `badge badge-${String(kind || text).toLowerCase()}`}, text);
}

// -- the REST API ---------------------------------------------------------------------
export class ApiError extends Error {
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
export async function api(method, path, body) {
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

export function notify(text, kind = "error") {
  const box = $("notice");
  $("notice-text").textContent = text;
  box.dataset.kind = kind;
  box.setAttribute("role", kind === "error" ? "alert" : "status");
  box.hidden = false;
  clearTimeout(noticeTimer);
  if (kind !== "error") noticeTimer = setTimeout(() => { box.hidden = true; }, 8000);
}

export function clearNotice() {
  clearTimeout(noticeTimer);
  $("notice").hidden = true;
}

/**
 * A reload that runs at most once at a time and at most once per ``gap`` ms; asking
 * while it runs runs it once more afterwards. ``request()`` asks, ``cancel()`` ends it.
 */
export function coalesced(fn, gap) {
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

/** Put ``value`` in the input ``id`` unless the user is typing there (or it is unknown). */
export function setIfIdle(id, value) {
  const input = $(id);
  if (document.activeElement === input || value === undefined || value === null) return;
  input.value = String(value);
}

// -- shared state ---------------------------------------------------------------------
// The actions (app.js) fill these; the selected cluster's view (view.js) reads them.
export const busy = new Set(); // clusters with a scale/adapt request under way
export const stopping = new Set(); // clusters being stopped from this page
