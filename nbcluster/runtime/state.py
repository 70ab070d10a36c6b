"""The runtime's state API: typed snapshots of the cluster's tables.

Frozen dataclasses with ``to_json``/``from_json``, so the CLI, REST handlers and
widgets share one schema. Read from the GCS; nothing here is cached.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeVar

from nbcluster.runtime import discovery
from nbcluster.runtime.driver_core import connected_core
from nbcluster.runtime.job_metadata import update_problem
from nbcluster.runtime.protocol import gcs_pb2
from nbcluster.runtime.transport import methods
from nbcluster.runtime.transport.errors import TransportError, public_error

ACTOR_STATES = ("PENDING", "ALIVE", "RESTARTING", "DEAD")
PLACEMENT_GROUP_STATES = ("PENDING", "CREATED", "RESCHEDULING", "REMOVED")

_S = TypeVar("_S", bound="_Snapshot")


class _Snapshot:
    """JSON round-trip shared by every snapshot dataclass."""

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_json(cls: type[_S], data: dict[str, Any]) -> _S:
        return cls(**data)


@dataclass(frozen=True)
class ActorState(_Snapshot):
    """An actor as the cluster knows it: its class, state (PENDING, ALIVE, RESTARTING,
    DEAD), name, where it runs, restarts and why it died."""

    actor_id: str
    class_name: str
    state: str
    name: str
    namespace: str
    job_id: str
    node_id: str
    pid: int
    num_restarts: int
    max_restarts: int
    death_cause: str
    detached: bool
    start_time: float
    end_time: float
    #: The placement group it runs in ("" for none) and the resources it holds.
    placement_group_id: str = ""
    resources: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_info(cls, info: gcs_pb2.ActorInfo) -> "ActorState":
        """The snapshot of a GCS ``ActorInfo``."""
        return cls(
            actor_id=info.actor_id.hex(),
            class_name=info.class_name,
            state=gcs_pb2.ActorState.Name(info.state).removeprefix("ACTOR_STATE_"),
            name=info.name,
            namespace=info.namespace,
            job_id=info.job_id.hex(),
            node_id=info.node_id.hex(),
            pid=info.pid,
            num_restarts=info.num_restarts,
            max_restarts=info.max_restarts,
            death_cause=info.death_cause,
            detached=info.detached,
            start_time=info.start_time,
            end_time=info.end_time,
            placement_group_id=info.placement_group_id.hex(),
            resources=dict(info.resources.amounts),
        )


@dataclass(frozen=True)
class TaskState(_Snapshot):
    """A task (or actor call) as its owner last reported it: its state, node, attempt,
    times and error."""

    task_id: str
    job_id: str
    name: str
    state: str
    node_id: str
    attempt: int
    submit_time: float
    start_time: float
    end_time: float
    error: str
    actor_id: str
    #: The worker of its latest run ("" and 0 until a run ended), and the task that submitted it.
    worker_id: str = ""
    worker_pid: int = 0
    parent_task_id: str = ""
    #: Its runs, oldest first: ``{"attempt", "node_id", "worker_id", "worker_pid",
    #: "start_time", "end_time", "failed"}`` (what ``nbcluster.timeline()`` draws).
    attempts: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def from_record(cls, r: gcs_pb2.TaskRecord) -> "TaskState":
        """The snapshot of a GCS ``TaskRecord``."""
        return cls(
            worker_id=r.worker_id.hex(),
            worker_pid=r.worker_pid,
            parent_task_id=r.parent_task_id.hex(),
            attempts=[
                {"attempt": a.attempt, "node_id": a.node_id.hex(), "worker_id": a.worker_id.hex(),
                 "worker_pid": a.worker_pid, "start_time": a.start_time, "end_time": a.end_time, "failed": a.failed}
                for a in r.attempts
            ],
            task_id=r.task_id.hex(),
            job_id=r.job_id.hex(),
            name=r.name,
            state=r.state,
            node_id=r.node_id.hex(),
            attempt=r.attempt,
            submit_time=r.submit_time,
            start_time=r.start_time,
            end_time=r.end_time,
            error=r.error,
            actor_id=r.actor_id.hex(),
        )


@dataclass(frozen=True)
class NodeState(_Snapshot):
    """A node: its state (ALIVE, DEAD; a draining node is ALIVE with ``draining``),
    addresses, resources in total and available, object store, workers, load and memory."""

    node_id: str
    state: str
    address: str
    node_ip: str
    hostname: str
    is_head: bool
    resources_total: dict[str, float]
    resources_available: dict[str, float]
    object_store_used: int
    object_store_capacity: int
    num_workers: int
    tasks_running: int
    pending_demand: list[dict[str, float]]
    start_time: float
    end_time: float
    death_reason: str
    node_type: str
    object_address: str = ""
    #: Takes no new work: the autoscaler removes it, or it was asked to stop and leaves
    #: by itself once its tasks finished and its objects went to other nodes.
    draining: bool = False
    #: Why it drains, in a sentence ("" when it does not).
    drain_reason: str = ""
    #: When (unix time) a node that stops by itself will have left (0: no deadline).
    drain_deadline: float = 0.0
    #: The autoscaler instance it was launched as ("" otherwise).
    instance_id: str = ""
    #: The machine's physical memory in bytes, in use and total (at the last report).
    memory_used: int = 0
    memory_total: int = 0

    @property
    def shown_state(self) -> str:
        """The state listings show and ``--state`` matches: DRAINING for a draining
        node that is still alive, else ``state``."""
        return "DRAINING" if self.state == "ALIVE" and self.draining else self.state

    @classmethod
    def from_info(cls, n: gcs_pb2.NodeInfo) -> "NodeState":
        """The snapshot of a GCS ``NodeInfo``."""
        return cls(
            node_id=n.node_id.hex(),
            state=gcs_pb2.NodeState.Name(n.state).removeprefix("NODE_STATE_"),
            address=n.address,
            node_ip=n.node_ip,
            hostname=n.hostname,
            is_head=n.is_head,
            resources_total=dict(n.total.amounts),
            resources_available=dict(n.available.amounts),
            object_store_used=n.object_store_used,
            object_store_capacity=n.object_store_capacity,
            num_workers=n.num_workers,
            tasks_running=n.tasks_running,
            pending_demand=[dict(d.amounts) for d in n.pending_demand],
            start_time=n.start_time,
            end_time=n.end_time,
            death_reason=n.death_reason,
            node_type=n.node_type,
            object_address=n.object_address,
            draining=n.draining,
            drain_reason=n.drain_message if n.draining else "",
            drain_deadline=n.drain_deadline if n.draining else 0.0,
            instance_id=n.instance_id,
            memory_used=n.memory_used,
            memory_total=n.memory_total,
        )


@dataclass(frozen=True)
class JobState(_Snapshot):
    """A job, a driver or one submitted with the Jobs API: its status, entrypoint, times
    and task counts."""

    job_id: str
    type: str
    status: str
    entrypoint: str
    driver_pid: int
    start_time: float
    end_time: float
    message: str
    namespace: str
    #: Jobs submitted with the Jobs API: the id users see ("" for drivers).
    submission_id: str = ""
    #: The job's metadata; a driver in a Jupyter kernel has ``kernel_id`` and ``notebook_path``.
    metadata: dict[str, str] = field(default_factory=dict)
    #: Its tasks now: submitted, running, finished, failed (failed or cancelled).
    progress: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_info(cls, j: gcs_pb2.JobInfo, progress: gcs_pb2.JobProgress | None = None) -> "JobState":
        """The snapshot of a GCS ``JobInfo``, with the job's task counts when given."""
        counts = {k: getattr(progress, k) for k in ("submitted", "running", "finished", "failed")} if progress else {}
        return cls(
            job_id=j.job_id.hex(),
            type=gcs_pb2.JobType.Name(j.type).removeprefix("JOB_TYPE_"),
            status=gcs_pb2.JobState.Name(j.state).removeprefix("JOB_STATE_"),
            entrypoint=j.entrypoint,
            driver_pid=j.driver_pid,
            start_time=j.start_time,
            end_time=j.end_time,
            message=j.message,
            namespace=j.config.namespace,
            submission_id=j.submission_id,
            metadata=dict(j.metadata),
            progress=counts,
        )


