"""The GCS's actor manager: it places actors, restarts them, ends them.

An actor's life: PENDING (a worker is being leased and its constructor run) →
ALIVE (callers send method calls straight to its worker; the GCS is not on that
path) → RESTARTING after its process died, while restarts remain → DEAD.

The GCS leases the actor's worker from a node manager and holds the lease for the
actor's life, so a detached actor outlives its driver. It watches three
connections: to the actor's worker (its process died), to the actor's owner (a
non-detached actor dies with the process that created it), and to node managers
(lease warnings for actors no node can place, relayed to the owner).
"""

from __future__ import annotations

import asyncio
import enum
import logging
import os
import time
from typing import TYPE_CHECKING, Any

from nbcluster.runtime import ids
from nbcluster.runtime.node import resources as rs
from nbcluster.runtime.core.worker_loss import ask_failure_cause
from nbcluster.runtime.protocol import (
    common_pb2,
    core_worker_pb2 as cw_pb2,
    gcs_pb2,
    node_manager_pb2 as nm_pb2,
)
from nbcluster.runtime.states import StateMachine
from nbcluster.runtime.transport import dial, framed, methods
from nbcluster.runtime.transport.errors import ConnectionLost, RemoteError

if TYPE_CHECKING:
    from nbcluster.runtime.gcs.server import GcsServer

logger = logging.getLogger(__name__)

#: The worker id the GCS uses when it introduces itself to node managers and workers.
GCS_WORKER_ID = b"\0" * 15 + b"\x01"


class ActorState(enum.Enum):
    """An actor's state (the proto's ActorState values)."""

    PENDING = gcs_pb2.ACTOR_STATE_PENDING
    ALIVE = gcs_pb2.ACTOR_STATE_ALIVE
    RESTARTING = gcs_pb2.ACTOR_STATE_RESTARTING
    DEAD = gcs_pb2.ACTOR_STATE_DEAD


ACTOR_TRANSITIONS = {
    # PENDING -> RESTARTING: its process died while the constructor ran.
    ActorState.PENDING: frozenset({ActorState.ALIVE, ActorState.RESTARTING, ActorState.DEAD}),
    ActorState.ALIVE: frozenset({ActorState.RESTARTING, ActorState.DEAD}),
    ActorState.RESTARTING: frozenset({ActorState.ALIVE, ActorState.DEAD}),
    ActorState.DEAD: frozenset(),
}


class _Actor:
    __slots__ = (
        "info",
        "machine",
        "changed",
        "task",
        "worker_conn",
        "lease",
        "end_reason",
        "no_restart",
        "request_id",
        "restart_reason",
    )

    def __init__(self, info: gcs_pb2.ActorInfo) -> None:
        self.info = info
        self.machine = StateMachine(ACTOR_TRANSITIONS, ActorState.PENDING)
        self.changed = asyncio.Event()
        self.task: asyncio.Task | None = None
        self.worker_conn: Any = None
        self.lease: tuple[Any, int] | None = None  # (node manager connection, lease id)
        self.end_reason = ""  # why it is being ended on purpose (kill, exit_actor, owner)
        self.no_restart = False
        self.request_id = 0
        self.restart_reason = ""  # killed with no_restart=False: why it restarts

    @property
    def state(self) -> ActorState:
        return self.machine.state


class _ClientSide:
    """CoreWorker methods the GCS serves on connections it opens (to node managers
    and actor workers)."""

    def __init__(self, manager: "ActorManager") -> None:
        self._manager = manager

    def ReportTaskResults(self, request: cw_pb2.TaskResultsNotice, conn: Any) -> common_pb2.Empty:
        for result in request.results:
            fut = self._manager._creating.pop(result.task_id, None)
            if fut is not None and not fut.done():
                fut.set_result(result)
        return common_pb2.Empty()

    def LeaseWarning(self, request: cw_pb2.LeaseWarningNotice, conn: Any) -> common_pb2.Empty:
        self._manager._lease_warning(request)
        return common_pb2.Empty()

    def PublishLogs(self, request: cw_pb2.LogBatch, conn: Any) -> common_pb2.Empty:
        return common_pb2.Empty()


