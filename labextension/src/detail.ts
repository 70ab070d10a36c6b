/**
 * The selected cluster in the sidebar, live: its resource use, scale and adapt controls,
 * nodes, autoscaler (node types, pending demand with the reason it waits — "why not
 * scaling" — and its recent decisions) and jobs. One event stream
 * (api/clusters/{name}/events?replay=1) marks what to reload; each reload is coalesced,
 * so nothing polls in a loop.
 */

import { ServerConnection } from '@jupyterlab/services';

import { api, enc, EventStream, IAutoscaler, ICluster, IJob, INode, IUsage, jobId, jobRuns } from './api';
import { badge, bar, coalesced, fmtBytes, fmtClock, fmtDuration, fmtNum, fmtShape, h, ICoalesced } from './dom';

const EVENT_KINDS = new Set(['NODE_ADDED', 'NODE_DEAD', 'NODE_STATE', 'JOB_STATE', 'AUTOSCALER', 'TASK_COUNTERS']);
const TIMELINE_LENGTH = 8;
const JOBS_SHOWN = 8;
const DEAD_NODES_SHOWN = 3;

/** What the detail asks of the sidebar. */
export interface IDetailActions {
  scale(name: string, body: { workers: number } | { adapt: { minimum: number; maximum: number } }): Promise<void>;
  stop(name: string): Promise<void>;
  insertConnect(name: string): void;
  openPage(name: string): void;
  openLog(name: string, jobId: string): void;
  /** The cluster's JSON or its live totals changed (the list shows them). */
  changed(cluster: ICluster): void;
  /** The server does not know the cluster any more. */
  gone(name: string): void;
}

/** Live totals of a cluster: nodes alive of all, CPU, machine memory, object store. */
export interface ITotals {
  alive: number;
  total: number;
  cpu?: IUsage;
  memory?: IUsage;
  store?: IUsage;
}

export class ClusterDetail {
  readonly node: HTMLElement;
  cluster: ICluster;
  nodes: INode[] | null = null;

  constructor(
    private readonly settings: ServerConnection.ISettings,
    cluster: ICluster,
    private readonly actions: IDetailActions
  ) {
    this.cluster = cluster;
    this.name = cluster.name;
    this.reload = {
      cluster: coalesced(() => this.load('cluster', `clusters/${enc(this.name)}`), 1000),
      nodes: coalesced(() => this.load('nodes', `clusters/${enc(this.name)}/nodes`), 300),
      autoscaler: coalesced(() => this.load('autoscaler', `clusters/${enc(this.name)}/autoscaler`), 300),
      jobs: coalesced(() => this.load('jobs', `clusters/${enc(this.name)}/jobs/`), 500)
    };
    this.node = this.build();
    this.applyCluster(cluster, true);
    this.stream = new EventStream(this.settings, `clusters/${enc(this.name)}/events?replay=1`, {
      onOpen: again => {
        this.setStream('live', 'live');
        if (again) {
          Object.values(this.reload).forEach(r => r.request());
        }
      },
      onDown: why => this.setStream(`reconnecting (${why})`, 'down'),
      onGone: () => this.actions.gone(this.name),
      onEvent: (kind, data) => this.onEvent(kind, data)
    });
    for (const r of ['nodes', 'autoscaler', 'jobs'] as const) {
      this.reload[r].request();
    }
  }

  readonly name: string;

  dispose(): void {
    this.stream.close();
    Object.values(this.reload).forEach(r => r.cancel());
    this.node.remove();
  }

  /** The cluster's JSON from the list, a reload or an action; `prefill` the controls. */
  applyCluster(cluster: ICluster, prefill = false): void {
    if (cluster.name !== this.name) {
      return;
    }
    this.cluster = cluster;
    const w = cluster.workers;
    const scalable = cluster.autoscaler !== false;
    for (const el of this.node.querySelectorAll<HTMLInputElement | HTMLButtonElement>('.nbc-controls input, .nbc-controls button')) {
      el.disabled = !scalable || this.busy;
    }
    this.el('controls').dataset.scalable = String(scalable);
    if (!scalable) {
      this.note('No autoscaler: this cluster’s nodes are fixed.');
    }
    if (w && (prefill || this.untouched)) {
      this.setIfIdle('scale', w.min === w.max ? w.max : w.running);
      this.setIfIdle('min', w.min);
      this.setIfIdle('max', w.max);
    }
    const stop = this.el('stop') as HTMLButtonElement;
    stop.textContent = cluster.origin === 'attached' ? 'Forget' : 'Stop';
    stop.title = cluster.origin === 'attached'
      ? 'The server forgets the cluster; it keeps running'
      : cluster.provider === 'kubernetes'
        ? 'Delete the cluster’s pods and every other object of it'
        : 'Stop the cluster and all its processes';
    this.renderUsage();
  }

