"""The process's one runtime (its CoreWorker), once connected."""

from __future__ import annotations

from typing import Any

#: The CoreWorker of this process (driver or worker), or None.
current: Any = None
