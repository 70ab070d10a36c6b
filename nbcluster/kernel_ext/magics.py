"""``%cluster`` and ``%%remote``: the notebook as driver.

    %cluster connect [NAME | HOST:PORT] [--token-file F] [--namespace NS] [--wait-nodes N --timeout S]
    %cluster start [--num-cpus N] [--workers N] [--autoscale MIN:MAX]
    %cluster stop | disconnect | status
    %cluster scale N
    %cluster submit [--working-dir DIR] [--no-wait] [--entrypoint-num-cpus N] -- CMD...
    %cluster jobs | logs ID [--follow] | stop-job ID
    %%remote [--num-cpus N] [--num-gpus N] [--resources JSON] [--retries K] [-o NAME]

``%cluster help SUBCOMMAND`` (or ``%cluster SUBCOMMAND --help``) prints a
subcommand's options. The token is read from files or the environment and never
printed. While the kernel waits in ``get`` the stop button raises KeyboardInterrupt
and cancels the tasks that cell submitted (``%config ClusterMagics.cancel_on_interrupt
= False`` keeps them running).
"""

from __future__ import annotations

import html
import json
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from IPython.display import display
from traitlets import Bool, Int

import nbcluster
import nbcluster.driver as driver
from nbcluster.autoscaler import set_worker_bounds
from nbcluster.cluster_utils import Cluster
from nbcluster.exceptions import ClusterConnectionError
from nbcluster.job_submission import JobSubmissionClient
from nbcluster.kernel_ext.remote_cell import run_remote_cell
from nbcluster.kernel_ext.cell_output import DEFAULT_LIMIT
from nbcluster.kernel_ext.routing import CellRouter
from nbcluster.runtime import FILE, KubernetesOptions, check_private, envvars, read_private, read_token_file
from nbcluster.state import get_autoscaler_state, get_head_state, list_nodes

#: The clusters the Jupyter server extension knows, for kernels (written by it, mode 0600).
DISCOVERY_FILE = "nbcluster-clusters.json"


def discovery_path() -> Path:
    """Where the Jupyter server extension writes the clusters it knows (in Jupyter's
    runtime directory)."""
    from jupyter_core.paths import jupyter_runtime_dir

    return Path(jupyter_runtime_dir()) / DISCOVERY_FILE


def discovery_clusters() -> list[dict[str, Any]]:
    """``[{"name", "address", "token_file"}]`` from the server extension's file (none
    when it does not exist or cannot be read); UsageError when it is not this user's
    alone (another user's, or others can write it): its addresses are not trusted."""
    try:
        data = json.loads(read_private(discovery_path(), "Remove it; the Jupyter server writes it again"))
    except (OSError, ValueError):
        return []
    except nbcluster.exceptions.InsecurePathError as exc:
        raise UsageError(f"%cluster: {exc}") from None
    clusters = data.get("clusters", []) if isinstance(data, dict) else []
    return [c for c in clusters if isinstance(c, dict) and isinstance(c.get("address"), str)]


SUBCOMMANDS = (
    "connect", "start", "stop", "disconnect", "status", "scale", "adapt", "submit", "jobs", "logs", "stop-job", "help",
)


# -- the argument parsers (their docstrings are the help) ------------------------------
@magic_arguments("cluster connect")
@argument("target", nargs="?", help="NAME or HOST:PORT of the cluster (default: the one on this machine)")
@argument("--token-file", help="a file holding the cluster's token (or set NBCLUSTER_TOKEN)")
@argument("--namespace", help="the namespace for named actors")
@argument("--wait-nodes", type=int, help="wait until the cluster has this many nodes")
@argument("--timeout", type=float, default=60.0, help="seconds to wait for --wait-nodes (default 60)")
def connect_usage(line: str) -> None:
    """%cluster connect: make this kernel a driver of a running cluster."""


@magic_arguments("cluster start")
@argument("--num-cpus", type=float, help="CPUs of the head node (default: this machine's cores)")
@argument("--workers", type=int, default=0, help="worker nodes to start next to the head (default 0)")
@argument("--worker-cpus", type=float, default=1.0, help="CPUs of each worker node (default 1)")
@argument("--autoscale", metavar="MIN:MAX", help="add and remove worker nodes with the load, MIN to MAX")
@argument("--port", type=int, help="serve the head on this port, so that other machines and terminals can join "
                                   "it with `nbcluster start --address HOST:PORT` (default: any port)")
