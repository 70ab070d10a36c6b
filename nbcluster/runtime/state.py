"""The runtime's state API: typed snapshots of the cluster's tables.

Frozen dataclasses with ``to_json``/``from_json``, so the CLI, REST handlers and
widgets share one schema. Read from the GCS; nothing here is cached.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from nbcluster.runtime.protocol import gcs_pb2
from nbcluster.runtime.transport import methods

ACTOR_STATES = ("PENDING", "ALIVE", "RESTARTING", "DEAD")


@dataclass(frozen=True)
class ActorState:
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

    @classmethod
    def from_info(cls, info: gcs_pb2.ActorInfo) -> "ActorState":
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
        )

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "ActorState":
        return cls(**data)


def list_actors(*, state: str | None = None, class_name: str | None = None) -> list[ActorState]:
    """Every actor the cluster has known (dead ones included), optionally filtered."""
    if state is not None and state not in ACTOR_STATES:
        raise ValueError(f"state must be one of {ACTOR_STATES}, got {state!r}")
    from nbcluster.runtime import api

    core = api._core()

    async def fetch() -> gcs_pb2.ListActorsReply:
        gcs = await core.gcs_connection()
        return await gcs.call(methods.Gcs.ListActors, gcs_pb2.ListActorsRequest())

    actors = [ActorState.from_info(info) for info in core.run_sync(fetch()).actors]
    return [
        a for a in actors if (state is None or a.state == state) and (class_name is None or a.class_name == class_name)
    ]


def get_actor_state(actor_id: str) -> ActorState | None:
    for actor in list_actors():
        if actor.actor_id == actor_id:
            return actor
    return None
