"""The ``nbcluster`` command: start and stop nodes, look at a cluster (as ``ray``).

``nbcluster start --head`` starts a head (GCS and a node manager) that outlives the
command; ``nbcluster start --address HOST:PORT`` joins a worker node to it. Each
start records what it started in ``processes.json`` in its session directory, and
``nbcluster stop`` stops exactly those processes (and their workers).

``nbcluster up cluster.yaml`` starts a head with the autoscaler (Ray's cluster YAML;
the ``local`` provider adds node managers on this machine); ``nbcluster down
cluster.yaml`` stops that cluster and the nodes its autoscaler added. With
``provider: type: ssh`` the head and the workers run on your machines, and ``attach``,
``exec`` and ``submit`` reach the head (``cli_cluster.py``).

Starting, recording and stopping such clusters is ``detached.py``'s (the Jupyter
server extension uses it too); the ``job`` commands are in ``cli_jobs.py``, the text
of ``status`` and ``list`` in ``cli_view.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import urllib.parse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psutil

from nbcluster._version import __version__
from nbcluster.exceptions import NbclusterError
from nbcluster.runtime import cli_cluster, cli_view, discovery, envvars, state, tls
from nbcluster.runtime.config import RuntimeConfig
from nbcluster.runtime.credentials import ca_for, token_from_env, trust
from nbcluster.runtime.cli_jobs import add_job_commands
from nbcluster.runtime.cli_kubernetes import add_kubernetes_commands
from nbcluster.runtime.detached import (
    CliError,
    StopSignals,
    block,
    local_ip,
    record,
    session_running,
    start_head,
    started_sessions,
    stop_found,
    stop_session,
    wait_joined,
)
from nbcluster.runtime.launcher import LocalCluster, NodeSpec, start_worker_node
from nbcluster.runtime.options import validate_resources
from nbcluster.runtime.protocol import gcs_pb2
from nbcluster.runtime.session import temp_root
from nbcluster.runtime.transport import methods

__all__ = ["CliError", "build_parser", "main", "session_running", "start_head", "stop_session"]

DEFAULT_JOBS_PORT = 8265


def _boolean(text: str) -> bool:
    if text.lower() in ("true", "1", "yes"):
        return True
    if text.lower() in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


DEFAULT_PORT = 6380


def _spec(opts: argparse.Namespace, node_ip: str, grpc_port: int) -> NodeSpec:
    try:
        resources = json.loads(opts.resources) if opts.resources else {}
    except json.JSONDecodeError as exc:
        raise CliError(f"--resources must be a JSON object such as '{{\"accel\": 1}}': {exc}") from None
    for key, flag in (("CPU", "--num-cpus"), ("GPU", "--num-gpus")):
        if isinstance(resources, dict) and key in resources:
            raise CliError(f"--resources: give {key} with {flag}, not as a custom resource")
    try:
        resources = validate_resources(resources)
    except (TypeError, ValueError) as exc:
        raise CliError(f"--resources: {exc}") from None
    for flag, value in (("--num-cpus", opts.num_cpus), ("--num-gpus", opts.num_gpus)):
        if value is not None and value < 0:
            raise CliError(f"{flag} must be >= 0, got {value:g}")
    if opts.object_store_memory is not None and opts.object_store_memory <= 0:
        raise CliError(f"--object-store-memory must be a positive number of bytes, got {opts.object_store_memory}")
    num_cpus = opts.num_cpus if opts.num_cpus is not None else float(os.cpu_count() or 1)
    return NodeSpec(num_cpus, opts.num_gpus, resources, opts.object_store_memory, node_ip, grpc_port,
                    opts.object_manager_port, getattr(opts, "node_type", None) or "",
                    getattr(opts, "instance_id", None) or "")


def _config(opts: argparse.Namespace) -> RuntimeConfig:
    try:
        overrides = json.loads(opts.system_config) if opts.system_config else None
        return RuntimeConfig.load(overrides)
    except (ValueError, TypeError) as exc:
        raise CliError(f"--system-config: {exc}") from None


def _describe(node: Any) -> str:
    parts = [f"{k} {v:g}" for k, v in sorted(node.resources_total.items())
             if k not in ("memory", "object_store_memory") and not k.startswith("node:")]
    return ", ".join(parts) + f"; object store {cli_view.human_bytes(node.object_store_capacity)}"


def cmd_start(opts: argparse.Namespace) -> int:
    """``nbcluster start``: a head (``--head``) or a worker node (``--address``)."""
    if opts.head == bool(opts.address):
        raise CliError("give either --head (start a new cluster) or --address HOST:PORT (join one)")
    if opts.address and opts.autoscaling_config:
        raise CliError("--autoscaling-config is for the head (--head); worker nodes join without one")
    config = _config(opts)
    signals = StopSignals() if opts.block else None  # a signal while the node starts is not lost
    started_sessions()  # frees what nodes killed here earlier left behind
    if opts.head:
        handle, node = _start_head(opts, config)
    else:
        handle, node = _start_worker(opts, config)
    if opts.block:  # a worker node drains on SIGTERM (a deleted pod) before it stops
        return block(handle, drain_s=None if opts.head else config.drain_timeout_s, signals=signals)
    return 0


def _load_config(path: str) -> Any:
    """The validated autoscaling config in the YAML file at ``path``."""
    # Lazy: yaml and the config's schema take ~15 ms to import; most commands need neither.
    from nbcluster.runtime.autoscaler.config import load_config

    return load_config(path)


def _autoscaling(opts: argparse.Namespace) -> Any:
    """The validated autoscaling config, with the head's resources from its
    head_node_type unless given on the command line."""
    # Lazy: the providers' entry points take ~10 ms to read; only a head with a config needs them.
    from nbcluster.runtime.autoscaler.providers import provider_class

    autoscaling = _load_config(opts.autoscaling_config)
    provider_class(autoscaling.provider)  # an unknown provider fails here, not in the head's log
    head = dict(autoscaling.head_resources() or {})
    if head:
        if opts.num_cpus is None:
            opts.num_cpus = head.pop("CPU", 0)
        if opts.num_gpus is None:
            opts.num_gpus = head.pop("GPU", 0)
        head.pop("CPU", None)
        head.pop("GPU", None)
        if not opts.resources and head:
            opts.resources = json.dumps(head)
    return autoscaling


def _tls_settings(opts: argparse.Namespace) -> tls.Settings:
    try:
        return tls.Settings(opts.tls_ca_file, opts.tls_cert_file, opts.tls_key_file)
    except tls.TlsError as exc:
        raise CliError(str(exc)) from None


def _head_tls(opts: argparse.Namespace, autoscaling: Any, node_ip: str) -> tls.Settings | bool | None:
    """TLS for a new head: as asked (--tls/--no-tls, the YAML's ``tls:``, the user's
    files); None: the launcher's default (on beyond loopback)."""
    settings = _tls_settings(opts)
    wanted = opts.tls
    if wanted is None and autoscaling is not None:
        wanted = autoscaling.tls
    if wanted is False and opts.tls_ca_file:
        raise CliError("--no-tls with --tls-ca-file: leave one out")
    if wanted is False and not tls.is_loopback(node_ip):
        print(f"Warning: TLS is off (--no-tls) while the head listens on {node_ip}: the token and all data "
              "cross the network in clear text.", file=sys.stderr)
    if opts.tls_ca_file or wanted:
        return settings
    return wanted


