"""State machines as tables: each kind of thing has an enum of states, one dict of
legal transitions, and one :class:`StateMachine` that checks every change and keeps a
timestamped history."""

from __future__ import annotations

import enum
import time
from collections.abc import Mapping


class InvalidTransition(RuntimeError):
    """A state machine was asked for a transition its table does not allow."""


class StateMachine:
    """The current state of one thing and how it got there."""

    __slots__ = ("_table", "state", "history")

    def __init__(self, table: Mapping[enum.Enum, frozenset], initial: enum.Enum) -> None:
        self._table = table
        self.state = initial
        self.history: list[tuple[enum.Enum, float]] = [(initial, time.time())]

    def transition(self, new: enum.Enum) -> None:
        """Move to ``new``; raises InvalidTransition if the table does not allow it."""
        if new not in self._table[self.state]:
            raise InvalidTransition(f"{self.state.name} -> {new.name} is not allowed")
        self.state = new
        self.history.append((new, time.time()))

    def is_terminal(self) -> bool:
        """No transition leads out of the current state."""
        return not self._table[self.state]

    def entered(self, state: enum.Enum) -> float | None:
        """When the thing last entered ``state``."""
        for s, t in reversed(self.history):
            if s is state:
                return t
        return None


class NodeState(enum.Enum):
    """A node's life as the GCS sees it. A DRAINING node is alive (it runs what it
    has, serves its objects, answers health checks) but takes no new work: the
    autoscaler is removing it, or it was asked to stop and leaves by itself
    (``NodeInfo.drain_reason``). On the wire both are ``NODE_STATE_ALIVE``, with
    ``NodeInfo.draining``."""

    ALIVE = "ALIVE"
    DRAINING = "DRAINING"
    DEAD = "DEAD"


NODE_TRANSITIONS = {
    NodeState.ALIVE: frozenset({NodeState.DRAINING, NodeState.DEAD}),
    NodeState.DRAINING: frozenset({NodeState.DEAD}),
    NodeState.DEAD: frozenset(),
}


class JobStatus(str, enum.Enum):
    """The state of a job (Ray's names and order); public as
    ``nbcluster.job_submission.JobStatus``."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    STOPPED = "STOPPED"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"

    def __str__(self) -> str:
        return self.value

    def is_terminal(self) -> bool:
        """Whether the job has ended (it will not change state again)."""
        return self in (JobStatus.STOPPED, JobStatus.SUCCEEDED, JobStatus.FAILED)


JOB_TRANSITIONS = {
    JobStatus.PENDING: frozenset({JobStatus.RUNNING, JobStatus.FAILED, JobStatus.STOPPED}),
    JobStatus.RUNNING: frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED}),
    JobStatus.SUCCEEDED: frozenset(),
    JobStatus.FAILED: frozenset(),
    JobStatus.STOPPED: frozenset(),
}


class WorkerState(enum.Enum):
    """A worker process's life as its node manager sees it."""

    STARTING = "STARTING"
    IDLE = "IDLE"
    LEASED = "LEASED"
    DEAD = "DEAD"


WORKER_TRANSITIONS = {
    WorkerState.STARTING: frozenset({WorkerState.IDLE, WorkerState.LEASED, WorkerState.DEAD}),
    WorkerState.IDLE: frozenset({WorkerState.LEASED, WorkerState.DEAD}),
    WorkerState.LEASED: frozenset({WorkerState.IDLE, WorkerState.DEAD}),
    WorkerState.DEAD: frozenset(),
}


class TaskState(enum.Enum):
    """A task's life as its owner sees it."""

    WAITING_FOR_ARGS = "WAITING_FOR_ARGS"
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"  # pushed to a leased worker
    FINISHED = "FINISHED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


TASK_TRANSITIONS = {
    TaskState.WAITING_FOR_ARGS: frozenset({TaskState.QUEUED, TaskState.FAILED, TaskState.CANCELLED}),
    TaskState.QUEUED: frozenset({TaskState.RUNNING, TaskState.FAILED, TaskState.CANCELLED}),
    TaskState.RUNNING: frozenset(
        {TaskState.QUEUED, TaskState.FINISHED, TaskState.FAILED, TaskState.CANCELLED}
    ),
    TaskState.FINISHED: frozenset(),
    TaskState.FAILED: frozenset(),
    TaskState.CANCELLED: frozenset(),
}


class PlacementGroupState(enum.Enum):
    """A placement group's life as the GCS sees it (Ray's names)."""

    PENDING = "PENDING"  # waiting for room for all of its bundles; holds nothing
    CREATED = "CREATED"  # every bundle committed on a node
    RESCHEDULING = "RESCHEDULING"  # a node holding some of its bundles died; placing those again
    REMOVED = "REMOVED"


PLACEMENT_GROUP_TRANSITIONS = {
    PlacementGroupState.PENDING: frozenset({PlacementGroupState.CREATED, PlacementGroupState.REMOVED}),
    PlacementGroupState.CREATED: frozenset({PlacementGroupState.RESCHEDULING, PlacementGroupState.REMOVED}),
    PlacementGroupState.RESCHEDULING: frozenset({PlacementGroupState.CREATED, PlacementGroupState.REMOVED}),
    PlacementGroupState.REMOVED: frozenset(),
}
