"""The official Kubernetes client, configured one way for every caller (the node
provider, :mod:`.deploy`)."""

from __future__ import annotations

import json
import os
from typing import Any


def api_client(kubeconfig: str | None = None, context: str | None = None) -> Any:
    """A client of the Kubernetes API: ``kubeconfig`` (or ``$KUBECONFIG``,
    ``~/.kube/config``) with ``context``, or the pod's service account inside a
    cluster. ValueError naming what could not be loaded."""
    import kubernetes  # lazy: only for Kubernetes

    configuration = kubernetes.client.Configuration()
    try:
        if kubeconfig:
            kubernetes.config.load_kube_config(config_file=os.path.expanduser(kubeconfig), context=context,
                                               client_configuration=configuration)
        elif os.environ.get("KUBERNETES_SERVICE_HOST") and not context:
            kubernetes.config.load_incluster_config(client_configuration=configuration)
        else:
            kubernetes.config.load_kube_config(context=context, client_configuration=configuration)
    except (kubernetes.config.ConfigException, OSError) as exc:
        raise ValueError(f"cannot load a Kubernetes configuration: {exc}") from None
    return kubernetes.client.ApiClient(configuration)


def api_message(exc: Any) -> str:
    """What the API server said in an ApiException: its Status message, else the HTTP reason."""
    try:
        return json.loads(exc.body).get("message") or exc.reason
    except (TypeError, ValueError, AttributeError):
        return str(exc.reason)
