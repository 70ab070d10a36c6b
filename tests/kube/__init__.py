"""A stand-in for Kubernetes, for tests: no API server can be installed on these machines.

- ``apiserver``: an HTTP server for the part of the core REST API that nbcluster's
  provider and tests use — pods, services, secrets, configmaps (and deployments, to be
  read): create, get, list with label selectors, delete, watch from a resourceVersion
  — driven by the official ``kubernetes`` client through a kubeconfig it writes.
- ``kubelet``: one "node" that schedules pending pods against its CPU capacity and node
  labels (an unschedulable pod gets the scheduler's condition and message), runs each
  pod's container command as a process in a network namespace of its own with the
  pod's IP (``tests/netns.py``) and private mount and PID namespaces (Secret and
  ConfigMap volumes bind-mounted at their mountPath, a PersistentVolumeClaim as one
  directory per claim that outlives its pods, Service names in its
  ``/etc/hosts``), reports Pending → Running → Succeeded/Failed, stops a deleted pod
  (SIGTERM, SIGKILL after its grace period), and can evict or OOM-kill a pod.
- ``controllers``: a Deployment's pod, and deleting pods whose owner is gone.
- ``portforward``: ``kubectl port-forward``, a port here to a pod's (a server in a pod,
  for a test's HTTP client or browser).

What it does not model is listed in ``docs/kubernetes.md`` ("How it is tested").
"""

import contextlib
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class StandIn:
    """A running stand-in: its object store, API server, kubelet and kubeconfig."""

    store: Any
    api: Any
    kubelet: Any
    kubeconfig: Path


@contextlib.contextmanager
def stand_in(hosts: Any, namespace: str, directory: Path, system: dict[str, Any],
             cpu: float = 3.5) -> Iterator[StandIn]:
    """An API server (in a host of ``hosts``) and a kubelet with ``cpu`` CPUs whose pods
    run nbcluster from this checkout with the runtime settings ``system``; stopped at
    the end (the hosts are the caller's to close)."""
    from nbcluster.runtime import envvars
    from nbcluster.runtime.config import RuntimeConfig

    from ..conftest import ROOT
    from .apiserver import ApiServer, Store
    from .kubelet import Kubelet

    api = kubelet = None
    try:
        api_ns, api_ip = hosts.add("apiserver")
        store = Store()
        api = ApiServer(store, api_ns, api_ip)
        directory.mkdir(exist_ok=True)
        kubeconfig = api.write_kubeconfig(directory / "kubeconfig", namespace)
        kubeconfig.parent.chmod(0o755)
        env = {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
               "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
               envvars.CONFIG: RuntimeConfig.load(system).to_env()}
        kubelet = Kubelet(store, hosts, namespace, kubeconfig, cpu=cpu, env=env)
        yield StandIn(store, api, kubelet, kubeconfig)
    finally:
        if kubelet is not None:
            kubelet.close()
        if api is not None:
            api.close()


@contextlib.contextmanager
def deploying_stand_in(directory: Path, namespace: str, system: dict[str, Any]) -> Iterator[StandIn]:
    """A stand-in on network hosts of its own, with the Deployment controller
    (``controllers``): what a cluster that a notebook or its Jupyter server deploys needs.
    Skips the test where network namespaces cannot be made."""
    from ..netns import Hosts, require_netns
    from .controllers import Controllers

    require_netns()
    hosts = Hosts()
    try:
        with stand_in(hosts, namespace, directory, system) as kube:
            controllers = Controllers(kube.store, namespace)
            try:
                yield kube
            finally:
                controllers.close()
    finally:
        hosts.close()