  /** Live totals: from the nodes once loaded, else from the Cluster JSON. */
  totals(): ITotals {
    if (this.nodes === null) {
      const r = this.cluster.resources || {};
      const memory = this.cluster.memory;
      return {
        alive: this.cluster.nodes?.alive ?? 0,
        total: this.cluster.nodes?.total ?? 0,
        cpu: r.CPU,
        memory: memory && memory.total ? { used: memory.used || 0, total: memory.total } : undefined,
        store: r.object_store_memory
      };
    }
    const alive = this.nodes.filter(n => n.state === 'ALIVE');
    const sum = (f: (n: INode) => unknown): number => alive.reduce((acc, n) => acc + (Number(f(n)) || 0), 0);
    const machines = new Map<string, IUsage>();
    for (const n of alive) {
      const total = Number(n.memory_total) || 0;
      if (total > 0) {
        const key = n.hostname || n.node_ip || n.node_id;
        const seen = machines.get(key) || { used: 0, total: 0 };
        machines.set(key, { used: Math.max(seen.used, Number(n.memory_used) || 0), total: Math.max(seen.total, total) });
      }
    }
    const memory = [...machines.values()].reduce((a, m) => ({ used: a.used + m.used, total: a.total + m.total }), {
      used: 0,
      total: 0
    });
    return {
      alive: alive.length,
      total: this.nodes.length,
      cpu: {
        used: sum(n => (n.resources_total.CPU || 0) - (n.resources_available.CPU ?? n.resources_total.CPU ?? 0)),
        total: sum(n => n.resources_total.CPU || 0)
      },
      memory: memory.total ? memory : undefined,
      store: { used: sum(n => n.object_store_used), total: sum(n => n.object_store_capacity) }
    };
  }

  // -- the event stream --------------------------------------------------------------
  private onEvent(kind: string, ev: any): void {
    if (kind === 'snapshot') {
      this.applyCluster(ev as ICluster);
      this.actions.changed(this.cluster);
      return;
    }
    if (kind === 'deleted') {
      this.actions.gone(this.name);
      return;
    }
    if (kind === 'unreachable') {
      this.setStream(`unreachable: ${ev?.message || 'its head does not answer'}`, 'down');
      this.reload.cluster.request();
      return;
    }
    if (!EVENT_KINDS.has(kind) || !ev) {
      return;
    }
    if (typeof ev.seq === 'number') {
      if (ev.seq <= this.lastSeq) {
        return; // a reconnect replays what we have seen
      }
      this.lastSeq = ev.seq;
    }
    switch (kind) {
      case 'NODE_ADDED':
      case 'NODE_DEAD':
        this.reload.nodes.request();
        this.reload.cluster.request();
        this.reload.autoscaler.request();
        break;
      case 'NODE_STATE':
        this.reload.nodes.request();
        if (this.moving()) {
          this.reload.autoscaler.request();
        }
        break;
      case 'AUTOSCALER':
        this.addSentence(ev.time, ev.message);
        this.reload.autoscaler.request();
        this.reload.cluster.request();
        break;
      case 'JOB_STATE':
        this.reload.jobs.request();
        break;
      case 'TASK_COUNTERS':
        if (ev.job_id) {
          const d = ev.data || {};
          this.progress.set(ev.job_id, { finished: Number(d.finished) || 0, total: Number(d.total) || 0 });
          this.reload.jobs.request();
        }
        // Demand drains without an autoscaler event of its own.
        if (this.autoscaler?.demand?.length) {
          this.reload.autoscaler.request();
        }
        break;
    }
  }

  private moving(): boolean {
    return (this.autoscaler?.node_types || []).some(t => t.pending || t.stopping) ||
      Boolean(this.autoscaler?.demand?.length);
  }

