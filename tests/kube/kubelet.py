"""The stand-in kubelet and scheduler: one node (see ``tests/kube/__init__.py``)."""

from __future__ import annotations

import base64
import os
import shlex
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from nbcluster.runtime.kubernetes.pods import parse_quantity

from ..netns import Hosts
from .apiserver import ApiError, Store, matches, now

#: The stand-in's images are this machine's environment, except this one, whose
#: container sleeps whatever its command (pods that must run without a cluster).
SLEEP_IMAGE = "standin/sleep"
#: Mounted at a mountPath the pod shares with the machine: left as it is.
_SHARED_MOUNTS = ("/dev/shm",)


@dataclass(eq=False)
class _Pod:
    name: str
    netns: str
    ip: str
    dir: Path
    proc: subprocess.Popen
    cpu: float
    term_at: float | None = None
    #: Why the kubelet killed it: "" (it ended by itself), "Evicted: ...", "OOMKilled".
    killed: str = ""
    hosts_file: Path = field(default_factory=Path)
    shm: Path | None = None


class Kubelet:
    """Runs the pods of ``namespace`` (module docstring of the package); ``cpu`` is the
    node's allocatable CPUs, ``labels`` its labels (for nodeSelector)."""

    def __init__(self, store: Store, hosts: Hosts, namespace: str, kubeconfig: Path, *, cpu: float = 4.0,
                 labels: dict[str, str] | None = None, env: dict[str, str] | None = None) -> None:
        self.store, self.hosts, self.namespace, self.kubeconfig = store, hosts, namespace, kubeconfig
        self.cpu, self.labels = cpu, dict(labels or {})
        self.env = {k: val for k, val in {**os.environ, **(env or {})}.items() if k != "NBCLUSTER_TOKEN"}
        self.root = Path(tempfile.mkdtemp(prefix="kubelet-"))
        self.running: dict[str, _Pod] = {}
        #: When each pod's container started (wall clock), for the tests' timings.
        self.started_at: dict[str, float] = {}
        self._made_dirs: list[Path] = []
        self._hosts_text = ""
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="kubelet", daemon=True)
        self._thread.start()

    # -- the loop -------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stop.wait(0.05):
            try:
                with self._lock:
                    self.step()
            except Exception:  # noqa: BLE001 - keep going; tests see the pods' states
                import traceback

                traceback.print_exc()

    def step(self) -> None:
        """Move every pod one step: schedule and start, notice exits, stop deleted ones."""
        pods, _ = self.store.list("pods", self.namespace)
        for pod in pods:
            name = pod["metadata"]["name"]
            run = self.running.get(name)
            if "deletionTimestamp" in pod["metadata"]:
                self._stopping(pod, run)
            elif pod["status"].get("phase") == "Pending" and run is None:
                self._schedule(pod)
            elif run is not None and run.proc.poll() is not None:
                self._exited(pod, run)
        self._services()

    def _update_status(self, name: str, **fields: Any) -> None:
        try:
            self.store.update("pods", self.namespace, name, lambda p: p["status"].update(fields))
        except ApiError:
            pass  # removed meanwhile

    def _why_unschedulable(self, pod: dict[str, Any]) -> str:
        selector = pod["spec"].get("nodeSelector") or {}
        if any(self.labels.get(k) != val for k, val in selector.items()):
            return "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector."
        used = sum(p.cpu for p in self.running.values())
        if used + _cpu(pod) > self.cpu + 1e-9:
            return "0/1 nodes are available: 1 Insufficient cpu."
        return ""

    def _schedule(self, pod: dict[str, Any]) -> None:
        name = pod["metadata"]["name"]
        why = self._why_unschedulable(pod)
        if why:
            cond = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": why}
            if cond not in (pod["status"].get("conditions") or []):
                self._update_status(name, conditions=[{**cond, "lastTransitionTime": now()}])
            return
        missing = self._missing_volume(pod)
        if missing:  # as the kubelet: the pod waits in ContainerCreating, saying why
            status = [{**_container_id(pod), "ready": False, "restartCount": 0,
                       "state": {"waiting": {"reason": "ContainerCreating", "message": missing}}}]
            if pod["status"].get("containerStatuses") != status:
                self._update_status(name, containerStatuses=status)
            return
        netns, ip = self.hosts.add(name)
        pod_dir = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=self.root))
        try:
            argv = self._argv(pod, netns, ip, pod_dir)
            log = open(pod_dir / "log", "wb")  # noqa: SIM115 - the child keeps it
            # The pod's /dev/shm is its own (a memory emptyDir): nbcluster's store goes there.
            shm = Path(tempfile.mkdtemp(prefix=f"kubelet-{name}-", dir="/dev/shm"))
            env = {**self.env, "NBCLUSTER_TEMP_DIR": str(_private(pod_dir / "tmp")), "NBCLUSTER_SHM_DIR": str(shm)}
            if pod["spec"].get("automountServiceAccountToken", True):
                env["KUBECONFIG"] = str(self.kubeconfig)  # stands in for the service account's token
            for item in pod["spec"]["containers"][0].get("env") or []:
                env[item["name"]] = item.get("value", "")
            proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=str(pod_dir))
            log.close()
        except BaseException:
            subprocess.run(["ip", "netns", "del", netns], capture_output=True)
            raise
        self.running[name] = _Pod(name, netns, ip, pod_dir, proc, _cpu(pod), hosts_file=pod_dir / "hosts", shm=shm)
        self.started_at[name] = time.time()
        started = {"type": "PodScheduled", "status": "True", "lastTransitionTime": now()}
        self._update_status(name, phase="Running", podIP=ip, podIPs=[{"ip": ip}], hostIP=ip, startTime=now(),
                            conditions=[started, {"type": "Ready", "status": "True", "lastTransitionTime": now()}],
                            containerStatuses=[{**_container_id(pod), "ready": True, "restartCount": 0,
                                                "state": {"running": {"startedAt": now()}}}])

    def _argv(self, pod: dict[str, Any], netns: str, ip: str, pod_dir: Path) -> list[str]:
        """``ip netns exec`` + private mount and PID namespaces: the volumes bind-mounted,
        then the container's command."""
        container = pod["spec"]["containers"][0]
        volumes = {vol["name"]: vol for vol in pod["spec"].get("volumes") or []}
        (pod_dir / "hosts").write_text(self._hosts_for(pod["metadata"]["name"], ip))
        script = [f"mount --bind {shlex.quote(str(pod_dir / 'hosts'))} /etc/hosts"]
        for mount in container.get("volumeMounts") or []:
            if mount["mountPath"] in _SHARED_MOUNTS:
                continue
            source = self._volume(volumes[mount["name"]], pod_dir / "volumes" / mount["name"])
            target = Path(mount["mountPath"])
            if not target.exists():
                self._makedirs(target)
            script.append(f"mount --bind {shlex.quote(str(source))} {shlex.quote(str(target))}")
            if mount.get("readOnly"):
                script.append(f"mount -o remount,bind,ro {shlex.quote(str(target))}")
        command = [*container.get("command", []), *container.get("args", [])]
        if container.get("image") == SLEEP_IMAGE:  # a placeholder container: it runs until stopped
            command = ["sleep", "600"]
        return ["ip", "netns", "exec", netns, "unshare", "--mount", "--propagation", "private", "--pid", "--mount-proc",
                "--kill-child", "--", "sh", "-c", "set -e; " + "; ".join(script) + '; exec "$@"', "pod", *command]

    def _missing_volume(self, pod: dict[str, Any]) -> str:
        for vol in pod["spec"].get("volumes") or []:
            for key, plural, field_ in (("secret", "secrets", "secretName"), ("configMap", "configmaps", "name"),
                                        ("persistentVolumeClaim", "persistentvolumeclaims", "claimName")):
                if key in vol:
                    try:
                        self.store.get(plural, self.namespace, vol[key][field_])
                    except ApiError:
                        return (f'MountVolume.SetUp failed for volume "{vol["name"]}" : {plural[:-1]} '
                                f'"{vol[key][field_]}" not found')
        return ""

    def _volume(self, vol: dict[str, Any], path: Path) -> Path:
        if "persistentVolumeClaim" in vol:  # the claim's volume: one directory that outlives its pods
            claim = self.root / "claims" / vol["persistentVolumeClaim"]["claimName"]
            claim.mkdir(parents=True, exist_ok=True)
            return claim
        path.mkdir(parents=True)
        if "secret" in vol or "configMap" in vol:
            if "secret" in vol:
                obj = self.store.get("secrets", self.namespace, vol["secret"]["secretName"])
                files = {k: base64.b64decode(val) for k, val in (obj.get("data") or {}).items()}
                mode = vol["secret"].get("defaultMode", 0o644)
            else:
                obj = self.store.get("configmaps", self.namespace, vol["configMap"]["name"])
                files = {k: val.encode() for k, val in (obj.get("data") or {}).items()}
                mode = vol["configMap"].get("defaultMode", 0o644)
            for key, data in files.items():
                (path / key).write_bytes(data)
                (path / key).chmod(mode)
        elif "emptyDir" not in vol:
            raise ValueError(f"the stand-in kubelet mounts secret, configMap, emptyDir and persistentVolumeClaim "
                             f"volumes, not {vol}")
        return path

    def _makedirs(self, target: Path) -> None:
        missing = []
        while not target.exists():
            missing.append(target)
            target = target.parent
        for path in reversed(missing):
            path.mkdir()
            self._made_dirs.append(path)

    def _exited(self, pod: dict[str, Any], run: _Pod) -> None:
        code = run.proc.returncode
        reason = "OOMKilled" if run.killed == "OOMKilled" else ("Completed" if code == 0 else "Error")
        exit_code = 137 if run.killed else code
        fields: dict[str, Any] = {
            "phase": "Succeeded" if code == 0 and not run.killed else "Failed",
            "containerStatuses": [{**_container_id(pod), "ready": False, "restartCount": 0,
                                   "state": {"terminated": {"exitCode": exit_code, "reason": reason,
                                                            "finishedAt": now()}}}],
        }
        if run.killed.startswith("Evicted"):
            fields.update(reason="Evicted", message=run.killed.split(": ", 1)[1])
        self._update_status(run.name, **fields)
        self._release(run)

    def _stopping(self, pod: dict[str, Any], run: _Pod | None) -> None:
        if run is not None and run.proc.poll() is None:
            grace = pod["metadata"].get("deletionGracePeriodSeconds", 30)
            if run.term_at is None:
                run.term_at = time.monotonic()
                _signal(run, signal.SIGTERM if grace else signal.SIGKILL)
            elif time.monotonic() - run.term_at > grace:
                _signal(run, signal.SIGKILL)
            return
        if run is not None:
            self._release(run)
        self.store.remove("pods", self.namespace, pod["metadata"]["name"])

    def _release(self, run: _Pod) -> None:
        run.proc.wait()
        self.running.pop(run.name, None)
        subprocess.run(["ip", "netns", "del", run.netns], capture_output=True)
        shutil.rmtree(run.dir, ignore_errors=True)
        if run.shm is not None:
            shutil.rmtree(run.shm, ignore_errors=True)

    # -- services: names in every pod's /etc/hosts ----------------------------------------
    def _hosts_for(self, name: str, ip: str) -> str:
        return f"127.0.0.1 localhost\n{ip or '127.0.1.1'} {name}\n{self._hosts_text}"

    def _services(self) -> None:
        services, _ = self.store.list("services", self.namespace)
        pods, _ = self.store.list("pods", self.namespace)
        lines = []
        for svc in services:
            selector = ",".join(f"{k}={val}" for k, val in (svc["spec"].get("selector") or {}).items())
            ready = [p for p in pods if p["status"].get("phase") == "Running" and "deletionTimestamp" not in
                     p["metadata"] and matches(p["metadata"].get("labels") or {}, selector)]
            if ready:
                n, ns = svc["metadata"]["name"], self.namespace
                lines.append(f"{ready[0]['status']['podIP']} {n} {n}.{ns} {n}.{ns}.svc {n}.{ns}.svc.cluster.local")
        text = "\n".join(lines) + "\n"
        if text != self._hosts_text:
            self._hosts_text = text
            for run in self.running.values():
                with open(run.hosts_file, "w") as f:  # the same file: the pod's bind mount sees it
                    f.write(self._hosts_for(run.name, run.ip))

    # -- what tests do to pods ------------------------------------------------------------
    def evict(self, name: str, message: str = "The node was low on resource: memory.") -> None:
        """Node-pressure eviction: kill the pod now, then it is Failed with reason Evicted."""
        with self._lock:
            run = self.running[name]
            run.killed = f"Evicted: {message}"
            _signal(run, signal.SIGKILL)

    def oom_kill(self, name: str) -> None:
        """The container went over its memory limit: killed, Failed with OOMKilled."""
        with self._lock:
            run = self.running[name]
            run.killed = "OOMKilled"
            _signal(run, signal.SIGKILL)

    def exec_argv(self, name: str, argv: list[str]) -> tuple[list[str], dict[str, str]]:
        """``kubectl exec``: ``argv`` in the pod's network and mount namespaces, with its
        environment's temp root (so ``nbcluster.init(address="auto")`` finds its node)."""
        with self._lock:
            run = self.running[name]
        # The pod may be starting still: its ``unshare`` has not forked the container's
        # pid 1 yet (a busy machine).
        deadline = time.monotonic() + 30
        while not (children := psutil.Process(run.proc.pid).children()):
            if run.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"pod {name} has no running container to exec in")
            time.sleep(0.05)
        pid1 = children[0].pid
        env = {**self.env, "NBCLUSTER_TEMP_DIR": str(run.dir / "tmp"), "NBCLUSTER_SHM_DIR": str(run.shm)}
        return ["nsenter", "--target", str(pid1), "--mount", "--net", "--pid", "--", *argv], env

    def log(self, name: str) -> str:
        """The pod's output so far ("" once it is gone)."""
        run = self.running.get(name)
        try:
            return (run.dir / "log").read_text(errors="replace") if run else ""
        except OSError:
            return ""

    def ip_of(self, name: str) -> str:
        """The pod's IP."""
        return self.running[name].ip

    def set_cpu(self, cpu: float) -> None:
        """Change the node's allocatable CPUs (pending pods are scheduled against it)."""
        with self._lock:
            self.cpu = cpu

    def close(self) -> None:
        """Kill every pod, remove their namespaces and files."""
        self._stop.set()
        self._thread.join(timeout=10)
        for run in list(self.running.values()):
            _signal(run, signal.SIGKILL)
            self._release(run)
        for path in reversed(self._made_dirs):
            try:
                path.rmdir()
            except OSError:
                pass
        shutil.rmtree(self.root, ignore_errors=True)


def _container_id(pod: dict[str, Any]) -> dict[str, str]:
    container = pod["spec"]["containers"][0]
    return {"name": container["name"], "image": container.get("image", ""), "imageID": container.get("image", "")}


def _cpu(pod: dict[str, Any]) -> float:
    requests = (pod["spec"]["containers"][0].get("resources") or {}).get("requests") or {}
    return parse_quantity(requests.get("cpu", 0))


def _private(path: Path) -> Path:
    path.mkdir(mode=0o700)
    return path


def _signal(run: _Pod, sig: int) -> None:
    """Signal the container's first process (PID 1 of its PID namespace); killing it
    ends every process of the pod, as in a container."""
    try:
        children = psutil.Process(run.proc.pid).children()
        target = children[0].pid if children else run.proc.pid
        os.kill(target, sig)
    except (ProcessLookupError, psutil.NoSuchProcess):
        pass
