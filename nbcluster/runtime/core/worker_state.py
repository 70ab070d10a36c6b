"""The process's one runtime (its CoreWorker), once connected.

``require()`` is how the public API and the remote function and actor classes reach
it: in a driver that has not called ``init()`` it first runs the starter the API
module registered (``init()`` with the defaults, as Ray does), so those modules need
not import the API module.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

#: The CoreWorker of this process (driver or worker), or None.
current: Any = None
#: Connects this process as a driver with the defaults (set by ``nbcluster.runtime.api``).
_starter: Callable[[], None] | None = None


def set_starter(starter: Callable[[], None]) -> None:
    """Register what ``require()`` calls when no runtime is running."""
    global _starter
    _starter = starter


def connected() -> Any:
    """The running CoreWorker, or None when this process is not connected (never starts one)."""
    core = current
    return core if core is not None and not core.closed else None


def require() -> Any:
    """The running CoreWorker; when there is none, run the starter first (an
    embedded cluster). Raises RuntimeError when no starter is registered."""
    core = connected()
    if core is None:
        if _starter is None:
            raise RuntimeError("nbcluster is not initialized: call nbcluster.init() first")
        _starter()
        core = current
    assert core is not None
    return core
