"""What normal tasks and actor calls share on the submitting side: the task record,
argument packing (top-level refs become placeholders resolved before the call runs),
and turning results into object values.
"""

from __future__ import annotations

import threading
import traceback
from typing import TYPE_CHECKING, Any

from nbcluster.exceptions import ObjectLostError
from nbcluster.runtime import ids
from nbcluster.runtime.core.object_ref import ObjectRef
from nbcluster.runtime.core.payloads import error_payload
from nbcluster.runtime.objects.serialization import SerializedObject, serialize
from nbcluster.runtime.protocol import common_pb2, core_worker_pb2 as cw_pb2, node_manager_pb2 as nm_pb2
from nbcluster.runtime.core.task_events import first_line
from nbcluster.runtime.states import TASK_TRANSITIONS, StateMachine, TaskState

if TYPE_CHECKING:
    from nbcluster.runtime.core.core_worker import CoreWorker

_OK = cw_pb2.TASK_STATUS_OK
_STREAMING = common_pb2.RETURNS_KIND_STREAMING


class ArgRef:
    """Placeholder for a top-level ObjectRef argument: the executor puts the value
    in its place."""

    __slots__ = ("index",)

    def __init__(self, index: int) -> None:
        self.index = index

    def __reduce__(self) -> Any:
        return (ArgRef, (self.index,))


class FunctionInfo:
    """A remote function (or actor class) as the runtime ships it: pickled once,
    identified by digest."""

    __slots__ = ("function_id", "name", "pickled")

    def __init__(self, function_id: bytes, name: str, pickled: bytes) -> None:
        self.function_id = function_id
        self.name = name
        self.pickled = pickled


class Placement:
    """A scheduling strategy on the wire: DEFAULT, SPREAD or NODE_AFFINITY; with
    ``group_id``, in that placement group (whose resources the task asks for), and
    ``capture``: what it submits goes there too."""

    __slots__ = ("strategy", "node_id", "soft", "group_id", "capture")

    def __init__(
        self, strategy: int, node_id: bytes = b"", soft: bool = False, group_id: bytes = b"", capture: bool = False
    ) -> None:
        self.strategy = strategy
        self.node_id = node_id
        self.soft = soft
        self.group_id = group_id
        self.capture = capture

    @property
    def key(self) -> tuple:
        """The placement as a hashable key."""
        return (self.strategy, self.node_id, self.soft, self.group_id, self.capture)

    @property
    def local_first(self) -> bool:
        """Placed as with no strategy (an explicit DEFAULT): near its arguments first."""
        return self.strategy == nm_pb2.SCHEDULING_STRATEGY_DEFAULT and not self.group_id


class TaskOptions:
    """The options of one task or actor call as the runtime uses them."""

    __slots__ = (
        "resources",
        "num_returns",
        "max_retries",
        "retry_exceptions",
        "retry_types",
        "name",
        "placement",
        "returns_kind",
        "backpressure",
        "concurrency_group",
        "runtime_env",
        "_wire",
    )

    def __init__(
        self,
        resources: dict[str, float],
        num_returns: int,
        max_retries: int,
        retry_exceptions: bool,
        retry_types: bytes,
        name: str,
        placement: Placement | None = None,
        returns_kind: int = 0,
        backpressure: int = 0,
        concurrency_group: str = "",
        runtime_env: Any = None,
    ) -> None:
        self.resources = resources
        #: Return refs the caller gets: 1 for a generator (streamed items come apart).
        self.num_returns = num_returns
        self.max_retries = max_retries
        self.retry_exceptions = retry_exceptions
        self.retry_types = retry_types
        self.name = name
        self.placement = placement
        #: ``common_pb2.RETURNS_KIND_*``: 0 a fixed count, else a generator (streaming, dynamic).
        self.returns_kind = returns_kind
        #: Streaming: unconsumed items at which the generator pauses (0: never).
        self.backpressure = backpressure
        #: Actor calls: the concurrency group chosen by the caller ("": the method's).
        self.concurrency_group = concurrency_group
        #: A task's own validated RuntimeEnv (None or empty: its submitter's).
        self.runtime_env = runtime_env
        self._wire: tuple[dict[str, float], common_pb2.ResourceSet] | None = None

    def resource_set(self) -> common_pb2.ResourceSet:
        """``resources`` in wire form, made once (again if ``resources`` is replaced)."""
        wire = self._wire
        if wire is None or wire[0] is not self.resources:
            wire = self._wire = (self.resources, common_pb2.ResourceSet(amounts=self.resources))
        return wire[1]


