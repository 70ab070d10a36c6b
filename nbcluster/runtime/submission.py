"""Handing a remote function's or an actor method's call to this process's runtime.

``RemoteFunction.remote`` and ``ActorMethod.remote`` call these; they record which
task (if any) submits the call and the output context, and tell the driver's
submit hook (``nbcluster.driver.set_submit_hook``).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from nbcluster.runtime.core import worker_state
from nbcluster.runtime.core.object_ref import ObjectRef
from nbcluster.runtime.options import captured
from nbcluster.runtime.protocol import common_pb2

if TYPE_CHECKING:
    from nbcluster.runtime.actor import ActorHandle
    from nbcluster.runtime.remote_function import RemoteFunction

logger = logging.getLogger("nbcluster")


def _lineage(core: Any) -> tuple[bytes, str]:
    """The running task (the parent of what it submits) and the output context."""
    executor = core.executor
    parent = (executor.current_task_id or b"") if executor is not None else b""
    context = executor.output.context if executor is not None and parent else core.task_context
    return parent, context


def current_group(core: Any) -> tuple[bytes, bool]:
    """The placement group the calling code runs in (b"" for none), and whether what
    it submits goes there too."""
    executor = core.executor
    return executor.placement_group if executor is not None else (b"", False)


def _returned(core: Any, refs: list[ObjectRef], options: Any) -> Any:
    num_returns = options.num_returns
    if options.returns_kind == common_pb2.RETURNS_KIND_STREAMING:
        return core.generators.generator(refs[0])
    if num_returns == 1:
        return refs[0]
    if num_returns == 0:
        return None
    return refs


def _submitted(core: Any, parent: bytes, context: str, refs: list[ObjectRef]) -> None:
    """Tell the driver's submit hook (``nbcluster.driver.set_submit_hook``), if any."""
    hook = core.submit_hook
    if hook is not None and not parent:
        try:
            hook(context, refs)
        except Exception:  # noqa: BLE001 - a view's bug must not fail the submission
            logger.exception("the submit hook failed")


def submit_task(fn: "RemoteFunction", options: Any, args: tuple, kwargs: dict) -> Any:
    """Submit a call of ``fn``; returns its ObjectRef (a list of them, or None, by
    ``options.num_returns``; an ObjectRefGenerator for a streaming generator)."""
    core = worker_state.require()
    parent, context = _lineage(core)
    group = current_group(core)
    if group[0]:  # submitted from inside a placement group
        options = captured(options, group)
    refs = core.submitter.submit(fn._function_info(), args, kwargs, options, parent, context)
    _submitted(core, parent, context, refs)
    return _returned(core, refs, options)


def submit_actor_task(handle: "ActorHandle", method: str, options: Any, args: tuple, kwargs: dict) -> Any:
    """Submit a call of an actor's ``method``; returns like ``submit_task``."""
    core = worker_state.require()
    parent, context = _lineage(core)
    refs = core.actor_submitter.submit(
        handle._actor_id, handle._class_name, method, args, kwargs, options, handle._ref, parent, context
    )
    _submitted(core, parent, context, refs)
    return _returned(core, refs, options)
