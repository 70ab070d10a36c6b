"""The bookkeeping of providers whose nodes are processes the head starts.

A subclass says how to start one node (:meth:`ProcessNodeProvider.start_node`); this
class keeps the rest of the provider contract: launches idempotent by request id,
terminate = close the node's lifeline and SIGTERM (SIGKILL after a grace period),
a node process that exits without being terminated reported once as an error, and
``close()`` ending them all. Every method takes the provider's lock: the reconcile
loop calls them from worker threads.
"""

from __future__ import annotations

import logging
import os
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nbcluster.runtime.autoscaler.providers import (
    LaunchError,
    LaunchFailed,
    LaunchRequest,
    NodeProvider,
    ProviderNode,
)
from nbcluster.runtime.procutil import terminate

__all__ = ["LaunchFailed", "ProcessNode", "ProcessNodeProvider", "TERMINATE_GRACE_S"]

logger = logging.getLogger(__name__)

#: A terminated node manager that has not exited after this long is killed.
TERMINATE_GRACE_S = 10.0


@dataclass(eq=False)
class ProcessNode:
    """One node process a provider started, and what it needs to end it."""

    request: LaunchRequest
    proc: subprocess.Popen
    #: The write end of the node's lifeline (None: it has none, or it was closed).
    lifeline: int | None
    #: Where it runs, for messages (" on h1"; "" on this machine).
    where: str = ""
    #: Provider data (e.g. the host it occupies).
    data: Any = None
    #: Called once after the process exited (remove what it could not).
    cleanup: Callable[[], None] | None = None
    terminated_at: float | None = None


class ProcessNodeProvider(NodeProvider):
    """A provider whose nodes are processes the head starts; subclasses give
    :meth:`start_node` (see the module docstring)."""

    #: ``node_config`` keys the provider understands; others are a launch error.
    NODE_CONFIG_KEYS = frozenset({"object_store_memory"})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lock = threading.Lock()
        self.nodes: dict[str, ProcessNode] = {}
        self._seen: set[str] = set()
        self._errors: list[LaunchError] = []
        self._closed = False

    def start_node(self, request: LaunchRequest) -> ProcessNode:
        """Start the node ``request`` asks for (called with the lock held); raise
        LaunchFailed when it cannot be."""
        raise NotImplementedError

    def launch(self, request: LaunchRequest) -> None:
        """Start the node in the background; idempotent by request id."""
        with self._lock:
            if request.request_id in self._seen or self._closed:
                return
            self._seen.add(request.request_id)
            unknown = sorted(set(request.node_config) - self.NODE_CONFIG_KEYS)
            try:
                if unknown:
                    raise LaunchFailed(
                        f"node_config of {request.node_type} has keys the {self.config.type} provider does not "
                        f"know: {', '.join(unknown)} (it knows {', '.join(sorted(self.NODE_CONFIG_KEYS))})"
                    )
                node = self.start_node(request)
            except (LaunchFailed, OSError) as exc:
                self._errors.append(LaunchError(request.request_id, request.node_type, str(exc)))
                return
            except Exception as exc:  # noqa: BLE001 - a provider bug is a launch failure, reported
                logger.exception("starting instance=%s failed", request.request_id)
                self._errors.append(LaunchError(request.request_id, request.node_type, f"{type(exc).__name__}: {exc}"))
                return
            self.nodes[request.request_id] = node
            logger.info("launched instance=%s type=%s%s pid=%d", request.request_id, request.node_type,
                        node.where, node.proc.pid)

    def terminate(self, instance_id: str) -> None:
        """Close the node's lifeline and SIGTERM it (SIGKILL after a grace period)."""
        with self._lock:
            node = self.nodes.get(instance_id)
            if node is None or node.terminated_at is not None:
                return
            node.terminated_at = time.monotonic()
            self._signal(node)
            logger.info("terminating instance=%s pid=%d", instance_id, node.proc.pid)

    def non_terminated(self) -> list[ProviderNode]:
        """The nodes started and not terminated whose process still runs."""
        with self._lock:
            return [ProviderNode(i, n.request.node_type) for i, n in self._reap().items()]

    def poll_errors(self) -> list[LaunchError]:
        """Launch failures and nodes that exited by themselves, each once."""
        with self._lock:
            self._reap()  # notice processes that ended by themselves
            errors, self._errors = self._errors, []
            return errors

    def close(self) -> None:
        """End every node (SIGKILL after the grace period) and launch no more."""
        with self._lock:
            self._closed = True
            nodes = list(self.nodes.values())
            self.nodes.clear()
        for node in nodes:
            self._signal(node)
        terminate([n.proc for n in nodes], TERMINATE_GRACE_S)
        for node in nodes:
            self._ended(node)

    def _reap(self) -> dict[str, ProcessNode]:
        """Forget nodes whose process exited (an error unless terminated); kill the
        terminated ones past the grace period. Returns the live ones."""
        now = time.monotonic()
        for instance_id, node in list(self.nodes.items()):
            code = node.proc.poll()
            if code is None and node.terminated_at is not None and now - node.terminated_at > TERMINATE_GRACE_S:
                node.proc.kill()
                code = node.proc.wait()
            if code is None:
                continue
            del self.nodes[instance_id]
            self._ended(node)
            if node.terminated_at is None:
                self._errors.append(
                    LaunchError(instance_id, node.request.node_type,
                                f"its node manager{node.where} exited with code {code}")
                )
        return dict(self.nodes)

    @staticmethod
    def _signal(node: ProcessNode) -> None:
        """Ask the node to stop without waiting: close its lifeline, send SIGTERM."""
        if node.lifeline is not None:
            lifeline, node.lifeline = node.lifeline, None
            os.close(lifeline)
        if node.proc.poll() is None:
            node.proc.terminate()

    @staticmethod
    def _ended(node: ProcessNode) -> None:
        ProcessNodeProvider._signal(node)
        if node.cleanup is not None:
            cleanup, node.cleanup = node.cleanup, None
            cleanup()
