"""The exceptions nbcluster raises, in one hierarchy (Ray's names where Ray has one).

Every error derives from :class:`NbclusterError`. Errors that mean "bad input" are also
the built-in class a Python user expects (``GetTimeoutError`` is a ``TimeoutError``,
a task's error is also an instance of the exception the task raised).
"""

from __future__ import annotations

import os
from typing import Any

__all__ = [
    "NbclusterError",
    "RayError",
    "RayTaskError",
    "RayActorError",
    "RaySystemError",
    "TaskError",
    "WorkerCrashedError",
    "TaskCancelledError",
    "TaskUnschedulableError",
    "GetTimeoutError",
    "ObjectLostError",
    "OwnerDiedError",
    "ObjectFreedError",
    "ObjectFetchTimedOutError",
    "ObjectReconstructionFailedError",
    "ObjectStoreFullError",
    "OutOfMemoryError",
    "ActorDiedError",
    "ActorUnavailableError",
    "PendingCallsLimitExceeded",
    "NodeDiedError",
    "LocalRayletDiedError",
    "RuntimeEnvSetupError",
    "CrossLanguageError",
    "ClusterConnectionError",
    "AuthenticationError",
    "KubernetesError",
    "PermissionDeniedError",
    "AlreadyInitializedError",
    "AutoscalerConfigError",
    "InsecurePathError",
    "NbclusterSystemError",
]


class NbclusterError(Exception):
    """Base class of every nbcluster error."""


class NbclusterSystemError(NbclusterError):
    """The runtime itself failed (a bug or a broken installation), not user code."""


class TaskError(NbclusterError):
    """A remote task raised.

    ``get`` raises an instance of a class derived from both ``TaskError`` and the class
    the task raised, so ``except ValueError`` catches a remote ``ValueError``. The
    message holds the remote traceback; ``cause`` is the original exception.
    """

    def __init__(
        self,
        function_name: str,
        traceback_str: str,
        cause: BaseException | None = None,
        pid: int | None = None,
        node_ip: str | None = None,
        actor_id: str | None = None,
        actor_repr: str | None = None,
    ) -> None:
        self.function_name = function_name
        self.traceback_str = traceback_str
        self.cause = cause
        self.pid = pid
        self.node_ip = node_ip
        #: An actor call's: the actor's id, and its ``repr()`` when its class defines ``__repr__``.
        self.actor_id = actor_id
        self.actor_repr = actor_repr
        fields = [f"pid={pid}", f"ip={node_ip}"] if pid else []
        fields += [f"actor_id={actor_id}"] if actor_id else []
        fields += [f"repr={actor_repr}"] if actor_repr is not None else []
        where = f" ({', '.join(fields)})" if fields else ""
        self._message = f"{function_name}(){where} raised:\n\n{traceback_str.rstrip()}"
        Exception.__init__(self, self._message)

    def __str__(self) -> str:
        return self._message

    def __reduce__(self) -> Any:
        return (
            _rebuild_task_error,
            (self.function_name, self.traceback_str, self.cause, self.pid, self.node_ip, self.actor_id,
             self.actor_repr),
        )

    def as_instanceof_cause(self) -> "TaskError":
        """This error as an instance of both ``TaskError`` and the cause's class."""
        cause = self.cause
        if cause is None or isinstance(cause, TaskError):
            return self
        cause_cls = type(cause)
        if not issubclass(cause_cls, Exception):
            return self
        try:
            dual = _dual_class(cause_cls)
            err = dual.__new__(dual)
        except TypeError:  # a class that cannot be subclassed (final, layout conflict)
            return self
        TaskError.__init__(
            err, self.function_name, self.traceback_str, cause, self.pid, self.node_ip, self.actor_id, self.actor_repr
        )
        # Attributes of the original exception stay reachable (e.g. OSError.errno).
        try:
            err.__dict__.update({k: v for k, v in vars(cause).items() if k not in err.__dict__})
        except TypeError:
            pass
        return err


_DUAL_CLASSES: dict[type, type] = {}


def _dual_class(cause_cls: type) -> type:
    dual = _DUAL_CLASSES.get(cause_cls)
    if dual is None:
        name = f"TaskError({cause_cls.__name__})"

        def __init__(self: Any, *args: Any, **kwargs: Any) -> None:  # noqa: N807
            TaskError.__init__(self, *args, **kwargs)

        dual = type(
            name,
            (TaskError, cause_cls),
            {
                "__init__": __init__,
                "__str__": TaskError.__str__,
                "__reduce__": TaskError.__reduce__,
                "__module__": __name__,
                "__qualname__": name,
            },
        )
        _DUAL_CLASSES[cause_cls] = dual
    return dual


