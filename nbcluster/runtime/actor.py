"""Actors (Ray's names and semantics): ``@nbcluster.remote`` on a class.

``Cls.remote(...)`` starts the actor in a worker of its own and returns an
:class:`ActorHandle`; ``handle.method.remote(...)`` returns an ObjectRef. Handles
travel (into tasks, other actors, results); the actor lives while any handle does,
or until it is killed, unless it is detached.
"""

from __future__ import annotations

import hashlib
import inspect
import threading
from typing import Any

from nbcluster.runtime import bundles
from nbcluster.runtime.actor_options import actor_shape
from nbcluster.runtime.options import (
    RETURNS_KINDS,
    bundle_index,
    in_current_group,
    placement,
    returns_shape,
    strategy_of,
    validate_actor_options,
    validate_method_options,
)
from nbcluster.runtime.core import worker_state
from nbcluster.runtime.core.actor_host import ActorExit
from nbcluster.runtime.core.object_ref import ObjectRef
from nbcluster.runtime.core.task_env import job_config_for
from nbcluster.runtime.core.tasks import FunctionInfo, TaskOptions
from nbcluster.runtime.objects.serialization import dumps_definition
from nbcluster.runtime.protocol import common_pb2, gcs_pb2
from nbcluster.runtime.signatures import check_call, from_wire, method_signature, portable_signature, to_wire
from nbcluster.runtime.submission import current_group, submit_actor_task

__all__ = ["ActorClass", "ActorHandle", "ActorMethod", "current_actor_handle", "exit_actor", "method"]


def method(
    *,
    num_returns: int | str = 1,
    concurrency_group: str | None = None,
    _generator_backpressure_num_objects: int = -1,
) -> Any:
    """Decorate an actor method with default options (as ``ray.method``):
    ``@nbcluster.method(num_returns=2)``, ``num_returns="streaming"`` for a generator,
    ``concurrency_group="io"`` to run its calls in one of the actor's concurrency groups."""
    given: dict[str, Any] = {"num_returns": num_returns, "_generator_backpressure_num_objects": _generator_backpressure_num_objects}
    if concurrency_group is not None:
        given["concurrency_group"] = concurrency_group
    opts = validate_method_options(given, where="@nbcluster.method")

    def decorate(fn: Any) -> Any:
        fn.__nbcluster_num_returns__ = opts["num_returns"]
        fn.__nbcluster_backpressure__ = opts["_generator_backpressure_num_objects"]
        if "concurrency_group" in opts:
            fn.__nbcluster_concurrency_group__ = opts["concurrency_group"]
        return fn

    return decorate


#: A method as a handle knows it: (num_returns or "streaming"/"dynamic", is async,
#: generator backpressure or -1).
MethodMeta = tuple[Any, bool, int]


#: Methods every actor has (as Ray): ``__ray_ready__`` answers once the actor is up.
BUILTIN_METHODS: dict[str, MethodMeta] = {"__ray_ready__": (1, False, -1)}


def _is_method(member: Any) -> bool:
    """A plain function, a staticmethod's function or a classmethod bound to the class."""
    return inspect.isfunction(member) or inspect.ismethod(member)


def _public_methods(cls: type) -> dict[str, MethodMeta]:
    """The methods a handle offers: those of the class and its bases (MRO), static and
    class methods included, not ``__dunder__`` ones."""
    found = {}
    for name, member in inspect.getmembers(cls, predicate=_is_method):
        if name.startswith("__"):
            continue
        is_async = inspect.iscoroutinefunction(member) or inspect.isasyncgenfunction(member)
        is_generator = inspect.isgeneratorfunction(member) or inspect.isasyncgenfunction(member)
        default = "streaming" if is_generator else 1  # a generator method streams (as Ray)
        num_returns = getattr(member, "__nbcluster_num_returns__", default)
        found[name] = (num_returns, is_async, getattr(member, "__nbcluster_backpressure__", -1))
    return found


def _method_groups(cls: type, groups: dict[str, int]) -> None:
    """ValueError when a method names a concurrency group the actor does not have."""
    for name, member in inspect.getmembers(cls, predicate=_is_method):
        group = getattr(member, "__nbcluster_concurrency_group__", None)
        if group is not None and group not in groups:
            known = ", ".join(sorted(groups)) or "none"
            raise ValueError(
                f"{cls.__name__}.{name} runs in concurrency group {group!r}, which the actor does not "
                f"define (its groups: {known}); add it to @remote(concurrency_groups={{...}})"
            )


def _wire_method(name: str, meta: MethodMeta, signature: Any) -> gcs_pb2.ActorMethod:
    num_returns, kind = returns_shape(meta[0])
    return gcs_pb2.ActorMethod(
        name=name, num_returns=num_returns, is_async=meta[1], returns_kind=kind, generator_backpressure=max(meta[2], 0),
        signature=to_wire(signature),
    )


def _meta_from_wire(m: gcs_pb2.ActorMethod) -> MethodMeta:
    num_returns: Any = m.num_returns
    for text, kind in RETURNS_KINDS.items():
        if m.returns_kind == kind:
            num_returns = text
    return (num_returns, m.is_async, m.generator_backpressure or -1)


