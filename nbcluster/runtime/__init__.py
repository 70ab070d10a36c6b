"""The runtime, and the interface the Jupyter integrations use.

The notebook side — :mod:`nbcluster.kernel_ext` (the magics), :mod:`nbcluster.server_ext`
(the Jupyter server's clusters and REST API) and :mod:`nbcluster.widgets` — uses the
runtime only through the names below (this package's ``__all__``) and the public
facades (:mod:`nbcluster`, :mod:`nbcluster.driver`, :mod:`nbcluster.events`,
:mod:`nbcluster.state`, :mod:`nbcluster.autoscaler`, :mod:`nbcluster.cluster_utils`,
:mod:`nbcluster.job_submission`, :mod:`nbcluster.exceptions`);
``tests/test_architecture_layers.py`` fails when an integration reaches past them. Everything else under
``nbcluster.runtime`` may change without notice.

- Clusters on this machine: :func:`start_head` starts a head as ``nbcluster start
  --head`` does (:class:`CliError` when it does not start), :func:`stop_session` stops
  the processes a session directory records, :func:`session_running` says whether any
  still runs, :func:`remove_session` removes a stopped one; :class:`Session` reads a
  session directory (its address and token files).
- Finding clusters: :func:`local_heads` lists the heads running here as
  :class:`LocalNode` records; :func:`read_token_file` reads a head's ``token`` file.
- Configuration: :class:`RuntimeConfig` (the runtime's settings);
  :func:`load_config` checks an autoscaling config into an :class:`AutoscalingConfig`
  and :func:`provider_class` finds its node provider (both raise
  ``AutoscalerConfigError``); :mod:`envvars` names the environment variables.
- Private files (this user's alone): :func:`read_private`, :func:`write_private`,
  :func:`check_private` (with the kind :data:`FILE`).
- Kubernetes: :func:`kubernetes_options` checks what a notebook user chose (name,
  namespace, image, worker pods; :class:`KubernetesOptions`, or
  :class:`KubernetesOptionError` naming the bad option) for both the ``%cluster`` magic
  and the Jupyter server's form; :func:`deploy_kubernetes` creates a cluster's objects
  from :class:`KubernetesValues` and waits for its head; the :class:`KubernetesCluster`
  it returns has the address to connect to and deletes them all on ``shutdown()``.
- Jobs: :func:`keep_job_artifact` keeps a file on the head as the running job's
  artifact.

Every process of the runtime imports this package, so the names that load more (YAML,
the autoscaler's providers, the launcher) are imported on first use.
"""

import importlib
from typing import TYPE_CHECKING, Any

from nbcluster.runtime import envvars
from nbcluster.runtime.config import RuntimeConfig
from nbcluster.runtime.discovery import LocalNode, local_heads, read_token_file
from nbcluster.runtime.private_dir import FILE, check_private, read_private, write_private
from nbcluster.runtime.session import Session, remove_session

if TYPE_CHECKING:
    from nbcluster.runtime.autoscaler.config import AutoscalingConfig, load_config
    from nbcluster.runtime.autoscaler.providers import provider_class
    from nbcluster.runtime.detached import CliError, session_running, start_head, stop_session
    from nbcluster.runtime.job_artifacts import keep_job_artifact
    from nbcluster.runtime.kubernetes.deploy import KubernetesCluster, KubernetesValues, deploy_kubernetes
    from nbcluster.runtime.kubernetes.options import KubernetesOptionError, KubernetesOptions, kubernetes_options

#: Where the names imported on first use live.
_ON_FIRST_USE = {
    "AutoscalingConfig": "nbcluster.runtime.autoscaler.config",
    "load_config": "nbcluster.runtime.autoscaler.config",
    "provider_class": "nbcluster.runtime.autoscaler.providers",
    "CliError": "nbcluster.runtime.detached",
    "session_running": "nbcluster.runtime.detached",
    "start_head": "nbcluster.runtime.detached",
    "stop_session": "nbcluster.runtime.detached",
    "keep_job_artifact": "nbcluster.runtime.job_artifacts",
    "KubernetesCluster": "nbcluster.runtime.kubernetes.deploy",
    "KubernetesValues": "nbcluster.runtime.kubernetes.deploy",
    "deploy_kubernetes": "nbcluster.runtime.kubernetes.deploy",
    "KubernetesOptionError": "nbcluster.runtime.kubernetes.options",
    "KubernetesOptions": "nbcluster.runtime.kubernetes.options",
    "kubernetes_options": "nbcluster.runtime.kubernetes.options",
}


def __getattr__(name: str) -> Any:
    """Import one of :data:`_ON_FIRST_USE`'s names when it is first used."""
    module = _ON_FIRST_USE.get(name)
    if module is None:
        raise AttributeError(f"module 'nbcluster.runtime' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value

__all__ = [
    "FILE",
    "AutoscalingConfig",
    "CliError",
    "KubernetesCluster",
    "KubernetesOptionError",
    "KubernetesOptions",
    "KubernetesValues",
    "LocalNode",
    "RuntimeConfig",
    "Session",
    "check_private",
    "deploy_kubernetes",
    "envvars",
    "keep_job_artifact",
    "kubernetes_options",
    "load_config",
    "local_heads",
    "provider_class",
    "read_private",
    "read_token_file",
    "remove_session",
    "session_running",
    "start_head",
    "stop_session",
    "write_private",
]
