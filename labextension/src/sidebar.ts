/**
 * The left sidebar panel: the clusters the Jupyter server knows (made by it, attached),
 * the clusters running on its machine that it does not know yet (started by notebooks,
 * scripts or `nbcluster start --head`: one click attaches them), a form that starts a
 * new one, and the selected cluster live (detail.ts).
 *
 * The list and the machine's clusters come from one event stream (api/events: `clusters`
 * and `local` events), sent again by the server whenever they change; nothing polls.
 */

import { Dialog, showDialog } from '@jupyterlab/apputils';
import { ServerConnection } from '@jupyterlab/services';
import { Widget } from '@lumino/widgets';

import { api, enc, EventStream, ICluster, ILocalCluster } from './api';
import { ClusterDetail } from './detail';
import { badge, fmtDuration, fmtNum, h } from './dom';

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

/** A local cluster's create body from the form's fields (`value(key)`). */
function localBody(value: (key: string) => string): Record<string, unknown> {
  const body: Record<string, unknown> = {};
  const name = value('name');
  if (name) {
    if (!NAME_RE.test(name)) {
      throw new Error('Name: a letter or digit, then letters, digits, _ . or -; at most 64.');
    }
    body.name = name;
  }
  const workers = value('workers');
  if (workers) {
    const bounds = workers.split(/\s*[-–:]\s*/).map(Number);
    if (bounds.some(n => !Number.isInteger(n) || n < 0) || bounds.length > 2 || (bounds.length === 2 && bounds[1] < bounds[0])) {
      throw new Error('Workers: a whole number (fixed), or MIN-MAX to adapt, such as 0-4.');
    }
    if (bounds.length === 2) {
      body.adapt = { minimum: bounds[0], maximum: bounds[1] };
    } else {
      body.workers = bounds[0];
    }
  }
  return body;
}

/** A cluster on Kubernetes: the fields as typed (numbers as numbers); the server checks
 * them as the %cluster magic's options and says what is wrong. */
function kubernetesBody(value: (key: string) => string): Record<string, unknown> {
  const body: Record<string, unknown> = { provider: 'kubernetes' };
  for (const key of ['name', 'namespace', 'image']) {
    if (value(key)) {
      body[key] = value(key);
    }
  }
  for (const [key, label] of [['workers_max', 'Worker pods at most'], ['worker_cpus', 'CPUs per worker']]) {
    if (value(key)) {
      const n = Number(value(key));
      if (!Number.isFinite(n)) {
        throw new Error(`${label} must be a number.`);
      }
      body[key] = n;
    }
  }
  return body;
}

/** What the sidebar's buttons do outside it (commands of the extension). */
export interface ISidebarActions {
  insertConnect(name: string): void;
  openPage(name?: string): void;
  openLog(name: string, jobId: string): void;
}

export class ClusterSidebar extends Widget {
  constructor(
    private readonly settings: ServerConnection.ISettings,
    private readonly actions: ISidebarActions
  ) {
    super();
    this.id = 'nbcluster-sidebar';
    this.addClass('nbc-sidebar');
    this.title.caption = 'nbcluster clusters';
    this.node.append(this.build());
  }

  /** The names of the clusters the server knows, sorted. */
  get names(): string[] {
    return [...this.clusters.keys()].sort();
  }

  /** The selected cluster's name (or null). */
  get selected(): string | null {
    return this.detail?.name ?? null;
  }

  /** Start a cluster (`body` as POST clusters takes); it is selected once running. */
  async start(body: Record<string, unknown>): Promise<ICluster> {
    const cluster = await api<ICluster>(this.settings, 'POST', 'clusters', body);
    this.upsert(cluster);
    this.select(cluster.name);
    return cluster;
  }

  /** Select (expand) a cluster, or none. */
  select(name: string | null): void {
    if (this.detail && this.detail.name === name) {
      return;
    }
    this.detail?.dispose();
    this.detail = null;
    const cluster = name === null ? undefined : this.clusters.get(name);
    if (cluster) {
      this.detail = new ClusterDetail(this.settings, cluster, {
        scale: async (n, body) => this.upsert(await api<ICluster>(this.settings, 'PATCH', `clusters/${enc(n)}`, body)),
        stop: n => this.stop(n),
        insertConnect: n => this.actions.insertConnect(n),
        openPage: n => this.actions.openPage(n),
        openLog: (n, job) => this.actions.openLog(n, job),
        changed: c => this.upsert(c),
        gone: n => {
          if (!this.stopping.has(n)) {
            this.forget(n); // stopped elsewhere (this sidebar's own stop forgets it once DELETE answers)
          }
        }
      });
    }
    this.renderList();
  }

  /** Live while shown: the streams run only while the panel is visible. */
  protected onAfterAttach(): void {
    if (this.isVisible) {
      this.connect();
    }
  }

