"""The public API (Ray's names and semantics), re-exported by ``nbcluster``.

Calling ``remote()``, ``put``, ``get``, ``wait`` before ``init`` starts an embedded
cluster with the defaults, as Ray does (a log line says so). Connecting and
disconnecting (``init``, ``shutdown``) live in ``driver_init``, handing calls to the
runtime in ``submission``; both are re-exported here.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Sequence
from typing import Any

from nbcluster.exceptions import ClusterConnectionError
from nbcluster.runtime.actor import ActorClass, ActorHandle
from nbcluster.runtime.arrivals import Arrivals, ProgressArg
from nbcluster.runtime.core import gpus, worker_state
from nbcluster.runtime.core.core_worker import CoreWorker
from nbcluster.runtime.core.generators import ObjectRefGenerator
from nbcluster.runtime.core.local_fetch import fetch_here
from nbcluster.runtime.core.object_ref import ObjectRef
from nbcluster.runtime.driver_init import (
    autostart_refusal,
    ClusterInfo,
    init,
    is_initialized,
    on_disconnect,
    shutdown,
)
from nbcluster.runtime.job_setup import driver_metadata
from nbcluster.runtime.options import validate_actor_options, validate_task_options
from nbcluster.runtime.protocol import gcs_pb2
from nbcluster.runtime.remote_function import RemoteFunction
from nbcluster.runtime.runtime_env import SUPPORTED_KEYS as SUPPORTED_RUNTIME_ENV
from nbcluster.runtime.submission import submit_actor_task, submit_task
from nbcluster.runtime.transport import methods

__all__ = [
    "SUPPORTED_RUNTIME_ENV",
    "ClusterInfo",
    "available_resources",
    "cancel",
    "cluster_resources",
    "driver_metadata",
    "get",
    "get_actor",
    "get_gpu_ids",
    "init",
    "is_initialized",
    "kill",
    "nodes",
    "on_disconnect",
    "put",
    "remote",
    "shutdown",
    "submit_actor_task",
    "submit_task",
    "wait",
]

logger = logging.getLogger("nbcluster")


def _start_embedded() -> None:
    """What a call before ``init()`` does (as Ray): start an embedded cluster and say so
    in one line — unless this process asked for another cluster, which raises instead."""
    refusal = autostart_refusal()
    if refusal is not None:
        raise ClusterConnectionError(
            f"nbcluster is not connected: {refusal}. Connect again (nbcluster.init(address=...) or "
            "%cluster connect), or call nbcluster.init() to start a cluster on this machine on purpose."
        )
    logger.warning("nbcluster was not initialized: starting an embedded cluster (nbcluster.init())")
    init()


worker_state.set_starter(_start_embedded)


def _core() -> CoreWorker:
    """This process's runtime; starts an embedded cluster if there is none."""
    return worker_state.require()



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


def get_gpu_ids() -> list[int]:
    """The ids of the GPUs given to the task or actor that calls it (what its
    ``CUDA_VISIBLE_DEVICES`` holds); [] in a driver, or for work that asked for none."""
    return gpus.assigned()


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


def get(refs: ObjectRef | Sequence[ObjectRef], *, timeout: float | None = None, progress: ProgressArg = False) -> Any:
    """The value of a ref, or the values of a list of refs (blocking).

    ``progress=True`` shows how many have arrived as a progress bar while it blocks (a
    widget under the cell in a notebook, a line on stderr elsewhere); a function
    ``progress(done, total)`` is called on each arrival instead (on the runtime's
    thread: keep it short)."""
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout < 0):
        raise ValueError(f"timeout must be None or a number >= 0, got {timeout!r}")
    core = _core()
    if isinstance(refs, ObjectRef):
        refs = [refs]
        single = True
    elif isinstance(refs, (list, tuple)):
        refs, single = list(refs), False
    elif isinstance(refs, ObjectRefGenerator):
        raise TypeError(
            "get() of an ObjectRefGenerator is not allowed (as Ray): take its refs with next(gen) or "
            "`for ref in gen`, or get(gen.completed()) to wait for the task to finish."
        )
    else:
        raise TypeError(
            f"get() takes an ObjectRef or a list of ObjectRefs, not {type(refs).__name__}: {refs!r:.80}. "
            "Pass what .remote() or put() returned."
        )
    if not progress or not refs:
        values = core.get(refs, timeout)
        return values[0] if single else values
    arrivals = Arrivals(core, [core.check_ref(r) for r in refs], len(refs), progress, "get")
    values = None
    try:
        values = core.get(refs, timeout)
    finally:
        arrivals.close(None if values is None else len(refs))
    return values[0] if single else values


