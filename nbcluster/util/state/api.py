"""The list, get and summarize calls of ``nbcluster.util.state`` (Ray's
``ray.util.state``), read from the same tables as :mod:`nbcluster.state`.

Nodes, actors, tasks, jobs and placement groups come from the head; workers and
stored objects from every alive node's manager (so they need a connected process).
``address`` names another cluster for the head's tables, as in :mod:`nbcluster.state`.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Callable, Sequence
from typing import Any

from nbcluster import state as snapshots
from nbcluster.runtime.state_nodes import NodeReport, node_reports
from nbcluster.util.state.common import (
    DEFAULT_LIMIT,
    ActorState,
    JobState,
    NodeState,
    ObjectState,
    PlacementGroupState,
    RayStateApiException,
    TaskState,
    WorkerState,
    apply,
    ms,
)

logger = logging.getLogger(__name__)

Filters = Sequence[tuple[str, str, Any]] | None

_ACTOR_STATES = {"PENDING": "PENDING_CREATION"}
_TASK_STATES = {"WAITING_FOR_ARGS": "PENDING_ARGS_AVAIL", "QUEUED": "PENDING_NODE_ASSIGNMENT", "CANCELLED": "FAILED"}


# -- conversions from the runtime's snapshots ------------------------------------------------
def _node(n: snapshots.NodeState) -> NodeState:
    return NodeState(
        node_id=n.node_id, node_ip=n.node_ip, is_head_node=n.is_head, state=n.state,
        state_message=n.death_reason or None, node_name=n.node_ip, resources_total=dict(n.resources_total),
        labels={"nbcluster.io/node-type": n.node_type} if n.node_type else {}, start_time_ms=ms(n.start_time),
        end_time_ms=ms(n.end_time), resources_available=dict(n.resources_available),
    )


def _actor(a: snapshots.ActorState) -> ActorState:
    return ActorState(
        actor_id=a.actor_id, class_name=a.class_name, state=_ACTOR_STATES.get(a.state, a.state), job_id=a.job_id,
        name=a.name, node_id=a.node_id or None, pid=a.pid or None, ray_namespace=a.namespace,
        num_restarts=a.num_restarts, required_resources=dict(a.resources),
        death_cause={"error_message": a.death_cause} if a.death_cause else None, is_detached=a.detached,
        placement_group_id=a.placement_group_id or None, repr_name="", start_time_ms=ms(a.start_time),
        end_time_ms=ms(a.end_time),
    )


def _error_type(t: snapshots.TaskState) -> str | None:
    if t.state == "CANCELLED":
        return "TASK_CANCELLED"
    if t.state != "FAILED":
        return None
    text = t.error.lower()
    if "job ended" in text:
        return "TASK_UNSCHEDULABLE_ERROR" if not t.attempts else "WORKER_DIED"
    if "worker" in text and "died" in text:
        return "WORKER_DIED"
    return "ACTOR_DIED" if t.actor_id and "actor" in text and "died" in text else "TASK_EXECUTION_EXCEPTION"


def _task(t: snapshots.TaskState) -> TaskState:
    is_actor = bool(t.actor_id)
    kind = ("ACTOR_CREATION_TASK" if t.name.endswith(".__init__") else "ACTOR_TASK") if is_actor else "NORMAL_TASK"
    short = t.name if is_actor else t.name.rpartition(".")[2]
    return TaskState(
        task_id=t.task_id, attempt_number=t.attempt, name=short, state=_TASK_STATES.get(t.state, t.state),
        job_id=t.job_id, actor_id=t.actor_id or None, type=kind, func_or_class_name=short,
        parent_task_id=t.parent_task_id or None, node_id=t.node_id or None, worker_id=t.worker_id or None,
        worker_pid=t.worker_pid or None, error_type=_error_type(t), creation_time_ms=ms(t.submit_time),
        start_time_ms=ms(t.start_time), end_time_ms=ms(t.end_time), error_message=t.error or None,
        events=[
            {"attempt_number": a["attempt"], "node_id": a["node_id"], "worker_id": a["worker_id"],
             "worker_pid": a["worker_pid"], "start_time_ms": ms(a["start_time"]), "end_time_ms": ms(a["end_time"]),
             "failed": a["failed"]}
            for a in t.attempts
        ],
    )


def _job(j: snapshots.JobState) -> JobState:
    return JobState(
        type=j.type, job_id=j.job_id, submission_id=j.submission_id or None, status=j.status,
        entrypoint=j.entrypoint, message=j.message or None, start_time=ms(j.start_time), end_time=ms(j.end_time),
        metadata=dict(j.metadata), driver_info={"pid": str(j.driver_pid)} if j.driver_pid else None,
    )


def _group(g: snapshots.PlacementGroupState) -> PlacementGroupState:
    bundles = [
        {"bundle_index": i, "node_id": node or None, "unit_resources": dict(b)}
        for i, (b, node) in enumerate(zip(g.bundles, g.bundles_to_node_id))
    ]
    return PlacementGroupState(
        placement_group_id=g.placement_group_id, name=g.name, creator_job_id=g.job_id, state=g.state,
        strategy=g.strategy, bundles=bundles, is_detached=g.detached,
        stats={"scheduling_attempt": g.attempts, "num_reschedules": g.num_reschedules, "reason": g.reason,
               "creation_time_ms": ms(g.create_time), "ready_time_ms": ms(g.ready_time)},
    )


def _reports(include_objects: bool, timeout: float, raise_on_missing_output: bool) -> list[NodeReport]:
    reports = node_reports(include_objects, timeout)
    missing = [f"node {r.node.node_id[:12]} ({r.error})" for r in reports if r.stats is None]
    if missing:
        text = "could not ask " + ", ".join(missing)
        if raise_on_missing_output:
            raise RayStateApiException(text + "; pass raise_on_missing_output=False for the rest")
        logger.warning("%s: the answer leaves them out", text)
    return [r for r in reports if r.stats is not None]


def _workers(timeout: float, raise_on_missing_output: bool) -> list[WorkerState]:
    return [
        WorkerState(
            worker_id=w.worker_id.hex(), is_alive=w.state != "DEAD", worker_type="WORKER",
            exit_type=None if w.state != "DEAD" else "SYSTEM_ERROR", node_id=r.node.node_id, ip=r.node.node_ip,
            pid=w.pid, exit_detail=None, state=w.state, job_id=w.job_id.hex() or None,
        )
        for r in _reports(False, timeout, raise_on_missing_output)
        for w in r.stats.workers  # type: ignore[union-attr]
    ]


def _objects(timeout: float, raise_on_missing_output: bool) -> list[ObjectState]:
    return [
        ObjectState(
            object_id=o.object_id.hex(), object_size=o.size, task_status="FINISHED",
            reference_type="PINNED_IN_MEMORY" if o.pins else "LOCAL_REFERENCE", call_site="disabled",
            type="WORKER", pid=None, ip=r.node.node_ip, node_id=r.node.node_id, store_state=o.state,
        )
        for r in _reports(True, timeout, raise_on_missing_output)
        for o in r.stats.objects  # type: ignore[union-attr]
    ]


# -- list -------------------------------------------------------------------------------------
def list_nodes(address: str | None = None, filters: Filters = None, limit: int = DEFAULT_LIMIT,
               timeout: float = 30, detail: bool = False, raise_on_missing_output: bool = True) -> list[NodeState]:
    """The cluster's nodes, dead ones included (``filters=[("state", "=", "ALIVE")]``)."""
    return apply(NodeState, map(_node, snapshots.list_nodes(address=address)), filters, limit, detail)


