"""Starting a head node (GCS + node manager) on this machine.

``nbcluster.init()`` with no address uses :func:`start_local_cluster` with a
lifeline: the processes exit when the driver does, also when it is killed, and the
head then removes the session directory. Head and node manager start in parallel:
the node manager dials the GCS's framed endpoint, known before the GCS is up.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from nbcluster.runtime import envvars, ids, tls
from nbcluster.runtime.config import RuntimeConfig
from nbcluster.runtime.credentials import ca_for
from nbcluster.runtime.private_dir import write_private
from nbcluster.runtime.procutil import spawn, spawn_python, terminate, wait_exit
from nbcluster.runtime.session import Session, new_session, remove_session, remove_store

if TYPE_CHECKING:
    from nbcluster.runtime.autoscaler.config import AutoscalingConfig

_LIVE: list["LocalCluster"] = []


def live_clusters() -> list["LocalCluster"]:
    """The clusters and nodes this process started and has not stopped."""
    return list(_LIVE)


@dataclass(eq=False)
class LocalCluster:
    """The processes of a node (and a head) started on this machine, and how to stop them."""

    session: Session
    token: str
    node_id: bytes
    gcs_endpoint: str
    node_endpoint: str
    procs: list[subprocess.Popen] = field(default_factory=list)
    lifeline: int | None = None
    embedded: bool = True

    def __post_init__(self) -> None:
        _LIVE.append(self)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the processes (closing the lifeline asks them to) and wait for them."""
        if self in _LIVE:
            _LIVE.remove(self)
        if self.lifeline is not None:
            os.close(self.lifeline)
            self.lifeline = None
        else:
            for proc in self.procs:
                if proc.poll() is None:
                    proc.terminate()
        if not wait_exit(self.procs, timeout):
            terminate(self.procs, 1.0)
        # A node manager killed above, or one that rejoined under a new id and was
        # stopped while starting, leaves its arena behind.
        self.session.remove_stores(self.node_id.hex())
        if self.embedded and os.environ.get(envvars.KEEP_SESSION, "") in ("", "0"):
            remove_session(self.session)

    def alive(self) -> bool:
        """Whether all its processes still run."""
        return all(p.poll() is None for p in self.procs)

    def failure(self, default: str = "it exited without saying why") -> str:
        """Why its processes exited while starting: the last line each wrote to stderr
        (``default`` when none wrote anything)."""
        reasons = []
        for path in sorted(self.session.logs.glob("*.err")):
            text = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
            if text:
                reasons.append(text[-1].strip())
        return "; ".join(reasons or [default])

    def abandon(self) -> None:
        """Stop a node that failed to start; free its shared memory if it could not."""
        self.stop(5.0)
        remove_store(self.node_id)

    def forget(self) -> None:
        """Stop tracking a detached cluster (``embedded=False``) as this process's own:
        it keeps running after this process, and whoever recorded it stops it."""
        if self in _LIVE:
            _LIVE.remove(self)


@dataclass(frozen=True)
class NodeSpec:
    """What one node offers."""

    num_cpus: float
    #: None: the machine's GPUs (nvidia-smi's), as Ray detects them.
    num_gpus: float | None = 0
    resources: dict[str, float] = field(default_factory=dict)
    object_store_memory: int | None = None
    #: The address other machines reach this node at.
    node_ip: str = "127.0.0.1"
    #: Serve other machines (gRPC, relay) on this port (0: any); None: this machine only.
    grpc_port: int | None = None
    #: With grpc_port: the port other nodes pull objects from (0: any).
    object_port: int = 0
    #: The autoscaler's node type and instance (for nodes it launches).
    node_type: str = ""
    instance_id: str = ""


def node_args(session: Session, node_id: bytes, gcs_address: str, spec: NodeSpec, head: bool) -> list[str]:
    """The arguments of ``python -m nbcluster.runtime.node`` for a node of ``spec``."""
    args = [
        "--session-dir", str(session.dir),
        "--node-id", node_id.hex(),
        "--gcs-address", gcs_address,
        "--num-cpus", str(spec.num_cpus),
        "--node-ip", spec.node_ip,
    ]
    if spec.num_gpus is not None:
        args += ["--num-gpus", str(spec.num_gpus)]
    if head:
        args.append("--head")
    if spec.resources:
        args += ["--resources", json.dumps(spec.resources)]
    if spec.object_store_memory:
        args += ["--object-store-memory", str(int(spec.object_store_memory))]
    if spec.grpc_port is not None:
        args += ["--grpc-port", str(spec.grpc_port), "--object-port", str(spec.object_port)]
    if spec.node_type:
        args += ["--node-type", spec.node_type]
    if spec.instance_id:
        args += ["--instance-id", spec.instance_id]
    return args