class ActorClass:
    """A class decorated with ``@nbcluster.remote``: create actors with ``.remote()``."""

    def __init__(self, cls: type, options: dict[str, Any]) -> None:
        methods = _public_methods(cls)  # none is fine: the actor still has __ray_ready__ (as Ray)
        self._cls = cls
        self._options = options
        self._methods = methods
        self._is_async = any(meta[1] for meta in methods.values())
        self._info: FunctionInfo | None = None
        self._signatures: dict[str, Any] | None = None  # computed at the first .remote()
        self._lock = threading.Lock()
        self.__name__ = cls.__name__
        self.__qualname__ = cls.__qualname__
        self.__module__ = cls.__module__
        self.__doc__ = cls.__doc__

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        name = self._cls.__name__
        raise TypeError(
            f"Actors cannot be instantiated directly. Instead of {name}(...), use "
            f"{name}.remote(...), which starts the actor and returns a handle."
        )

    def remote(self, *args: Any, **kwargs: Any) -> "ActorHandle":
        """Start an actor of this class (its constructor gets ``args``); returns its handle."""
        return self._create(self._options, args, kwargs)

    def options(self, **options: Any) -> "_ActorClassOptions":
        """A view of this class with these options for the next ``.remote()`` (the class is unchanged)."""
        merged = {**self._options, **validate_actor_options(options, where=f"{self._cls.__name__}.options()")}
        return _ActorClassOptions(self, merged)

    def _function_info(self) -> FunctionInfo:
        if self._info is None:
            with self._lock:
                if self._info is None:
                    pickled = dumps_definition(self._cls)
                    digest = hashlib.sha1(pickled).digest()[:16]
                    self._info = FunctionInfo(digest, f"{self._cls.__module__}.{self._cls.__qualname__}", pickled)
        return self._info

    def _method_signatures(self) -> dict[str, Any]:
        """Signatures of the constructor ("__init__") and the methods, to check calls by."""
        if self._signatures is None:
            cls = self._cls
            found = {name: method_signature(cls, name) for name in self._methods}
            found["__init__"] = portable_signature(cls)
            self._signatures = found
        return self._signatures

    def _create(self, options: dict[str, Any], args: tuple, kwargs: dict) -> "ActorHandle":
        signatures = self._method_signatures()
        check_call(signatures["__init__"], self._cls.__name__, args, kwargs)
        groups = options.get("concurrency_groups") or {}
        _method_groups(self._cls, groups)
        core = worker_state.require()
        held, needed = actor_shape(options)
        strategy = strategy_of(options)
        where = in_current_group(placement(strategy), current_group(core))
        if where is not None and where.group_id:
            held = bundles.in_group(held, where.group_id, bundle_index(strategy))
            needed = bundles.in_group(needed, where.group_id, bundle_index(strategy))
        is_async = self._is_async
        concurrency = options.get("max_concurrency") or (1000 if is_async else 1)
        namespace = options.get("namespace")
        info = gcs_pb2.ActorInfo(
            actor_id=core.ids.next(),
            name=options.get("name") or "",
            namespace=core.namespace if namespace is None else namespace,
            class_name=self._cls.__name__,
            job_id=core.job_id,
            owner=core.address,
            detached=options.get("lifetime") == "detached",
            max_restarts=options.get("max_restarts", 0),
            max_task_retries=options.get("max_task_retries", 0),
            resources=common_pb2.ResourceSet(amounts=held),
            placement_resources=common_pb2.ResourceSet(amounts=needed),
            max_concurrency=concurrency,
            is_async=is_async,
            methods=[_wire_method(name, meta, signatures[name]) for name, meta in self._methods.items()],
        )
        info.creation_task.concurrency_groups.update(groups)
        if options.get("runtime_env"):  # its own environment (core/task_env.py)
            info.job_config.CopyFrom(job_config_for(core, options["runtime_env"]))
        if where is not None:
            info.scheduling_strategy = where.strategy
            info.affinity_node_id = where.node_id
            info.affinity_soft = where.soft
            info.placement_group_id = where.group_id
            info.placement_group_capture = where.capture
        record, ref = core.actor_submitter.create(
            self._function_info(), args, kwargs, info, bool(options.get("get_if_exists"))
        )
        handle = ActorHandle._from_info(record, ref)
        if record.actor_id == info.actor_id:  # this class's own actor (not an existing one, get_if_exists)
            handle._signatures = signatures
        return handle

    def __reduce__(self) -> Any:
        return (ActorClass, (self._cls, self._options))

    def __repr__(self) -> str:
        return f"<ActorClass {self._cls.__module__}.{self._cls.__qualname__}>"


class _ActorClassOptions:
    __slots__ = ("_actor_class", "_options")

    def __init__(self, actor_class: ActorClass, options: dict[str, Any]) -> None:
        self._actor_class = actor_class
        self._options = options

    def remote(self, *args: Any, **kwargs: Any) -> "ActorHandle":
        return self._actor_class._create(self._options, args, kwargs)


