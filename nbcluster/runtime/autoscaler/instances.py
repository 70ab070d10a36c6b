"""The nodes the autoscaler asked for, each a row that moves through one state table.

    REQUESTED ──► LAUNCHING ──► RUNNING ──► DRAINING ──► TERMINATING ──► TERMINATED
        │              │           │                          ▲
        └──────────────┴──► LAUNCH_FAILED   └─────────────────┘ (lost, or terminated)

REQUESTED: decided, not yet handed to the provider. LAUNCHING: the provider has it;
its node manager has not registered. RUNNING: registered with the GCS. DRAINING: idle
past the timeout and told to take no new work. TERMINATING: the provider was told to
end it. A LAUNCHING node that never registers goes to TERMINATING after a timeout; a
RUNNING node that dies by itself goes straight to TERMINATED.
"""

from __future__ import annotations

import enum
import secrets
import time
from dataclasses import dataclass, field

from nbcluster.runtime.states import StateMachine


class InstanceState(enum.Enum):
    """Where an instance is in its life (the table in the module docstring)."""

    REQUESTED = "requested"
    LAUNCHING = "launching"
    RUNNING = "running"
    DRAINING = "draining"
    TERMINATING = "terminating"
    TERMINATED = "terminated"
    LAUNCH_FAILED = "launch-failed"


S = InstanceState
INSTANCE_TRANSITIONS = {
    S.REQUESTED: frozenset({S.LAUNCHING, S.LAUNCH_FAILED}),
    S.LAUNCHING: frozenset({S.RUNNING, S.LAUNCH_FAILED, S.TERMINATING, S.TERMINATED}),
    S.RUNNING: frozenset({S.DRAINING, S.TERMINATING, S.TERMINATED}),
    # A drained node that picked up work again (the drain was refused) goes back.
    S.DRAINING: frozenset({S.RUNNING, S.TERMINATING, S.TERMINATED}),
    S.TERMINATING: frozenset({S.TERMINATED}),
    S.TERMINATED: frozenset(),
    S.LAUNCH_FAILED: frozenset(),
}

#: States whose node is on its way (counts as capacity to come).
PENDING = frozenset({S.REQUESTED, S.LAUNCHING})
#: States that count toward max_workers.
COUNTED = frozenset({S.REQUESTED, S.LAUNCHING, S.RUNNING, S.DRAINING, S.TERMINATING})


@dataclass(eq=False)
class Instance:
    """One node the autoscaler launched (or is launching)."""

    node_type: str
    instance_id: str = field(default_factory=lambda: secrets.token_hex(6))
    machine: StateMachine = field(default_factory=lambda: StateMachine(INSTANCE_TRANSITIONS, S.REQUESTED))
    #: Set once its node manager registered.
    node_id: bytes = b""
    #: Why it ended (launch error, idle, lost).
    reason: str = ""
    created: float = field(default_factory=time.monotonic)
    #: It ended by itself (not terminated by the autoscaler); the provider may say why later.
    lost: bool = False

    @property
    def state(self) -> InstanceState:
        """The instance's state."""
        return self.machine.state

    def to(self, state: InstanceState, reason: str = "") -> None:
        """Move to ``state`` (as its state table allows), noting ``reason``."""
        self.machine.transition(state)
        if reason:
            self.reason = reason

    def since(self) -> float:
        """Wall-clock time it entered its current state."""
        return self.machine.history[-1][1]
