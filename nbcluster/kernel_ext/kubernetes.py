"""``%cluster start --provider kubernetes``: a cluster made of pods, from a notebook
that runs in Kubernetes (JupyterHub on Kubernetes), deleted by ``%cluster stop`` or
when the kernel exits. Its options are checked by the runtime's
:func:`~nbcluster.runtime.kubernetes_options`, as the Jupyter server's form's are."""

from __future__ import annotations

import atexit
from typing import Any

from IPython.core.error import UsageError

from nbcluster.exceptions import ClusterConnectionError
from nbcluster.runtime import KubernetesCluster, KubernetesOptionError, deploy_kubernetes, kubernetes_options

#: Options of %cluster start that are for a cluster on this machine.
_LOCAL_ONLY = ("workers", "autoscale", "port", "host", "num_cpus")


def start_on_kubernetes(args: Any) -> KubernetesCluster:
    """Deploy the cluster ``args`` (%cluster start's) describe and wait for its head;
    it is deleted when this process exits unless stopped before."""
    given = [f"--{name.replace('_', '-')}" for name in _LOCAL_ONLY if getattr(args, name) not in (None, 0, "")]
    if given:
        raise UsageError(f"{', '.join(given)}: for a cluster on this machine, not with --provider kubernetes "
                         "(give --workers-max, --worker-cpus, --namespace, --name, --image)")
    try:
        options = kubernetes_options(name=args.name, namespace=args.k8s_namespace, image=args.image,
                                     workers_max=args.workers_max, worker_cpus=args.worker_cpus,
                                     timeout=args.timeout)
    except KubernetesOptionError as exc:
        raise UsageError(f"%cluster start: {exc}") from None
    print(f"nbcluster: creating cluster {options.name!r} in namespace {options.namespace!r} (head, then up to "
          f"{options.workers_max} worker pods as work needs them)…", flush=True)
    try:
        cluster = deploy_kubernetes(options.values, timeout=options.timeout)
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
