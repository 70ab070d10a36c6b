"""The public API (Ray's names and semantics), re-exported by ``nbcluster``.

Calling ``remote()``, ``put``, ``get``, ``wait`` before ``init`` starts an embedded
cluster with the defaults, as Ray does (a log line says so).
"""

from __future__ import annotations

import atexit
import hashlib
import inspect
import json
import logging
import os
import re
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from nbcluster.exceptions import (
    AlreadyInitializedError,
    AuthenticationError,
    ClusterConnectionError,
)
from nbcluster.runtime import discovery, envvars, ids
from nbcluster.runtime.actor import ActorClass, ActorHandle
from nbcluster.runtime.actor_options import validate_actor_options
from nbcluster.runtime.config import RuntimeConfig
from nbcluster.runtime.core import autoscaler_events as autoscaler_printer
from nbcluster.runtime.core import worker_state
from nbcluster.runtime.core.core_worker import DRIVER, CoreWorker
from nbcluster.runtime.core.object_ref import ObjectRef
from nbcluster.runtime.credentials import given_token
from nbcluster.runtime.runtime_env import setup as runtime_env_setup
from nbcluster.runtime.launcher import LocalCluster, start_local_cluster
from nbcluster.runtime.options import validate_resources, validate_task_options
from nbcluster.runtime.protocol import common_pb2, gcs_pb2
from nbcluster.runtime.protocol import node_manager_pb2 as nm_pb2
from nbcluster.runtime.remote_function import RemoteFunction
from nbcluster.runtime.session import Session
from nbcluster.runtime.transport import dial, methods
from nbcluster.runtime.transport.errors import ConnectionLost, RemoteError

logger = logging.getLogger("nbcluster")

_lock = threading.RLock()
_cluster: LocalCluster | None = None
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

SUPPORTED_RUNTIME_ENV = ("env_vars", "working_dir", "py_modules")


@dataclass(frozen=True)
class ClusterInfo:
    """What ``init()`` returns: where the cluster is and who this driver is."""

    address: str
    session_dir: str
    node_id: str
    job_id: str
    embedded: bool

    @property
    def address_info(self) -> dict[str, str]:
        return {"address": self.address, "session_dir": self.session_dir, "node_id": self.node_id}

    def __getitem__(self, key: str) -> str:  # Ray's RayContext allows ctx["address"]
        return self.address_info[key]


def is_initialized() -> bool:
    core = worker_state.current
    return core is not None and not core.closed


def _validate_runtime_env(runtime_env: dict | None) -> dict:
    if runtime_env is None:
        return {}
    if not isinstance(runtime_env, dict):
        raise TypeError(f"runtime_env must be a dict, not {type(runtime_env).__name__}")
    unknown = sorted(set(runtime_env) - set(SUPPORTED_RUNTIME_ENV))
    if unknown:
        raise ValueError(
            f"runtime_env keys {unknown} are not supported; supported keys: {list(SUPPORTED_RUNTIME_ENV)}"
        )
    env_vars = runtime_env.get("env_vars") or {}
    if not isinstance(env_vars, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in env_vars.items()
    ):
        raise TypeError("runtime_env['env_vars'] must be a dict of str -> str")
    out: dict[str, Any] = {"env_vars": dict(env_vars)}
    # Local directories (or gcs:// URIs) zipped here and shipped to every worker.
    from nbcluster.runtime.runtime_env import packages

    def package(path: Any, key: str, include_parent: bool) -> tuple[str, bytes | None]:
        if isinstance(path, str) and path.startswith(f"{packages.PROTOCOL}://"):
            packages.parse_uri(path)
            return path, None
        if not isinstance(path, (str, os.PathLike)) or not os.path.exists(path):
            raise ValueError(f"runtime_env['{key}'] must be an existing local path or a gcs:// URI, got {path!r}")
        data = packages.zip_directory(path, include_parent=include_parent)
        return packages.package_uri(data), data

    if runtime_env.get("working_dir") is not None:
        out["working_dir"] = package(runtime_env["working_dir"], "working_dir", False)
    modules = runtime_env.get("py_modules") or []
    if not isinstance(modules, (list, tuple)):
        raise TypeError("runtime_env['py_modules'] must be a list of local package directories or gcs:// URIs")
    out["py_modules"] = [package(m, "py_modules", True) for m in modules]
    return out