def gcs_call(method: Any, request: Any, address: str | None = None, token: str | None = None) -> Any:
    """One request to a cluster's GCS; returns its reply.

    Through this driver's GCS connection when connected and no other cluster is
    named; otherwise on a connection of its own (tools such as the CLI, the Jupyter
    server), with ``token`` when given (else the local session's or
    ``NBCLUSTER_TOKEN``). Transport failures arrive as :mod:`nbcluster.exceptions`:
    ClusterConnectionError (unreachable, or the connection dropped),
    AuthenticationError / PermissionDeniedError (a refused credential), NbclusterError
    (any other error the head answered, with its message)."""
    core = connected_core() if address is None and token is None else None
    if core is not None:

        async def call() -> Any:
            try:
                gcs = await core.gcs_connection()
                return await gcs.call(method, request, timeout=30.0)
            except TransportError as exc:
                raise public_error(exc, core.gcs_address) from None

        return core.run_sync(call())
    return discovery.call_gcs(discovery.gcs_target(address, token), method, request)


def list_nodes(*, address: str | None = None, token: str | None = None) -> list[NodeState]:
    """Every node the cluster has known, dead ones included.

    ``address``: another cluster than this driver's ("auto": the newest on this
    machine, "host:port"); needed when this process is not connected. ``token``:
    that cluster's token (default: its local session's, or ``NBCLUSTER_TOKEN``)."""
    reply = gcs_call(methods.Gcs.GetAllNodes, gcs_pb2.GetAllNodesRequest(), address, token)
    return [NodeState.from_info(n) for n in reply.nodes]