def _start_head(opts: argparse.Namespace, config: RuntimeConfig) -> tuple[LocalCluster, Any]:
    if opts.token_file:
        raise CliError("--token-file is for joining a cluster; a new head makes its own token")
    autoscaling = _autoscaling(opts) if opts.autoscaling_config else None
    node_ip = opts.node_ip_address or local_ip()
    spec = _spec(opts, node_ip, opts.node_manager_port)
    try:
        handle, written, node = start_head(
            num_cpus=spec.num_cpus, num_gpus=spec.num_gpus, resources=spec.resources,
            object_store_memory=spec.object_store_memory, config=config,
            port=opts.port, host=node_ip, node_port=opts.node_manager_port, object_port=opts.object_manager_port,
            autoscaling=autoscaling, jobs_host=opts.dashboard_host,
            jobs_port=opts.dashboard_port if opts.include_dashboard else None,
            tls_settings=_head_tls(opts, autoscaling, node_ip),
        )
    except tls.TlsError as exc:
        raise CliError(str(exc)) from None
    address = written["gcs_address"]
    jobs = written.get("jobs_address", "")
    if autoscaling is not None:
        types = ", ".join(
            f"{t.name} {{{cli_view._shape(t.resources)}}} x{t.min_workers}-{t.max_workers}"
            for t in autoscaling.worker_types.values()
        ) or "none"
        print(f"Autoscaler on ({autoscaling.provider.type} provider) for cluster {autoscaling.cluster_name}: "
              f"worker types {types}; idle nodes go after {autoscaling.idle_timeout_s:g} s.")
    session = handle.session
    ca = session.read_ca()
    secured = (f"TLS, CA fingerprint {tls.fingerprint(ca)}\n"
               "               (the token file carries the CA: nodes and clients that use it pin it)"
               if ca else "no TLS (this machine only)" if tls.is_loopback(node_ip) else "no TLS (--no-tls)")
    env_line = "" if ca else (  # a TLS cluster's token file carries its CA too: copy the file
        f"\n  or, with the token in the environment:\n  NBCLUSTER_TOKEN=$(cat /path/to/token) nbcluster start --address {address}"
    )
    client_lines = "" if tls.is_loopback(node_ip) else (
        "\n\nConnect from a notebook or script on any other machine, with no node there (client mode;\n"
        "copy the token file there first):\n"
        f'  nbcluster.init(address="{address}", token_file="/path/to/token")\n'
        f"  %load_ext nbcluster   then   %cluster connect {address} --token-file /path/to/token"
    )
    print(f"""Started the nbcluster head node at {address} (nbcluster {__version__}).
  node id:     {node.node_id}
  resources:   {_describe(node)}
  session dir: {session.dir} (logs in logs/)
  token file:  {session.token_file}
               Keep it private: the token lets anyone run code on this cluster.
  security:    {secured}

Join a worker node from another machine (copy the token file there first):
  nbcluster start --address {address} --token-file /path/to/token{env_line}

Connect from Python or a notebook on this machine (or on any machine with a node):
  import nbcluster
  nbcluster.init(address="auto"){client_lines}

Look at the cluster:  nbcluster status    nbcluster list nodes
Stop it:             nbcluster stop""", flush=True)
    if jobs:
        url = jobs if "://" in jobs else "http://" + jobs
        remote = "" if tls.is_loopback(urllib.parse.urlsplit(url).hostname or "") else (
            f"\nor from another machine (with a copy of the token file):\n"
            f"  nbcluster job submit --address {url} --token-file /path/to/token --working-dir . -- python script.py"
        )
        print(f"""
Jobs API at {url} (token required). Submit a batch job from this machine:
  nbcluster job submit --working-dir . -- python script.py{remote}""", flush=True)
    return handle, node