def wait(
    refs: Sequence[ObjectRef | ObjectRefGenerator],
    *,
    num_returns: int = 1,
    timeout: float | None = None,
    fetch_local: bool = True,
    progress: ProgressArg = False,
) -> tuple[list[Any], list[Any]]:
    """Wait until ``num_returns`` of ``refs`` are ready; return (ready, not_ready),
    each in the order of ``refs``. A streaming generator in ``refs`` is ready when
    ``next()`` on it would not block. ``fetch_local=True`` (as Ray): a ref is ready once
    its value is on this node (pulled here from the node that made it); ``False``: as
    soon as the value exists anywhere in the cluster, nothing pulled. ``progress``: as
    for :func:`get`, counting up to ``num_returns`` (streaming generators are counted
    when the wait returns)."""
    if isinstance(refs, (ObjectRef, ObjectRefGenerator)) or not isinstance(refs, (list, tuple)):
        raise TypeError(f"wait() takes a list of ObjectRefs (or ObjectRefGenerators), not {type(refs).__name__}")
    if not refs:  # as Ray: nothing to wait for, whatever num_returns says
        return [], []
    if isinstance(num_returns, bool) or not isinstance(num_returns, int) or num_returns < 1:
        raise ValueError(f"num_returns must be an int >= 1, got {num_returns!r}")
    if num_returns > len(refs):
        raise ValueError(
            f"num_returns ({num_returns}) cannot exceed the number of refs passed ({len(refs)})"
        )
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout < 0):
        raise ValueError(f"timeout must be None or a number >= 0, got {timeout!r}")
    core = _core()
    plain = [r for r in refs if not isinstance(r, ObjectRefGenerator)]
    generators = [r for r in refs if isinstance(r, ObjectRefGenerator)]
    oids = [core.check_ref(r) for r in plain]
    if len(set(oids)) != len(oids) or len(set(map(id, generators))) != len(generators):
        raise ValueError("wait() requires a list of unique ObjectRefs")
    started = time.monotonic()
    arrivals = Arrivals(core, oids, num_returns, progress, "wait") if progress else None
    flags: list[bool] | None = None
    try:
        flags = core.wait_payloads(oids, num_returns, timeout, generators)
        if fetch_local and isinstance(core, CoreWorker) and core.arena is not None:
            left = None if timeout is None else max(timeout - (time.monotonic() - started), 0.0)
            here = fetch_here(core, [oid for oid, ready in zip(oids, flags) if ready], left)
            flags[: len(oids)] = [oid in here for oid in oids]
    finally:
        if arrivals is not None:
            arrivals.close(None if flags is None else min(sum(flags), num_returns))
    by_ref = dict(zip(map(id, plain + generators), flags))
    ready_flags = [by_ref[id(r)] for r in refs]
    ready, not_ready = [], []
    for ref, is_ready in zip(refs, ready_flags):
        (ready if is_ready and len(ready) < num_returns else not_ready).append(ref)
    return ready, not_ready


def cancel(ref: ObjectRef | ObjectRefGenerator, *, force: bool = False, recursive: bool = True) -> None:
    """Cancel the task that returns ``ref`` (or a streaming generator's task): dropped
    if not started, interrupted (``KeyboardInterrupt``) if running, its worker killed
    with ``force=True``. ``get`` then raises TaskCancelledError."""
    if isinstance(ref, ObjectRefGenerator):
        ref = ref.completed()
    if not isinstance(ref, ObjectRef):
        raise TypeError(f"cancel() takes an ObjectRef, not {type(ref).__name__}")
    _core().cancel(ref._id, force, recursive)


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

