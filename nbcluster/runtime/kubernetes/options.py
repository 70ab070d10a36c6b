"""What a notebook user chooses for a cluster on Kubernetes, checked in one place.

``%cluster start --provider kubernetes`` (the kernel extension) and the Jupyter
server's "new cluster" form (``POST clusters`` with ``"provider": "kubernetes"``) take
the same options with the same defaults — ``name``, ``namespace``, ``image``,
``workers_max``, ``worker_cpus``, ``timeout`` — through :func:`kubernetes_options`. A
bad one is a :class:`KubernetesOptionError` that names the option; each caller spells
that name its own way (``--workers-max`` in the magic, ``workers_max`` in the REST API).
``docs/kubernetes.md`` lists them.
"""

from __future__ import annotations

import getpass
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nbcluster.runtime.kubernetes.values import Values, name_problem

__all__ = ["KubernetesOptionError", "KubernetesOptions", "kubernetes_options"]

#: Where a pod finds its own namespace (its service account's).
POD_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
#: The longest cluster name: it prefixes pod names (``<name>-worker-<id>``).
NAME_MAX = 40


class KubernetesOptionError(ValueError):
    """A bad option: ``option`` is its keyword (``workers_max``), ``problem`` what is
    wrong with it and what is allowed ("must be ...; got ..."). ``str()`` spells the
    option as the magic's flag (``--workers-max must be ...``); :meth:`spelled` as
    another caller names it."""

    def __init__(self, option: str, problem: str) -> None:
        self.option = option
        self.problem = problem
        super().__init__(self.spelled("--" + option.replace("_", "-")))

    def spelled(self, name: str) -> str:
        """The message with the option called ``name``."""
        return f"{name} {self.problem}"


@dataclass(frozen=True)
class KubernetesOptions:
    """Checked options of a cluster a notebook (or its Jupyter server) deploys; the
    class attributes are the defaults."""

    #: The cluster's name: the prefix of its objects' names and their label.
    name: str
    namespace: str
    #: The image of the head and the workers.
    image: str = Values.image
    #: Worker pods at most (the autoscaler makes them as work needs them).
    workers_max: int = 4
    #: CPUs of each worker pod.
    worker_cpus: float = 1.0
    #: Seconds to wait for the head pod to be ready.
    timeout: float = 300.0

    @property
    def values(self) -> Values:
        """The cluster's :class:`~nbcluster.runtime.KubernetesValues` (its objects' settings)."""
        return Values(name=self.name, namespace=self.namespace, image=self.image, workers_max=self.workers_max,
                      cpu=self.worker_cpus)

    @property
    def address(self) -> str:
        """Where the head's GCS answers in the cluster: its Service's ``host:port``."""
        return self.values.head_address

    def to_json(self) -> dict[str, Any]:
        """The options as a JSON object (keys as :func:`kubernetes_options` takes them)."""
        return {"name": self.name, "namespace": self.namespace, "image": self.image,
                "workers_max": self.workers_max, "worker_cpus": self.worker_cpus, "timeout": self.timeout}


def kubernetes_options(*, name: Any = None, namespace: Any = None, image: Any = None, workers_max: Any = None,
                       worker_cpus: Any = None, timeout: Any = None) -> KubernetesOptions:
    """The checked options; None takes the default: ``name`` ``nb-<user>``,
    ``namespace`` this pod's own (else the kubeconfig context's, else ``default``),
    the others :class:`KubernetesOptions`'. KubernetesOptionError for a bad one
    (values of any type are checked: they may come from JSON)."""
    name = default_name() if name is None else name
    problem = name_problem(name, NAME_MAX)
    if problem:
        raise KubernetesOptionError("name", problem)
    namespace = default_namespace() if namespace is None else namespace
    problem = name_problem(namespace)
    if problem:
        raise KubernetesOptionError("namespace", problem)
    image = KubernetesOptions.image if image is None else image
    if not isinstance(image, str) or not image or any(c.isspace() for c in image):
        raise KubernetesOptionError("image", f"must be an image reference such as registry.example/nbcluster:1.0 "
                                             f"(no spaces); got {image!r}")
    workers_max = KubernetesOptions.workers_max if workers_max is None else workers_max
    if isinstance(workers_max, bool) or not isinstance(workers_max, int) or workers_max < 0:
        raise KubernetesOptionError("workers_max", f"must be a whole number >= 0; got {workers_max!r}")
    worker_cpus = _positive("worker_cpus", KubernetesOptions.worker_cpus if worker_cpus is None else worker_cpus)
    timeout = _positive("timeout", KubernetesOptions.timeout if timeout is None else timeout)
    return KubernetesOptions(name, namespace, image, workers_max, worker_cpus, timeout)


def _positive(option: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise KubernetesOptionError(option, f"must be a number > 0; got {value!r}")
    return float(value)


def default_name() -> str:
    """``nb-<user>``, made a valid name (lowercase, ``-`` for other characters)."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # a uid with no name (some container platforms)
        user = "user"
    return re.sub(r"[^a-z0-9-]", "-", f"nb-{user}".lower())[:NAME_MAX].strip("-")


def default_namespace() -> str:
    """This pod's namespace; outside a pod the current kubeconfig context's; else
    ``default``."""
    try:
        return POD_NAMESPACE.read_text().strip() or "default"
    except OSError:
        pass
    try:
        import kubernetes  # lazy: only when no namespace is given outside a pod

        _, current = kubernetes.config.list_kube_config_contexts()
        return (current or {}).get("context", {}).get("namespace") or "default"
    except Exception:  # noqa: BLE001 - no client or no kubeconfig: deploying says so, with the reason
        return "default"