def _worker_token(opts: argparse.Namespace) -> str:
    if opts.token_file:
        return discovery.read_token_file(opts.token_file)
    token = token_from_env()
    if token:
        return token
    local = discovery.find_local_node(opts.address)
    if local is not None and local.token:
        return local.token  # the head runs on this machine
    raise CliError(
        f"joining {opts.address} needs the cluster's token: pass --token-file with a copy of the head's "
        f"`token` file (its path was printed by `nbcluster start --head`), or set {envvars.TOKEN}."
    )


def _start_worker(opts: argparse.Namespace, config: RuntimeConfig) -> tuple[LocalCluster, Any]:
    try:
        discovery.check_address(opts.address)
    except ValueError:
        raise CliError(f"--address must be HOST:PORT of the head, got {opts.address!r}") from None
    if opts.address == "auto":
        raise CliError("--address must be HOST:PORT of the head, as printed by `nbcluster start --head`")
    token = _worker_token(opts)
    settings = _tls_settings(opts)
    try:
        trust(token, settings.user_ca())  # the user's CA, when the token file did not carry one
    except tls.TlsError as exc:
        raise CliError(str(exc)) from None
    try:  # fail here, with the reason, rather than in a detached process's log
        asyncio.run(discovery.something_listens(opts.address))  # a wrong address in seconds
        discovery.call_gcs((opts.address, token), methods.Gcs.GetAllNodes, gcs_pb2.GetAllNodesRequest(), 10.0)
    except NbclusterError as exc:
        raise CliError(str(exc)) from None
    host = opts.address.rsplit(":", 1)[0].strip("[]")
    spec = _spec(opts, opts.node_ip_address or local_ip(towards=host), opts.node_manager_port)
    if not ca_for(token) and not tls.is_loopback(spec.node_ip):
        print(f"Warning: the cluster at {opts.address} uses no TLS, so this node serves {spec.node_ip} without it: "
              "the token and all data cross the network in clear text.", file=sys.stderr)
    try:
        handle = start_worker_node(
            gcs_address=opts.address, token=token, spec=spec, config=config, embedded=False,
            link_latest=discovery.find_local_node("auto") is None, tls_settings=settings,
        )
    except tls.TlsError as exc:
        raise CliError(str(exc)) from None
    node = wait_joined(handle, (opts.address, token), config.startup_timeout_s)
    record(handle, "worker", opts.address)
    print(f"""Joined the nbcluster cluster at {opts.address} as node {node.node_id}.
  address:     {node.address}
  resources:   {_describe(node)}
  session dir: {handle.session.dir} (logs in logs/)

Connect from Python or a notebook on this machine:
  import nbcluster
  nbcluster.init(address="auto")

Stop this node:  nbcluster stop""", flush=True)
    return handle, node