def _rebuild_task_error(
    function_name: str,
    traceback_str: str,
    cause: BaseException | None,
    pid: int | None,
    node_ip: str | None,
    actor_id: str | None = None,
    actor_repr: str | None = None,
) -> TaskError:
    return TaskError(function_name, traceback_str, cause, pid, node_ip, actor_id, actor_repr).as_instanceof_cause()


class WorkerCrashedError(NbclusterError):
    """The worker running the task died (killed, crashed, or exited) and the task
    had no retries left."""


class TaskCancelledError(NbclusterError):
    """The task was cancelled with ``nbcluster.cancel``."""

    def __init__(self, task_id: str | None = None, message: str | None = None) -> None:
        self.task_id = task_id
        super().__init__(message or f"Task {task_id} was cancelled.")

    def __reduce__(self) -> Any:
        return (TaskCancelledError, (self.task_id, str(self)))


class TaskUnschedulableError(NbclusterError):
    """No node can run the task as asked (e.g. its node affinity names a dead node)."""


class GetTimeoutError(NbclusterError, TimeoutError):
    """``get`` did not finish within its timeout."""


class ObjectLostError(NbclusterError):
    """An object's value can no longer be obtained."""

    def __init__(self, object_id: str = "", message: str | None = None) -> None:
        self.object_id = object_id
        super().__init__(message or f"Object {object_id} is lost.")

    def __reduce__(self) -> Any:
        return (type(self), (self.object_id, str(self)))


class OwnerDiedError(ObjectLostError):
    """The process that owned an object (the one that created it) has exited."""


class ObjectFreedError(ObjectLostError):
    """The object was freed because no reference to it remained."""


class ObjectFetchTimedOutError(ObjectLostError):
    """Fetching an object from another node took too long (Ray's name). Not raised
    yet: a pull from a node that stops answering ends as :class:`ObjectLostError` when
    that node is declared dead."""


class ObjectReconstructionFailedError(ObjectLostError):
    """An object's only copy was lost and running its task again failed or was not
    allowed (Ray's name). Not raised yet: such an object raises
    :class:`ObjectLostError`, whose message says it cannot be rebuilt."""


class ObjectStoreFullError(NbclusterError):
    """The shared-memory store cannot make room for an object."""


class OutOfMemoryError(NbclusterError):
    """A node ran low on memory and its memory monitor killed the task's worker to free
    some (Ray's name); the message names the task, the node and its memory use. A
    worker the kernel's own OOM killer ends raises :class:`WorkerCrashedError`."""


class RayActorError(NbclusterError):
    """A call could not run on its actor (Ray's name): :class:`ActorDiedError` says it
    died and will not restart."""


class ActorDiedError(RayActorError):
    """The actor is dead and will not restart."""


class ActorUnavailableError(RayActorError):
    """The actor is alive but cannot be reached for now, e.g. while it restarts
    (Ray's name); the call may succeed if sent again. Not raised yet: calls made
    while an actor restarts wait for it."""


class PendingCallsLimitExceeded(NbclusterError):
    """A caller has more calls queued for an actor than its ``max_pending_calls``
    allows (Ray's name). Not raised yet: that actor option is not supported, so
    calls queue without a limit."""


class NodeDiedError(NbclusterError):
    """A node of the cluster died (Ray's name). Not raised yet: work that was
    running on a dead node is retried, or fails with :class:`WorkerCrashedError`,
    :class:`ActorDiedError` or :class:`ObjectLostError`."""


class LocalRayletDiedError(NbclusterError):
    """This process's node manager died (Ray's name for the raylet). Not raised
    yet: a process that loses its node manager raises
    :class:`ClusterConnectionError`."""


class CrossLanguageError(NbclusterError):
    """A call across languages failed (Ray's name). Never raised: nbcluster runs
    Python only."""


class RuntimeEnvSetupError(NbclusterError):
    """The task's runtime environment could not be set up."""


class ClusterConnectionError(NbclusterError, ConnectionError):
    """The cluster (or one of its processes) cannot be reached."""


