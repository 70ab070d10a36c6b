"""``%cluster start --provider kubernetes``: a cluster made of pods, from a notebook
that runs in Kubernetes (JupyterHub on Kubernetes), deleted by ``%cluster stop`` or
when the kernel exits."""

from __future__ import annotations

import atexit
import getpass
import re
from pathlib import Path
from typing import Any

from IPython.core.error import UsageError

from nbcluster.exceptions import ClusterConnectionError
from nbcluster.runtime import KubernetesCluster, KubernetesValues, deploy_kubernetes

#: Where a pod finds its own namespace.
_POD_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
#: Options of %cluster start that are for a cluster on this machine.
_LOCAL_ONLY = ("workers", "autoscale", "port", "host", "num_cpus")


def start_on_kubernetes(args: Any) -> KubernetesCluster:
    """Deploy the cluster ``args`` (%cluster start's) describe and wait for its head;
    it is deleted when this process exits unless stopped before."""
    given = [f"--{name.replace('_', '-')}" for name in _LOCAL_ONLY if getattr(args, name) not in (None, 0, "")]
    if given:
        raise UsageError(f"{', '.join(given)}: for a cluster on this machine, not with --provider kubernetes "
                         "(give --workers-max, --worker-cpus, --namespace, --name, --image)")
    namespace = args.k8s_namespace or (_POD_NAMESPACE.read_text().strip() if _POD_NAMESPACE.exists() else "default")
    name = args.name or re.sub(r"[^a-z0-9-]", "-", f"nb-{getpass.getuser()}".lower())[:40].strip("-")
    try:
        values = KubernetesValues(name=name, namespace=namespace, image=args.image or KubernetesValues.image,
                                  workers_max=args.workers_max, cpu=args.worker_cpus)
    except ValueError as exc:
        raise UsageError(f"%cluster start: {exc}") from None
    print(f"nbcluster: creating cluster {name!r} in namespace {namespace!r} (head, then up to "
          f"{values.workers_max} worker pods as work needs them)…", flush=True)
    try:
        cluster = deploy_kubernetes(values, timeout=args.timeout)
    except ClusterConnectionError as exc:
        raise UsageError(f"%cluster start: {exc}") from None
    atexit.register(_delete_at_exit, cluster)
    return cluster


def stop_on_kubernetes(cluster: KubernetesCluster) -> None:
    """Delete the cluster's objects (its pods, Service, Secrets, ...)."""
    atexit.unregister(_delete_at_exit)
    cluster.shutdown()
    print(f"nbcluster: deleted cluster {cluster.values.name!r} from namespace {cluster.values.namespace!r}")


def _delete_at_exit(cluster: KubernetesCluster) -> None:
    try:
        cluster.shutdown()
    except Exception:  # noqa: BLE001 - the kernel is exiting; nothing to tell
        pass