def list_actors(address: str | None = None, filters: Filters = None, limit: int = DEFAULT_LIMIT,
                timeout: float = 30, detail: bool = False, raise_on_missing_output: bool = True) -> list[ActorState]:
    """The actors the cluster has known (``filters=[("state", "=", "ALIVE")]``)."""
    return apply(ActorState, map(_actor, snapshots.list_actors(address=address)), filters, limit, detail)


def list_tasks(address: str | None = None, filters: Filters = None, limit: int = DEFAULT_LIMIT,
               timeout: float = 30, detail: bool = False, raise_on_missing_output: bool = True) -> list[TaskState]:
    """The tasks and actor calls the head keeps (the newest 10,000), newest first. Owners
    report task states about once a second, so a task shows a moment after it changes."""
    return apply(TaskState, map(_task, snapshots.list_tasks(address=address)), filters, limit, detail)


def list_jobs(address: str | None = None, filters: Filters = None, limit: int = DEFAULT_LIMIT,
              timeout: float = 30, detail: bool = False, raise_on_missing_output: bool = True) -> list[JobState]:
    """The jobs, drivers and submitted ones (``type`` DRIVER or SUBMISSION)."""
    return apply(JobState, map(_job, snapshots.list_jobs(address=address)), filters, limit, detail)


def list_placement_groups(
    address: str | None = None, filters: Filters = None, limit: int = DEFAULT_LIMIT, timeout: float = 30,
    detail: bool = False, raise_on_missing_output: bool = True,
) -> list[PlacementGroupState]:
    """The placement groups, removed ones included."""
    groups = snapshots.list_placement_groups(address=address)
    return apply(PlacementGroupState, map(_group, groups), filters, limit, detail)


def list_workers(address: str | None = None, filters: Filters = None, limit: int = DEFAULT_LIMIT,
                 timeout: float = 30, detail: bool = False, raise_on_missing_output: bool = True) -> list[WorkerState]:
    """The worker processes of every alive node (asked of the node managers; the calling
    process must be connected to the cluster)."""
    return apply(WorkerState, _workers(timeout, raise_on_missing_output), filters, limit, detail)


def list_objects(address: str | None = None, filters: Filters = None, limit: int = DEFAULT_LIMIT,
                 timeout: float = 30, detail: bool = False, raise_on_missing_output: bool = True) -> list[ObjectState]:
    """The objects in the nodes' shared-memory stores (values over 100 KiB; smaller ones
    travel inline with their owners and are not listed)."""
    return apply(ObjectState, _objects(timeout, raise_on_missing_output), filters, limit, detail)