@argument("--host", help="the address other machines reach this one at (with --port; default 127.0.0.1)")
@argument("--provider", choices=("local", "kubernetes"), default="local",
          help="local: processes on this machine (default); kubernetes: pods, from a notebook running in "
               "Kubernetes (needs the kubernetes package and rights to create pods, services, secrets, ...)")
@argument("--namespace", dest="k8s_namespace",
          help="kubernetes: the namespace (default: this pod's, else the kubeconfig context's)")
@argument("--name", help="kubernetes: the cluster's name, prefix of its objects (default nb-USER)")
@argument("--workers-max", type=int, help=f"kubernetes: worker pods at most (default {KubernetesOptions.workers_max})")
@argument("--image", help=f"kubernetes: the image of the head and workers (default {KubernetesOptions.image})")
@argument("--timeout", type=float,
          help=f"kubernetes: seconds to wait for the head (default {KubernetesOptions.timeout:g})")
def start_usage(line: str) -> None:
    """%cluster start: start a cluster owned by this kernel (it stops with the kernel)."""


@magic_arguments("cluster scale")
@argument("workers", type=int, help="the number of worker nodes to have")
def scale_usage(line: str) -> None:
    """%cluster scale N: grow or shrink the cluster to N worker nodes (one started here
    with --workers, or any cluster with an autoscaler)."""


@magic_arguments("cluster adapt")
@argument("minimum", type=int, help="the fewest worker nodes to keep")
@argument("maximum", type=int, help="the most worker nodes to add for the load")
@argument("--node-type", help="which worker node type (default: the only one)")
def adapt_usage(line: str) -> None:
    """%cluster adapt MIN MAX: let the autoscaler keep MIN to MAX worker nodes."""


@magic_arguments("cluster submit")
@argument("--working-dir", help="a local directory shipped as the job's cwd")
@argument("--no-wait", action="store_true", help="return at once instead of following the logs")
@argument("--entrypoint-num-cpus", type=float, help="CPUs held for the entrypoint")
@argument("--submission-id", help="the job's id (default: generated)")
@argument("--notebook", metavar="PATH", help="run this notebook headless as the job (its directory is shipped); "
                                              "the executed notebook is saved next to it as NAME.executed.ipynb")
@argument("command", nargs="*", help="the shell command, after --")
def submit_usage(line: str) -> None:
    """%cluster submit [options] -- CMD...: run CMD as a batch job on the cluster."""


@magic_arguments("cluster logs")
@argument("job_id", help="the job's submission id")
@argument("--follow", "-f", action="store_true", help="follow the log until the job ends")
def logs_usage(line: str) -> None:
    """%cluster logs ID: the job's output."""


@magic_arguments("cluster stop-job")
@argument("job_id", help="the job's submission id")
def stop_job_usage(line: str) -> None:
    """%cluster stop-job ID: stop a job (SIGTERM, then SIGKILL, to its process group)."""


USAGE = {
    "connect": connect_usage,
    "start": start_usage,
    "scale": scale_usage,
    "adapt": adapt_usage,
    "submit": submit_usage,
    "logs": logs_usage,
    "stop-job": stop_job_usage,
}


def _parse(name: str, rest: str) -> Any:
    func = USAGE[name]
    if "--help" in rest.split() or "-h" in rest.split():
        print(func.__doc__.strip() + "\n\n" + func.parser.format_help())
        return None
    try:
        return parse_argstring(func, rest)
    except UsageError as exc:
        usage = " ".join(func.parser.format_usage().split("::", 1)[-1].split())
        raise UsageError(f"%cluster {name}: {exc}\nusage: {usage}") from None