def _lifeline(embedded: bool) -> tuple[int | None, int | None]:
    if not embedded:
        return None, None
    read, write = os.pipe()
    os.set_inheritable(read, True)
    return read, write


def _keep_session() -> bool:
    return os.environ.get(envvars.KEEP_SESSION, "") not in ("", "0")


@contextlib.contextmanager
def _spawning(
    session: Session, procs: list[subprocess.Popen], lifeline: tuple[int | None, int | None]
) -> Iterator[None]:
    """Around starting a cluster's processes: if it fails, end those in ``procs``,
    close the lifeline and remove the session; in any case close this process's copy
    of the lifeline's read end (the children hold theirs)."""
    lifeline_r, lifeline_w = lifeline
    try:
        yield
    except BaseException:
        terminate(procs, 1.0)
        if lifeline_w is not None:
            os.close(lifeline_w)
        remove_session(session)
        raise
    finally:
        if lifeline_r is not None:
            os.close(lifeline_r)


def _autoscaling_args(session: Session, autoscaling: "AutoscalingConfig | None") -> list[str]:
    """The head's arguments for ``autoscaling`` (written to the session as JSON)."""
    if autoscaling is None:
        return []
    path = session.dir / "autoscaling.json"
    write_private(path, autoscaling.to_json())
    return ["--autoscaling-config", str(path)]


def _head_tls(
    tls_settings: tls.Settings | bool | None, host: str, head_port: int, jobs_host: str, jobs_port: int | None
) -> tuple[bytes, tls.Identity | None, bytes]:
    """The head's (CA, identity, CA key) for ``tls_settings`` (see start_local_cluster),
    all empty without TLS."""
    if tls_settings is None:
        tls_settings = not (tls.is_loopback(host) and (jobs_port is None or tls.is_loopback(jobs_host)))
    if tls_settings is True:
        tls_settings = tls.Settings()
    if not tls_settings:
        return b"", None, b""
    return tls_settings.head(f"{host}:{head_port}", tls.node_hosts(host, jobs_host))


def start_local_cluster(
    *,
    num_cpus: float,
    num_gpus: float | None = 0,
    resources: dict[str, float] | None = None,
    object_store_memory: int | None = None,
    config: RuntimeConfig | None = None,
    embedded: bool = True,
    head_port: int = 0,
    host: str = "127.0.0.1",
    node_port: int | None = None,
    object_port: int = 0,
    autoscaling: "AutoscalingConfig | None" = None,
    jobs_host: str = "127.0.0.1",
    jobs_port: int | None = 0,
    tls_settings: tls.Settings | bool | None = None,
    token: str | None = None,
) -> LocalCluster:
    """Start a GCS and a head node manager; return without waiting for them.
    ``node_port``: let other machines reach the node (a cluster of several nodes),
    and pull objects from it on ``object_port``. ``autoscaling``: run the autoscaler
    on the head with this config (the head node is of its ``head_node_type``).
    ``tls_settings``: every listener that other machines reach uses TLS (``tls.py``):
    True or settings (the user's files) turn it on, False off; None (the default) turns
    it on when the head or its jobs API listens on an address other than loopback.
    ``token``: the cluster's token (default: a new one; a head in Kubernetes has it
    from a Secret, so that a restarted head is the same cluster to its nodes)."""
    config = config or RuntimeConfig.load()
    # Before the session: a bad file leaves nothing behind.
    ca_pem, identity, ca_key = _head_tls(tls_settings, host, head_port, jobs_host, jobs_port)
    session, token = new_session(token=token, ca_pem=ca_pem)
    if identity is not None:
        session.write_identity(identity, ca_key)
    node_id = ids.random_id()
    gcs_endpoint = session.endpoint("gcs")
    env = {envvars.CONFIG: config.to_env()}
    lifeline_r, lifeline_w = _lifeline(embedded)
    life = ["--lifeline-fd", str(lifeline_r)] if lifeline_r is not None else []
    fds = (lifeline_r,) if lifeline_r is not None else ()
    head_args = ["--session-dir", str(session.dir), "--host", host, "--port", str(head_port), *life,
                 "--jobs-host", jobs_host, "--jobs-port", str(-1 if jobs_port is None else jobs_port)]
    if embedded and not _keep_session():
        head_args.append("--remove-session-on-exit")
    head_args += _autoscaling_args(session, autoscaling)
    node_type = (autoscaling.head_node_type or "") if autoscaling is not None else ""
    spec = NodeSpec(
        num_cpus, num_gpus, resources or {}, object_store_memory, host, node_port, object_port, node_type=node_type
    )
    head_node_args = [*node_args(session, node_id, gcs_endpoint, spec, head=True), *life]
    procs: list[subprocess.Popen] = []
    with _spawning(session, procs, (lifeline_r, lifeline_w)):
        procs.append(
            spawn_python(
                "nbcluster.runtime.gcs", head_args, log_dir=session.logs, log_name="gcs", env=env, pass_fds=fds,
                credential=token,
            )
        )
        procs.append(
            spawn_python(
                "nbcluster.runtime.node",
                head_node_args,
                log_dir=session.logs,
                log_name=f"node-{node_id.hex()[:12]}",
                env=env,
                pass_fds=fds,
                credential=token,
            )
        )
    if lifeline_w is not None:
        os.set_inheritable(lifeline_w, False)
    return LocalCluster(
        session=session,
        token=token,
        node_id=node_id,
        gcs_endpoint=gcs_endpoint,
        node_endpoint=session.endpoint(f"node-{node_id.hex()[:12]}"),
        procs=procs,
        lifeline=lifeline_w,
        embedded=embedded,
    )


