"""Connecting this process to a cluster as a driver: ``init()`` and ``shutdown()``.

``init()`` either starts an embedded cluster (a head and one node manager, children
of this process) or finds a running one, then connects: it dials the head, uploads
the job's runtime_env packages, registers the job and the driver's node manager
client. ``nbcluster.runtime.api`` re-exports these names.
"""

from __future__ import annotations

import atexit
import ipaddress
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nbcluster.exceptions import (
    AlreadyInitializedError,
    AuthenticationError,
    ClusterConnectionError,
)
from nbcluster.runtime import discovery, envvars, ids
from nbcluster.runtime.client.connect import connect_client
from nbcluster.runtime.job_setup import (
    JobRegistration,
    JobSetup,
    dial_gcs,
    job_config,
    this_driver,
    upload_packages,
)
from nbcluster.runtime.config import RuntimeConfig
from nbcluster.runtime.core import autoscaler_events as autoscaler_printer
from nbcluster.runtime.core import worker_state
from nbcluster.runtime.core.core_worker import DRIVER, CoreWorker
from nbcluster.runtime.credentials import given_token
from nbcluster.runtime.runtime_env import RuntimeEnv
from nbcluster.runtime.launcher import LocalCluster, start_local_cluster
from nbcluster.runtime.options import validate_resources
from nbcluster.runtime.protocol import gcs_pb2
from nbcluster.runtime.protocol import node_manager_pb2 as nm_pb2
from nbcluster.runtime.session import Session
from nbcluster.runtime.transport import methods

logger = logging.getLogger("nbcluster")


_lock = threading.RLock()
_cluster: LocalCluster | None = None
#: What this process asked for last when that was another cluster than an embedded one
#: (:func:`autostart_refusal`).
_asked_for: str | None = None
_gcs: Any = None
#: Called (no arguments, on the thread that calls shutdown) before a driver disconnects.
_disconnect_callbacks: list[Callable[[], None]] = []


def on_disconnect(callback: Callable[[], None]) -> Callable[[], None]:
    """Call ``callback()`` whenever this process's driver is about to disconnect by
    ``shutdown()`` (while it can still reach the cluster; not at interpreter exit);
    returns a function that removes it. Registering the same callback twice registers
    it once."""
    with _lock:
        if callback not in _disconnect_callbacks:
            _disconnect_callbacks.append(callback)

    def remove() -> None:
        with _lock:
            if callback in _disconnect_callbacks:
                _disconnect_callbacks.remove(callback)

    return remove



@dataclass(frozen=True)
class ClusterInfo:
    """What ``init()`` returns: where the cluster is and who this driver is."""

    address: str
    session_dir: str
    node_id: str
    job_id: str
    embedded: bool
    #: Connected in client mode: through a proxy on the head, with no node here.
    client_mode: bool = False

    @property
    def address_info(self) -> dict[str, str]:
        """The address, session directory and node id as a dict (Ray's ``address_info``)."""
        return {"address": self.address, "session_dir": self.session_dir, "node_id": self.node_id}

    def __getitem__(self, key: str) -> str:  # Ray's RayContext allows ctx["address"]
        return self.address_info[key]


def is_initialized() -> bool:
    """This process is connected to a cluster (``init()`` ran, ``shutdown()`` did not)."""
    return worker_state.connected() is not None


def _check_namespace(namespace: object) -> None:
    """As Ray: a namespace is None (a fresh anonymous one) or a non-empty str."""
    if namespace is not None and not isinstance(namespace, str):
        raise TypeError(f"namespace must be None or a string, got {type(namespace).__name__} ({namespace!r:.40})")
    if namespace == "":
        raise ValueError('"" is not a valid namespace. Pass None to not specify a namespace.')