class ActorHandle:
    """A reference to an actor: ``handle.method.remote(...)``. Picklable; every copy
    reaches the same actor and keeps it alive."""

    def __init__(
        self,
        actor_id: bytes,
        class_name: str,
        methods: dict[str, MethodMeta],
        max_task_retries: int,
        ref: ObjectRef | None,
        signatures: dict[str, Any] | None = None,
    ) -> None:
        self._actor_id = actor_id
        self._class_name = class_name
        self._methods = methods
        self._max_task_retries = max_task_retries
        self._ref = ref
        #: Method name -> its signature, when this handle came from the class (None: unchecked).
        self._signatures: dict[str, Any] | None = signatures
        #: The TaskOptions of its calls, by the method options they come from (made once).
        self._call_options: dict[tuple, TaskOptions] = {}

    @classmethod
    def _from_info(cls, info: gcs_pb2.ActorInfo, ref: ObjectRef | None) -> "ActorHandle":
        methods = {m.name: _meta_from_wire(m) for m in info.methods}
        signatures = {m.name: from_wire(m.signature) for m in info.methods}  # checked as the class's handles
        return cls(info.actor_id, info.class_name, methods, info.max_task_retries, ref, signatures)

    def __getattr__(self, name: str) -> "ActorMethod":
        if name.startswith("_") and name not in BUILTIN_METHODS:
            raise AttributeError(name)
        meta = self._methods.get(name) or BUILTIN_METHODS.get(name)
        if meta is None:
            known = ", ".join(sorted(self._methods))
            raise AttributeError(f"'{self._class_name}' actor has no method '{name}' (its methods: {known})")
        return ActorMethod(self, name, meta[0], "", "", meta[2])

    def __reduce__(self) -> Any:
        return (
            ActorHandle,
            (self._actor_id, self._class_name, self._methods, self._max_task_retries, self._ref, self._signatures),
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ActorHandle) and other._actor_id == self._actor_id

    def __hash__(self) -> int:
        return hash(self._actor_id)

    def __repr__(self) -> str:
        return f"Actor({self._class_name}, {self._actor_id.hex()})"


class ActorMethod:
    """A method of an actor, reached through its handle: call ``.remote(...)``."""

    __slots__ = ("_handle", "_name", "_num_returns", "_task_name", "_group", "_backpressure")

    def __init__(
        self, handle: ActorHandle, name: str, num_returns: Any, task_name: str, group: str = "", backpressure: int = -1
    ) -> None:
        self._handle = handle
        self._name = name
        self._num_returns = num_returns
        self._task_name = task_name
        self._group = group
        self._backpressure = backpressure

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(
            f"Actor methods cannot be called directly. Instead of {self._name}(...), call "
            f"{self._name}.remote(...), which returns an ObjectRef; nbcluster.get() it for the value."
        )

    def options(self, **options: Any) -> "ActorMethod":
        """This method with other options (``num_returns``, ``name``, ``concurrency_group``,
        ``_generator_backpressure_num_objects``) for the next call."""
        opts = validate_method_options(options, where=f"{self._name}.options()")
        return ActorMethod(
            self._handle,
            self._name,
            opts.get("num_returns", self._num_returns),
            opts.get("name", self._task_name),
            opts.get("concurrency_group", self._group),
            opts.get("_generator_backpressure_num_objects", self._backpressure),
        )

    def remote(self, *args: Any, **kwargs: Any) -> Any:
        """Call the method on the actor; returns an ObjectRef (several, by ``num_returns``;
        an ObjectRefGenerator for a streaming generator)."""
        handle = self._handle
        if handle._signatures is not None:
            check_call(handle._signatures.get(self._name), f"{handle._class_name}.{self._name}", args, kwargs)
        key = (self._num_returns, self._task_name, self._group, self._backpressure)
        options = handle._call_options.get(key)
        if options is None:
            num_returns, kind = returns_shape(self._num_returns)
            options = handle._call_options[key] = TaskOptions(
                {}, num_returns, handle._max_task_retries, False, b"", self._task_name,
                returns_kind=kind, backpressure=max(self._backpressure, 0), concurrency_group=self._group,
            )
        return submit_actor_task(handle, self._name, options, args, kwargs)


def exit_actor() -> None:
    """End the current actor on purpose (from one of its methods): it is not
    restarted, and calls queued for it fail with ActorDiedError."""
    core = worker_state.current
    if core is None or core.executor is None or core.executor.actor is None:
        raise TypeError("exit_actor() can only be called inside an actor's method")
    raise ActorExit()


def current_actor_handle() -> ActorHandle:
    """A handle to the actor the calling code runs in (``get_runtime_context().current_actor``)."""
    core = worker_state.current
    host = core.executor.actor if core is not None and core.executor is not None else None
    if host is None:
        raise RuntimeError("This method is only available in an actor.")
    cls = type(host.instance)
    handle = ActorHandle(host.actor_id, host.class_name, _public_methods(cls), 0, None)
    handle._signatures = {name: method_signature(cls, name) for name in handle._methods}
    return handle
