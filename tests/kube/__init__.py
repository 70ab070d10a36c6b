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

What it does not model is listed in ``docs/kubernetes.md`` ("How it is tested").
"""