def cmd_stop(opts: argparse.Namespace) -> int:
    """``nbcluster stop``: stop what ``nbcluster start`` started on this machine."""
    found = started_sessions()
    if not found:
        print(f"No nbcluster processes started by `nbcluster start` are running on this machine (in {temp_root()}).")
        return 0
    return _stop(found, opts.force, opts.grace_period)


def _stop(found: dict[Path, tuple[dict, list[psutil.Process]]], force: bool, grace_period: float) -> int:
    count, killed = stop_found(found, force, grace_period)
    stopped = list(found)
    forced = f" ({killed} killed after {grace_period:g} s)" if killed and not force else ""
    print(f"Stopped {count} nbcluster process{'es' if count != 1 else ''}{forced} "
          f"of {len(stopped)} node{'s' if len(stopped) != 1 else ''}. Logs stay in:")
    for path in stopped:
        print(f"  {path / 'logs'}")
    return 0


# -- up and down ----------------------------------------------------------------------
def _running_cluster(name: str) -> dict[Path, tuple[dict, list[psutil.Process]]]:
    return {p: v for p, v in started_sessions().items() if v[0].get("cluster_name") == name}


def cmd_up(opts: argparse.Namespace) -> int:
    """``nbcluster up``: start the head of a cluster YAML, with its autoscaler."""
    config = _load_config(opts.config)
    if config.provider.type == "ssh":
        return cli_cluster.up(opts, config, lambda head_ip: _up_here(opts, config.cluster_name, head_ip))
    return _up_here(opts, config.cluster_name, opts.node_ip_address)


def _up_here(opts: argparse.Namespace, name: str, node_ip: str | None) -> int:
    """Start the head of the cluster ``name`` on this machine, listening on ``node_ip``."""
    running = _running_cluster(name)
    if running:
        path, (info, _) = next(iter(running.items()))
        if not info.get("address"):  # recorded as soon as its processes run, before it serves
            print(f"Cluster {name} is starting (session {path}). `nbcluster status` shows it once it serves; "
                  f"`nbcluster down {opts.config}` stops it.")
            return 0
        print(f"Cluster {name} is already up at {info.get('address')}. "
              f"`nbcluster status` shows it; `nbcluster down {opts.config}` stops it.")
        return 0
    start_opts = build_parser().parse_args(["start", "--head", "--autoscaling-config", opts.config])
    for key in ("port", "system_config", "block"):
        setattr(start_opts, key, getattr(opts, key))
    start_opts.node_ip_address = node_ip
    code = cmd_start(start_opts)
    if not opts.block:
        print(f"Stop it with:        nbcluster down {opts.config}")
    return code


def cmd_down(opts: argparse.Namespace) -> int:
    """``nbcluster down``: stop the cluster of a cluster YAML."""
    config = _load_config(opts.config)
    if config.provider.type == "ssh":
        return cli_cluster.down(opts, config, lambda: _down_here(opts, config.cluster_name))
    return _down_here(opts, config.cluster_name)


def _down_here(opts: argparse.Namespace, name: str) -> int:
    running = _running_cluster(name)
    if not running:
        print(f"Cluster {name} is not running on this machine.")
        return 0
    return _stop(running, False, opts.grace_period)


# -- status and list ------------------------------------------------------------------
def _cluster_address(address: str | None) -> str:
    if address and address != "auto":
        return address
    node = discovery.find_local_node("auto")
    if node is None:
        raise CliError(discovery.no_cluster_message())
    return node.gcs_address