class Task:
    """A task or actor call on the submitting side, from submission to its result."""

    __slots__ = (
        "task_id",
        "fn",
        "options",
        "args",
        "top_refs",
        "resolved",
        "waiting",
        "return_ids",
        "held",
        "retries_left",
        "machine",
        "attempt",
        "cancelled",
        "worker",
        "parent",
        "context",
        "shape",
        "counted_slow",
        "actor",
        "method",
        "oom_kills",
        "job_config",
    )

    def __init__(self, task_id: bytes, fn: FunctionInfo, options: TaskOptions) -> None:
        self.task_id = task_id
        self.fn = fn
        self.options = options
        self.args: common_pb2.ObjectPayload | None = None
        self.top_refs: list[bytes] = []
        self.resolved: list[common_pb2.ObjectPayload | None] = []
        self.waiting = 0
        self.return_ids: list[bytes] = []
        self.held: list[bytes] = []
        self.retries_left = options.max_retries
        self.machine = StateMachine(TASK_TRANSITIONS, TaskState.WAITING_FOR_ARGS)
        self.attempt = 0
        self.cancelled = False
        self.worker: Any = None  # normal tasks: the LeasedWorker running it
        self.parent = b""
        self.context = ""
        self.shape: Any = None  # normal tasks: their ShapeQueue
        self.counted_slow = False
        self.actor: Any = None  # actor calls: the actor's queue
        self.method = ""
        self.oom_kills = 0  # times the memory monitor killed its worker (task_oom_retries)
        #: Normal tasks with a runtime_env of their own: what their workers bind to (task_env.py).
        self.job_config: common_pb2.JobConfig | None = None


