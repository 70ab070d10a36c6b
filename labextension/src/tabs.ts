/**
 * Views that open as JupyterLab tabs: the cluster page ({base_url}nbcluster/, the
 * server extension's standalone page, in an iframe of the same origin) and a job's log,
 * followed live (api/clusters/{name}/jobs/{id}/logs/tail).
 */

import { MainAreaWidget } from '@jupyterlab/apputils';
import { ServerConnection } from '@jupyterlab/services';
import { IFrame, LabIcon } from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';

import { enc, EventStream, extensionUrl } from './api';
import { h } from './dom';

const LOG_CHARS = 256 * 1024;

/** The cluster page in a tab (`name`: opened on that cluster). */
export function pageWidget(settings: ServerConnection.ISettings, icon: LabIcon, name?: string): MainAreaWidget<IFrame> {
  const frame = new IFrame({
    sandbox: ['allow-scripts', 'allow-same-origin', 'allow-forms', 'allow-modals', 'allow-popups'],
    referrerPolicy: 'same-origin'
  });
  frame.url = extensionUrl(settings, name ? `#cluster=${enc(name)}` : '');
  const widget = new MainAreaWidget({ content: frame });
  widget.id = `nbcluster-page-${name || 'all'}`;
  widget.title.label = name ? `Cluster ${name}` : 'Clusters';
  widget.title.icon = icon;
  widget.title.closable = true;
  widget.addClass('nbc-page-tab');
  return widget;
}

/** A job's log in a tab: the whole log, then each new chunk until the job ends. */
class JobLog extends Widget {
  constructor(settings: ServerConnection.ISettings, cluster: string, job: string) {
    super();
    this.addClass('nbc-log');
    this.state = h('div', { class: 'nbc-log-state', 'data-testid': 'nbc-log-state' }, 'connecting…');
    this.pre = h('pre', { class: 'nbc-log-text', 'data-testid': 'nbc-log-text', tabindex: 0 });
    this.node.append(this.state, this.pre);
    this.stream = new EventStream(settings, `clusters/${enc(cluster)}/jobs/${enc(job)}/logs/tail`, {
      onOpen: () => this.setState('live'),
      onDown: why => this.setState(`reconnecting (${why})`),
      onGone: () => this.setState(`No log: the cluster ${cluster} is gone.`),
      onEnd: () => false,
      onEvent: (kind, data) => {
        if (kind === 'log') {
          this.append(String(data.text || ''));
        } else if (kind === 'end') {
          this.setState(data.code === 1000 ? 'the job ended' : `No log: ${data.reason || `the tail closed (${data.code})`}`);
        } else if (kind === 'unreachable') {
          this.setState(`the cluster does not answer: ${data.message || ''}`);
        }
      }
    });
  }

  dispose(): void {
    this.stream.close();
    super.dispose();
  }

  private append(text: string): void {
    this.text += text;
    if (this.text.length > LOG_CHARS) {
      this.text = '…\n' + this.text.slice(this.text.length - LOG_CHARS);
    }
    const atBottom = this.node.scrollTop + this.node.clientHeight >= this.node.scrollHeight - 8;
    this.pre.textContent = this.text;
    if (atBottom) {
      this.node.scrollTop = this.node.scrollHeight;
    }
  }

  private setState(text: string): void {
    this.state.textContent = text;
  }

  private text = '';
  private readonly pre: HTMLElement;
  private readonly state: HTMLElement;
  private readonly stream: EventStream;
}

export function logWidget(settings: ServerConnection.ISettings, icon: LabIcon, cluster: string, job: string): MainAreaWidget {
  const widget = new MainAreaWidget({ content: new JobLog(settings, cluster, job) });
  widget.id = `nbcluster-log-${cluster}-${job}`;
  widget.title.label = `Log ${job}`;
  widget.title.caption = `The log of job ${job} on ${cluster}`;
  widget.title.icon = icon;
  widget.title.closable = true;
  return widget;
}
