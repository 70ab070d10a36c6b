/**
 * nbcluster's JupyterLab extension: a left sidebar of clusters (sidebar.ts), and the
 * commands around it — start a cluster, open the cluster page or a job's log as tabs,
 * insert `%cluster connect NAME` into the active notebook — also in the command palette.
 * One plugin per concern; both talk only to the server extension's REST API and event
 * streams through ServerConnection (api.ts).
 */

import { ILayoutRestorer, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette, InputDialog, Notification } from '@jupyterlab/apputils';
import { INotebookTracker, NotebookActions } from '@jupyterlab/notebook';
import { ServerConnection } from '@jupyterlab/services';
import { LabIcon } from '@jupyterlab/ui-components';
import { Token } from '@lumino/coreutils';
import { Widget } from '@lumino/widgets';

import { ClusterSidebar } from './sidebar';
import { logWidget, pageWidget } from './tabs';

import '../style/index.css';

/** The commands' ids. */
export namespace CommandIDs {
  export const showSidebar = 'nbcluster:show-sidebar';
  export const startCluster = 'nbcluster:start-cluster';
  export const openPage = 'nbcluster:open-page';
  export const insertConnect = 'nbcluster:insert-connect';
  export const openLog = 'nbcluster:open-log';
}

/** The sidebar, for plugins that act on its clusters. */
export const IClusterSidebar = new Token<ClusterSidebar>('nbcluster:IClusterSidebar', 'The nbcluster sidebar.');

export const clusterIcon = new LabIcon({
  name: 'nbcluster:clusters',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24"><g class="jp-icon3" ' +
    'fill="#616161"><circle cx="12" cy="5" r="3"/><circle cx="5" cy="18" r="3"/><circle cx="19" cy="18" r="3"/>' +
    '<path d="M11 7.5h2v4.2l5.2 4-1.2 1.6-5-3.9-5 3.9-1.2-1.6 5.2-4z"/></g></svg>'
});

/** The code a notebook runs to use the cluster `name` of the server. */
export function connectCode(name: string): string {
  return `%load_ext nbcluster\n%cluster connect ${name}`;
}

const sidebarPlugin: JupyterFrontEndPlugin<ClusterSidebar> = {
  id: 'nbcluster:sidebar',
  description: 'The clusters sidebar: list, start, scale, adapt, stop; nodes, autoscaler and jobs live.',
  autoStart: true,
  provides: IClusterSidebar,
  optional: [ILayoutRestorer],
  activate: (app: JupyterFrontEnd, restorer: ILayoutRestorer | null): ClusterSidebar => {
    const sidebar = new ClusterSidebar(ServerConnection.makeSettings(), {
      insertConnect: name => void app.commands.execute(CommandIDs.insertConnect, { name }),
      openPage: name => void app.commands.execute(CommandIDs.openPage, name ? { name } : {}),
      openLog: (name, job) => void app.commands.execute(CommandIDs.openLog, { name, job })
    });
    sidebar.title.icon = clusterIcon;
    app.shell.add(sidebar, 'left', { rank: 250 });
    restorer?.add(sidebar, sidebar.id);
    return sidebar;
  }
};

const commandsPlugin: JupyterFrontEndPlugin<void> = {
  id: 'nbcluster:commands',
  description: 'Commands: start a cluster, open the cluster page or a log, insert %cluster connect.',
  autoStart: true,
  requires: [IClusterSidebar, INotebookTracker],
  optional: [ICommandPalette],
  activate: (app: JupyterFrontEnd, sidebar: ClusterSidebar, tracker: INotebookTracker, palette: ICommandPalette | null) => {
    const settings = ServerConnection.makeSettings();
    const { commands, shell } = app;
    const category = 'nbcluster';

    /** Show `widget` as a tab, or the tab already showing the same view. */
    const openTab = (widget: Widget): void => {
      const open = [...shell.widgets('main')].find(w => w.id === widget.id);
      if (open) {
        widget.dispose();
        shell.activateById(open.id);
      } else {
        shell.add(widget, 'main');
      }
    };

    const pickName = (args: Record<string, unknown>): string => {
      const name = (args.name as string) || sidebar.selected || (sidebar.names.length === 1 ? sidebar.names[0] : '');
      if (!name) {
        throw new Error(sidebar.names.length
          ? 'Select a cluster in the nbcluster sidebar first.'
          : 'No cluster yet: start one (nbcluster: Start a cluster) or attach one in the nbcluster sidebar.');
      }
      return name;
    };

    commands.addCommand(CommandIDs.showSidebar, {
      label: 'Show the Clusters Sidebar',
      icon: clusterIcon,
      execute: () => shell.activateById(sidebar.id)
    });

    commands.addCommand(CommandIDs.startCluster, {
      label: 'Start a Cluster',
      caption: 'Start a cluster on the Jupyter server (it outlives kernels)',
      execute: async args => {
        let name = args.name as string | undefined;
        if (name === undefined) {
          const answer = await InputDialog.getText({ title: 'Start a cluster', label: 'Name (blank: automatic)',
            placeholder: 'cluster-1' });
          if (!answer.button.accept) {
            return;
          }
          name = (answer.value || '').trim();
        }
        shell.activateById(sidebar.id);
        const body: Record<string, unknown> = name ? { name } : {};
        if (args.workers !== undefined) {
          body.workers = args.workers;
        }
        try {
          const cluster = await sidebar.start(body);
          Notification.success(`Cluster ${cluster.name} started.`, { autoClose: 5000 });
        } catch (exc: any) {
          Notification.error(`Could not start a cluster: ${exc.message}`);
        }
      }
    });

    commands.addCommand(CommandIDs.openPage, {
      label: args => (args.name ? `Open the Page of Cluster ${args.name}` : 'Open the Cluster Page'),
      caption: 'The cluster page (nodes, autoscaler, jobs) in a tab',
      icon: clusterIcon,
      execute: args => openTab(pageWidget(settings, clusterIcon, args.name as string | undefined))
    });

    commands.addCommand(CommandIDs.openLog, {
      label: args => `Open the Log of Job ${args.job ?? ''}`,
      execute: args => openTab(logWidget(settings, clusterIcon, args.name as string, args.job as string))
    });

    commands.addCommand(CommandIDs.insertConnect, {
      label: args => (args.name ? `Insert %cluster connect ${args.name}` : 'Insert %cluster connect into the Notebook'),
      caption: 'A new cell below the active one that connects the notebook to the cluster',
      isEnabled: () => tracker.currentWidget !== null,
      execute: args => {
        const panel = tracker.currentWidget;
        let name: string;
        try {
          if (!panel) {
            throw new Error('Open a notebook first: the connect line goes into the active notebook.');
          }
          name = pickName(args);
        } catch (exc: any) {
          Notification.error(exc.message, { autoClose: 8000 });
          return;
        }
        const notebook = panel!.content;
        NotebookActions.insertBelow(notebook);
        NotebookActions.changeCellType(notebook, 'code');
        notebook.activeCell?.model.sharedModel.setSource(connectCode(name));
        shell.activateById(panel!.id);
      }
    });

    if (palette) {
      for (const command of [CommandIDs.showSidebar, CommandIDs.startCluster, CommandIDs.openPage, CommandIDs.insertConnect]) {
        palette.addItem({ command, category });
      }
    }
  }
};

export default [sidebarPlugin, commandsPlugin];