  private async load(what: 'cluster' | 'nodes' | 'autoscaler' | 'jobs', path: string): Promise<void> {
    try {
      const data = await api(this.settings, 'GET', path);
      if (this.disposed()) {
        return;
      }
      if (what === 'cluster') {
        this.applyCluster(data as ICluster);
        this.actions.changed(this.cluster);
      } else if (what === 'nodes') {
        this.nodes = (data?.nodes || []) as INode[];
        this.renderNodes();
        this.renderUsage();
        this.actions.changed(this.cluster);
      } else if (what === 'autoscaler') {
        this.autoscaler = (data || { enabled: false }) as IAutoscaler;
        for (const e of this.autoscaler.events || []) {
          this.addSentence(e.time, e.message, false);
        }
        this.renderAutoscaler();
      } else {
        this.jobs = (Array.isArray(data) ? data : data?.jobs || []) as IJob[];
        this.renderJobs();
      }
    } catch (exc: any) {
      if (this.disposed()) {
        return;
      }
      if (exc.status === 404 && what === 'cluster') {
        this.actions.gone(this.name);
        return;
      }
      this.setStream(`could not load the ${what}: ${exc.message}`, 'down');
    }
  }

  private disposed(): boolean {
    return this.stream.isClosed;
  }

  private addSentence(time: number, message: string, render = true): void {
    if (!message) {
      return;
    }
    const key = `${Number(time).toFixed(2)}|${message}`;
    if (this.timelineKeys.has(key)) {
      return;
    }
    this.timelineKeys.add(key);
    this.timeline.push({ time: Number(time) || 0, message });
    this.timeline.sort((a, b) => a.time - b.time);
    this.timeline.splice(0, Math.max(0, this.timeline.length - 50));
    if (render) {
      this.renderTimeline();
    }
  }

  // -- actions -------------------------------------------------------------------------
  private readInt(key: string, label: string): number {
    const raw = (this.el(key) as HTMLInputElement).value.trim();
    const n = Number(raw);
    if (raw === '' || !Number.isInteger(n) || n < 0) {
      throw new Error(`${label} must be a whole number of at least 0.`);
    }
    return n;
  }

  private async send(body: { workers: number } | { adapt: { minimum: number; maximum: number } }, done: string): Promise<void> {
    this.busy = true;
    this.applyCluster(this.cluster);
    this.note('sending…');
    try {
      await this.actions.scale(this.name, body);
      this.untouched = false;
      this.note(done);
      this.reload.autoscaler.request();
    } catch (exc: any) {
      this.note(exc.message, true);
    } finally {
      this.busy = false;
      this.applyCluster(this.cluster);
    }
  }

  private onScale(event: Event): void {
    event.preventDefault();
    let workers: number;
    try {
      workers = this.readInt('scale', 'Workers');
    } catch (exc: any) {
      this.note(exc.message, true);
      return;
    }
    void this.send({ workers }, `Asked for ${workers} worker${workers === 1 ? '' : 's'}.`);
  }

  private onAdapt(event: Event): void {
    event.preventDefault();
    let minimum: number;
    let maximum: number;
    try {
      minimum = this.readInt('min', 'Minimum');
      maximum = this.readInt('max', 'Maximum');
      if (maximum < minimum) {
        throw new Error('The maximum must be at least the minimum.');
      }
    } catch (exc: any) {
      this.note(exc.message, true);
      return;
    }
    void this.send({ adapt: { minimum, maximum } }, `Adapting between ${minimum} and ${maximum} workers.`);
  }

  // -- rendering -----------------------------------------------------------------------
  private el(key: string): HTMLElement {
    return this.node.querySelector(`[data-part="${key}"]`) as HTMLElement;
  }

  private note(text: string, error = false): void {
    const el = this.el('note');
    el.textContent = text;
    el.dataset.kind = error ? 'error' : 'info';
  }

  private setIfIdle(key: string, value: number | undefined): void {
    const input = this.el(key) as HTMLInputElement;
    if (document.activeElement !== input && value !== undefined && value !== null) {
      input.value = String(value);
    }
  }

  private setStream(text: string, kind: string): void {
    const el = this.el('stream');
    el.textContent = text;
    el.dataset.state = kind;
  }