def driver_metadata() -> dict[str, str]:
    """What a driver tells about itself in its job's metadata: in a Jupyter kernel its
    ``kernel_id`` (from the connection file ipykernel was started with) and the
    ``notebook_path`` the Jupyter server gave it (``JPY_SESSION_NAME``) — so the server
    extension can list a cluster's notebooks. Read from the process, no imports."""
    out = {}
    argv = sys.argv
    for i, arg in enumerate(argv):
        path = arg[4:] if arg.startswith("--f=") else argv[i + 1] if arg in ("-f", "--f") and i + 1 < len(argv) else ""
        match = re.fullmatch(r"kernel-(.+)\.json", os.path.basename(path))
        if match:
            out["kernel_id"] = match.group(1)
    if os.environ.get("JPY_SESSION_NAME") and "kernel_id" in out:
        out["notebook_path"] = os.environ["JPY_SESSION_NAME"]
    return out


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
    global _cluster
    with _lock:
        if address is None and os.environ.get(envvars.ADDRESS) and autoscaling_config is None:
            # A submitted job's driver (its supervisor sets this), or the user's choice, as RAY_ADDRESS.
            address = os.environ[envvars.ADDRESS]
        if address is not None and not isinstance(address, str):
            raise TypeError(f"address must be None, 'auto' or 'host:port', not {type(address).__name__}")
        if token_file is not None and address is None:
            raise ValueError("token_file is for connecting to a running cluster: pass its address too")
        token = discovery.read_token_file(os.fspath(token_file)) if token_file is not None else None
        if address is not None and any(v is not None for v in (num_cpus, num_gpus, resources, object_store_memory)):
            raise ValueError(
                "num_cpus, num_gpus, resources and object_store_memory describe a new cluster; "
                "they cannot be given when connecting to an existing one (address=...)."
            )
        env = _validate_runtime_env(runtime_env)
        resources = validate_resources(resources)
        autoscaling = None
        if autoscaling_config is not None:
            if address is not None:
                raise ValueError(
                    "autoscaling_config starts a new cluster; it cannot be given with address=... "
                    "(start that cluster with nbcluster start --head --autoscaling-config FILE)"
                )
            from nbcluster.runtime.autoscaler.config import load_config
            from nbcluster.runtime.autoscaler.providers import provider_class

            autoscaling = load_config(autoscaling_config)
            provider_class(autoscaling.provider)  # an unknown provider fails here, not in the head's log
            head = autoscaling.head_resources()
            if head is not None:
                head = dict(head)
                num_cpus = head.pop("CPU", 0) if num_cpus is None else num_cpus
                num_gpus = head.pop("GPU", 0) if num_gpus is None else num_gpus
                head.pop("CPU", None)
                head.pop("GPU", None)
                resources = {**head, **(resources or {})}
        if num_cpus is not None and (isinstance(num_cpus, bool) or not isinstance(num_cpus, (int, float)) or num_cpus < 0):
            raise ValueError(f"num_cpus must be a number >= 0, got {num_cpus!r}")
        if num_gpus is not None and (isinstance(num_gpus, bool) or not isinstance(num_gpus, (int, float)) or num_gpus < 0):
            raise ValueError(f"num_gpus must be a number >= 0, got {num_gpus!r}")
        if object_store_memory is not None and (not isinstance(object_store_memory, int) or object_store_memory <= 0):
            raise ValueError(f"object_store_memory must be a positive number of bytes, got {object_store_memory!r}")
        if is_initialized():
            if ignore_reinit_error:
                return _info()
            raise AlreadyInitializedError(
                "nbcluster.init() was called twice: this process is already connected to a cluster. "
                "Call nbcluster.shutdown() first, or pass ignore_reinit_error=True."
            )
        config = RuntimeConfig.load(_system_config)
        if address is None:
            cluster = start_local_cluster(
                num_cpus=os.cpu_count() or 1 if num_cpus is None else num_cpus,
                num_gpus=num_gpus or 0,
                resources=resources,
                object_store_memory=object_store_memory,
                config=config,
                autoscaling=autoscaling,
                # Nodes the autoscaler adds spill work to and pull objects from the
                # head node: it serves them on loopback (with TLS if the config says so).
                node_port=0 if autoscaling is not None else None,
                tls_settings=autoscaling.tls if autoscaling is not None else None,
            )
            try:
                _connect(cluster.session, cluster.token, cluster.gcs_endpoint, cluster.node_endpoint,
                         cluster.node_id, config, namespace, env, log_to_driver, autoscaler_events)
            except BaseException:
                cluster.stop()
                raise
            _cluster = cluster
        else:
            session, found_token, gcs_address, node_endpoint = _find_cluster(address, token)
            _connect(session, token or found_token, gcs_address, node_endpoint, None, config, namespace, env,
                     log_to_driver, autoscaler_events)
        atexit.register(_shutdown_at_exit)
        return _info()