  protected onAfterShow(): void {
    this.connect();
  }

  /** Hidden (another panel chosen, or the sidebar collapsed): the streams end; the
   * selection comes back when the panel is shown again. */
  protected onAfterHide(): void {
    this.stream?.close();
    this.stream = null;
    if (this.detail) {
      this.wanted = this.detail.name;
      this.detail.dispose();
      this.detail = null;
      this.renderList();
    }
  }

  protected onBeforeDetach(): void {
    this.onAfterHide();
  }

  private connect(): void {
    if (this.stream !== null) {
      return;
    }
    this.stream = new EventStream(this.settings, 'events', {
      onOpen: () => this.setError(''),
      onDown: (why, ms) => this.setError(`No live list (${why}); trying again in ${Math.round(ms / 1000)} s.`),
      onGone: () =>
        this.setError('The nbcluster server extension does not answer (404): is it enabled? ' +
          'See `jupyter server extension list`.'),
      onEvent: (kind, data) => {
        if (kind === 'clusters') {
          this.applyClusters(data.clusters || []);
        } else if (kind === 'local') {
          this.applyLocal(data.clusters || [], data.message);
        }
      }
    });
  }

  dispose(): void {
    this.stream?.close();
    this.detail?.dispose();
    super.dispose();
  }

  // -- state -----------------------------------------------------------------------------
  private applyClusters(list: ICluster[]): void {
    const seen = new Set<string>();
    for (const c of list) {
      this.clusters.set(c.name, c);
      seen.add(c.name);
    }
    for (const name of [...this.clusters.keys()]) {
      if (!seen.has(name)) {
        this.clusters.delete(name);
      }
    }
    if (this.detail && !this.clusters.has(this.detail.name)) {
      this.select(null);
    } else if (this.detail) {
      this.detail.applyCluster(this.clusters.get(this.detail.name)!);
    }
    const wanted = this.wanted;
    this.wanted = null;
    if (!this.detail && wanted !== null && this.clusters.has(wanted)) {
      this.select(wanted);
    } else if (!this.detail && this.clusters.size === 1) {
      this.select(this.names[0]);
    }
    this.renderList();
  }

  private upsert(cluster: ICluster): void {
    this.clusters.set(cluster.name, cluster);
    if (this.detail?.name === cluster.name && this.detail.cluster !== cluster) {
      this.detail.applyCluster(cluster);
    }
    this.renderList();
  }

  private forget(name: string): void {
    this.clusters.delete(name);
    if (this.detail?.name === name) {
      this.select(null);
    }
    this.renderList();
  }

  private applyLocal(found: ILocalCluster[], message?: string): void {
    this.local = found;
    this.renderLocal(message);
  }