def list_jobs(*, address: str | None = None, token: str | None = None) -> list[JobState]:
    """Every job (driver or submitted) the cluster has known."""
    reply = gcs_call(methods.Gcs.GetAllJobs, gcs_pb2.GetAllJobsRequest(), address, token)
    progress = {p.job_id: p for p in reply.progress}
    return [JobState.from_info(j, progress.get(j.job_id)) for j in reply.jobs]


def update_job_metadata(
    job_id: str, metadata: Mapping[str, str], *, address: str | None = None, token: str | None = None
) -> JobState:
    """Set keys of the metadata of a job that has not ended (the other keys keep their
    values); the job as it is then. Watchers get a JOB_STATE event when a value changed.

    What the Jupyter server extension does when a notebook is renamed or moved: the job of
    the driver in its kernel gets the new ``notebook_path``. Needs the cluster's token (a
    driver credential gets PermissionDeniedError). NbclusterError when the cluster knows
    no job ``job_id`` (hex) or it has ended; ValueError for an update past the bounds (16
    keys at a time, keys up to 256 bytes, values up to 4096, 64 keys in all).
    ``address``/``token`` as in :func:`list_nodes`."""
    if not isinstance(metadata, Mapping):
        raise TypeError(f"metadata must be a dict of str to str, got {type(metadata).__name__}")
    problem = update_problem({}, metadata)
    if problem is not None:
        raise ValueError(problem)
    request = gcs_pb2.UpdateJobMetadataRequest(job_id=bytes.fromhex(job_id), metadata=dict(metadata))
    return JobState.from_info(gcs_call(methods.Gcs.UpdateJobMetadata, request, address, token).job)


def list_tasks(
    *, job_id: str | None = None, limit: int = 0, task_ids: Sequence[str] = (), address: str | None = None,
    token: str | None = None,
) -> list[TaskState]:
    """The most recent tasks (owners report their tasks' states about once a second),
    newest first; with ``task_ids`` (hex) only those the cluster knows of. The head
    keeps the newest ``task_table_size`` tasks (10,000) and forgets older ones."""
    request = gcs_pb2.ListTasksRequest(
        job_id=bytes.fromhex(job_id) if job_id else b"", limit=limit, task_ids=[bytes.fromhex(t) for t in task_ids]
    )
    return [TaskState.from_record(r) for r in gcs_call(methods.Gcs.ListTasks, request, address, token).tasks]