def _find_cluster(address: str, token: str | None) -> tuple[Session, str, str, str | None]:
    """The session of this machine's node of the cluster at ``address`` ("auto": the
    newest), with the token, how to reach the GCS, and the node's endpoint (None:
    look it up in the GCS)."""
    discovery.check_address(address)
    node = discovery.find_local_node(address)
    if node is not None:
        return node.session, node.token, node.gcs_endpoint, node.node_endpoint
    if address == "auto":
        raise ClusterConnectionError(discovery.no_cluster_message())
    if not (token or given_token()):
        raise AuthenticationError(
            f"Connecting to {address} needs the cluster's token: set NBCLUSTER_TOKEN "
            "(the `token` file in the cluster's session directory)."
        )
    raise ClusterConnectionError(
        f"No node of the cluster at {address} runs on this machine; start one with "
        f"`nbcluster start --address {address}` and connect from here again."
    )


def _connect(
    session: Session,
    token: str,
    gcs_endpoint: str,
    node_endpoint: str | None,
    node_id: bytes | None,
    config: RuntimeConfig,
    namespace: str | None,
    runtime_env: dict,
    log_to_driver: bool,
    autoscaler_events: bool = True,
) -> None:
    global _gcs
    started = time.time()
    job_env = runtime_env_setup.from_env()
    working_dir_uri, py_modules_uris, job_env_vars = job_env.working_dir or "", list(job_env.py_modules), dict(job_env.env_vars)
    env_vars = {**job_env_vars, **runtime_env.get("env_vars", {})}
    uploads = [p for p in [runtime_env.get("working_dir")] + list(runtime_env.get("py_modules", [])) if p]
    if runtime_env.get("working_dir"):
        working_dir_uri = runtime_env["working_dir"][0]
    py_modules_uris = py_modules_uris + [uri for uri, _ in runtime_env.get("py_modules", [])]
    env_key = {"env_vars": env_vars, "working_dir": working_dir_uri, "py_modules": py_modules_uris}
    env_hash = (
        hashlib.sha1(json.dumps(env_key, sort_keys=True).encode()).hexdigest()[:16]
        if env_vars or working_dir_uri or py_modules_uris
        else ""
    )
    cwd = os.getcwd()
    sys_path = [cwd if p == "" else p for p in sys.path if p == "" or os.path.isdir(p)]
    job_config = common_pb2.JobConfig(
        sys_path=sys_path,
        cwd=cwd,
        env_vars=env_vars,
        namespace=namespace if namespace is not None else f"anonymous-{uuid.uuid4().hex[:12]}",
        log_to_driver=log_to_driver,
        runtime_env_hash=env_hash,
        working_dir_uri=working_dir_uri,
        py_modules_uris=py_modules_uris,
    )
    holder: dict[str, Any] = {}

    async def setup() -> None:
        try:
            gcs = await dial(gcs_endpoint, token, timeout=config.startup_timeout_s)
        except RemoteError as exc:
            raise AuthenticationError(f"the cluster refused the connection: {exc.message}") from None
        except ConnectionLost as exc:
            raise ClusterConnectionError(f"cannot reach the cluster's head at {gcs_endpoint}: {exc}") from None
        holder["gcs"] = gcs
        for uri, data in uploads:  # runtime_env packages, stored once by content
            if data is not None:
                name = uri.split("://", 1)[1].encode()
                await gcs.call(methods.Gcs.KvPut, gcs_pb2.KvPutRequest(namespace="packages", key=name, value=data))
        if node_endpoint is not None and node_id is None:  # a worker node's session
            info = session.read_address()
            core.node_id = bytes.fromhex(info["node_id"])
            core.address.node_id = core.node_id
            core.address_bytes = core.address.SerializeToString()
            core.refs.self_address = core.address_bytes
        if node_endpoint is None:
            nodes = (await gcs.call(methods.Gcs.GetAllNodes, gcs_pb2.GetAllNodesRequest())).nodes
            local = [n for n in nodes if n.state == gcs_pb2.NODE_STATE_ALIVE and n.local_endpoint and n.session_dir == str(session.dir)]
            if not local:
                raise ClusterConnectionError("the cluster has no node on this machine to attach to")
            local.sort(key=lambda n: not n.is_head)
            core.node_endpoint = local[0].local_endpoint
            core.node_id = local[0].node_id
            core.address.node_id = core.node_id
            core.address_bytes = core.address.SerializeToString()
            core.refs.self_address = core.address_bytes
        submitted = os.environ.get(envvars.JOB_ID, "")
        reply = await gcs.call(
            methods.Gcs.RegisterJob,
            gcs_pb2.RegisterJobRequest(
                job=gcs_pb2.JobInfo(
                    job_id=bytes.fromhex(submitted) if submitted else b"",
                    type=gcs_pb2.JOB_TYPE_DRIVER,
                    driver=core.address,
                    driver_pid=os.getpid(),
                    entrypoint=" ".join(sys.argv) or sys.executable,
                    config=job_config,
                    metadata=driver_metadata(),
                )
            ),
        )
        core.job_id = reply.job_id
        await core.connect_node(nm_pb2.CLIENT_KIND_DRIVER)
        if autoscaler_events and os.environ.get(envvars.AUTOSCALER_EVENTS, "1") not in ("0", "false", "False"):
            core.spawn(autoscaler_printer.print_events(gcs, started))

    core = CoreWorker(
        mode=DRIVER,
        session_dir=session.dir,
        token=token,
        node_id=node_id or b"",
        node_endpoint=node_endpoint or "",
        node_ip="127.0.0.1",
        worker_id=ids.random_id(),
        config=config,
    )
    core.job_config = job_config
    core.namespace = job_config.namespace
    core.driver_address = core.address
    try:
        core.start(setup)
    except BaseException:
        core.shutdown()
        if "gcs" in holder:
            holder["gcs"].close()
        raise
    core.driver_address = core.address
    core.gcs = holder["gcs"]
    _gcs = holder["gcs"]
    worker_state.current = core


