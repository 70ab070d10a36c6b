"""nbcluster on Kubernetes: what the cluster's objects look like, and deploying them.

- ``values``: the one set of values (names, namespace, image, ports, sizes, where
  Secrets and the ConfigMap are mounted) the rest is made from.
- ``options``: what a notebook user chooses (``%cluster start --provider kubernetes``,
  the Jupyter server's form), checked in one place.
- ``pods``: a worker pod for one node the autoscaler launches (used by
  ``runtime/autoscaler/kubernetes_provider.py``).
- ``manifests``: the head's Deployment, Service, Secrets, ConfigMap and RBAC, printed
  by ``nbcluster kubernetes manifests``.
- ``api``, ``deploy``: the official ``kubernetes`` client, and creating (and deleting)
  a cluster's objects with it from a notebook or a Jupyter server.

``docs/kubernetes.md`` is the user's guide.
"""