  // -- actions -----------------------------------------------------------------------------
  private async stop(name: string): Promise<void> {
    const cluster = this.clusters.get(name);
    if (!cluster) {
      return;
    }
    const attached = cluster.origin === 'attached';
    const answer = await showDialog({
      title: attached ? `Forget ${name}?` : `Stop ${name}?`,
      body: attached
        ? `The server forgets ${name}; the cluster itself keeps running.`
        : cluster.provider === 'kubernetes'
          ? `Every object of ${name} in namespace ${cluster.spec?.namespace} is deleted: its pods, with the work ` +
            'running on them, its Service, Secrets, ConfigMap and RBAC. Notebooks connected to it lose it.'
          : `All processes of ${name} stop, with the work running on it. Notebooks connected to it lose it.`,
      buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: attached ? 'Forget' : 'Stop' })]
    });
    if (!answer.button.accept) {
      return;
    }
    this.stopping.add(name);
    this.renderList();
    try {
      await api(this.settings, 'DELETE', `clusters/${enc(name)}`);
      this.forget(name);
    } catch (exc: any) {
      if (exc.status === 404) {
        this.forget(name);
      }
      this.setError(`Could not stop ${name}: ${exc.message}`);
    } finally {
      this.stopping.delete(name);
      this.renderList();
    }
  }

  private async attach(address: string, button: HTMLButtonElement): Promise<void> {
    const port = address.split(':').pop();
    let name = `local-${port}`;
    for (let i = 2; this.clusters.has(name); i += 1) {
      name = `local-${port}-${i}`;
    }
    button.disabled = true;
    try {
      this.upsert(await api<ICluster>(this.settings, 'POST', 'attach', { name, address }));
      this.local = this.local.filter(c => c.address !== address);
      this.renderLocal();
      this.select(name);
    } catch (exc: any) {
      this.setError(`Could not attach ${address}: ${exc.message}`);
      button.disabled = false;
    }
  }

  private async onCreate(event: Event): Promise<void> {
    event.preventDefault();
    const form = event.target as HTMLFormElement;
    const error = form.querySelector('.nbc-form-error') as HTMLElement;
    const value = (key: string): string => (form.querySelector(`[name="${key}"]`) as HTMLInputElement).value.trim();
    let body: Record<string, unknown>;
    try {
      body = value('provider') === 'kubernetes' ? kubernetesBody(value) : localBody(value);
    } catch (exc: any) {
      error.textContent = exc.message;
      return;
    }
    error.textContent = '';
    const submit = form.querySelector('button[type="submit"]') as HTMLButtonElement;
    submit.disabled = true;
    submit.textContent = body.provider === 'kubernetes' ? 'Deploying…' : 'Starting…';
    try {
      await this.start(body);
      form.reset();
      this.syncProvider(form);
      form.hidden = true;
    } catch (exc: any) {
      error.textContent = exc.message;
    } finally {
      submit.disabled = false;
      submit.textContent = 'Start';
    }
  }

  /** Show the fields of the chosen provider only. */
  private syncProvider(form: HTMLFormElement): void {
    const provider = (form.querySelector('[name="provider"]') as HTMLSelectElement).value;
    for (const el of form.querySelectorAll<HTMLElement>('[data-provider]')) {
      el.hidden = el.dataset.provider !== provider;
    }
    (form.querySelector('[name="name"]') as HTMLInputElement).placeholder =
      provider === 'kubernetes' ? 'nb-USER (default)' : '(automatic)';
  }

  // -- rendering ---------------------------------------------------------------------------
  private part(key: string): HTMLElement {
    return this.node.querySelector(`[data-part="${key}"]`) as HTMLElement;
  }

  private setError(text: string): void {
    const el = this.part('error');
    el.textContent = text;
    el.hidden = !text;
  }

  private build(): HTMLElement {
    const input = (name: string, placeholder: string): HTMLElement =>
      h('input', { name, class: 'nbc-input', placeholder, autocomplete: 'off', spellcheck: 'false' });
    const form = h(
      'form',
      { class: 'nbc-create', 'data-part': 'create', 'data-testid': 'nbc-create', hidden: true,
        onsubmit: (e: Event) => void this.onCreate(e) },
      h('label', {}, 'Where', h('select', { name: 'provider', class: 'nbc-input', 'data-testid': 'nbc-provider',
        onchange: () => this.syncProvider(form as HTMLFormElement) },
      h('option', { value: 'local' }, 'This machine'), h('option', { value: 'kubernetes' }, 'Kubernetes'))),
      h('label', {}, 'Name', input('name', '(automatic)')),
      h('div', { class: 'nbc-provider', 'data-provider': 'local' },
        h('label', {}, 'Workers', input('workers', 'server default; 2, or 0-4 to adapt'))),
      h('div', { class: 'nbc-provider', 'data-provider': 'kubernetes', 'data-testid': 'nbc-kubernetes', hidden: true },
        h('label', {}, 'Namespace', input('namespace', 'this server’s pod’s')),
        h('label', {}, 'Image', input('image', 'nbcluster:VERSION (default)')),
        h('label', {}, 'Worker pods at most', input('workers_max', '4')),
        h('label', {}, 'CPUs per worker', input('worker_cpus', '1')),
        h('p', { class: 'nbc-help' }, 'A head pod and its Service, made with this server’s credentials; worker pods ' +
          'come as work needs them. Stop, or stopping the server, deletes them all.')),
      h('div', { class: 'nbc-form-error', role: 'alert' }),
      h('button', { type: 'submit', class: 'jp-mod-styled jp-mod-accept nbc-button' }, 'Start')
    );
    return h(
      'div',
      { class: 'nbc-panel' },
      h('header', { class: 'nbc-header' },
        h('h2', { class: 'nbc-title' }, 'Clusters'),
        h('button', { type: 'button', class: 'jp-mod-styled nbc-button', 'data-action': 'new', title: 'Start a new cluster',
          onclick: () => { form.hidden = !form.hidden; } }, 'New'),
        h('button', { type: 'button', class: 'jp-mod-styled nbc-button', 'data-action': 'open-page',
          title: 'Open the cluster page in a tab', onclick: () => this.actions.openPage() }, 'Page')),
      h('div', { class: 'nbc-error', role: 'alert', 'data-part': 'error', hidden: true }),
      form,
      h('p', { class: 'nbc-empty', 'data-part': 'empty' }, 'Connecting…'),
      h('ul', { class: 'nbc-clusters', 'data-part': 'list', 'data-testid': 'nbc-clusters', 'aria-label': 'Clusters' }),
      h('section', { class: 'nbc-local', 'data-part': 'local', 'data-testid': 'nbc-local', hidden: true },
        h('h3', { class: 'nbc-heading' }, 'Running on this machine'),
        h('p', { class: 'nbc-help' }, 'Started by notebooks, scripts or nbcluster start: attach one to see it, scale it ' +
          'and connect other notebooks to it by name.'),
        h('ul', { class: 'nbc-rows', 'data-part': 'local-list' }))
    );
  }

  private meta(cluster: ICluster): string {
    let alive = cluster.nodes?.alive ?? 0;
    let total = cluster.nodes?.total ?? 0;
    let cpu: { used: number; total: number } | undefined = cluster.resources?.CPU;
    if (this.detail?.name === cluster.name && this.detail.nodes !== null) {
      ({ alive, total, cpu } = this.detail.totals());
    }
    return [
      `${fmtNum(alive)}/${fmtNum(total)} nodes`,
      cpu && cpu.total ? `CPU ${fmtNum(cpu.used)}/${fmtNum(cpu.total)}` : '',
      cluster.drivers?.length ? cluster.drivers.map(d => d.notebook_path || d.job_id || 'kernel').join(', ') : ''
    ].filter(Boolean).join(' · ');
  }

  /** Update the list in place (keyed by name): the selected cluster's detail is never
   * moved, so an input being typed in keeps its focus and value. */
  private renderList(): void {
    const names = this.names;
    const empty = this.part('empty');
    empty.textContent = this.stream === null ? 'Connecting…' : 'No clusters yet. Start one with New, or attach one running on this machine.';
    empty.hidden = names.length > 0 || this.local.length > 0;
    const list = this.part('list');
    for (const [name, item] of this.items) {
      if (!this.clusters.has(name)) {
        item.remove();
        this.items.delete(name);
      }
    }
    names.forEach((name, index) => {
      const c = this.clusters.get(name)!;
      const selected = this.detail?.name === name;
      let item = this.items.get(name);
      if (!item) {
        item = h('li', { 'data-testid': 'nbc-cluster' }, h('button', { type: 'button', class: 'nbc-cluster-head' }));
        item.firstElementChild!.addEventListener('click', () => this.select(this.detail?.name === name ? null : name));
        this.items.set(name, item);
      }
      if (list.children[index] !== item) {
        list.insertBefore(item, list.children[index] || null);
      }
      const status = this.stopping.has(name) ? 'stopping' : c.status || 'unknown';
      const alive = selected && this.detail!.nodes !== null ? this.detail!.totals().alive : c.nodes?.alive ?? 0;
      item.className = `nbc-cluster${selected ? ' nbc-selected' : ''}`;
      Object.assign(item.dataset, { name, status, origin: c.origin, alive: String(alive) });
      const head = item.firstElementChild as HTMLButtonElement;
      head.setAttribute('aria-expanded', selected ? 'true' : 'false');
      head.title = selected ? `Hide ${name}` : `Show ${name}`;
      head.replaceChildren(...[h('span', { class: 'nbc-cluster-name' }, name), badge(status),
        c.origin === 'attached' ? h('span', { class: 'nbc-tag' }, 'attached') : null,
        c.provider === 'kubernetes'
          ? h('span', { class: 'nbc-tag', title: `On Kubernetes, namespace ${c.spec?.namespace}` }, 'kubernetes')
          : null,
        h('span', { class: 'nbc-cluster-meta', 'data-testid': 'nbc-cluster-meta' }, this.meta(c))].filter(
        (el): el is HTMLElement => el !== null));
      if (selected && this.detail!.node.parentElement !== item) {
        item.append(this.detail!.node);
      }
    });
  }

  private renderLocal(message?: string): void {
    const section = this.part('local');
    section.hidden = this.local.length === 0 && !message;
    const now = Date.now() / 1000;
    this.part('local-list').replaceChildren(
      ...(message ? [h('li', { class: 'nbc-error' }, message)] : []),
      ...this.local.map(c => {
        const button = h('button', { type: 'button', class: 'jp-mod-styled jp-mod-accept nbc-button', 'data-action': 'attach',
          title: `Attach the cluster at ${c.address}` }, 'Attach') as HTMLButtonElement;
        button.addEventListener('click', () => void this.attach(c.address, button));
        return h('li', { class: 'nbc-local-row', 'data-testid': 'nbc-local-row', dataset: { address: c.address } },
          h('span', { class: 'nbc-mono', title: c.session_dir }, c.address),
          h('span', { class: 'nbc-muted' }, c.started ? `up ${fmtDuration(now - c.started)}` : ''),
          button);
      })
    );
    this.renderList();
  }

  private clusters = new Map<string, ICluster>();
  private items = new Map<string, HTMLLIElement>();
  private local: ILocalCluster[] = [];
  private stopping = new Set<string>();
  private detail: ClusterDetail | null = null;
  private wanted: string | null = null; // selected when the panel was hidden
  private stream: EventStream | null = null;
}
