"""This process's core worker, as the driver-side modules reach it.

:mod:`nbcluster.driver`, :mod:`nbcluster.events` and the state API
(:mod:`nbcluster.runtime.state`) work through the process's connected
:class:`~nbcluster.runtime.core.core_worker.CoreWorker`. This module is the one place
outside :mod:`nbcluster.runtime.api` that fetches it (through
:func:`~nbcluster.runtime.core.worker_state.require`, whose starter the API registers),
so a change in how the API keeps it is made here once.
"""

from __future__ import annotations

from nbcluster.runtime.core import worker_state
from nbcluster.runtime.core.core_worker import CoreWorker

__all__ = ["connected_core", "core_worker"]


def core_worker() -> CoreWorker:
    """This process's core worker; starts an embedded cluster first
    (``nbcluster.init()``) when the process is not connected, as the API calls do."""
    return worker_state.require()


def connected_core() -> CoreWorker | None:
    """This process's core worker while it is connected; None otherwise (never
    connects)."""
    return worker_state.connected()