def list_actors(
    *, state: str | None = None, class_name: str | None = None, address: str | None = None,
    token: str | None = None,
) -> list[ActorState]:
    """Every actor the cluster has known (dead ones included), optionally filtered."""
    if state is not None and state not in ACTOR_STATES:
        raise ValueError(f"state must be one of {ACTOR_STATES}, got {state!r}")
    reply = gcs_call(methods.Gcs.ListActors, gcs_pb2.ListActorsRequest(), address, token)
    actors = [ActorState.from_info(i) for i in reply.actors]
    return [
        a for a in actors if (state is None or a.state == state) and (class_name is None or a.class_name == class_name)
    ]


@dataclass(frozen=True)
class PlacementGroupState(_Snapshot):
    """A placement group: its bundles and the node holding each ("" while not placed),
    strategy, state (PENDING, CREATED, RESCHEDULING, REMOVED), why it waits or was
    removed, and its job."""

    placement_group_id: str
    name: str
    namespace: str
    strategy: str
    state: str
    bundles: list[dict[str, float]]
    bundles_to_node_id: list[str]
    job_id: str
    detached: bool
    create_time: float
    ready_time: float
    end_time: float
    reason: str
    attempts: int
    num_reschedules: int

    @classmethod
    def from_info(cls, info: gcs_pb2.PlacementGroupInfo) -> "PlacementGroupState":
        """The snapshot of a GCS ``PlacementGroupInfo``."""
        return cls(
            placement_group_id=info.placement_group_id.hex(),
            name=info.name,
            namespace=info.namespace,
            strategy=gcs_pb2.PlacementStrategy.Name(info.strategy or 1).removeprefix("PLACEMENT_STRATEGY_"),
            state=gcs_pb2.PlacementGroupState.Name(info.state).removeprefix("PLACEMENT_GROUP_STATE_"),
            bundles=[dict(b.resources.amounts) for b in info.bundles],
            bundles_to_node_id=[b.node_id.hex() for b in info.bundles],
            job_id=info.job_id.hex(),
            detached=info.detached,
            create_time=info.create_time,
            ready_time=info.ready_time,
            end_time=info.end_time,
            reason=info.reason,
            attempts=info.attempts,
            num_reschedules=info.num_reschedules,
        )


def list_placement_groups(
    *, state: str | None = None, address: str | None = None, token: str | None = None
) -> list[PlacementGroupState]:
    """Every placement group the cluster has known (removed ones included), oldest
    first, optionally only those in ``state``."""
    if state is not None and state not in PLACEMENT_GROUP_STATES:
        raise ValueError(f"state must be one of {PLACEMENT_GROUP_STATES}, got {state!r}")
    reply = gcs_call(methods.Gcs.ListPlacementGroups, gcs_pb2.ListPlacementGroupsRequest(), address, token)
    groups = [PlacementGroupState.from_info(i) for i in reply.groups]
    return [g for g in groups if state is None or g.state == state]


def get_actor_state(actor_id: str) -> ActorState | None:
    """The actor with id ``actor_id`` (hex), or None when the cluster does not know it."""
    for actor in list_actors():
        if actor.actor_id == actor_id:
            return actor
    return None


@dataclass(frozen=True)
class NodeTypeState(_Snapshot):
    """A node type of the autoscaler: its resources, how many nodes run, start and stop,
    and its bounds."""

    name: str
    resources: dict[str, float]
    running: int
    pending: int
    stopping: int
    min_workers: int
    max_workers: int


@dataclass(frozen=True)
class DemandState(_Snapshot):
    """Resource shapes waiting, grouped. ``status``: "waiting-for-launch" (nodes for
    it are on their way, or follow soon), "infeasible" (no node type can ever hold it),
    "capped" (a max_workers limit stops the launch it needs) or "waiting" (it fits a
    node already there once resources free up); ``reason`` says more."""

    shape: dict[str, float]
    kind: str
    count: int
    status: str
    reason: str


@dataclass(frozen=True)
class AutoscalerEvent(_Snapshot):
    """One decision of the autoscaler, as it logged it."""

    time: float
    message: str