@magics_class
class ClusterMagics(Magics):
    """The ``%cluster`` line magic and the ``%%remote`` cell magic; remote output goes
    under the cell that caused it (:class:`CellRouter`), and an interrupted cell's
    tasks are cancelled (``cancel_on_interrupt``)."""

    cancel_on_interrupt = Bool(
        True, help="When a cell is interrupted, cancel the tasks and actor calls it submitted."
    ).tag(config=True)
    output_limit = Int(
        DEFAULT_LIMIT, help="Lines of remote output shown under one cell; the rest is summarized in one line "
        "(it stays in the workers' log files)."
    ).tag(config=True)

    def __init__(self, shell: Any) -> None:
        super().__init__(shell)
        self.router = CellRouter(shell, self.output_limit)
        self.observe(lambda change: setattr(self.router, "limit", change["new"]), "output_limit")
        self.owned: Any = None  # a cluster_utils.Cluster this kernel started (workers)
        self.token_file: str | None = None  # the token file %cluster connect was given
        self.view: Any = None  # the live ClusterWidget last shown
        shell.events.register("pre_run_cell", self.router.pre_run_cell)
        shell.events.register("post_run_cell", self._post_run_cell)

    def close(self) -> None:
        """Stop following the shell's cell events."""
        self.shell.events.unregister("pre_run_cell", self.router.pre_run_cell)
        self.shell.events.unregister("post_run_cell", self._post_run_cell)

    def _post_run_cell(self, result: Any) -> None:
        if (
            self.cancel_on_interrupt
            and isinstance(result.error_in_exec, KeyboardInterrupt)
            and nbcluster.is_initialized()
            and self.router.current
        ):
            count = driver.cancel_context(self.router.current)
            if count:
                print(f"nbcluster: cancelled {count} task(s) this cell submitted", flush=True)
        self.router.post_run_cell(result)

    # -- %cluster ----------------------------------------------------------------------
    @line_magic
    def cluster(self, line: str) -> Any:
        """Use an nbcluster cluster from this notebook.

        %cluster connect [NAME | HOST:PORT] [--token-file F] [--namespace NS] [--wait-nodes N --timeout S]
        %cluster start [--num-cpus N] [--workers N] [--worker-cpus C] [--autoscale MIN:MAX]
        %cluster stop           stop the cluster this kernel started (and disconnect)
        %cluster disconnect     stop being a driver; the cluster keeps running
        %cluster status         nodes, resources, autoscaler
        %cluster scale N        N worker nodes (a cluster started here with --workers, or autoscaled)
        %cluster adapt MIN MAX  let the autoscaler keep MIN to MAX worker nodes
        %cluster submit [--working-dir DIR] [--no-wait] [--entrypoint-num-cpus N] -- CMD...
        %cluster jobs           the cluster's jobs
        %cluster logs ID [--follow]
        %cluster stop-job ID
        %cluster help SUBCOMMAND
        """
        words = line.strip().split(None, 1)
        if not words:
            raise UsageError("%cluster needs a subcommand: " + ", ".join(SUBCOMMANDS) + " (see %cluster?)")
        name, rest = words[0], words[1] if len(words) > 1 else ""
        if name not in SUBCOMMANDS:
            raise UsageError(f"%cluster: unknown subcommand {name!r}; use one of {', '.join(SUBCOMMANDS)}")
        if name == "help":
            target = rest.strip()
            if target in USAGE:
                func = USAGE[target]
                print(func.__doc__.strip() + "\n\n" + func.parser.format_help())
            else:
                print(self.cluster.__doc__)
            return None
        return getattr(self, "_" + name.replace("-", "_"))(rest)

    def _connect(self, rest: str) -> Any:
        args = _parse("connect", rest)
        if args is None:
            return None
        if nbcluster.is_initialized():
            raise UsageError("already connected; %cluster disconnect first")
        # In a job (a notebook run with %cluster submit --notebook) the job's cluster.
        address, listed_token_file = self._resolve(args.target)
        token_file = args.token_file or listed_token_file
        if token_file and address is None:  # a job's notebook given a token file: the job's cluster
            address = os.environ.get(envvars.ADDRESS)
        if listed_token_file and not args.token_file:  # nbcluster wrote it: it must be this user's alone
            try:
                check_private(listed_token_file, FILE, "Remove it")
            except nbcluster.exceptions.InsecurePathError as exc:
                raise UsageError(str(exc)) from None
        try:
            # The token stays in the driver's memory: never in os.environ, which %env prints.
            info = nbcluster.init(address=address, namespace=args.namespace, token_file=token_file)
        except (nbcluster.exceptions.NbclusterError, ValueError, TypeError) as exc:
            raise UsageError(f"%cluster connect: {exc}") from None
        self.token_file = token_file
        self.router.install()
        if args.wait_nodes:
            self._wait_nodes(args.wait_nodes, args.timeout)
        if info.client_mode:
            mode = f"client mode: no node of the cluster runs here; the head ({info.address}) runs this driver's work"
        else:
            mode = "through this machine's node of the cluster"
        self._show(mode)
        return None

    @staticmethod
    def _resolve(target: str | None) -> tuple[str | None, str | None]:
        """(address, token file) for ``%cluster connect [target]``: a name from the
        Jupyter server's list of clusters, HOST:PORT, or with no target the server's
        only cluster, else the one started on this machine ("auto")."""
        listed = discovery_clusters()
        if target is None:
            if os.environ.get(envvars.ADDRESS):  # a job's notebook: the job's cluster
                return None, None
            if len(listed) == 1:
                return listed[0]["address"], listed[0].get("token_file")
            return "auto", None
        named = [c for c in listed if c.get("name") == target]
        if named:
            return named[0]["address"], named[0].get("token_file")
        host, sep, port = target.rpartition(":")
        if sep and host and port.isdigit():
            return target, None
        names = ", ".join(sorted(c.get("name", "?") for c in listed)) or "none"
        raise UsageError(
            f"%cluster connect: {target!r} is neither a cluster the Jupyter server lists ({names}; "
            f"from {discovery_path()}) nor HOST:PORT"
        )

    def _wait_nodes(self, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while sum(1 for n in list_nodes() if n.state == "ALIVE") < count:
            if time.monotonic() > deadline:
                raise UsageError(f"the cluster did not reach {count} nodes within {timeout:g} s")
            time.sleep(0.2)

    def _start(self, rest: str) -> Any:
        args = _parse("start", rest)
        if args is None:
            return None
        if nbcluster.is_initialized():
            raise UsageError("already connected; %cluster stop or %cluster disconnect first")
        if args.provider == "kubernetes":
            from nbcluster.kernel_ext.kubernetes import start_on_kubernetes  # lazy: the kubernetes client

            self.owned = start_on_kubernetes(args)
            nbcluster.init(address=self.owned.address, token_file=self.owned.token_file)
            self.token_file = str(self.owned.token_file)  # for its jobs API
            print(f"nbcluster: its head is ready; this kernel drives it in client mode through {self.owned.address}")
            self.router.install()
            self._show()
            return None
        if args.autoscale and args.workers:
            raise UsageError("give --workers or --autoscale, not both")
        if args.autoscale and (args.port is not None or args.host):
            raise UsageError("--port and --host are for a cluster that nodes join by hand: give them without "
                             "--autoscale (the autoscaler adds this machine's nodes itself)")
        if args.host and args.port is None:
            raise UsageError("--host goes with --port: the port nodes join at (--port 0 for any)")
        if args.port is not None and not 0 <= args.port <= 65535:
            raise UsageError(f"--port must be 0 to 65535, got {args.port}")
        if args.autoscale:
            try:
                low, high = (int(x) for x in args.autoscale.split(":"))
            except ValueError:
                raise UsageError(f"--autoscale must be MIN:MAX such as 0:4, got {args.autoscale!r}") from None
            config = {
                "max_workers": high,
                "idle_timeout_minutes": 1,
                "available_node_types": {
                    "worker": {"resources": {"CPU": args.worker_cpus}, "min_workers": low, "max_workers": high},
                },
            }
            nbcluster.init(num_cpus=args.num_cpus, autoscaling_config=config)
        elif args.workers or args.port is not None:
            head: dict[str, Any] = {"num_cpus": args.num_cpus or os.cpu_count()}
            if args.port is not None:
                head.update(port=args.port, node_ip_address=args.host or "127.0.0.1")
            try:
                self.owned = Cluster(initialize_head=True, head_node_args=head)
            except ClusterConnectionError as exc:  # the port is taken, say
                raise UsageError(f"%cluster start: {exc}") from None
            for _ in range(args.workers):
                self.owned.add_node(num_cpus=args.worker_cpus)
            self.owned.wait_for_nodes()
            nbcluster.init(address=self.owned.address)
            if args.port is not None:
                token_file = self.owned.token_file
                print(f"Nodes join from a terminal with:\n  nbcluster start --address {self.owned.address} "
                      f"--token-file {token_file}")
        else:
            nbcluster.init(num_cpus=args.num_cpus)
        self.router.install()
        self._show()
        return None

    def _close_view(self, note: str) -> None:
        """Freeze every live view (the cluster view, job views, progress views): they
        stop updating and keep showing their last state, marked ``note``."""
        self.view = None
        feed = sys.modules.get("nbcluster.widgets._feed")
        if feed is not None:  # else no widget was ever made
            feed.feed.freeze_all(note)

    def _stop(self, rest: str) -> None:
        if not nbcluster.is_initialized() and self.owned is None:
            raise UsageError("not connected to a cluster")
        self._close_view("stopped")
        nbcluster.shutdown()
        self.token_file = None
        if isinstance(self.owned, Cluster):
            self.owned.shutdown()
        elif self.owned is not None:
            from nbcluster.kernel_ext.kubernetes import stop_on_kubernetes

            stop_on_kubernetes(self.owned)
        self.owned = None
        print("nbcluster: stopped")

    def _disconnect(self, rest: str) -> None:
        if not nbcluster.is_initialized():
            raise UsageError("not connected to a cluster")
        if self.owned is not None:
            raise UsageError("this kernel started the cluster; %cluster stop stops it")
        self._close_view("disconnected")
        nbcluster.shutdown()
        self.token_file = None
        print("nbcluster: disconnected (the cluster keeps running)")

    def _status(self, rest: str) -> None:
        self._require()
        self._show()

    def _scale(self, rest: str) -> None:
        args = _parse("scale", rest)
        if args is None:
            return
        if args.workers < 0:
            raise UsageError("the number of workers must be >= 0")
        if not isinstance(self.owned, Cluster):  # not started here with --workers: the autoscaler's bounds
            self._require()
            if not get_autoscaler_state().enabled:
                raise UsageError(
                    "this cluster's size is fixed: %cluster scale works on a cluster started here with "
                    "--workers, or on one with an autoscaler (%cluster start --autoscale MIN:MAX)"
                )
            self._set_bounds(args.workers, args.workers, None)
            return
        while len(self.owned.worker_nodes) < args.workers:
            self.owned.add_node(num_cpus=1)
        while len(self.owned.worker_nodes) > args.workers:
            self.owned.remove_node(self.owned.worker_nodes[-1])
        self.owned.wait_for_nodes()
        self._show()

    def _adapt(self, rest: str) -> None:
        args = _parse("adapt", rest)
        if args is None:
            return
        self._require()
        if not get_autoscaler_state().enabled:
            raise UsageError("this cluster has no autoscaler; start one with %cluster start --autoscale MIN:MAX")
        self._set_bounds(args.minimum, args.maximum, args.node_type)

    def _set_bounds(self, low: int, high: int, node_type: str | None) -> None:
        try:
            name = set_worker_bounds(low, high, node_type=node_type)
        except (ValueError, nbcluster.exceptions.NbclusterError) as exc:
            raise UsageError(str(exc)) from None
        print(f"nbcluster: the autoscaler keeps {low} to {high} {name} node(s)")

    # -- jobs --------------------------------------------------------------------------
    def _client(self) -> JobSubmissionClient:
        """The jobs API of the cluster this kernel is connected to (not merely the newest
        on this machine)."""
        self._require()
        jobs_address = get_head_state().jobs_address
        if not jobs_address:
            raise UsageError("the connected cluster serves no jobs API (its head was started without one)")
        token = read_token_file(self.token_file) if self.token_file else None
        return JobSubmissionClient(jobs_address, token)

    def _submit(self, rest: str) -> None:
        tokens = shlex.split(rest)
        split = tokens.index("--") if "--" in tokens else len(tokens)
        args = _parse("submit", shlex.join(tokens[:split]))
        if args is None:
            return
        command = tokens[split + 1:] or args.command
        notebook = None
        if args.notebook:
            notebook = Path(args.notebook).expanduser().resolve()
            if notebook.suffix != ".ipynb" or not notebook.is_file():
                raise UsageError(f"--notebook: {args.notebook} is not a notebook file (.ipynb)")
            if command:
                raise UsageError("give --notebook PATH or a command after --, not both")
            command = ["python", "-m", "nbcluster.kernel_ext.run_notebook", notebook.name]
            args.working_dir = args.working_dir or str(notebook.parent)
        if not command:
            raise UsageError("%cluster submit needs a command after --, e.g. %cluster submit -- python job.py")
        client = self._client()
        env = {"working_dir": args.working_dir} if args.working_dir else None
        job = client.submit_job(
            entrypoint=shlex.join(command),
            runtime_env=env,
            submission_id=args.submission_id,
            entrypoint_num_cpus=args.entrypoint_num_cpus,
        )
        print(f"Job '{job}' submitted")
        if args.no_wait:  # a live view of it: status, progress, log tail, a stop button
            from nbcluster.widgets import JobWidget

            display(JobWidget(job, client=client))
        else:
            for chunk in client.iter_job_logs(job):
                print(chunk, end="", flush=True)
            info = client.get_job_info(job)
            print(f"Job '{job}' {info.status.value}: {info.message}")
            if notebook is not None:
                try:
                    executed = notebook.with_name(notebook.stem + ".executed.ipynb")
                    executed.write_bytes(client.get_job_artifact(job))
                    print(f"The executed notebook: {executed}")
                except ValueError as exc:  # the job ended before it kept one
                    print(f"No executed notebook: {exc}")

    def _jobs(self, rest: str) -> None:
        jobs = self._client().list_jobs()
        rows = "".join(
            f"<tr><td>{html.escape(j.submission_id or j.job_id)}</td><td>{j.type.value}</td>"
            f"<td>{j.status.value}</td><td><code>{html.escape(j.entrypoint[:80])}</code></td></tr>"
            for j in jobs
        )
        text = "\n".join(f"{j.submission_id or j.job_id}  {j.type.value}  {j.status.value}  {j.entrypoint[:80]}" for j in jobs)
        display(
            {"text/plain": text or "(no jobs)",
             "text/html": f"<table><tr><th>id</th><th>type</th><th>status</th><th>entrypoint</th></tr>{rows}</table>"},
            raw=True,
        )

    def _logs(self, rest: str) -> None:
        args = _parse("logs", rest)
        if args is None:
            return
        client = self._client()
        if args.follow:
            for chunk in client.iter_job_logs(args.job_id):
                print(chunk, end="", flush=True)
        else:
            print(client.get_job_logs(args.job_id), end="")

    def _stop_job(self, rest: str) -> None:
        args = _parse("stop-job", rest)
        if args is None:
            return
        stopped = self._client().stop_job(args.job_id)
        print(f"Job '{args.job_id}' {'is stopping' if stopped else 'had already ended'}")

    # -- %%remote ----------------------------------------------------------------------
    @cell_magic
    def remote(self, line: str, cell: str) -> Any:
        """Run this cell as a task on the cluster: %%remote [--num-cpus N] [--num-gpus N]
        [--resources JSON] [--retries K] [-o NAME]. Names it reads are shipped by value;
        its output appears here; its last expression is the cell's value (-o NAME stores
        the ObjectRef instead of waiting)."""
        return run_remote_cell(self.shell, line, cell)

    # -- views -------------------------------------------------------------------------
    def _require(self) -> None:
        if not nbcluster.is_initialized():
            raise UsageError("not connected; %cluster connect or %cluster start first")

    def _show(self, mode: str = "") -> None:
        """A line of text (how this kernel is connected: ``mode``), then the live
        cluster view (nodes, autoscaler, jobs)."""
        from nbcluster.widgets import ClusterWidget

        nodes = [n for n in list_nodes() if n.state == "ALIVE"]
        total = nbcluster.cluster_resources()
        ctx = nbcluster.get_runtime_context()
        lines = [f"Connected to a cluster of {len(nodes)} node(s) as job {ctx.get_job_id()}" + (f" ({mode})" if mode else "")]
        sizes = ", ".join(f"{key} {total[key]:g}" for key in ("CPU", "GPU") if total.get(key))
        if sizes:  # the totals only: what is in use changes, and the live view below shows it
            lines.append(f"  {sizes} in all (in use: the live view below)")
        print("\n".join(lines))
        if self.view is not None:
            self.view.freeze("a newer view is below")  # one live view per kernel: the newest
        self.view = ClusterWidget()
        display(self.view)