class ActorManager:
    """The actor table: creation, placement, restarts, names, deaths."""

    def __init__(self, gcs: "GcsServer") -> None:
        self.gcs = gcs
        self.actors: dict[bytes, _Actor] = {}
        self.names: dict[tuple[str, str], bytes] = {}
        self._owners: dict[bytes, set[bytes]] = {}
        self._creating: dict[bytes, asyncio.Future] = {}
        self._conns: dict[str, Any] = {}
        self._conn_nodes: dict[str, bytes] = {}
        self._node_conns: dict[str, asyncio.Future] = {}
        self._next_request = 0
        self._spread_turn = 0
        self._tasks: set[asyncio.Task] = set()
        self.dispatcher = framed.Dispatcher()
        self.dispatcher.register("CoreWorker", _ClientSide(self))
        self.dispatcher.register("Gcs", gcs)
        self.address = common_pb2.Address(worker_id=GCS_WORKER_ID, endpoint=gcs.local_endpoint)
        #: Called with each new node manager connection and the actors' leases it handed
        #: over from an earlier GCS (a restarted head: ``actor_recovery.py`` claims them).
        self.on_adopted: Any = self._return_adopted

    def stop(self) -> None:
        """Cancel pending work and close the connections to node managers."""
        for task in list(self._tasks):
            task.cancel()
        for conn in list(self._conns.values()):
            conn.close()

    def _spawn(self, coro: Any) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _connect(self, address: common_pb2.Address) -> Any:
        """A framed connection to a process of the cluster: directly on the head's
        own node, else through its node manager's relay."""
        endpoint = address.endpoint
        conn = self._conns.get(endpoint)
        if conn is not None and not conn.closed:
            return conn
        conn = await dial(
            self.gcs.route(address.node_id, endpoint),
            self.gcs.driver_token,  # drivers and workers accept only the driver credential
            dispatcher=self.dispatcher,
            local=self.address,
            timeout=10.0,
        )
        self._conns[endpoint] = conn
        self._conn_nodes[endpoint] = address.node_id
        conn.on_close(lambda c, e=endpoint: self._conns.pop(e, None) if self._conns.get(e) is c else None)
        return conn

    def node_died(self, node_id: bytes) -> None:
        """Drop every connection into a dead node: its actors' workers are taken as
        dead (restarted elsewhere if they may), its owners' actors end."""
        for endpoint, conn_node in list(self._conn_nodes.items()):
            if conn_node == node_id:
                del self._conn_nodes[endpoint]
                conn = self._conns.get(endpoint)
                if conn is not None:
                    conn.close()
        for endpoint, pending in list(self._node_conns.items()):
            if pending.done() and not pending.cancelled() and pending.exception() is None:
                conn = pending.result()
                if conn.peer is not None and conn.peer.node_id == node_id:
                    conn.close()
                    del self._node_conns[endpoint]

    # -- state ------------------------------------------------------------------------
    def _transition(self, actor: _Actor, state: ActorState, message: str = "") -> None:
        actor.machine.transition(state)
        info = actor.info
        info.state = state.value
        info.version += 1
        if state is ActorState.DEAD:
            info.end_time = time.time()
            info.death_cause = message
            key = (info.namespace, info.name)
            if info.name and self.names.get(key) == info.actor_id:
                del self.names[key]
            held = self._owners.get(info.owner.worker_id)
            if held is not None:
                held.discard(info.actor_id)
        self.gcs.store_actor(info)
        actor.changed.set()
        actor.changed = asyncio.Event()
        where = f" on node {ids.short(info.node_id)} pid {info.pid}" if state is ActorState.ALIVE else ""
        why = f": {message.splitlines()[0]}" if message else ""
        self.gcs.events.publish(
            gcs_pb2.EVENT_KIND_ACTOR_STATE,
            f"Actor {info.class_name} ({ids.short(info.actor_id)}) is {state.name}{where}{why}",
            job_id=info.job_id,
            node_id=info.node_id,
            data={
                "actor_id": info.actor_id.hex(),
                "state": state.name,
                "class_name": info.class_name,
                "name": info.name,
                "num_restarts": info.num_restarts,
                "pid": info.pid,
            },
        )

    @staticmethod
    def public(info: gcs_pb2.ActorInfo) -> gcs_pb2.ActorInfo:
        """The actor's record without its creation task (class and arguments)."""
        out = gcs_pb2.ActorInfo()
        out.CopyFrom(info)
        out.ClearField("creation_task")
        out.ClearField("job_config")
        return out

    # -- RPCs -------------------------------------------------------------------------
    async def create(self, request: gcs_pb2.CreateActorRequest) -> gcs_pb2.CreateActorReply:
        """Register an actor and place it (``CreateActor``)."""
        info = request.actor
        known = self.actors.get(info.actor_id)
        if known is not None:
            # The second half of a two-phase creation: the constructor call, once its
            # arguments were ready. (Otherwise a repeated request.)
            if request.actor.HasField("creation_task") and known.task is None and known.state is ActorState.PENDING:
                known.info.creation_task.CopyFrom(request.actor.creation_task)
                known.task = self._spawn(self._place(known))
            return gcs_pb2.CreateActorReply(actor=self.public(known.info))
        if info.name:
            existing = self.names.get((info.namespace, info.name))
            if existing is not None:
                if request.get_if_exists:
                    return gcs_pb2.CreateActorReply(actor=self.public(self.actors[existing].info), existed=True)
                raise RemoteError(
                    common_pb2.ERROR_CODE_ALREADY_EXISTS,
                    f"An actor named {info.name!r} already exists in namespace {info.namespace!r}. "
                    "Pick another name, pass get_if_exists=True to reuse it, or kill it first.",
                )
            self.names[(info.namespace, info.name)] = info.actor_id
        info.state = gcs_pb2.ACTOR_STATE_PENDING
        info.version = 1
        info.start_time = time.time()
        actor = _Actor(info)
        self.actors[info.actor_id] = actor
        self.gcs.store_actor(info)
        if not info.detached:
            self._watch_owner(info.owner)
            self._owners.setdefault(info.owner.worker_id, set()).add(info.actor_id)
        if info.HasField("creation_task"):
            actor.task = self._spawn(self._place(actor))
        return gcs_pb2.CreateActorReply(actor=self.public(info))

    async def get(self, request: gcs_pb2.GetActorInfoRequest) -> gcs_pb2.GetActorInfoReply:
        """An actor's row by id or name; with ``wait``, once it changed past ``after_version``."""
        actor_id = request.actor_id
        if not actor_id and request.name:
            actor_id = self.names.get((request.namespace, request.name), b"")
        actor = self.actors.get(actor_id)
        if actor is None:
            return gcs_pb2.GetActorInfoReply(found=False)
        while request.wait and actor.info.version <= request.after_version and actor.state is not ActorState.DEAD:
            await actor.changed.wait()
        return gcs_pb2.GetActorInfoReply(found=True, actor=self.public(actor.info))

    async def kill(self, request: gcs_pb2.KillActorRequest) -> None:
        """End the actor; returns once its process is gone (so no later call of the
        killer's can still reach it)."""
        actor = self.actors.get(request.actor_id)
        if actor is None:
            raise RemoteError(common_pb2.ERROR_CODE_NOT_FOUND, f"no actor {request.actor_id.hex()}")
        if actor.state is ActorState.DEAD:
            return
        changed = actor.changed
        self._end(actor, request.reason or "it was killed with nbcluster.kill()", request.no_restart)
        try:
            await asyncio.wait_for(changed.wait(), 10.0)
        except asyncio.TimeoutError:
            logger.warning("actor=%s did not end within 10 s of being killed", request.actor_id.hex())

    def report_exit(self, request: gcs_pb2.ReportActorExitRequest) -> None:
        """Record why an actor's worker is exiting."""
        actor = self.actors.get(request.actor_id)
        if actor is not None:
            actor.end_reason = request.reason or "it exited by calling exit_actor()"
            actor.no_restart = True

    def end_group(self, group_id: bytes, reason: str) -> None:
        """End (no restart) the actors placed in placement group ``group_id``."""
        for actor in list(self.actors.values()):
            if actor.info.placement_group_id == group_id:
                self._end(actor, reason, no_restart=True)

    def list(self) -> list[gcs_pb2.ActorInfo]:
        """Every actor's row."""
        return [self.public(a.info) for a in self.actors.values()]

    # -- placing and restarting ---------------------------------------------------------
    async def _place(self, actor: _Actor) -> None:
        """Lease a worker and run the constructor there (first start or a restart)."""
        info = actor.info
        try:
            await self._start(actor)
        except asyncio.CancelledError:
            raise
        except _WorkerDied as died:
            actor.lease = None  # ended with the worker
            self._after_death(actor, died.cause)
        except ConnectionLost as exc:
            if actor.lease is None and not actor.no_restart:
                # The node it was being placed on went away before a worker was
                # leased: place it again (not a restart: nothing of it ran).
                logger.info("placing actor=%s again: %s", info.actor_id.hex(), exc)
                await asyncio.sleep(0.2)
                actor.task = self._spawn(self._place(actor))
            else:
                actor.lease = None
                self._after_death(actor, f"its node became unreachable ({exc})")
        except _ActorFailed as failed:
            self._release_lease(actor, failed=True)
            self._transition(actor, ActorState.DEAD, failed.cause)
        except Exception as exc:  # noqa: BLE001
            logger.exception("placing actor=%s failed", info.actor_id.hex())
            self._release_lease(actor, failed=True)
            if actor.state is not ActorState.DEAD:
                self._transition(actor, ActorState.DEAD, f"it could not be started: {exc}")

    async def _start(self, actor: _Actor) -> None:
        info = actor.info
        job = self.gcs.job_table.info(info.job_id)
        nm, reply = await self._lease(actor, job)
        actor.lease = (nm, reply.lease_id)
        conn = await self._connect(reply.worker)
        spec = common_pb2.TaskSpec()
        spec.CopyFrom(info.creation_task)
        spec.attempt = info.num_restarts
        spec.gpu_ids[:] = reply.gpu_ids  # the actor's for life
        fut = asyncio.get_running_loop().create_future()
        self._creating[spec.task_id] = fut
        push = cw_pb2.PushTasksRequest(job_id=info.job_id, tasks=[spec])
        if job is not None:
            push.job_config.CopyFrom(_job_config(info, job))
            push.driver.CopyFrom(job.driver)
        closed = asyncio.get_running_loop().create_future()
        conn.on_close(lambda c: closed.done() or closed.set_result(c.close_reason))
        conn.notify(methods.CoreWorker.PushTasks, push)
        done, _ = await asyncio.wait({fut, closed}, return_when=asyncio.FIRST_COMPLETED)
        self._creating.pop(spec.task_id, None)
        if fut not in done:
            raise _WorkerDied(f"its worker process died while running the constructor ({closed.result()})")
        result: cw_pb2.TaskResult = fut.result()
        if result.status != cw_pb2.TASK_STATUS_OK:
            raise _ActorFailed(f"its constructor raised:\n{result.error_message}")
        if actor.no_restart and actor.end_reason:  # ended while starting
            self._release_lease(actor, failed=True)
            self._transition(actor, ActorState.DEAD, actor.end_reason)
            return
        actor.worker_conn = conn
        info.address.CopyFrom(reply.worker)
        info.node_id = reply.worker.node_id
        info.pid = result.pid
        self._transition(actor, ActorState.ALIVE)
        conn.on_close(lambda c, a=actor: self._worker_lost(a, c))

    async def _lease(self, actor: _Actor, job: gcs_pb2.JobInfo | None) -> tuple[Any, nm_pb2.LeaseReply]:
        """A worker for the actor: ask the chosen node, follow its spillback."""
        info = actor.info
        node = self._pick_node(info)
        no_spill = False
        while True:
            nm = await self.node_connection(node)
            self._next_request += 1
            actor.request_id = self._next_request
            lease = nm.call_future(
                methods.NodeManager.RequestWorkerLease,
                nm_pb2.LeaseRequest(
                    request_id=actor.request_id,
                    resources=info.resources,
                    placement_resources=info.placement_resources,
                    job_id=info.job_id,
                    runtime_env_hash=_job_config(info, job).runtime_env_hash,
                    description=f"Actor {info.class_name}",
                    for_actor=True,
                    retriable=info.max_restarts != 0,
                    strategy=info.scheduling_strategy,
                    affinity_node_id=info.affinity_node_id,
                    affinity_soft=info.affinity_soft,
                    no_spill=no_spill,
                ),
            )
            try:
                reply = await asyncio.shield(lease)
            except asyncio.CancelledError:
                # Killed while waiting: withdraw the request, and give back a lease
                # granted in the meantime.
                nm.notify(methods.NodeManager.CancelLease, nm_pb2.CancelLeaseRequest(request_id=actor.request_id))
                lease.add_done_callback(lambda f, nm=nm: self._return_unused(nm, f))
                raise
            if reply.HasField("spillback"):
                node, no_spill = reply.spillback, True
                continue
            if reply.rejection != nm_pb2.LEASE_REJECTION_UNSPECIFIED:
                raise _ActorFailed(f"no worker could be started for it: {reply.reason}")
            return nm, reply

    def _pick_node(self, info: gcs_pb2.ActorInfo) -> gcs_pb2.NodeInfo:
        """The node to ask first (its node manager may spill the request onward)."""
        nodes = [n for n in self.gcs.alive_nodes() if not n.draining] or self.gcs.alive_nodes()
        if not nodes:
            raise _ActorFailed("the cluster has no node to run it on")
        if info.scheduling_strategy == nm_pb2.SCHEDULING_STRATEGY_NODE_AFFINITY:
            for node in nodes:
                if node.node_id == info.affinity_node_id:
                    return node
        need = rs.to_fixed(info.placement_resources.amounts)
        fitting = [n for n in nodes if rs.fits(rs.to_fixed(n.available.amounts), need)]
        feasible = [n for n in nodes if rs.fits(rs.to_fixed(n.total.amounts), need)]
        if info.scheduling_strategy == nm_pb2.SCHEDULING_STRATEGY_SPREAD and (fitting or feasible):
            pool = sorted(fitting or feasible, key=lambda n: n.node_id)
            self._spread_turn += 1
            return pool[self._spread_turn % len(pool)]
        pool = fitting or feasible or [n for n in nodes if n.is_head] or nodes
        return max(pool, key=lambda n: n.available.amounts.get("CPU", 0))

    async def node_connection(self, node: gcs_pb2.NodeInfo) -> Any:
        """A connection to a node manager, registered as its client (one per node,
        even when several placements ask at once)."""
        endpoint = node.local_endpoint
        pending = self._node_conns.get(endpoint)
        if pending is not None:
            conn = await asyncio.shield(pending)
            if not conn.closed:
                return conn
        pending = self._node_conns[endpoint] = asyncio.get_running_loop().create_future()
        try:
            conn = await dial(
                self.gcs.route(node.node_id, endpoint),
                self.gcs.token,
                dispatcher=self.dispatcher,
                local=self.address,
                timeout=10.0,
            )
            reply = await conn.call(
                methods.NodeManager.RegisterClient,
                nm_pb2.RegisterClientRequest(kind=nm_pb2.CLIENT_KIND_GCS, address=self.address, pid=os.getpid()),
            )
        except BaseException as exc:
            del self._node_conns[endpoint]
            pending.set_exception(exc)
            pending.exception()
            raise
        pending.set_result(conn)
        self.on_adopted(conn, reply.adopted)
        return conn

    @staticmethod
    def _return_adopted(nm: Any, leases: Any) -> None:
        """No actor to take them back: the workers end."""
        for lease in leases:
            nm.notify(methods.NodeManager.ReturnWorker,
                      nm_pb2.ReturnWorkerRequest(lease_id=lease.lease_id, worker_failed=True))

    @staticmethod
    def _return_unused(nm: Any, fut: asyncio.Future) -> None:
        if fut.cancelled() or fut.exception() is not None:
            return
        reply = fut.result()
        if reply.rejection == nm_pb2.LEASE_REJECTION_UNSPECIFIED and not nm.closed:
            nm.notify(methods.NodeManager.ReturnWorker, nm_pb2.ReturnWorkerRequest(lease_id=reply.lease_id))

    def _release_lease(self, actor: _Actor, failed: bool) -> None:
        if actor.lease is None:
            return
        nm, lease_id = actor.lease
        actor.lease = None
        if not nm.closed:
            nm.notify(methods.NodeManager.ReturnWorker, nm_pb2.ReturnWorkerRequest(lease_id=lease_id, worker_failed=failed))

    def _worker_lost(self, actor: _Actor, conn: Any) -> None:
        if actor.worker_conn is not conn or actor.state is ActorState.DEAD or self.gcs.stopping.is_set():
            return  # (the GCS stopping closes it: the actor lives on for the next head)
        actor.worker_conn = None
        nm = actor.lease[0] if actor.lease is not None else None
        actor.lease = None  # the node manager ended it with the worker
        crashed = f"its worker process (pid {actor.info.pid}) died unexpectedly"
        # The node manager says why when it ended the worker (the memory monitor).

        def told(cause: Any) -> None:
            if actor.state is ActorState.ALIVE and actor.worker_conn is None:
                self._after_death(actor, cause.message if cause is not None else crashed)

        ask_failure_cause(nm, actor.info.address.worker_id, told)

    def _after_death(self, actor: _Actor, cause: str) -> None:
        """The actor's process is gone: restart it if it may, else it is dead."""
        info = actor.info
        if actor.no_restart and actor.end_reason:
            self._transition(actor, ActorState.DEAD, actor.end_reason)
            return
        if actor.restart_reason:
            cause, actor.restart_reason = actor.restart_reason, ""
        restarts_left = info.max_restarts < 0 or info.num_restarts < info.max_restarts
        if not restarts_left:
            tried = f" after {info.num_restarts} restart(s)" if info.num_restarts else ""
            self._transition(actor, ActorState.DEAD, f"{cause}{tried} (max_restarts={info.max_restarts})")
            return
        info.num_restarts += 1
        self._transition(actor, ActorState.RESTARTING, cause)
        actor.task = self._spawn(self._place(actor))

    def _end(self, actor: _Actor, reason: str, no_restart: bool) -> None:
        if actor.state is ActorState.DEAD:
            return
        if no_restart:
            if not (actor.no_restart and actor.end_reason):  # an exit_actor() reason stays
                actor.end_reason, actor.no_restart = reason, True
        elif not actor.no_restart:
            actor.restart_reason = reason
        conn = actor.worker_conn
        if conn is not None and not conn.closed:
            conn.notify(methods.CoreWorker.Exit, cw_pb2.ExitRequest(reason=reason, force=True))
        if actor.lease is not None:
            # The node manager kills the worker (a constructor still running, or a
            # process that ignores Exit): its death ends the actor or restarts it.
            nm, lease_id = actor.lease
            if not nm.closed:
                nm.notify(methods.NodeManager.ReturnWorker, nm_pb2.ReturnWorkerRequest(lease_id=lease_id, worker_failed=True))
        elif actor.state in (ActorState.PENDING, ActorState.RESTARTING) and actor.no_restart:
            if actor.task is not None:
                actor.task.cancel()  # still waiting for a lease
            self._transition(actor, ActorState.DEAD, actor.end_reason)

    # -- owners and warnings -----------------------------------------------------------
    def _watch_owner(self, owner: common_pb2.Address) -> None:
        if owner.worker_id in self._owners or not owner.endpoint:
            return

        async def watch() -> None:
            try:
                conn = await self._connect(owner)
            except ConnectionLost:
                self._owner_died(owner.worker_id)
                return
            conn.on_close(lambda _c: self._owner_died(owner.worker_id))

        self._spawn(watch())

    def _owner_died(self, worker_id: bytes) -> None:
        if self.gcs.stopping.is_set():
            return
        for actor_id in list(self._owners.pop(worker_id, ())):
            actor = self.actors.get(actor_id)
            if actor is not None and not actor.info.detached:
                self._end(actor, "its owner (the process that created it) exited", no_restart=True)

    def _lease_warning(self, request: cw_pb2.LeaseWarningNotice) -> None:
        for actor in self.actors.values():
            if actor.request_id == request.request_id and actor.state is not ActorState.DEAD:
                self.gcs.events.publish(
                    gcs_pb2.EVENT_KIND_ACTOR_STATE, request.message, job_id=actor.info.job_id, source="scheduler"
                )
                owner = self._conns.get(actor.info.owner.endpoint)
                if owner is not None and not owner.closed:
                    owner.notify(methods.CoreWorker.LeaseWarning, request)


def _job_config(info: gcs_pb2.ActorInfo, job: gcs_pb2.JobInfo | None) -> common_pb2.JobConfig:
    """What the actor's worker binds to: its own config (a runtime_env of its own), else its job's."""
    if info.HasField("job_config"):
        return info.job_config
    return job.config if job is not None else common_pb2.JobConfig()


class _ActorFailed(Exception):
    """The actor cannot run (its constructor raised, no worker): dead, no restart."""

    def __init__(self, cause: str) -> None:
        super().__init__(cause)
        self.cause = cause


class _WorkerDied(_ActorFailed):
    """Its process died while starting: restarted if it may be."""
