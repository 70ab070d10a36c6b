"""nbcluster on Kubernetes: what the cluster's objects look like.

- ``values``: the one set of values (names, namespace, image, ports, sizes, where
  Secrets and the ConfigMap are mounted) the rest is made from.
- ``pods``: a worker pod for one node the autoscaler launches (used by
  ``runtime/autoscaler/kubernetes_provider.py``).
- ``manifests``: the head's Deployment, Service, Secrets, ConfigMap and RBAC, printed
  by ``nbcluster kubernetes manifests``.

Nothing here talks to an API server; the provider does, through the official
``kubernetes`` client. ``docs/kubernetes.md`` is the user's guide.
"""
