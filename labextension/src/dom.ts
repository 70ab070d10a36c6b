/**
 * DOM and text helpers of the sidebar: elements built from text only (never parsed as
 * HTML), number and time formats, usage bars, and coalesced reloads.
 */

type Child = Node | string | number | null | undefined | false;
type Props = Record<string, unknown>;

/** An element: h('td', {class: 'num'}, '3'). Text is never parsed as HTML. */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props?: Props | null,
  ...children: (Child | Child[])[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) {
      continue;
    }
    if (key === 'class') {
      el.className = String(value);
    } else if (key === 'dataset') {
      Object.assign(el.dataset, value);
    } else if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2), value as EventListener);
    } else {
      el.setAttribute(key, value === true ? '' : String(value));
    }
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) {
      continue;
    }
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

export function fmtNum(n: unknown): string {
  const x = Number(n);
  if (n === null || n === undefined || Number.isNaN(x)) {
    return '?';
  }
  return Number.isInteger(x) ? String(x) : String(Math.round(x * 100) / 100);
}

export function fmtBytes(n: unknown): string {
  let x = Number(n) || 0;
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (x >= 1024 && i < units.length - 1) {
    x /= 1024;
    i += 1;
  }
  return `${i === 0 ? x : x.toFixed(x >= 10 ? 0 : 1)} ${units[i]}`;
}

export function fmtDuration(seconds: number): string {
  if (!(seconds >= 0)) {
    return '';
  }
  const s = Math.floor(seconds);
  if (s < 60) {
    return `${s}s`;
  }
  if (s < 3600) {
    return `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, '0')}s`;
  }
  return `${Math.floor(s / 3600)}h ${String(Math.floor(s / 60) % 60).padStart(2, '0')}m`;
}

export function fmtClock(epochSeconds: number): string {
  return new Date(epochSeconds * 1000).toLocaleTimeString([], {
    hour: '2-digit',
    minute: '2-digit',
    second: '2-digit',
    hour12: false
  });
}

export function fmtShape(shape: Record<string, number> | undefined): string {
  const keys = Object.keys(shape || {}).sort();
  return keys.length ? keys.map(k => `${k}: ${fmtNum(shape![k])}`).join(', ') : '{}';
}

export function badge(text: string, kind?: string): HTMLElement {
  return h('span', { class: `nbc-badge nbc-badge-${String(kind || text).toLowerCase()}` }, text);
}

/** A labelled usage bar announced as a meter ("CPU 1 / 3"). */
export function bar(label: string, used: number, total: number, text: string): HTMLElement {
  const fraction = total > 0 ? Math.min(1, Math.max(0, used / total)) : 0;
  const fill = h('span', { class: 'nbc-bar-fill' });
  fill.style.width = `${(fraction * 100).toFixed(1)}%`;
  const level = fraction >= 0.9 ? 'high' : fraction >= 0.6 ? 'mid' : 'low';
  return h(
    'div',
    { class: 'nbc-usage' },
    h('span', { class: 'nbc-usage-label' }, label),
    h(
      'span',
      {
        class: `nbc-bar nbc-bar-${level}`,
        role: 'meter',
        'aria-label': `${label} used`,
        'aria-valuemin': 0,
        'aria-valuemax': total || 0,
        'aria-valuenow': used || 0,
        'aria-valuetext': text
      },
      fill
    ),
    h('span', { class: 'nbc-usage-text' }, text)
  );
}

/** A reload that runs at most once at a time and at most once per `gap` ms. */
export interface ICoalesced {
  request(): void;
  cancel(): void;
}

export function coalesced(fn: () => Promise<void>, gap: number): ICoalesced {
  let timer: number | null = null;
  let running = false;
  let again = false;
  let last = 0;
  let closed = false;
  const run = async (): Promise<void> => {
    timer = null;
    if (closed) {
      return;
    }
    running = true;
    again = false;
    last = Date.now();
    try {
      await fn();
    } finally {
      running = false;
    }
    if (again && !closed) {
      request();
    }
  };
  const request = (): void => {
    if (closed || timer !== null) {
      return;
    }
    if (running) {
      again = true;
      return;
    }
    timer = window.setTimeout(run, Math.max(0, last + gap - Date.now()));
  };
  return {
    request,
    cancel(): void {
      closed = true;
      if (timer !== null) {
        window.clearTimeout(timer);
      }
    }
  };
}
