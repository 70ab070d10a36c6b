"""The records of ``nbcluster.util.state`` under Ray's names (``ray.util.state.common``),
and its filters and limits.

Each record is built from the runtime's own snapshot (:mod:`nbcluster.state`), so the
two APIs read the same tables; only names and units differ (Ray's ``*_ms`` times in
milliseconds, Ray's state names). A record also answers ``record["field"]``. With
``detail=False`` (the default, as Ray) the *detail* columns are None.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from nbcluster.exceptions import NbclusterError

__all__ = [
    "DEFAULT_LIMIT",
    "ActorState",
    "JobState",
    "NodeState",
    "ObjectState",
    "PlacementGroupState",
    "RayStateApiException",
    "StateSchema",
    "TaskState",
    "WorkerState",
    "apply",
]

#: Ray's default ``limit`` of the list calls.
DEFAULT_LIMIT = 100
PREDICATES = ("=", "!=")

_R = TypeVar("_R", bound="StateSchema")


class RayStateApiException(NbclusterError):
    """A state API call could not give the whole answer (a node could not be asked),
    with ``raise_on_missing_output=True``; or was called with bad filters."""


class StateSchema:
    """What every record offers: item access, ``asdict()``, and its columns."""

    #: Columns filled only with ``detail=True``.
    DETAIL: ClassVar[frozenset[str]] = frozenset()

    def __getitem__(self, key: str) -> Any:
        try:
            return getattr(self, key)
        except AttributeError:
            raise KeyError(key) from None

    def asdict(self) -> dict[str, Any]:
        """The record as a dict."""
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def list_columns(cls, detail: bool = True) -> list[str]:
        """The record's columns (without the detail ones unless ``detail``)."""
        return [f.name for f in dataclasses.fields(cls) if detail or f.name not in cls.DETAIL]  # type: ignore[arg-type]


def ms(seconds: float) -> int | None:
    """Ray's epoch milliseconds of a time in seconds (None when it is not set)."""
    return int(seconds * 1000) if seconds else None


@dataclass(frozen=True)
class ActorState(StateSchema):
    """An actor (Ray's ``ActorState``); ``state``: PENDING_CREATION, ALIVE, RESTARTING, DEAD."""

    DETAIL: ClassVar[frozenset[str]] = frozenset({
        "required_resources", "death_cause", "is_detached", "placement_group_id", "repr_name",
        "start_time_ms", "end_time_ms",
    })
    actor_id: str
    class_name: str
    state: str
    job_id: str
    name: str
    node_id: str | None
    pid: int | None
    ray_namespace: str
    num_restarts: int
    required_resources: dict[str, float] | None = None
    death_cause: dict[str, Any] | None = None
    is_detached: bool | None = None
    placement_group_id: str | None = None
    repr_name: str | None = None
    start_time_ms: int | None = None
    end_time_ms: int | None = None


@dataclass(frozen=True)
class TaskState(StateSchema):
    """A task or actor call, its latest attempt (Ray's ``TaskState``); ``state``:
    PENDING_ARGS_AVAIL, PENDING_NODE_ASSIGNMENT, RUNNING, FINISHED, FAILED (a cancelled
    task is FAILED with ``error_type`` TASK_CANCELLED, as Ray)."""

    DETAIL: ClassVar[frozenset[str]] = frozenset({
        "creation_time_ms", "start_time_ms", "end_time_ms", "error_message", "events",
    })
    task_id: str
    attempt_number: int
    name: str
    state: str
    job_id: str
    actor_id: str | None
    type: str
    func_or_class_name: str
    parent_task_id: str | None
    node_id: str | None
    worker_id: str | None
    worker_pid: int | None
    error_type: str | None
    language: str = "PYTHON"
    creation_time_ms: int | None = None
    start_time_ms: int | None = None
    end_time_ms: int | None = None
    error_message: str | None = None
    #: Its runs on workers: ``{"attempt_number", "node_id", "worker_id", "worker_pid",
    #: "start_time_ms", "end_time_ms", "failed"}``.
    events: list[dict[str, Any]] | None = None


