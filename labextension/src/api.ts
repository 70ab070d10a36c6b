/**
 * The server extension's REST API ({base_url}nbcluster/api/, described by its
 * openapi.yaml) and its server-sent event streams, reached only through JupyterLab's
 * ServerConnection: the base URL, the token or login cookie and the XSRF header are
 * Jupyter's, handled there. Event streams are read from a fetch response (not an
 * EventSource, which can send no headers), so they carry the same credentials.
 */

import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

/** Usage of one resource: used of total. */
export interface IUsage {
  used: number;
  total: number;
}

/** The Cluster JSON of the REST API. */
export interface ICluster {
  name: string;
  address: string;
  origin: 'created' | 'attached';
  /** How the server made it (null: attached). */
  provider: 'local' | 'kubernetes' | null;
  status: string;
  spec: Record<string, unknown>;
  created: number;
  nodes: { alive: number; total: number };
  resources: Record<string, IUsage>;
  memory: { used?: number; total?: number; machines?: number };
  autoscaler: boolean;
  workers: null | { node_type: string; running: number; pending: number; min: number; max: number };
  drivers: { kernel_id?: string; notebook_path?: string; job_id?: string }[];
}

/** A cluster running on the server's machine that the server does not know yet. */
export interface ILocalCluster {
  address: string;
  session_dir: string;
  started: number;
}

/** A node, as nbcluster.state.NodeState.to_json(). */
export interface INode {
  node_id: string;
  state: string;
  is_head: boolean;
  node_type?: string;
  address?: string;
  node_ip?: string;
  hostname?: string;
  resources_total: Record<string, number>;
  resources_available: Record<string, number>;
  tasks_running?: number;
  memory_used?: number;
  memory_total?: number;
  object_store_used?: number;
  object_store_capacity?: number;
  draining?: boolean;
  death_reason?: string;
}

/** The autoscaler's state, as nbcluster.state.AutoscalerState.to_json(). */
export interface IAutoscaler {
  enabled: boolean;
  node_types?: {
    name: string;
    resources: Record<string, number>;
    running: number;
    pending: number;
    stopping: number;
    min_workers: number;
    max_workers: number;
  }[];
  demand?: { shape: Record<string, number>; kind: string; count: number; status: string; reason?: string }[];
  events?: { time: number; message: string }[];
}

/** A job of the head's Jobs API. */
export interface IJob {
  job_id?: string;
  submission_id?: string;
  type?: string;
  status: string;
  entrypoint?: string;
  metadata?: Record<string, string>;
  start_time?: number;
  end_time?: number;
  progress?: { finished: number; submitted: number };
}

/** What a job runs, as the sidebar shows it: a driver in a Jupyter kernel by its
 * notebook's file name, with the whole path (`notebook_path`, which follows renames) as
 * the title, else by its entrypoint. */
export function jobRuns(job: IJob): { text: string; title: string } {
  const notebook = (job.metadata && job.metadata.notebook_path) || '';
  if (notebook) {
    return { text: notebook.split('/').pop() || notebook, title: notebook };
  }
  return { text: job.entrypoint || '', title: job.entrypoint || '' };
}

/** A job's id as shown: its submission id, else its job id. */
export function jobId(job: IJob): string {
  return job.submission_id || job.job_id || '';
}

/** An answer of the API that was not a success, with the server's message. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string
  ) {
    super(message);
  }
}

export const enc = encodeURIComponent;

/** The URL of `path` under the extension's root ({base_url}nbcluster/). */
export function extensionUrl(settings: ServerConnection.ISettings, path = ''): string {
  return URLExt.join(settings.baseUrl, 'nbcluster', path);
}

function errorText(status: number, data: unknown): string {
  if (data && typeof data === 'object') {
    const text = (data as any).message || (data as any).error || (data as any).reason;
    if (text) {
      return String(text);
    }
  }
  if (status === 403 || status === 401) {
    return `Not allowed (${status}): your Jupyter login may have expired; reload JupyterLab to log in again.`;
  }
  if (status === 404) {
    return 'Not found (404): is the nbcluster server extension enabled (jupyter server extension list)?';
  }
  return `The server answered ${status}`;
}