def _info() -> ClusterInfo:
    core = worker_state.current
    assert core is not None
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
            if not core.closed and _gcs is not None:
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


def _core() -> CoreWorker:
    core = worker_state.current
    if core is None or core.closed:
        logger.info("nbcluster was not initialized: starting an embedded cluster (nbcluster.init())")
        init()
        core = worker_state.current
    assert core is not None
    return core


# -- tasks and objects ----------------------------------------------------------------
def remote(*args: Any, **options: Any) -> Any:
    """Make a function run as a task, or a class an actor: ``@remote`` or
    ``@remote(num_cpus=2, ...)``."""
    if len(args) == 1 and not options and callable(args[0]):
        return _make_remote(args[0], {})
    if args:
        raise TypeError(
            "@nbcluster.remote is used either bare (@nbcluster.remote) or with keyword options "
            f"(@nbcluster.remote(num_cpus=2)); it got {args[0]!r}, which is not a function or class."
        )
    return lambda target: _make_remote(target, options)


def _make_remote(target: Any, options: dict[str, Any]) -> Any:
    if inspect.isclass(target):
        return ActorClass(target, validate_actor_options(options))
    if not callable(target):
        raise TypeError(
            f"@nbcluster.remote takes a function or a class, not {type(target).__name__} ({target!r:.60})"
        )
    return RemoteFunction(target, validate_task_options(options))


def _lineage(core: CoreWorker) -> tuple[bytes, str]:
    """The running task (the parent of what it submits) and the output context."""
    executor = core.executor
    parent = (executor.current_task_id or b"") if executor is not None else b""
    context = executor.output.context if executor is not None and parent else core.task_context
    return parent, context


def _returned(refs: list[ObjectRef], num_returns: int) -> Any:
    if num_returns == 1:
        return refs[0]
    if num_returns == 0:
        return None
    return refs