@dataclass(frozen=True)
class NodeState(StateSchema):
    """A node (Ray's ``NodeState``); ``state``: ALIVE, DEAD."""

    DETAIL: ClassVar[frozenset[str]] = frozenset({"start_time_ms", "end_time_ms", "resources_available"})
    node_id: str
    node_ip: str
    is_head_node: bool
    state: str
    state_message: str | None
    node_name: str
    resources_total: dict[str, float]
    labels: dict[str, str]
    start_time_ms: int | None = None
    end_time_ms: int | None = None
    resources_available: dict[str, float] | None = None


@dataclass(frozen=True)
class JobState(StateSchema):
    """A job, a driver or submitted (Ray's ``JobState``/``JobDetails``); ``status``:
    PENDING, RUNNING, STOPPED, SUCCEEDED, FAILED."""

    type: str
    job_id: str
    submission_id: str | None
    status: str
    entrypoint: str
    message: str | None
    start_time: int | None
    end_time: int | None
    metadata: dict[str, str]
    driver_info: dict[str, Any] | None


@dataclass(frozen=True)
class PlacementGroupState(StateSchema):
    """A placement group (Ray's ``PlacementGroupState``); ``state``: PENDING, CREATED,
    RESCHEDULING, REMOVED."""

    DETAIL: ClassVar[frozenset[str]] = frozenset({"bundles", "is_detached", "stats"})
    placement_group_id: str
    name: str
    creator_job_id: str
    state: str
    strategy: str
    bundles: list[dict[str, Any]] | None = None
    is_detached: bool | None = None
    stats: dict[str, Any] | None = None


@dataclass(frozen=True)
class WorkerState(StateSchema):
    """A worker process of a node (Ray's ``WorkerState``)."""

    DETAIL: ClassVar[frozenset[str]] = frozenset({"state", "job_id"})
    worker_id: str
    is_alive: bool
    worker_type: str
    exit_type: str | None
    node_id: str
    ip: str
    pid: int
    exit_detail: str | None
    #: The node manager's view: STARTING, IDLE, LEASED (running work), DEAD.
    state: str | None = None
    job_id: str | None = None


@dataclass(frozen=True)
class ObjectState(StateSchema):
    """An object in a node's shared-memory store (Ray's ``ObjectState``). Small objects
    live inline with their owners, not in a store, and are not listed."""

    object_id: str
    object_size: int
    task_status: str
    reference_type: str
    call_site: str
    type: str
    pid: int | None
    ip: str
    node_id: str = ""
    #: The store's view: CREATED, SEALED, SPILLED.
    store_state: str = ""


def _matches(value: Any, wanted: Any) -> bool:
    if isinstance(value, bool):
        return value == (wanted if isinstance(wanted, bool) else str(wanted).lower() in ("true", "1", "yes"))
    if isinstance(value, (int, float)) and not isinstance(wanted, bool):
        try:
            return float(value) == float(wanted)
        except (TypeError, ValueError):
            return False
    return value == wanted or (value is not None and str(value) == str(wanted))


def apply(
    cls: type[_R], records: Iterable[_R], filters: Sequence[tuple[str, str, Any]] | None, limit: int | None,
    detail: bool,
) -> list[_R]:
    """``records`` that pass every filter (``(column, "=" or "!=", value)``), at most
    ``limit`` of them, without their detail columns unless ``detail``."""
    columns = set(cls.list_columns())
    checks = []
    for item in filters or ():
        if not isinstance(item, (tuple, list)) or len(item) != 3:
            raise RayStateApiException(f"a filter is (column, predicate, value), got {item!r}")
        key, predicate, wanted = item
        if key not in columns:
            raise RayStateApiException(
                f"Invalid filter column {key!r} for {cls.__name__}: one of {sorted(columns)}"
            )
        if predicate not in PREDICATES:
            raise RayStateApiException(f"Unsupported filter predicate {predicate!r}: one of {PREDICATES}")
        checks.append((key, predicate == "=", wanted))
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise ValueError(f"limit must be an int >= 0, got {limit!r}")
    out: list[_R] = []
    for record in records:
        if all(_matches(getattr(record, key), wanted) == equal for key, equal, wanted in checks):
            out.append(record if detail else dataclasses.replace(record, **dict.fromkeys(cls.DETAIL)))  # type: ignore[type-var]
            if limit and len(out) >= limit:
                break
    return out