def init(
    address: str | None = None,
    *,
    num_cpus: float | None = None,
    num_gpus: float | None = None,
    resources: dict[str, float] | None = None,
    object_store_memory: int | None = None,
    namespace: str | None = None,
    runtime_env: dict | None = None,
    ignore_reinit_error: bool = False,
    log_to_driver: bool = True,
    autoscaling_config: "dict[str, Any] | str | os.PathLike[str] | None" = None,
    autoscaler_events: bool = True,
    token_file: "str | os.PathLike[str] | None" = None,
    _system_config: dict[str, Any] | None = None,
) -> ClusterInfo:
    """Connect this process to a cluster as a driver.

    With no ``address``, start an embedded cluster (a head and one node manager,
    children of this process that exit when it does). ``address="auto"`` attaches
    to the cluster most recently started on this machine; ``"host:port"`` to the
    head at that address.

    ``token_file``: a copy of the head's ``token`` file, for a cluster started by
    someone else or elsewhere (default: ``NBCLUSTER_TOKEN``, inside a job the job's
    credential, else the session of that cluster on this machine). The token is kept
    in this process's memory only, never in its environment.

    ``autoscaling_config`` (a dict or the path of a YAML file in Ray's cluster-config
    shape) runs the autoscaler on the embedded head: nodes of its
    ``available_node_types`` are added for work that does not fit and removed when
    idle. The head node gets ``head_node_type``'s resources unless ``num_cpus`` etc.
    are given. ``autoscaler_events=False`` stops printing its decisions here.
    """
    global _cluster, _asked_for
    with _lock:
        if address is None and os.environ.get(envvars.ADDRESS) and autoscaling_config is None:
            # A submitted job's driver (its supervisor sets this), or the user's choice, as RAY_ADDRESS.
            address = os.environ[envvars.ADDRESS]
        try:
            token = _read_token(address, token_file)
            if address is not None and any(v is not None for v in (num_cpus, num_gpus, resources, object_store_memory)):
                raise ValueError(
                    "num_cpus, num_gpus, resources and object_store_memory describe a new cluster; "
                    "they cannot be given when connecting to an existing one (address=...)."
                )
            # Validated, and local directories zipped, before anything starts.
            uploads: dict[str, bytes] = {}
            env = RuntimeEnv.parse(runtime_env).packed(uploads.__setitem__)
            resources = validate_resources(resources)
            _check_namespace(namespace)
            autoscaling = None
            if autoscaling_config is not None:
                autoscaling = _load_autoscaling(autoscaling_config, address)
                num_cpus, num_gpus, resources = _head_resources(autoscaling, num_cpus, num_gpus, resources)
            _check_shape(num_cpus, num_gpus, object_store_memory)
            if is_initialized():
                if ignore_reinit_error:
                    return _info()
                raise AlreadyInitializedError(
                    "nbcluster.init() was called twice: this process is already connected to a cluster. "
                    "Call nbcluster.shutdown() first, or pass ignore_reinit_error=True."
                )
            config = RuntimeConfig.load(_system_config)
            job = JobSetup(config, namespace, env, uploads, log_to_driver, autoscaler_events)
            if address is None:
                _cluster = _start_embedded(num_cpus, num_gpus, resources, object_store_memory, autoscaling, job)
            else:
                _connect_to(address, token, job)
        except Exception as exc:
            if isinstance(address, str) and not is_initialized():  # a connect that failed
                _asked_for = f"connecting to the cluster at {address} failed ({_first_line(exc)})"
            raise
        # What this process asked for last (autostart_refusal): a local cluster, or another.
        _asked_for = None if address is None else f"this process was connected to the cluster at {address}"
        atexit.register(_shutdown_at_exit)
        return _info()


def _is_loopback(address: str) -> bool:
    host = address.rsplit(":", 1)[0].strip("[]")
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _connect_to(address: str, token: str | None, job: JobSetup) -> None:
    """Connect to the cluster at ``address``: through its node on this machine, else
    (or for an ``nbcluster://`` address) in client mode."""
    found = _find_cluster(address, token)
    if found is None:
        connect_client(address.removeprefix(CLIENT_SCHEME), token or given_token() or "", job)
    else:
        session, found_token, gcs_address, node_endpoint = found
        _connect(session, token or found_token, gcs_address, node_endpoint, None, job)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0].rstrip(".") if text else type(exc).__name__


def autostart_refusal() -> str | None:
    """Why a call before ``init()`` must not start a local cluster on its own: this
    process asked for another cluster — its connect failed, or it was connected and is
    no longer — so a local cluster would run the user's work where they do not expect
    it. None for a process that never asked for a cluster (Ray's auto-start applies)."""
    return _asked_for


