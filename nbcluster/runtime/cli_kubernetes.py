"""``nbcluster kubernetes``: a cluster on Kubernetes (``docs/kubernetes.md``).

``nbcluster kubernetes manifests [--name ... --namespace ... --image ... --workers-max N ...]``
prints the head's Deployment, Service, Secrets, ConfigMap and RBAC
(``runtime/kubernetes/manifests.py``), for ``kubectl apply -f -``.

``nbcluster kubernetes head`` is what the head pod runs: the head with the cluster
YAML of the ConfigMap (whose ``provider: type: kubernetes`` makes worker pods), the
token and the CA of the Secrets (so a restarted head is the same cluster to its nodes),
a certificate that also names the head Service, listening on the pod's address; it
stays in the foreground until the pod is stopped.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from nbcluster.runtime import discovery, tls
from nbcluster.runtime.config import RuntimeConfig
from nbcluster.runtime.detached import CliError, StopSignals, block, local_ip, start_head
from nbcluster.runtime.kubernetes import values
from nbcluster.runtime.kubernetes.values import CA_DIR, CONFIG_DIR, CONFIG_FILE, TOKEN_DIR, TOKEN_FILE, Values

__all__ = ["add_kubernetes_commands"]


def cmd_manifests(opts: argparse.Namespace) -> int:
    """Print the cluster's manifests."""
    # Lazy: yaml and cryptography, for this command only.
    from nbcluster.runtime.kubernetes import manifests

    try:
        chosen = Values(
            name=opts.name, namespace=opts.namespace, image=opts.image or Values.image,
            workers_max=opts.workers_max, workers_min=opts.workers_min, cpu=opts.cpu, memory=opts.memory,
            gpu=opts.gpu, head_cpu=opts.head_cpu, head_memory=opts.head_memory,
            idle_timeout_minutes=opts.idle_timeout_minutes, state_size=opts.state_size,
            storage_class=opts.storage_class,
        )
    except ValueError as exc:
        raise CliError(str(exc)) from None
    sys.stdout.write(manifests.render(manifests.manifests(chosen)))
    print(f"# The Secrets above hold the cluster's token and CA key: apply them (kubectl apply -f -) and do not "
          f"keep this output. Connect with the token file: kubectl -n {chosen.namespace} get secret "
          f"{chosen.token_secret} -o jsonpath='{{.data.token}}' | base64 -d > token", file=sys.stderr)
    return 0


def cmd_head(opts: argparse.Namespace) -> int:
    """Run the head in its pod (see the module docstring)."""
    from nbcluster.runtime.autoscaler.config import load_config  # lazy: yaml

    autoscaling = load_config(opts.config)
    if autoscaling.provider.type != "kubernetes":
        raise CliError(f"{opts.config}: provider.type must be kubernetes, got {autoscaling.provider.type!r}")
    try:
        token = discovery.read_token_file(opts.token_file)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    options = autoscaling.provider.options
    service = options.get("head_service") or f"{autoscaling.cluster_name}-head"
    names = values.service_names(service, options.get("namespace") or "default")
    settings = tls.Settings(ca_file=f"{opts.ca_dir}/{values.CA_CERT_FILE}",
                            ca_key_file=f"{opts.ca_dir}/{values.CA_KEY_FILE}", extra_hosts=names)
    try:
        overrides = json.loads(opts.system_config) if opts.system_config else {}
        if opts.state_dir:
            overrides["gcs_storage_dir"] = f"{opts.state_dir}/gcs"
        config = RuntimeConfig.load(overrides)
    except (ValueError, TypeError) as exc:
        raise CliError(f"--system-config: {exc}") from None
    head = dict(autoscaling.head_resources() or {"CPU": 0})
    node_ip = opts.node_ip_address or local_ip()
    signals = StopSignals()  # the pod's first process: a SIGTERM while the head starts would be lost
    try:
        handle, written, _ = start_head(
            num_cpus=head.pop("CPU", 0), num_gpus=head.pop("GPU", 0), resources=head, config=config,
            autoscaling=autoscaling, host=node_ip, port=opts.port, node_port=opts.node_manager_port,
            object_port=opts.object_manager_port, jobs_host=node_ip, jobs_port=opts.dashboard_port,
            tls_settings=settings, token=token,
        )
    except tls.TlsError as exc:
        raise CliError(str(exc)) from None
    print(f"Started the nbcluster head of cluster {autoscaling.cluster_name} at {written['gcs_address']} "
          f"(Service {names[2]}:{opts.port}); worker pods join it there. Session: {handle.session.dir}", flush=True)
    return block(handle, signals=signals)