def cmd_status(opts: argparse.Namespace) -> int:
    """``nbcluster status``: nodes, resources and pending demand."""
    address = _cluster_address(opts.address)
    target, token = opts.address or "auto", _token_file(opts)
    print(cli_view.status_text(address, state.list_nodes(address=target, token=token),
                               autoscaler=state.get_autoscaler_state(address=target, token=token),
                               placement_groups=state.list_placement_groups(address=target, token=token)))
    return 0


def _token_file(opts: argparse.Namespace) -> str | None:
    """The token of ``--token-file`` (and, for a TLS cluster, its CA is trusted)."""
    if not opts.token_file:
        return None
    try:
        return discovery.read_token_file(opts.token_file)
    except ValueError as exc:
        raise CliError(str(exc)) from None


def cmd_list(opts: argparse.Namespace) -> int:
    """``nbcluster list``: nodes, actors, tasks, jobs or placement groups, as a table or JSON."""
    address, token = opts.address or "auto", _token_file(opts)
    _cluster_address(opts.address)
    if opts.what == "nodes":
        items: Sequence[Any] = state.list_nodes(address=address, token=token)
    elif opts.what == "actors":
        items = state.list_actors(address=address, state=opts.state and opts.state.upper(), token=token)
    elif opts.what == "tasks":
        items = state.list_tasks(address=address, limit=opts.limit, token=token)
    elif opts.what == "placement-groups":
        items = state.list_placement_groups(address=address, token=token)
    else:
        items = state.list_jobs(address=address, token=token)
    if opts.what != "actors" and opts.state:
        items = cli_view.in_state(items, opts.state)
    if opts.format == "json":
        print(json.dumps([i.to_json() for i in items], indent=1))
    elif items:
        print(cli_view.table(*cli_view.ROWS[opts.what](items)))
    else:
        print(f"(no {opts.what})")
    return 0


# -- the parser -----------------------------------------------------------------------
_TOKEN_FILE_HELP = (f"a copy of the head's token file, for a cluster not started on this machine (or set {envvars.TOKEN}; "
                    "a TLS cluster's token file also carries its CA)")


def _add_start_command(commands: Any) -> None:
    """``nbcluster start``: its flags."""
    start = commands.add_parser("start", help="start a head node, or join this machine to a cluster",
                                description="Start a head node (--head) or a worker node that joins the cluster "
                                            "at --address. The node runs in the background unless --block.")
    start.add_argument("--head", action="store_true", help="start a new cluster with its head on this machine")
    start.add_argument("--address", help="HOST:PORT of the head to join as a worker node")
    start.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"head: the port to serve on (default {DEFAULT_PORT}; 0: any)")
    start.add_argument("--node-ip-address", help="the address other machines reach this node at (default: detected)")
    start.add_argument("--node-manager-port", type=int, default=0, help="the node manager's port (default: any free port)")
    start.add_argument("--object-manager-port", type=int, default=0,
                       help="the port other nodes pull objects from (default: any free port)")
    start.add_argument("--num-cpus", type=float, help="CPUs this node offers (default: its core count)")
    start.add_argument("--num-gpus", type=float, help="GPUs this node offers (default: those nvidia-smi lists)")
    start.add_argument("--resources", help="custom resources as JSON, e.g. '{\"accel\": 1}'")
    start.add_argument("--object-store-memory", type=int, help="bytes of shared memory for objects")
    start.add_argument("--token-file", help=f"joining: a file holding the cluster's token (or set {envvars.TOKEN})")
    start.add_argument("--node-type", help="joining: the autoscaler's node type of this node (set by node providers)")
    start.add_argument("--instance-id", help="joining: the autoscaler's instance id of this node (set by node providers)")
    start.add_argument("--system-config", help="runtime settings as JSON (advanced, e.g. health-check periods)")
    start.add_argument("--block", action="store_true", help="stay in the foreground; Ctrl-C stops the node")
    start.add_argument("--include-dashboard", type=_boolean, default=True, metavar="true|false",
                       help="head: serve the Jobs REST API (default true)")
    start.add_argument("--dashboard-host",
                       help="head: the address the Jobs API listens on (default: the head's address, so other "
                            "machines can submit jobs with the token; 127.0.0.1: this machine only)")
    start.add_argument("--dashboard-port", type=int, default=DEFAULT_JOBS_PORT,
                       help=f"head: the Jobs API's port (default {DEFAULT_JOBS_PORT}; 0: any)")
    start.add_argument("--autoscaling-config", metavar="FILE",
                       help="head: run the autoscaler with this cluster YAML (Ray's format)")
    tls_flag = start.add_mutually_exclusive_group()
    tls_flag.add_argument("--tls", dest="tls", action="store_true", default=None,
                          help="head: encrypt and authenticate every connection between machines (the default "
                               "when the head or its Jobs API listens on an address other than loopback)")
    tls_flag.add_argument("--no-tls", dest="tls", action="store_false",
                          help="head: no TLS even on a network address (traffic and token in clear text)")
    start.add_argument("--tls-ca-file", metavar="FILE",
                       help="TLS with your own CA (PEM) instead of one the head makes; joining: the cluster's CA, "
                            "when the token file does not carry it")
    start.add_argument("--tls-cert-file", metavar="FILE", help="with --tls-ca-file: this node's certificate (PEM)")
    start.add_argument("--tls-key-file", metavar="FILE", help="with --tls-cert-file: its private key (PEM)")
    start.set_defaults(func=cmd_start)