def start_worker_node(
    *,
    gcs_address: str,
    token: str,
    spec: NodeSpec,
    config: RuntimeConfig | None = None,
    embedded: bool = True,
    link_latest: bool = True,
    command_prefix: Sequence[str] = (),
    tls_settings: tls.Settings | None = None,
) -> LocalCluster:
    """Start a node manager that joins the cluster whose GCS is at ``gcs_address``,
    in a session directory of its own; return without waiting for it.
    ``command_prefix`` runs it through another command (``ip netns exec NAME``).

    TLS follows the cluster: on when the cluster's CA is trusted for ``token`` (it came
    in the token file, or ``credentials.trust``). The node gets its certificate from the
    head unless ``tls_settings`` gives the user's certificate and key."""
    config = config or RuntimeConfig.load()
    ca_pem = ca_for(token)
    identity = (tls_settings or tls.Settings()).user_identity(ca_pem)
    if identity is not None and not ca_pem:
        raise tls.TlsError("--tls-cert-file needs the cluster's CA: a token file that carries it, or --tls-ca-file")
    session, _ = new_session(token=token, link_latest=link_latest, ca_pem=ca_pem)
    if identity is not None:
        session.write_identity(identity)
    node_id = ids.random_id()
    env = {envvars.CONFIG: config.to_env()}
    lifeline_r, lifeline_w = _lifeline(embedded)
    args = node_args(session, node_id, gcs_address, spec, head=False)
    if lifeline_r is not None:
        args += ["--lifeline-fd", str(lifeline_r)]
    if embedded and not _keep_session():
        args.append("--remove-session-on-exit")
    with _spawning(session, [], (lifeline_r, lifeline_w)):
        proc = spawn(
            [*command_prefix, sys.executable, "-m", "nbcluster.runtime.node", *args],
            log_dir=session.logs,
            log_name=f"node-{node_id.hex()[:12]}",
            env=env,
            pass_fds=(lifeline_r,) if lifeline_r is not None else (),
            credential=token,
        )
    node_endpoint = session.endpoint(f"node-{node_id.hex()[:12]}")
    session.write_address(
        {
            "role": "worker",
            "gcs_address": gcs_address,
            "node_endpoint": node_endpoint,
            "node_id": node_id.hex(),
            "node_pid": proc.pid,
            "session_dir": str(session.dir),
        }
    )
    return LocalCluster(
        session=session,
        token=token,
        node_id=node_id,
        gcs_endpoint=gcs_address,
        node_endpoint=node_endpoint,
        procs=[proc],
        lifeline=lifeline_w,
        embedded=embedded,
    )