  private build(): HTMLElement {
    const part = (key: string, extra: Record<string, unknown> = {}): Record<string, unknown> => ({
      ...extra,
      'data-part': key
    });
    const number = (key: string, label: string, placeholder = ''): HTMLElement =>
      h('input', part(key, { type: 'number', min: 0, step: 1, 'aria-label': label, placeholder, class: 'nbc-input nbc-num' }));
    return h(
      'div',
      { class: 'nbc-detail', 'data-testid': 'nbc-detail' },
      h('div', part('usage', { class: 'nbc-usage-list' })),
      h('div', { class: 'nbc-address' }, h('span', part('address', { class: 'nbc-mono' })), h('span', part('stream', { class: 'nbc-stream', 'data-state': 'connecting' }), 'connecting…')),
      h(
        'div',
        part('controls', { class: 'nbc-controls' }),
        h('form', { class: 'nbc-inline', 'data-testid': 'nbc-scale-form', onsubmit: (e: Event) => this.onScale(e) },
          h('span', { class: 'nbc-label' }, 'Workers'), number('scale', 'Workers'),
          h('button', { type: 'submit', class: 'jp-mod-styled jp-mod-accept nbc-button' }, 'Scale')),
        h('form', { class: 'nbc-inline', 'data-testid': 'nbc-adapt-form', onsubmit: (e: Event) => this.onAdapt(e) },
          h('span', { class: 'nbc-label' }, 'Adapt'), number('min', 'Minimum workers', 'min'), h('span', {}, '–'),
          number('max', 'Maximum workers', 'max'),
          h('button', { type: 'submit', class: 'jp-mod-styled nbc-button' }, 'Adapt')),
        h('div', part('note', { class: 'nbc-note', role: 'status' }))
      ),
      h(
        'div',
        { class: 'nbc-actions' },
        h('button', { type: 'button', class: 'jp-mod-styled jp-mod-accept nbc-button', 'data-action': 'insert',
          title: 'Insert %cluster connect into the active notebook', onclick: () => this.actions.insertConnect(this.name) },
        'Insert connect'),
        h('button', { type: 'button', class: 'jp-mod-styled nbc-button', 'data-action': 'page',
          title: 'Open the cluster page in a tab', onclick: () => this.actions.openPage(this.name) }, 'Open page'),
        h('button', part('stop', { type: 'button', class: 'jp-mod-styled jp-mod-warn nbc-button', 'data-action': 'stop',
          onclick: () => void this.actions.stop(this.name) }), 'Stop')
      ),
      h('h4', { class: 'nbc-heading' }, 'Nodes'),
      h('ul', part('nodes', { class: 'nbc-rows', 'data-testid': 'nbc-nodes' }), h('li', { class: 'nbc-empty' }, 'loading…')),
      h('h4', { class: 'nbc-heading' }, 'Autoscaler'),
      h('div', part('autoscaler', { class: 'nbc-autoscaler', 'data-testid': 'nbc-autoscaler' })),
      h('h5', { class: 'nbc-subheading' }, 'Why not scaling'),
      h('ul', part('demand', { class: 'nbc-rows', 'data-testid': 'nbc-demand' })),
      h('h5', { class: 'nbc-subheading' }, 'Recent decisions'),
      h('ol', part('timeline', { class: 'nbc-rows nbc-timeline', 'data-testid': 'nbc-timeline' })),
      h('h4', { class: 'nbc-heading' }, 'Jobs'),
      h('ul', part('jobs', { class: 'nbc-rows', 'data-testid': 'nbc-jobs' }))
    );
  }

  private renderUsage(): void {
    const t = this.totals();
    const usage: HTMLElement[] = [];
    if (t.cpu && t.cpu.total) {
      usage.push(bar('CPU', t.cpu.used, t.cpu.total, `${fmtNum(t.cpu.used)} / ${fmtNum(t.cpu.total)}`));
    }
    if (t.memory && t.memory.total) {
      usage.push(bar('Memory', t.memory.used, t.memory.total, `${fmtBytes(t.memory.used)} / ${fmtBytes(t.memory.total)}`));
    }
    if (t.store && t.store.total) {
      usage.push(bar('Store', t.store.used, t.store.total, `${fmtBytes(t.store.used)} / ${fmtBytes(t.store.total)}`));
    }
    this.el('usage').replaceChildren(...usage);
    this.el('address').textContent = this.cluster.address || '';
  }

  private renderNodes(): void {
    const list = [...(this.nodes || [])];
    const rank = (n: INode): number => (n.state === 'ALIVE' ? 0 : 1);
    list.sort((a, b) => rank(a) - rank(b) || Number(b.is_head) - Number(a.is_head));
    const alive = list.filter(n => n.state === 'ALIVE');
    const shown = alive.concat(list.filter(n => n.state !== 'ALIVE').slice(0, DEAD_NODES_SHOWN));
    this.el('nodes').replaceChildren(
      ...(shown.length
        ? shown.map(n => {
            const total = Number(n.resources_total.CPU) || 0;
            const used = total - (n.resources_available.CPU ?? total);
            const type = n.node_type || (n.is_head ? 'head' : 'worker');
            return h('li', { class: `nbc-node nbc-node-${n.state.toLowerCase()}`, 'data-testid': 'nbc-node',
              dataset: { nodeId: n.node_id, state: n.state }, title: n.death_reason || n.address || '' },
            h('span', { class: 'nbc-mono' }, n.node_id.slice(0, 8)), h('span', { class: 'nbc-muted' }, type),
            n.state === 'ALIVE' ? bar('CPU', used, total, `${fmtNum(used)}/${fmtNum(total)}`) : badge(n.state),
            h('span', { class: 'nbc-muted nbc-tasks', title: 'tasks running' }, fmtNum(n.tasks_running || 0)));
          })
        : [h('li', { class: 'nbc-empty' }, 'No nodes.')])
    );
  }