def build_parser() -> argparse.ArgumentParser:
    """The parser of the ``nbcluster`` command and its subcommands."""
    parser = argparse.ArgumentParser(
        prog="nbcluster",
        description="nbcluster: a Python cluster runtime in the Ray model, built for Jupyter.",
    )
    parser.add_argument("--version", action="version", version=f"nbcluster {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    _add_start_command(commands)
    up = commands.add_parser("up", help="start a cluster from a cluster YAML: the head here, with the autoscaler",
                             description="Start the head on this machine with the autoscaler of CONFIG "
                                         "(Ray's cluster YAML). Does nothing if that cluster is already up.")
    up.add_argument("config", help="the cluster YAML")
    up.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"the head's port (default {DEFAULT_PORT}; 0: any)")
    up.add_argument("--node-ip-address", help="the address other machines reach the head at (default: detected)")
    up.add_argument("--system-config", help="runtime settings as JSON (advanced)")
    up.add_argument("--block", action="store_true", help="stay in the foreground; Ctrl-C stops the cluster")
    up.add_argument("--setup-done", action="store_true", help=argparse.SUPPRESS)  # an `up` over SSH ran them
    up.set_defaults(func=cmd_up)

    down = commands.add_parser("down", help="stop the cluster of a cluster YAML (head and added nodes)")
    down.add_argument("config", help="the cluster YAML")
    down.add_argument("--grace-period", type=float, default=10.0, help="seconds to wait before killing (default 10)")
    down.set_defaults(func=cmd_down)

    stop = commands.add_parser("stop", help="stop the nodes `nbcluster start` started on this machine")
    stop.add_argument("-f", "--force", action="store_true", help="kill at once (SIGKILL) instead of asking to stop")
    stop.add_argument("--grace-period", type=float, default=10.0, help="seconds to wait before killing (default 10)")
    stop.set_defaults(func=cmd_stop)

    status = commands.add_parser("status", help="nodes, resources in use and pending demand")
    status.add_argument("--address", help="the cluster's HOST:PORT (default: the newest on this machine)")
    status.add_argument("--token-file", help=_TOKEN_FILE_HELP)
    status.set_defaults(func=cmd_status)

    lister = commands.add_parser("list", help="list nodes, actors, tasks, jobs or placement groups")
    lister.add_argument("what", choices=list(cli_view.ROWS), help="what to list")
    lister.add_argument("--format", choices=("table", "json"), default="table")
    lister.add_argument("--address", help="the cluster's HOST:PORT (default: the newest on this machine)")
    lister.add_argument("--token-file", help=_TOKEN_FILE_HELP)
    lister.add_argument("--state", help="only entries in this state, e.g. ALIVE, DRAINING, DEAD, RUNNING, FAILED")
    lister.add_argument("--limit", type=int, default=100, help="tasks: at most this many, newest first (default 100)")
    lister.set_defaults(func=cmd_list)

    cli_cluster.add_cluster_commands(commands)
    add_kubernetes_commands(commands)
    add_job_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the ``nbcluster`` command with ``argv``; its exit status."""
    parser = build_parser()
    opts = parser.parse_args(argv)
    if opts.command is None:
        parser.print_help()
        return 0
    try:
        return int(opts.func(opts))
    except CliError as exc:
        print(f"nbcluster {opts.command}: error: {exc}", file=sys.stderr)
        return 1
    except (NbclusterError, ValueError, TypeError) as exc:
        print(f"nbcluster {opts.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