# -- get --------------------------------------------------------------------------------------
def _one(lister: Callable[..., list[Any]], column: str, id: str, address: str | None, timeout: float) -> Any:
    found = lister(address=address, filters=[(column, "=", id)], limit=1, timeout=timeout, detail=True)
    return found[0] if found else None


def get_node(id: str, address: str | None = None, timeout: float = 30) -> NodeState | None:
    """The node with id ``id`` (hex), or None."""
    return _one(list_nodes, "node_id", id, address, timeout)


def get_actor(id: str, address: str | None = None, timeout: float = 30) -> ActorState | None:
    """The actor with id ``id`` (hex), or None."""
    return _one(list_actors, "actor_id", id, address, timeout)


def get_task(id: str, address: str | None = None, timeout: float = 30) -> TaskState | None:
    """The task with id ``id`` (hex; its latest attempt), or None."""
    found = snapshots.list_tasks(task_ids=[id], address=address)
    return _task(found[0]) if found else None


def get_job(id: str, address: str | None = None, timeout: float = 30) -> JobState | None:
    """The job with job id or submission id ``id``, or None."""
    for job in list_jobs(address=address, limit=0, detail=True):
        if id in (job.job_id, job.submission_id):
            return job
    return None


def get_placement_group(id: str, address: str | None = None, timeout: float = 30) -> PlacementGroupState | None:
    """The placement group with id ``id`` (hex), or None."""
    return _one(list_placement_groups, "placement_group_id", id, address, timeout)


def get_worker(id: str, address: str | None = None, timeout: float = 30) -> WorkerState | None:
    """The worker with id ``id`` (hex), or None."""
    return _one(list_workers, "worker_id", id, address, timeout)


def get_objects(id: str, address: str | None = None, timeout: float = 30) -> list[ObjectState]:
    """The stored copies of the object with id ``id`` (hex): one per node that holds it."""
    return list_objects(address=address, filters=[("object_id", "=", id)], limit=0, timeout=timeout, detail=True)


# -- summarize --------------------------------------------------------------------------------
def summarize_tasks(address: str | None = None, timeout: float = 30,
                    raise_on_missing_output: bool = True) -> dict[str, Any]:
    """Task counts by function and state, in Ray's shape: ``{"cluster": {"summary":
    {name: {"func_or_class_name", "type", "state_counts"}}, "total_tasks", ...}}``."""
    summary: dict[str, dict[str, Any]] = {}
    totals = collections.Counter()
    for task in list_tasks(address=address, limit=0):
        entry = summary.setdefault(task.func_or_class_name, {
            "func_or_class_name": task.func_or_class_name, "type": task.type, "state_counts": {},
        })
        entry["state_counts"][task.state] = entry["state_counts"].get(task.state, 0) + 1
        totals[task.type] += 1
    return {"cluster": {
        "summary": summary, "total_tasks": totals["NORMAL_TASK"], "total_actor_tasks": totals["ACTOR_TASK"],
        "total_actor_scheduled": totals["ACTOR_CREATION_TASK"], "summary_by": "func_name",
    }}


def summarize_actors(address: str | None = None, timeout: float = 30,
                     raise_on_missing_output: bool = True) -> dict[str, Any]:
    """Actor counts by class and state: ``{"cluster": {"summary": {class: {"class_name",
    "state_counts"}}, "total_actors", "summary_by": "class"}}``."""
    summary: dict[str, dict[str, Any]] = {}
    actors = list_actors(address=address, limit=0)
    for actor in actors:
        entry = summary.setdefault(actor.class_name, {"class_name": actor.class_name, "state_counts": {}})
        entry["state_counts"][actor.state] = entry["state_counts"].get(actor.state, 0) + 1
    return {"cluster": {"summary": summary, "total_actors": len(actors), "summary_by": "class"}}


def summarize_objects(address: str | None = None, timeout: float = 30,
                      raise_on_missing_output: bool = True) -> dict[str, Any]:
    """Stored objects in one group (call sites are not recorded, as Ray's default):
    ``{"cluster": {"summary": {"disabled": {...}}, "total_objects", "total_size_mb", ...}}``."""
    objects = list_objects(address=address, limit=0, timeout=timeout, raise_on_missing_output=raise_on_missing_output)
    size_mb = sum(o.object_size for o in objects) / 2**20
    group = {
        "total_objects": len(objects), "total_size_mb": size_mb,
        "total_num_nodes": len({o.node_id for o in objects}),
        "task_state_counts": dict(collections.Counter(o.task_status for o in objects)),
        "ref_type_counts": dict(collections.Counter(o.reference_type for o in objects)),
    }
    return {"cluster": {
        "summary": {"disabled": group} if objects else {}, "total_objects": len(objects),
        "total_size_mb": size_mb, "callsite_enabled": False, "summary_by": "callsite",
    }}

