"""What Kubernetes' controllers do, as much as nbcluster needs when a notebook makes
a cluster (``%cluster start --provider kubernetes``): a Deployment (one replica)
gets a pod made from its template, named after it, owned by it; when the Deployment
is deleted, its pods and the pods it owns (the head's workers) are deleted too, as the
garbage collector does for owner references."""

from __future__ import annotations

import secrets
import threading
from typing import Any

from .apiserver import ApiError, Store, matches


class Controllers:
    """A thread that reconciles Deployments and owner references every ``interval`` s."""

    def __init__(self, store: Store, namespace: str, interval: float = 0.2) -> None:
        self.store, self.namespace, self.interval = store, namespace, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kube-controllers", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            deployments, _ = self.store.list("deployments", self.namespace)
            pods, _ = self.store.list("pods", self.namespace)
            owners = {d["metadata"]["uid"] for d in deployments}
            for deployment in deployments:
                self._replicate(deployment, pods)
            for pod in pods:
                refs = pod["metadata"].get("ownerReferences") or []
                if refs and not any(r.get("uid") in owners for r in refs) and "deletionTimestamp" not in pod["metadata"]:
                    self._delete(pod["metadata"]["name"])

    def _replicate(self, deployment: dict[str, Any], pods: list[dict[str, Any]]) -> None:
        selector = ",".join(f"{k}={v}" for k, v in deployment["spec"]["selector"]["matchLabels"].items())
        live = [p for p in pods if matches(p["metadata"].get("labels") or {}, selector)
                and "deletionTimestamp" not in p["metadata"] and p["status"].get("phase") not in ("Failed", "Succeeded")]
        if live:
            return
        template = deployment["spec"]["template"]
        meta = deployment["metadata"]
        owner = {"apiVersion": "apps/v1", "kind": "Deployment", "name": meta["name"], "uid": meta["uid"],
                 "controller": True}
        self.store.create("pods", self.namespace, {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {**template["metadata"], "name": f"{meta['name']}-{secrets.token_hex(3)}",
                         "ownerReferences": [owner]},
            "spec": template["spec"]})

    def _delete(self, name: str) -> None:
        try:
            self.store.delete("pods", self.namespace, name)
        except ApiError:
            pass