def _start_embedded(
    num_cpus: float | None,
    num_gpus: float | None,
    resources: dict[str, float],
    object_store_memory: int | None,
    autoscaling: Any,
    job: "JobSetup",
) -> LocalCluster:
    """Start an embedded cluster (children of this process) and connect to it."""
    cluster = start_local_cluster(
        num_cpus=os.cpu_count() or 1 if num_cpus is None else num_cpus,
        num_gpus=num_gpus,  # None: this machine's GPUs
        resources=resources,
        object_store_memory=object_store_memory,
        config=job.config,
        autoscaling=autoscaling,
        # Nodes the autoscaler adds spill work to and pull objects from the
        # head node: it serves them on loopback (with TLS if the config says so).
        node_port=0 if autoscaling is not None else None,
        tls_settings=autoscaling.tls if autoscaling is not None else None,
    )
    try:
        _connect(cluster.session, cluster.token, cluster.gcs_endpoint, cluster.node_endpoint, cluster.node_id, job)
    except BaseException:
        cluster.stop()
        raise
    return cluster


def _read_token(address: Any, token_file: Any) -> str | None:
    """Check ``address``'s type; the token in ``token_file`` (None: not given)."""
    if address is not None and not isinstance(address, str):
        raise TypeError(f"address must be None, 'auto' or 'host:port', not {type(address).__name__}")
    if token_file is not None and address is None:
        raise ValueError("token_file is for connecting to a running cluster: pass its address too")
    return discovery.read_token_file(os.fspath(token_file)) if token_file is not None else None


def _load_autoscaling(autoscaling_config: Any, address: str | None) -> Any:
    """The autoscaler's config (for a new, embedded cluster only)."""
    if address is not None:
        raise ValueError(
            "autoscaling_config starts a new cluster; it cannot be given with address=... "
            "(start that cluster with nbcluster start --head --autoscaling-config FILE)"
        )
    # Here, not at the top: YAML and the providers' entry points cost every driver and
    # worker ~30 ms to import, and only a driver that starts an autoscaler needs them.
    from nbcluster.runtime.autoscaler.config import load_config
    from nbcluster.runtime.autoscaler.providers import provider_class

    autoscaling = load_config(autoscaling_config)
    provider_class(autoscaling.provider)  # an unknown provider fails here, not in the head's log
    return autoscaling


def _head_resources(
    autoscaling: Any, num_cpus: float | None, num_gpus: float | None, resources: dict[str, float]
) -> tuple[float | None, float | None, dict[str, float]]:
    """The head node's resources: its node type's, unless given to ``init``."""
    head = autoscaling.head_resources()
    if head is None:
        return num_cpus, num_gpus, resources
    head = dict(head)
    num_cpus = head.pop("CPU", 0) if num_cpus is None else num_cpus
    num_gpus = head.pop("GPU", 0) if num_gpus is None else num_gpus
    head.pop("CPU", None)
    head.pop("GPU", None)
    return num_cpus, num_gpus, {**head, **(resources or {})}


def _check_shape(num_cpus: Any, num_gpus: Any, object_store_memory: Any) -> None:
    if num_cpus is not None and (isinstance(num_cpus, bool) or not isinstance(num_cpus, (int, float)) or num_cpus < 0):
        raise ValueError(f"num_cpus must be a number >= 0, got {num_cpus!r}")
    if num_gpus is not None and (isinstance(num_gpus, bool) or not isinstance(num_gpus, (int, float)) or num_gpus < 0):
        raise ValueError(f"num_gpus must be a number >= 0, got {num_gpus!r}")
    if object_store_memory is not None and (not isinstance(object_store_memory, int) or object_store_memory <= 0):
        raise ValueError(f"object_store_memory must be a positive number of bytes, got {object_store_memory!r}")


#: An address in this scheme connects in client mode even where a node of the cluster runs.
CLIENT_SCHEME = "nbcluster://"