def _submitted(core: CoreWorker, parent: bytes, context: str, refs: list[ObjectRef]) -> None:
    """Tell the driver's submit hook (``nbcluster.driver.set_submit_hook``), if any."""
    hook = core.submit_hook
    if hook is not None and not parent:
        try:
            hook(context, refs)
        except Exception:  # noqa: BLE001 - a view's bug must not fail the submission
            logger.exception("the submit hook failed")


def submit_task(fn: RemoteFunction, options: Any, args: tuple, kwargs: dict) -> Any:
    core = _core()
    parent, context = _lineage(core)
    refs = core.submitter.submit(fn._function_info(), args, kwargs, options, parent, context)
    _submitted(core, parent, context, refs)
    return _returned(refs, options.num_returns)


def submit_actor_task(handle: ActorHandle, method: str, options: Any, args: tuple, kwargs: dict) -> Any:
    core = _core()
    parent, context = _lineage(core)
    refs = core.actor_submitter.submit(
        handle._actor_id, handle._class_name, method, args, kwargs, options, handle._ref, parent, context
    )
    _submitted(core, parent, context, refs)
    return _returned(refs, options.num_returns)


def get_actor(name: str, namespace: str | None = None) -> ActorHandle:
    """A handle to the live actor called ``name`` (in this job's namespace unless
    ``namespace`` is given)."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty str, got {name!r}")
    core = _core()
    ns = core.namespace if namespace is None else namespace

    async def lookup() -> gcs_pb2.GetActorInfoReply:
        gcs = await core.gcs_connection()
        return await gcs.call(methods.Gcs.GetActorInfo, gcs_pb2.GetActorInfoRequest(name=name, namespace=ns))

    reply = core.run_sync(lookup())
    if not reply.found or reply.actor.state == gcs_pb2.ACTOR_STATE_DEAD:
        raise ValueError(
            f"Failed to look up actor with name {name!r} in namespace {ns!r}: no live actor has that "
            "name there. Check the name, pass namespace=..., or create it first."
        )
    return ActorHandle._from_info(reply.actor, core.actor_submitter.borrow_handle(reply.actor))


def kill(actor: ActorHandle, *, no_restart: bool = True) -> None:
    """End an actor now: running and queued calls fail with ActorDiedError. With
    ``no_restart=False`` it restarts if it has restarts left."""
    if not isinstance(actor, ActorHandle):
        raise TypeError(
            f"kill() takes an actor handle, not {type(actor).__name__}; to stop a task use nbcluster.cancel()"
        )
    core = _core()

    async def request() -> None:
        gcs = await core.gcs_connection()
        await gcs.call(
            methods.Gcs.KillActor,
            gcs_pb2.KillActorRequest(
                actor_id=actor._actor_id, no_restart=no_restart, reason="it was killed with nbcluster.kill()"
            ),
        )

    core.run_sync(request())


def put(value: Any) -> ObjectRef:
    """Store ``value`` in the cluster; returns an ObjectRef owned by this process."""
    return _core().put(value)


def get(refs: ObjectRef | Sequence[ObjectRef], *, timeout: float | None = None) -> Any:
    """The value of a ref, or the values of a list of refs (blocking)."""
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout < 0):
        raise ValueError(f"timeout must be None or a number >= 0, got {timeout!r}")
    core = _core()
    if isinstance(refs, ObjectRef):
        return core.get([refs], timeout)[0]
    if isinstance(refs, (list, tuple)):
        return core.get(list(refs), timeout)
    raise TypeError(
        f"get() takes an ObjectRef or a list of ObjectRefs, not {type(refs).__name__}: {refs!r:.80}. "
        "Pass what .remote() or put() returned."
    )


def wait(
    refs: Sequence[ObjectRef],
    *,
    num_returns: int = 1,
    timeout: float | None = None,
    fetch_local: bool = True,
) -> tuple[list[ObjectRef], list[ObjectRef]]:
    """Wait until ``num_returns`` of ``refs`` are ready; return (ready, not_ready),
    each in the order of ``refs``."""
    if isinstance(refs, ObjectRef) or not isinstance(refs, (list, tuple)):
        raise TypeError(f"wait() takes a list of ObjectRefs, not {type(refs).__name__}")
    if isinstance(num_returns, bool) or not isinstance(num_returns, int) or num_returns < 1:
        raise ValueError(f"num_returns must be an int >= 1, got {num_returns!r}")
    if num_returns > len(refs):
        raise ValueError(
            f"num_returns ({num_returns}) cannot exceed the number of refs passed ({len(refs)})"
        )
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout < 0):
        raise ValueError(f"timeout must be None or a number >= 0, got {timeout!r}")
    core = _core()
    oids = [core._check_ref(r) for r in refs]
    if len(set(oids)) != len(oids):
        raise ValueError("wait() requires a list of unique ObjectRefs")
    ready_flags = core.wait_payloads(oids, num_returns, timeout)
    ready, not_ready = [], []
    for ref, is_ready in zip(refs, ready_flags):
        (ready if is_ready and len(ready) < num_returns else not_ready).append(ref)
    return ready, not_ready


def cancel(ref: ObjectRef, *, force: bool = False, recursive: bool = True) -> None:
    """Cancel the task that returns ``ref``: dropped if not started, interrupted
    (``KeyboardInterrupt``) if running, its worker killed with ``force=True``.
    ``get`` then raises TaskCancelledError."""
    if not isinstance(ref, ObjectRef):
        raise TypeError(f"cancel() takes an ObjectRef, not {type(ref).__name__}")
    core = _core()
    entry = core.refs.get(ref._id)
    if entry is None or not entry.owned:
        raise ValueError(
            f"cancel() needs the ObjectRef returned by .remote() in this process; {ref!r} is not a "
            "task owned here."
        )
    task = entry.task
    if task is not None and task.method:  # an actor call
        if force:
            raise ValueError("force=True is not supported for actor calls; use nbcluster.kill(actor) instead")
        core.call_soon(core.actor_submitter.cancel, ref._id, recursive)
        return
    core.call_soon(core.submitter.cancel, ref._id, force, recursive)


# -- the cluster --------------------------------------------------------------------------
def _gcs_call(method: Any, request: Any) -> Any:
    core = _core()
    gcs = core.gcs
    if gcs is None:  # inside a worker: ask through a fresh connection to the head
        raise RuntimeError("cluster introspection is available in drivers")
    return core.run_sync(gcs.call(method, request, timeout=10.0))


def _node_dict(node: gcs_pb2.NodeInfo) -> dict[str, Any]:
    alive = node.state == gcs_pb2.NODE_STATE_ALIVE
    host, _, port = node.address.rpartition(":")
    return {
        "NodeID": node.node_id.hex(),
        "Alive": alive,
        "NodeManagerAddress": node.node_ip,
        "NodeManagerHostname": node.hostname,
        "NodeManagerPort": int(port) if port.isdigit() else 0,
        "NodeName": node.node_ip,
        "Resources": dict(node.total.amounts) if alive else {},
        "IsHead": node.is_head,
        "NodeType": node.node_type,
        "StartTime": node.start_time,
        "EndTime": node.end_time,
        "DeathReason": node.death_reason,
        "ObjectStoreUsed": node.object_store_used,
        "ObjectStoreCapacity": node.object_store_capacity,
        "alive": alive,
    }


def nodes() -> list[dict[str, Any]]:
    """Every node the cluster has known, alive and dead, as in Ray."""
    reply = _gcs_call(methods.Gcs.GetAllNodes, gcs_pb2.GetAllNodesRequest())
    return [_node_dict(n) for n in reply.nodes]


def _sum(field: str) -> dict[str, float]:
    reply = _gcs_call(methods.Gcs.GetAllNodes, gcs_pb2.GetAllNodesRequest())
    total: dict[str, float] = {}
    for node in reply.nodes:
        if node.state != gcs_pb2.NODE_STATE_ALIVE:
            continue
        for key, value in getattr(node, field).amounts.items():
            total[key] = total.get(key, 0.0) + value
    return {k: round(v, 4) for k, v in total.items() if v > 0 or field == "total"}


def cluster_resources() -> dict[str, float]:
    """Total resources of the alive nodes."""
    return _sum("total")


def available_resources() -> dict[str, float]:
    """Resources free right now (as last reported by each node, within ~1 s)."""
    return _sum("available")