class SubmitterBase:
    """Argument packing, dependency resolution and result handling, for a
    submitter that defines ``_ready(task)`` (all arguments resolved)."""

    def __init__(self, core: "CoreWorker") -> None:
        self.core = core
        self.config = core.config
        self._tasks: dict[bytes, Task] = {}
        self._children: dict[bytes, set[bytes]] = {}
        self._empty_args: common_pb2.ObjectPayload | None = None
        self._lock = threading.Lock()

    def _ready(self, task: Task) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    # -- caller's thread ----------------------------------------------------------------
    def prepare_args(self, task: Task, args: tuple, kwargs: dict) -> None:
        """Serialize the arguments (large ones into the object store) and hold every
        reference they contain until the task is done."""
        core = self.core
        packed = pack_args(task.fn.name, args, kwargs)
        if packed is None:
            task.args = self.empty_args()
            return
        if packed.obj.total_size > self.config.inline_threshold:
            args_id = ids.object_id(task.task_id, 0)
            payload = core.store(args_id, packed.obj)
            core.refs.add_owned(args_id, payload)  # held by this task, freed at its end
        else:
            payload = common_pb2.ObjectPayload(data=packed.obj.to_bytes(), size=packed.obj.total_size)
        self.set_args(task, payload, packed.top, packed.contained)

    def empty_args(self) -> common_pb2.ObjectPayload:
        """The packed arguments of a call with none."""
        if self._empty_args is None:
            data = serialize(((), {})).to_bytes()
            self._empty_args = common_pb2.ObjectPayload(data=data, size=len(data))
        return self._empty_args

    def set_args(self, task: Task, payload: common_pb2.ObjectPayload, top: list[bytes], contained: list[bytes]) -> None:
        """Give ``task`` its packed arguments (inline, or an object owned here that the
        task then holds) and hold the references they name until it is done."""
        held = [*top, *contained]
        for oid in held:
            self.core.refs.incref(oid)
        if not payload.HasField("data"):
            held.append(payload.object_id)
        task.args = payload
        task.held = held
        task.top_refs = list(top)

    def refuse(self, task: Task, exc: BaseException) -> list[ObjectRef]:
        """A task that cannot be submitted (any thread): its returns hold ``exc``."""
        task.args = self.empty_args()
        refs = self.make_returns(task)
        self.core.call_soon(self._fail, task, exc)
        return refs

    def make_returns(self, task: Task) -> list[ObjectRef]:
        """Make the task's return refs (owned here)."""
        core = self.core
        refs = []
        for index in range(1, task.options.num_returns + 1):
            oid = ids.object_id(task.task_id, index)
            task.return_ids.append(oid)
            core.refs.add_owned(oid, task=task)
            refs.append(ObjectRef(oid, core.address_bytes, core))
        if task.options.returns_kind == _STREAMING:
            core.generators.open(task)  # before the task can run: its items find the stream
        return refs

    # -- loop thread ----------------------------------------------------------------------
    def _register(self, task: Task) -> bool:
        """Record a task that reached the loop; False if it was cancelled already."""
        if task.machine.is_terminal():
            return False
        self._tasks[task.task_id] = task
        if task.parent:
            self._children.setdefault(task.parent, set()).add(task.task_id)
        return True

    def _resolve(self, task: Task) -> None:
        """Wait for the top-level ref arguments' values; then ``_ready(task)``."""
        refs = self.core.refs
        task.resolved = [None] * len(task.top_refs)
        for i, oid in enumerate(task.top_refs):
            entry = refs.get(oid)
            if entry is None:
                task.resolved[i] = error_payload(oid, ObjectLostError(oid.hex()))
            elif entry.payload is not None:
                task.resolved[i] = entry.payload
            else:
                task.waiting += 1
                if entry.callbacks is None:
                    entry.callbacks = []
                entry.callbacks.append(lambda _oid, payload, t=task, i=i: self._resolved(t, i, payload))
                if not entry.owned and not entry.fetching:
                    entry.fetching = True
                    self.core.spawn(self.core.fetch_status(oid))
        if task.waiting == 0:
            self._ready(task)

    def _resolved(self, task: Task, index: int, payload: common_pb2.ObjectPayload) -> None:
        if task.machine.state is not TaskState.WAITING_FOR_ARGS:
            return  # cancelled while waiting
        task.resolved[index] = payload
        task.waiting -= 1
        if task.waiting == 0:
            self._ready(task)

    def _finish(self, task: Task, result: cw_pb2.TaskResult) -> None:
        refs = self.core.refs
        state = TaskState.FINISHED if result.status == _OK else TaskState.FAILED
        task.machine.transition(state)
        self.core.task_events.record(task, state.value, error=first_line(result.error_message))
        returns = result.returns
        if len(returns) > len(task.return_ids):  # a dynamic generator's items follow its return
            returns = self.core.generators.dynamic_returns(task, returns)
        for oid, payload in zip(task.return_ids, returns):
            if payload.contained:
                adopt_contained(refs, refs.get(oid), payload)
            self._set(oid, payload)
        self._done(task)

    def _set(self, oid: bytes, payload: common_pb2.ObjectPayload) -> None:
        entry = self.core.refs.set_payload(oid, payload)
        if entry is not None:
            entry.task = None
            if entry.freeable:
                self.core.on_freed(oid, entry)

    def _fail(self, task: Task, exc: BaseException, state: TaskState = TaskState.FAILED) -> None:
        task.machine.transition(state)
        self.core.task_events.record(task, state.value, error=first_line(str(exc)))
        for oid in task.return_ids:
            self._set(oid, error_payload(oid, exc))
        self._done(task)

    def _done(self, task: Task) -> None:
        self._tasks.pop(task.task_id, None)
        if task.parent:
            siblings = self._children.get(task.parent)
            if siblings is not None:
                siblings.discard(task.task_id)
                if not siblings:
                    del self._children[task.parent]
        for oid in task.held:
            self.core.refs.release(oid)
        task.held = []
        task.resolved = []

    def busy(self) -> bool:
        """Tasks submitted here are still in flight."""
        return bool(self._tasks)

    def children_of(self, parent: bytes) -> list[Task]:
        """The tasks in flight that task ``parent`` submitted."""
        return [t for tid in self._children.get(parent, ()) if (t := self._tasks.get(tid)) is not None]