  private renderAutoscaler(): void {
    const a = this.autoscaler || { enabled: false };
    const box = this.el('autoscaler');
    box.dataset.enabled = String(Boolean(a.enabled));
    if (!a.enabled) {
      box.replaceChildren(h('p', { class: 'nbc-empty' }, 'No autoscaler: the nodes are fixed.'));
    } else {
      box.replaceChildren(...(a.node_types || []).map(t => h('div', { class: 'nbc-node-type', dataset: { nodeType: t.name } },
        h('span', { class: 'nbc-strong' }, t.name), h('span', { class: 'nbc-muted' }, ` ${fmtShape(t.resources)}`),
        h('div', {}, `${fmtNum(t.running)} running · ${fmtNum(t.pending)} pending · ${fmtNum(t.stopping)} stopping · ` +
          `${fmtNum(t.min_workers)}–${fmtNum(t.max_workers)}`))));
    }
    const demand = a.demand || [];
    this.el('demand').replaceChildren(
      ...(demand.length
        ? demand.map(d => h('li', { class: 'nbc-demand', 'data-testid': 'nbc-demand-row' },
            h('span', { class: 'nbc-mono' }, `${fmtNum(d.count)}× ${fmtShape(d.shape)}`), ' ', badge(d.status, `demand-${d.status}`),
            d.reason ? h('div', { class: 'nbc-muted' }, d.reason) : null))
        : [h('li', { class: 'nbc-empty' }, 'Nothing waiting.')])
    );
    this.renderTimeline();
  }

  private renderTimeline(): void {
    const items = this.timeline.slice(-TIMELINE_LENGTH).reverse();
    this.el('timeline').replaceChildren(
      ...(items.length
        ? items.map(e => h('li', { 'data-testid': 'nbc-timeline-item' },
            h('time', { class: 'nbc-muted' }, fmtClock(e.time)), ' ', e.message))
        : [h('li', { class: 'nbc-empty' }, 'No decisions yet.')])
    );
  }

  private renderJobs(): void {
    const sorted = [...this.jobs].sort((a, b) => (b.start_time || 0) - (a.start_time || 0)).slice(0, JOBS_SHOWN);
    const now = Date.now();
    this.el('jobs').replaceChildren(
      ...(sorted.length
        ? sorted.map(j => {
            const id = jobId(j);
            const own = j.progress && j.progress.submitted ? { finished: j.progress.finished, total: j.progress.submitted } : null;
            const counts = this.progress.get(j.job_id || '') || own;
            const took = j.start_time ? fmtDuration(((j.end_time || now) - j.start_time) / 1000) : '';
            const runs = jobRuns(j);
            return h('li', { class: 'nbc-job', 'data-testid': 'nbc-job', dataset: { jobId: id, status: j.status } },
              h('button', { type: 'button', class: 'nbc-link nbc-mono', title: `Open the log of ${id} in a tab`,
                onclick: () => this.actions.openLog(this.name, id) }, id),
              ' ', badge(j.status),
              counts && counts.total ? h('span', { class: 'nbc-muted' }, ` ${counts.finished}/${counts.total} tasks`) : null,
              h('span', { class: 'nbc-muted' }, ` ${took}`),
              runs.text ? h('div', { class: 'nbc-mono nbc-muted nbc-ellipsis', title: runs.title }, runs.text) : null);
          })
        : [h('li', { class: 'nbc-empty' }, 'No jobs.')])
    );
  }

  private readonly stream: EventStream;
  private readonly reload: Record<'cluster' | 'nodes' | 'autoscaler' | 'jobs', ICoalesced>;
  private autoscaler: IAutoscaler | null = null;
  private jobs: IJob[] = [];
  private progress = new Map<string, { finished: number; total: number }>();
  private timeline: { time: number; message: string }[] = [];
  private timelineKeys = new Set<string>();
  private lastSeq = -1;
  private busy = false;
  private untouched = true;
}