/** One call of the REST API: the decoded answer, or an ApiError with the server's message. */
export async function api<T = any>(
  settings: ServerConnection.ISettings,
  method: string,
  path: string,
  body?: unknown
): Promise<T> {
  const init: RequestInit = { method, headers: { Accept: 'application/json' }, cache: 'no-store' };
  if (body !== undefined) {
    (init.headers as Record<string, string>)['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(extensionUrl(settings, `api/${path}`), init, settings);
  } catch (exc) {
    throw new ApiError(0, 'The Jupyter server does not answer. Is it still running?');
  }
  const text = await response.text();
  let data: unknown = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = text;
    }
  }
  if (!response.ok) {
    throw new ApiError(response.status, errorText(response.status, data));
  }
  return data as T;
}

/** What an event stream tells its owner. */
export interface IStreamHandlers {
  /** One `event: kind` record with its decoded data. */
  onEvent(kind: string, data: any): void;
  /** The stream answered (`again`: after a reconnect). */
  onOpen?(again: boolean): void;
  /** The stream is down; it reconnects after `retryMs` unless it was refused for good. */
  onDown?(why: string, retryMs: number): void;
  /** The server answered 404: what it streams is gone (no reconnect). */
  onGone?(): void;
  /** The server ended the stream (no reconnect when this returns false). */
  onEnd?(): boolean;
}

/**
 * A server-sent event stream of the API under `path`, read through ServerConnection and
 * reconnected with a backoff (1 s doubling to 30 s) until `close()`.
 */
export class EventStream {
  constructor(
    private readonly settings: ServerConnection.ISettings,
    private readonly path: string,
    private readonly handlers: IStreamHandlers
  ) {
    void this.run();
  }

  close(): void {
    this.closed = true;
    this.abort?.abort();
    if (this.timer !== null) {
      window.clearTimeout(this.timer);
    }
  }

  get isClosed(): boolean {
    return this.closed;
  }

  private async run(): Promise<void> {
    if (this.closed) {
      return;
    }
    this.abort = new AbortController();
    let reconnect = true;
    let why = 'the stream ended';
    try {
      const response = await ServerConnection.makeRequest(
        extensionUrl(this.settings, `api/${this.path}`),
        { method: 'GET', headers: { Accept: 'text/event-stream' }, cache: 'no-store', signal: this.abort.signal },
        this.settings
      );
      if (response.status === 404) {
        this.closed = true;
        this.handlers.onGone?.();
        return;
      }
      if (!response.ok || !response.body) {
        let data: unknown = null;
        try {
          data = await response.json();
        } catch {
          // not JSON
        }
        throw new ApiError(response.status, errorText(response.status, data));
      }
      this.handlers.onOpen?.(this.opened);
      this.opened = true;
      this.delay = 1000;
      await this.read(response.body);
      if (this.closed) {
        return;
      }
      reconnect = this.handlers.onEnd ? this.handlers.onEnd() : true;
    } catch (exc) {
      if (this.closed) {
        return;
      }
      why = exc instanceof Error ? exc.message : String(exc);
    }
    if (!reconnect || this.closed) {
      this.closed = true;
      return;
    }
    this.handlers.onDown?.(why, this.delay);
    this.timer = window.setTimeout(() => {
      this.timer = null;
      void this.run();
    }, this.delay);
    this.delay = Math.min(this.delay * 2, 30000);
  }

  private async read(body: ReadableStream<Uint8Array>): Promise<void> {
    const reader = body.getReader();
    const decoder = new TextDecoder();
    let buffer = '';
    for (;;) {
      const { done, value } = await reader.read();
      if (done || this.closed) {
        return;
      }
      buffer += decoder.decode(value, { stream: true });
      let end = buffer.search(/\r?\n\r?\n/);
      while (end >= 0) {
        const record = buffer.slice(0, end);
        buffer = buffer.slice(end).replace(/^\r?\n\r?\n/, '');
        this.dispatch(record);
        end = buffer.search(/\r?\n\r?\n/);
      }
    }
  }

  private dispatch(record: string): void {
    let kind = 'message';
    const data: string[] = [];
    for (const line of record.split(/\r?\n/)) {
      if (line.startsWith(':')) {
        continue; // a keepalive comment
      }
      const at = line.indexOf(':');
      const field = at < 0 ? line : line.slice(0, at);
      const value = at < 0 ? '' : line.slice(at + 1).replace(/^ /, '');
      if (field === 'event') {
        kind = value;
      } else if (field === 'data') {
        data.push(value);
      }
    }
    if (!data.length || this.closed) {
      return;
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(data.join('\n'));
    } catch {
      return;
    }
    this.handlers.onEvent(kind, parsed);
  }

  private closed = false;
  private opened = false;
  private delay = 1000;
  private timer: number | null = null;
  private abort: AbortController | null = null;
}