def _find_cluster(address: str, token: str | None) -> tuple[Session, str, str, str | None] | None:
    """The session of this machine's node of the cluster at ``address`` ("auto": the
    newest), with the token, how to reach the GCS, and the node's endpoint (None:
    look it up in the GCS). None: the cluster has no node here (or the address asks
    for client mode): connect as a client."""
    client = address.startswith(CLIENT_SCHEME)
    address = address.removeprefix(CLIENT_SCHEME)
    discovery.check_address(address)
    if client and address == "auto":
        raise ValueError(f"{CLIENT_SCHEME} takes the head's host:port, not 'auto'")
    node = None if client else discovery.find_local_node(address)
    if node is not None:
        return node.session, node.token, node.gcs_endpoint, node.node_endpoint
    if address == "auto":
        raise ClusterConnectionError(discovery.no_cluster_message())
    if not client and _is_loopback(address):  # names this machine: its node must run here
        raise ClusterConnectionError(
            f"No node of the cluster at {address} runs on this machine; start one with "
            f"`nbcluster start --address {address}`, or connect in client mode with {CLIENT_SCHEME}{address}."
        )
    if not (token or given_token()):
        raise AuthenticationError(
            f"Connecting to {address} needs the cluster's token: pass token_file= (a copy of the head's "
            "`token` file) or set NBCLUSTER_TOKEN."
        )
    return None


def _set_node(core: CoreWorker, node_id: bytes) -> None:
    core.node_id = node_id
    core.address.node_id = node_id
    core.address_bytes = core.address.SerializeToString()
    core.refs.self_address = core.address_bytes


async def _attach_local_node(core: CoreWorker, gcs: Any, session: Session) -> None:
    """Find this machine's node of the cluster in the GCS (the head's, first)."""
    nodes = (await gcs.call(methods.Gcs.GetAllNodes, gcs_pb2.GetAllNodesRequest())).nodes
    local = [n for n in nodes if n.state == gcs_pb2.NODE_STATE_ALIVE and n.local_endpoint and n.session_dir == str(session.dir)]
    if not local:
        raise ClusterConnectionError("the cluster has no node on this machine to attach to")
    local.sort(key=lambda n: not n.is_head)
    core.node_endpoint = local[0].local_endpoint
    _set_node(core, local[0].node_id)


async def _register_job(gcs: Any, core: CoreWorker, job: JobRegistration) -> bytes:
    """Register the driver's job (a submitted job's id, if this driver is one); its id."""
    submitted = os.environ.get(envvars.JOB_ID, "")
    reply = await gcs.call(
        methods.Gcs.RegisterJob,
        gcs_pb2.RegisterJobRequest(
            job=gcs_pb2.JobInfo(
                job_id=bytes.fromhex(submitted) if submitted else b"",
                type=gcs_pb2.JOB_TYPE_DRIVER,
                driver=core.address,
                driver_pid=os.getpid(),
                entrypoint=job.entrypoint,
                config=job.config,
                metadata=job.metadata,
            )
        ),
    )
    return reply.job_id


def _connect(
    session: Session,
    token: str,
    gcs_endpoint: str,
    node_endpoint: str | None,
    node_id: bytes | None,
    job: JobSetup,
    registration: JobRegistration | None = None,
    worker_id: bytes | None = None,
    prepare: Callable[[CoreWorker], None] | None = None,
) -> CoreWorker:
    """Connect this process as a driver (its job registered with ``registration``, by
    default this process's own) and make it the process's runtime. ``prepare(core)``
    runs before the driver's endpoint starts serving (to register more services)."""
    global _gcs
    started = time.time()
    registration = registration or this_driver(job_config(job))
    holder: dict[str, Any] = {}

    async def setup() -> None:
        gcs = holder["gcs"] = await dial_gcs(gcs_endpoint, token, job.config)
        await upload_packages(gcs, job.uploads)
        if node_endpoint is not None and node_id is None:  # a worker node's session
            _set_node(core, bytes.fromhex(session.read_address()["node_id"]))
        if node_endpoint is None:
            await _attach_local_node(core, gcs, session)
        core.job_id = await _register_job(gcs, core, registration)
        await core.connect_node(nm_pb2.CLIENT_KIND_DRIVER)
        if job.autoscaler_events and os.environ.get(envvars.AUTOSCALER_EVENTS, "1") not in ("0", "false", "False"):
            core.spawn(autoscaler_printer.print_events(gcs, started))

    core = CoreWorker(
        mode=DRIVER,
        session_dir=session.dir,
        token=token,
        node_id=node_id or b"",
        node_endpoint=node_endpoint or "",
        node_ip="127.0.0.1",
        worker_id=worker_id or ids.random_id(),
        config=job.config,
    )
    core.job_config = registration.config
    core.namespace = registration.config.namespace
    core.driver_address = core.address
    if prepare is not None:
        prepare(core)
    try:
        core.start(setup)
    except BaseException:
        core.shutdown()
        if "gcs" in holder:
            holder["gcs"].close()
        raise
    core.driver_address = core.address
    core.gcs = holder["gcs"]
    core.gcs_address = core.gcs_address or gcs_endpoint  # redialed after a head restart
    _gcs = holder["gcs"]
    worker_state.current = core
    return core