@dataclass(frozen=True)
class AutoscalerState(_Snapshot):
    """What :func:`get_autoscaler_state` returns (see there)."""

    enabled: bool
    cluster_name: str = ""
    max_workers: int = 0
    idle_timeout_s: float = 0.0
    node_types: list[NodeTypeState] = field(default_factory=list)
    demand: list[DemandState] = field(default_factory=list)
    events: list[AutoscalerEvent] = field(default_factory=list)
    #: Every instance it launched recently: ``{"instance_id", "node_type", "state", "node_id", "reason"}``.
    instances: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "AutoscalerState":
        """The state from its :meth:`to_json` form, nested records included."""
        data = dict(data)
        data["node_types"] = [NodeTypeState(**t) for t in data.get("node_types", [])]
        data["demand"] = [DemandState(**d) for d in data.get("demand", [])]
        data["events"] = [AutoscalerEvent(**e) for e in data.get("events", [])]
        return cls(**data)

    @classmethod
    def from_reply(cls, r: gcs_pb2.GetAutoscalerStatusReply) -> "AutoscalerState":
        """The state of a GCS ``GetAutoscalerStatusReply``."""
        return cls(
            enabled=r.enabled,
            cluster_name=r.cluster_name,
            max_workers=r.max_workers,
            idle_timeout_s=r.idle_timeout_s,
            node_types=[
                NodeTypeState(
                    t.name, dict(t.resources.amounts), t.running, t.pending, t.stopping, t.min_workers, t.max_workers
                )
                for t in r.node_types
            ],
            demand=[DemandState(dict(d.shape.amounts), d.kind, d.count, d.status, d.reason) for d in r.demand],
            events=[AutoscalerEvent(e.time, e.message) for e in r.events],
            instances=[
                {
                    "instance_id": i.instance_id,
                    "node_type": i.node_type,
                    "state": i.state,
                    "node_id": i.node_id.hex(),
                    "reason": i.reason,
                }
                for i in r.instances
            ],
        )


def get_autoscaler_state(*, address: str | None = None, token: str | None = None) -> AutoscalerState:
    """The autoscaler's view: node types with counts, waiting demand and why, and its
    recent decisions (``enabled=False`` when the cluster has no autoscaler)."""
    reply = gcs_call(methods.Gcs.GetAutoscalerStatus, gcs_pb2.GetAutoscalerStatusRequest(), address, token)
    return AutoscalerState.from_reply(reply)


@dataclass(frozen=True)
class HeadState(_Snapshot):
    """The head of a cluster: where it serves, since when, and its Jobs API."""

    gcs_address: str
    session_dir: str
    version: str
    start_time: float
    head_pid: int
    #: The Jobs REST API's host:port ("" when the head serves none).
    jobs_address: str


def get_head_state(*, address: str | None = None, token: str | None = None) -> HeadState:
    """The head's own record (also a cheap check that ``address`` and ``token`` work)."""
    r = gcs_call(methods.Gcs.GetClusterInfo, gcs_pb2.GetClusterInfoRequest(), address, token)
    return HeadState(r.gcs_address, r.session_dir, r.version, r.start_time, r.head_pid, r.jobs_address)


def machine_memory(nodes: Iterable[Any]) -> dict[str, int]:
    """Physical memory of the machines the alive nodes run on, in bytes: each machine
    (by hostname) counted once, since every node on a machine reports that machine's
    memory. Nodes that have not reported it yet (``memory_total`` 0) are left out.
    ``nodes``: :class:`NodeState` records, or mappings with the same keys."""

    def get(node: Any, key: str) -> Any:
        return node.get(key) if isinstance(node, Mapping) else getattr(node, key, None)

    machines: dict[str, tuple[int, int]] = {}
    for node in nodes:
        total = int(get(node, "memory_total") or 0)
        if get(node, "state") != "ALIVE" or total <= 0:
            continue
        key = get(node, "hostname") or get(node, "node_ip") or get(node, "node_id")
        used = int(get(node, "memory_used") or 0)
        seen_used, seen_total = machines.get(key, (0, 0))
        machines[key] = (max(seen_used, used), max(seen_total, total))
    return {
        "used": sum(used for used, _ in machines.values()),
        "total": sum(total for _, total in machines.values()),
        "machines": len(machines),
    }