class AuthenticationError(ClusterConnectionError):
    """The cluster refused the token (missing or wrong)."""


class KubernetesError(ClusterConnectionError):
    """Deploying a cluster on Kubernetes (``nbcluster.runtime.deploy_kubernetes``: what
    it had created is deleted again), or deleting one, did not succeed.

    ``reason`` says what stopped it: ``"config"`` (no Kubernetes configuration: not in a
    pod, no kubeconfig), ``"unreachable"`` (the API server does not answer),
    ``"namespace"`` (the namespace does not exist), ``"forbidden"`` (the credentials may
    not do this in the namespace), ``"exists"`` (a cluster of that name runs there),
    ``"refused"`` (the API server refused an object for another reason),
    ``"not_ready"`` (the head pod ended, or was not ready in time), ``"stopped"`` (the
    caller stopped it). ``name`` and ``namespace`` are the cluster's; ``detail`` is what
    Kubernetes said (or why the head is not ready). The message says all of it.
    """

    def __init__(self, message: str, reason: str, name: str = "", namespace: str = "", detail: str = "") -> None:
        self.reason = reason
        self.name = name
        self.namespace = namespace
        self.detail = detail
        super().__init__(message)

    def __reduce__(self) -> Any:
        return (type(self), (str(self), self.reason, self.name, self.namespace, self.detail))


class PermissionDeniedError(NbclusterError, PermissionError):
    """The credential is the cluster's but may not do this: a driver credential (what
    jobs and workers hold) asked for something only the cluster token may do, such as
    changing the autoscaler's bounds."""


class AlreadyInitializedError(NbclusterError, RuntimeError, ValueError):
    """``init`` was called while already connected to a cluster."""


class AutoscalerConfigError(NbclusterError, ValueError):
    """The autoscaler's cluster config is invalid.

    ``key`` is the dotted path of the offending entry (e.g.
    ``available_node_types.cpu_worker.max_workers``; ``""`` for the file as a whole),
    ``line`` its 1-based line in the file (``None`` when unknown, e.g. for a dict), and
    ``source`` the file path or ``"<dict>"``. The message says what is wrong and how to
    fix it.
    """

    def __init__(
        self, message: str, key: str = "", line: int | None = None, source: str = "<dict>"
    ) -> None:
        self.key = key
        self.line = line
        self.source = source
        super().__init__(message)

    def __reduce__(self) -> Any:
        return (type(self), (str(self), self.key, self.line, self.source))


class InsecurePathError(NbclusterError):
    """A directory or file nbcluster would trust (a session, its token or address, the
    object store's shared memory, the Jupyter server's list of clusters) is not this
    user's alone: another user owns it, others may write it, or it is a symbolic link.
    nbcluster refuses it rather than connect to whatever it names.

    ``path`` is the refused path, ``problem`` what is wrong with it, ``uid`` and ``mode``
    its owner and permission bits as found (None when they do not matter), ``fix`` what
    the user can do. Not an ``OSError``: code that passes over unreadable files must not
    pass over this silently.
    """

    def __init__(
        self, path: str | os.PathLike[str], problem: str, uid: int | None = None, mode: int | None = None,
        fix: str = "",
    ) -> None:
        self.path = str(path)
        self.problem = problem
        self.uid = uid
        self.mode = mode
        self.fix = fix
        super().__init__(f"refusing to use {self.path}: {self.detail}")

    @property
    def detail(self) -> str:
        """What is wrong, as found, and the fix (the message without the path)."""
        found = []
        if self.uid is not None:
            found.append(f"owner uid {self.uid}{_user_name(self.uid)}")
        if self.mode is not None:
            found.append(f"mode {self.mode:04o}")
        where = f" ({', '.join(found)})" if found else ""
        return f"{self.problem}{where}. {self.fix}".rstrip()

    def __reduce__(self) -> Any:
        return (type(self), (self.path, self.problem, self.uid, self.mode, self.fix))


def _user_name(uid: int) -> str:
    import pwd

    try:
        return f" ({pwd.getpwuid(uid).pw_name})"
    except KeyError:
        return ""


#: Ray's names for the same errors, so a program written for Ray (``import nbcluster as
#: ray``) catches what it expects: ``except ray.exceptions.RayTaskError``.
RayError = NbclusterError
RayTaskError = TaskError
RaySystemError = NbclusterSystemError