def connect_on_behalf(
    session: Session,
    token: str,
    gcs_endpoint: str,
    node_endpoint: str,
    node_id: bytes,
    worker_id: bytes,
    config: RuntimeConfig,
    registration: JobRegistration,
    prepare: Callable[[CoreWorker], None],
) -> CoreWorker:
    """Connect this process as the driver of another process's job (a client-mode
    proxy, ``runtime/client/proxy.py``): registered with ``registration``, on the node
    at ``node_endpoint``, serving what ``prepare(core)`` registers at its endpoint."""
    job = JobSetup(config, registration.config.namespace, RuntimeEnv.parse(None), {}, True, False)
    with _lock:
        core = _connect(session, token, gcs_endpoint, node_endpoint, node_id, job, registration, worker_id, prepare)
        atexit.register(_shutdown_at_exit)
    return core


def _info() -> ClusterInfo:
    core = worker_state.current
    assert core is not None
    if core.session is None:  # client mode: no session on this machine
        return ClusterInfo(address=core.cluster_address, session_dir="", node_id=core.node_id.hex(),
                           job_id=core.job_id.hex(), embedded=False, client_mode=True)
    return ClusterInfo(
        address=core.session.read_address().get("gcs_address", "") if core.session.address_file.exists() else "",
        session_dir=str(core.session.dir),
        node_id=core.node_id.hex(),
        job_id=core.job_id.hex(),
        embedded=_cluster is not None,
    )


def shutdown() -> None:
    """Disconnect; if this driver started an embedded cluster, stop it."""
    _shutdown(callbacks=True)


def _shutdown_at_exit() -> None:
    """At interpreter exit: without the disconnect callbacks (the views they freeze
    belong to a kernel that is going away: nothing would show them)."""
    _shutdown(callbacks=False)


def _shutdown(callbacks: bool) -> None:
    global _cluster, _gcs
    core = worker_state.current
    if callbacks and core is not None and core.mode == DRIVER and not core.closed:
        # Outside the lock: a callback may wait for a thread that is using the driver.
        with _lock:
            registered = list(_disconnect_callbacks)
        for callback in registered:
            try:
                callback()
            except Exception:  # noqa: BLE001 - one callback's bug must not keep the driver connected
                logger.exception("a disconnect callback failed")
    with _lock:
        core = worker_state.current
        if core is not None and core.mode == DRIVER:
            core.disconnecting = True
            if not core.closed and _gcs is not None and core.gcs is _gcs:  # a client's proxy ends its job
                try:
                    # The tasks' last states before the job's end, for `nbcluster list tasks`.
                    core.run_sync(core.task_events.flush(wait=True), timeout=2.0)
                    core.run_sync(
                        _gcs.call(
                            methods.Gcs.FinishJob,
                            gcs_pb2.FinishJobRequest(job_id=core.job_id, state=gcs_pb2.JOB_STATE_SUCCEEDED),
                            timeout=2.0,
                        ),
                        timeout=3.0,
                    )
                except Exception:  # noqa: BLE001 - the head may already be gone
                    pass
            if _gcs is not None and not core.closed:
                core.call_soon(_gcs.close)
            core.shutdown()
            worker_state.current = None
        _gcs = None
        if _cluster is not None:
            cluster, _cluster = _cluster, None
            cluster.stop()