def adopt_contained(refs: Any, entry: Any, payload: common_pb2.ObjectPayload) -> None:
    """Loop thread: the refs nested in a value returned to this process (their owners
    were told by the executor) are held by its ``entry`` (released at once when the
    value is no longer referenced here)."""
    inner = []
    for info in payload.contained:
        refs.add_borrowed(info.object_id, info.owner.SerializeToString(), registered=True)
        inner.append(info.object_id)
    if entry is not None:
        entry.contained = inner
    else:
        for oid in inner:
            refs.release(oid)


class PackedArgs:
    """A call's arguments serialized, top-level refs swapped for placeholders."""

    __slots__ = ("obj", "top", "contained")

    def __init__(self, obj: SerializedObject, top: list[bytes], contained: list[bytes]) -> None:
        self.obj = obj
        #: Ids of the top-level ref arguments (resolved to values before the call runs).
        self.top = top
        #: Ids of refs nested inside the arguments (passed as refs).
        self.contained = contained


def pack_args(fn_name: str, args: tuple, kwargs: dict) -> PackedArgs | None:
    """Serialize a call's arguments (None: there are none); TypeError naming the
    argument that cannot be pickled."""
    if not args and not kwargs:
        return None
    top: list[ObjectRef] = []

    def swap(value: Any) -> Any:
        if type(value) is ObjectRef:
            top.append(value)
            return ArgRef(len(top) - 1)
        return value

    packed = (tuple(swap(a) for a in args), {k: swap(v) for k, v in kwargs.items()})
    try:
        obj = serialize(packed)
    except Exception as exc:
        raise TypeError(describe_unpicklable(fn_name, args, kwargs, exc)) from exc
    return PackedArgs(obj, [ref._id for ref in top], [ref._id for ref in obj.contained])


def fill_spec(spec: common_pb2.TaskSpec, task: Task, core: "CoreWorker") -> None:
    """The wire form of a task (the function's pickled body is the caller's affair)."""
    spec.task_id = task.task_id
    spec.job_id = core.job_id
    spec.parent_task_id = task.parent
    spec.function.function_id = task.fn.function_id
    spec.function.name = task.fn.name
    spec.args.CopyFrom(task.args)
    if task.resolved:
        spec.resolved_refs.extend(task.resolved)
    opts = task.options
    spec.num_returns = opts.num_returns
    if opts.resources:  # what get_assigned_resources() answers in the worker
        spec.resources.CopyFrom(opts.resource_set())
    spec.caller.CopyFrom(core.address)
    spec.attempt = task.attempt
    if opts.retry_exceptions:
        spec.retry_exceptions = True
        spec.retry_exception_types = opts.retry_types
    if opts.name:
        spec.name = opts.name
    if task.context:
        spec.context = task.context
    if opts.placement is not None and opts.placement.group_id:
        spec.placement_group_id = opts.placement.group_id
        spec.placement_group_capture = opts.placement.capture
    if opts.returns_kind:
        spec.returns_kind = opts.returns_kind
        spec.generator_backpressure = opts.backpressure


def describe_unpicklable(fn_name: str, args: tuple, kwargs: dict, exc: BaseException) -> str:
    """Name the argument that cannot be pickled, its type, and the fix."""
    for where, value in [*((f"argument {i}", a) for i, a in enumerate(args)), *((f"argument {k!r}", v) for k, v in kwargs.items())]:
        try:
            serialize(value)
        except Exception as inner:  # noqa: BLE001
            kind = f"{type(value).__module__}.{type(value).__qualname__}"
            return (
                f"Cannot send {where} of {fn_name}() to a worker: a {kind} cannot be pickled "
                f"({type(inner).__name__}: {inner}). Pass something picklable instead, or "
                "create the object inside the task."
            )
    detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    return f"Cannot send the arguments of {fn_name}() to a worker: {detail}"