def add_kubernetes_commands(commands: Any) -> None:
    """The ``kubernetes`` command and its ``manifests`` and ``head`` subcommands."""

    group = commands.add_parser("kubernetes", help="run a cluster on Kubernetes (manifests, the head pod)")
    sub = group.add_subparsers(dest="kubernetes_command", metavar="SUBCOMMAND", required=True)
    m = sub.add_parser("manifests", help="print the manifests of a cluster (kubectl apply -f -)",
                       description="Print the head's Deployment, Service, Secrets (a new token and CA), ConfigMap "
                                   "(the cluster YAML) and RBAC. Worker pods are made by the head's autoscaler.")
    d = Values()
    m.add_argument("--name", default=d.name, help=f"the cluster's name, prefix of every object (default {d.name})")
    m.add_argument("--namespace", default=d.namespace, help=f"the namespace (default {d.namespace})")
    m.add_argument("--image", help=f"the image of the head and workers (default {d.image}; deploy/Dockerfile)")
    m.add_argument("--workers-max", type=int, default=d.workers_max, help=f"worker pods at most (default {d.workers_max})")
    m.add_argument("--workers-min", type=int, default=d.workers_min, help="worker pods kept when idle (default 0)")
    m.add_argument("--cpu", type=float, default=d.cpu, help=f"CPUs of a worker pod (default {d.cpu:g})")
    m.add_argument("--memory", default=d.memory, help=f"memory of a worker pod (default {d.memory})")
    m.add_argument("--gpu", type=int, default=d.gpu, help="GPUs of a worker pod (nvidia.com/gpu; default 0)")
    m.add_argument("--head-cpu", type=float, default=d.head_cpu, help=f"CPUs of the head pod (default {d.head_cpu:g})")
    m.add_argument("--head-memory", default=d.head_memory, help=f"memory of the head pod (default {d.head_memory})")
    m.add_argument("--state-size", default=d.state_size,
                   help=f"size of the head's PersistentVolumeClaim (default {d.state_size})")
    m.add_argument("--storage-class", default=d.storage_class, help="its StorageClass (default: the cluster's)")
    m.add_argument("--idle-timeout-minutes", type=float, default=d.idle_timeout_minutes,
                   help=f"idle worker pods are removed after this long (default {d.idle_timeout_minutes:g})")
    m.set_defaults(func=cmd_manifests)
    h = sub.add_parser("head", help="run the head in its pod (the Deployment's command)")
    h.add_argument("--config", default=f"{CONFIG_DIR}/{CONFIG_FILE}", help="the cluster YAML (the ConfigMap's)")
    h.add_argument("--token-file", default=f"{TOKEN_DIR}/{TOKEN_FILE}", help="the token file (the Secret's)")
    h.add_argument("--ca-dir", default=CA_DIR, help="the directory of ca.crt and ca.key (the CA Secret's)")
    h.add_argument("--node-ip-address", help="the pod's address (default: detected)")
    h.add_argument("--port", type=int, default=d.gcs_port)
    h.add_argument("--node-manager-port", type=int, default=d.node_manager_port)
    h.add_argument("--object-manager-port", type=int, default=d.object_port)
    h.add_argument("--dashboard-port", type=int, default=d.jobs_port)
    h.add_argument("--system-config", help="runtime settings as JSON (advanced)")
    h.add_argument("--state-dir", help="a directory that outlives the pod (its PersistentVolumeClaim): the GCS keeps "
                                       "its tables there, and a head started again takes the cluster back")
    h.set_defaults(func=cmd_head)
