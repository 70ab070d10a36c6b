"""Clusters the server makes on Kubernetes (``POST clusters`` with ``"provider":
"kubernetes"``), for a Jupyter server that runs in a pod (JupyterHub on Kubernetes).

The runtime's :func:`~nbcluster.runtime.deploy_kubernetes` creates the cluster's objects
with the server's own credentials (the pod's service account, else a kubeconfig) and
waits until its head pod is ready; then :func:`deploy` waits until the head answers at
its Service's address, which kernels connect to in client mode (``%cluster connect
NAME``). The token file is the server's (``nbcluster-tokens/NAME`` in its runtime
directory), written before any object is made. :func:`delete` deletes every object
labelled with the cluster's name — also from a later server, which has only the record.

What Kubernetes said becomes the REST API's errors here (:func:`domain_error`): what is
wrong and how to fix it, in the terms of the form's fields.

Every function here blocks (the Kubernetes API, the head): call them from an executor.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from nbcluster.exceptions import AuthenticationError, ClusterConnectionError, KubernetesError, NbclusterError
from nbcluster.runtime import (
    KubernetesCluster,
    KubernetesOptionError,
    KubernetesOptions,
    deploy_kubernetes,
    kubernetes_options,
    read_token_file,
)
from nbcluster.server_ext.entries import listening, reachable_jobs_address
from nbcluster.server_ext.models import BadRequest, ClusterConflict, ClusterRecord, ClusterStartError
from nbcluster.state import get_head_state

__all__ = ["delete", "deploy", "domain_error", "options_of", "running"]

#: Seconds the head has to answer once its pod is ready (at least; more of the
#: options' timeout when it is left).
HEAD_ANSWER_S = 30.0


def deploy(options: KubernetesOptions, token_file: Path, stop: threading.Event) -> tuple[str, str]:
    """Deploy the cluster and wait until its head answers; (its token, its Jobs API
    address). Setting ``stop`` ends it (its objects deleted). BadRequest,
    ClusterConflict or ClusterStartError saying what is wrong; nothing of the
    cluster is left then."""
    deadline = time.monotonic() + options.timeout
    try:
        cluster = deploy_kubernetes(options.values, timeout=options.timeout, token_file=token_file, stop=stop)
    except KubernetesError as exc:
        raise domain_error(exc) from None
    answer_by = max(deadline, time.monotonic() + HEAD_ANSWER_S)
    try:
        token = read_token_file(str(token_file), private=True)
        while True:  # the pod is ready; its head may not serve yet
            try:
                head = get_head_state(address=options.address, token=token)
                break
            except AuthenticationError:
                raise
            except ClusterConnectionError:
                if stop.wait(0.5) or time.monotonic() > answer_by:
                    raise
    except (NbclusterError, ValueError) as exc:
        _delete_quietly(cluster)
        if stop.is_set():
            raise domain_error(KubernetesError("stopped", "stopped", options.name, options.namespace)) from None
        raise ClusterStartError(f"cluster {options.name}: its head pod is ready but the head does not answer at "
                                f"{options.address} ({exc}); its objects were deleted") from None
    except BaseException:
        _delete_quietly(cluster)
        raise
    return token, reachable_jobs_address(head.jobs_address, options.address)


def _delete_quietly(cluster: KubernetesCluster) -> None:
    try:
        cluster.shutdown()
    except KubernetesError:
        pass  # the error the caller raises says what went wrong first


def options_of(record: ClusterRecord) -> KubernetesOptions:
    """The options a cluster the server made on Kubernetes was made with (its record's
    spec); ValueError when the record is not usable."""
    try:
        return kubernetes_options(**{k: record.spec.get(k) for k in ("namespace", "image", "workers_max",
                                                                     "worker_cpus", "timeout")}, name=record.name)
    except KubernetesOptionError as exc:
        raise ValueError(f"the record of cluster {record.name} is not usable: {exc}") from None


def delete(record: ClusterRecord) -> None:
    """Delete every object of the cluster (labelled with its name, in its namespace) and
    its token file. ClusterConflict when Kubernetes cannot be asked or refuses."""
    options = options_of(record)
    try:
        KubernetesCluster(options.values, Path(record.token_file)).shutdown()
    except KubernetesError as exc:
        raise ClusterConflict(f"cannot delete the objects of cluster {record.name} in namespace "
                              f"{options.namespace!r}: {exc}") from None


def running(record: ClusterRecord) -> bool:
    """Whether the cluster's head accepts connections at its Service's address."""
    return listening(record.address)


def domain_error(exc: KubernetesError) -> NbclusterError:
    """The REST API's error for a deploy that did not succeed: what is wrong, in the
    form's terms, and how to fix it."""
    name, ns, detail = exc.name, exc.namespace, exc.detail or str(exc)
    if exc.reason == "config":
        return BadRequest(
            f"this Jupyter server has no access to a Kubernetes cluster: {detail.rstrip('.')}. Run the server in a "
            "pod whose service account may create the cluster's objects (JupyterHub on Kubernetes), or give it a "
            "kubeconfig (KUBECONFIG or ~/.kube/config); or choose the local provider", "provider")
    if exc.reason == "unreachable":
        return BadRequest(f"the Kubernetes API server does not answer ({detail}); check the server's Kubernetes "
                          "configuration, or choose the local provider", "provider")
    if exc.reason == "namespace":
        return BadRequest(f"namespace {ns!r} does not exist (Kubernetes said: {detail}); give a namespace that "
                          f"exists, or create it (kubectl create namespace {ns})", "namespace")
    if exc.reason == "forbidden":
        return BadRequest(f"Kubernetes does not let this server create the cluster in namespace {ns!r} "
                          f"({detail}); give a namespace its service account may use, or grant it the rights "
                          "docs/kubernetes.md lists", "namespace")
    if exc.reason == "exists":
        return ClusterConflict(f"a cluster named {name!r} already runs in namespace {ns!r} (its objects are "
                               f"labelled nbcluster.io/cluster={name}); choose another name, or delete that "
                               "cluster first")
    if exc.reason == "stopped":
        return ClusterConflict(f"cluster {name} was stopped while it started (deleted, or the Jupyter server is "
                               "stopping); nothing of it is left")
    return ClusterStartError(f"cluster {name} did not start: {exc}; what was created is deleted")
