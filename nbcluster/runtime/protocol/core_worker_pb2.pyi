from nbcluster.runtime.protocol import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TaskStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TASK_STATUS_UNSPECIFIED: _ClassVar[TaskStatus]
    TASK_STATUS_OK: _ClassVar[TaskStatus]
    TASK_STATUS_APP_ERROR: _ClassVar[TaskStatus]
    TASK_STATUS_CANCELLED: _ClassVar[TaskStatus]
    TASK_STATUS_SYSTEM_ERROR: _ClassVar[TaskStatus]
TASK_STATUS_UNSPECIFIED: TaskStatus
TASK_STATUS_OK: TaskStatus
TASK_STATUS_APP_ERROR: TaskStatus
TASK_STATUS_CANCELLED: TaskStatus
TASK_STATUS_SYSTEM_ERROR: TaskStatus

class PushTasksRequest(_message.Message):
    __slots__ = ("job_config", "job_id", "driver", "tasks")
    JOB_CONFIG_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    DRIVER_FIELD_NUMBER: _ClassVar[int]
    TASKS_FIELD_NUMBER: _ClassVar[int]
    job_config: _common_pb2.JobConfig
    job_id: bytes
    driver: _common_pb2.Address
    tasks: _containers.RepeatedCompositeFieldContainer[_common_pb2.TaskSpec]
    def __init__(self, job_config: _Optional[_Union[_common_pb2.JobConfig, _Mapping]] = ..., job_id: _Optional[bytes] = ..., driver: _Optional[_Union[_common_pb2.Address, _Mapping]] = ..., tasks: _Optional[_Iterable[_Union[_common_pb2.TaskSpec, _Mapping]]] = ...) -> None: ...

class TaskResult(_message.Message):
    __slots__ = ("task_id", "status", "returns", "retryable", "duration", "pid", "error_message", "attempt")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    RETURNS_FIELD_NUMBER: _ClassVar[int]
    RETRYABLE_FIELD_NUMBER: _ClassVar[int]
    DURATION_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    task_id: bytes
    status: TaskStatus
    returns: _containers.RepeatedCompositeFieldContainer[_common_pb2.ObjectPayload]
    retryable: bool
    duration: float
    pid: int
    error_message: str
    attempt: int
    def __init__(self, task_id: _Optional[bytes] = ..., status: _Optional[_Union[TaskStatus, str]] = ..., returns: _Optional[_Iterable[_Union[_common_pb2.ObjectPayload, _Mapping]]] = ..., retryable: _Optional[bool] = ..., duration: _Optional[float] = ..., pid: _Optional[int] = ..., error_message: _Optional[str] = ..., attempt: _Optional[int] = ...) -> None: ...

class TaskResultsNotice(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[TaskResult]
    def __init__(self, results: _Optional[_Iterable[_Union[TaskResult, _Mapping]]] = ...) -> None: ...

class GeneratorItemsNotice(_message.Message):
    __slots__ = ("task_id", "attempt", "items")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    task_id: bytes
    attempt: int
    items: _containers.RepeatedCompositeFieldContainer[_common_pb2.ObjectPayload]
    def __init__(self, task_id: _Optional[bytes] = ..., attempt: _Optional[int] = ..., items: _Optional[_Iterable[_Union[_common_pb2.ObjectPayload, _Mapping]]] = ...) -> None: ...

class GeneratorConsumedNotice(_message.Message):
    __slots__ = ("task_id", "consumed")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    CONSUMED_FIELD_NUMBER: _ClassVar[int]
    task_id: bytes
    consumed: int
    def __init__(self, task_id: _Optional[bytes] = ..., consumed: _Optional[int] = ...) -> None: ...

class GetObjectStatusRequest(_message.Message):
    __slots__ = ("object_id",)
    OBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    object_id: bytes
    def __init__(self, object_id: _Optional[bytes] = ...) -> None: ...

class GetObjectStatusReply(_message.Message):
    __slots__ = ("payload",)
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    payload: _common_pb2.ObjectPayload
    def __init__(self, payload: _Optional[_Union[_common_pb2.ObjectPayload, _Mapping]] = ...) -> None: ...

class UpdateBorrowersRequest(_message.Message):
    __slots__ = ("add", "remove", "on_behalf_of")
    ADD_FIELD_NUMBER: _ClassVar[int]
    REMOVE_FIELD_NUMBER: _ClassVar[int]
    ON_BEHALF_OF_FIELD_NUMBER: _ClassVar[int]
    add: _containers.RepeatedScalarFieldContainer[bytes]
    remove: _containers.RepeatedScalarFieldContainer[bytes]
    on_behalf_of: _common_pb2.Address
    def __init__(self, add: _Optional[_Iterable[bytes]] = ..., remove: _Optional[_Iterable[bytes]] = ..., on_behalf_of: _Optional[_Union[_common_pb2.Address, _Mapping]] = ...) -> None: ...

class CancelTaskRequest(_message.Message):
    __slots__ = ("task_id", "force", "recursive")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    RECURSIVE_FIELD_NUMBER: _ClassVar[int]
    task_id: bytes
    force: bool
    recursive: bool
    def __init__(self, task_id: _Optional[bytes] = ..., force: _Optional[bool] = ..., recursive: _Optional[bool] = ...) -> None: ...

class CancelTaskReply(_message.Message):
    __slots__ = ("found",)
    FOUND_FIELD_NUMBER: _ClassVar[int]
    found: bool
    def __init__(self, found: _Optional[bool] = ...) -> None: ...

class LogLine(_message.Message):
    __slots__ = ("text", "is_stderr", "redraw")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    IS_STDERR_FIELD_NUMBER: _ClassVar[int]
    REDRAW_FIELD_NUMBER: _ClassVar[int]
    text: str
    is_stderr: bool
    redraw: bool
    def __init__(self, text: _Optional[str] = ..., is_stderr: _Optional[bool] = ..., redraw: _Optional[bool] = ...) -> None: ...

class ProgressUpdate(_message.Message):
    __slots__ = ("bar_id", "desc", "n", "total", "unit", "position", "closed", "elapsed", "drop")
    BAR_ID_FIELD_NUMBER: _ClassVar[int]
    DESC_FIELD_NUMBER: _ClassVar[int]
    N_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    UNIT_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    CLOSED_FIELD_NUMBER: _ClassVar[int]
    ELAPSED_FIELD_NUMBER: _ClassVar[int]
    DROP_FIELD_NUMBER: _ClassVar[int]
    bar_id: str
    desc: str
    n: float
    total: float
    unit: str
    position: int
    closed: bool
    elapsed: float
    drop: bool
    def __init__(self, bar_id: _Optional[str] = ..., desc: _Optional[str] = ..., n: _Optional[float] = ..., total: _Optional[float] = ..., unit: _Optional[str] = ..., position: _Optional[int] = ..., closed: _Optional[bool] = ..., elapsed: _Optional[float] = ..., drop: _Optional[bool] = ...) -> None: ...

class LogBatch(_message.Message):
    __slots__ = ("source", "pid", "node_ip", "context", "lines", "progress")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    NODE_IP_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    source: str
    pid: int
    node_ip: str
    context: str
    lines: _containers.RepeatedCompositeFieldContainer[LogLine]
    progress: _containers.RepeatedCompositeFieldContainer[ProgressUpdate]
    def __init__(self, source: _Optional[str] = ..., pid: _Optional[int] = ..., node_ip: _Optional[str] = ..., context: _Optional[str] = ..., lines: _Optional[_Iterable[_Union[LogLine, _Mapping]]] = ..., progress: _Optional[_Iterable[_Union[ProgressUpdate, _Mapping]]] = ...) -> None: ...

class LeaseWarningNotice(_message.Message):
    __slots__ = ("message", "request_id")
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    message: str
    request_id: int
    def __init__(self, message: _Optional[str] = ..., request_id: _Optional[int] = ...) -> None: ...

class ObjectLocationsRequest(_message.Message):
    __slots__ = ("object_id", "node_id", "moved_from")
    OBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    MOVED_FROM_FIELD_NUMBER: _ClassVar[int]
    object_id: bytes
    node_id: bytes
    moved_from: bytes
    def __init__(self, object_id: _Optional[bytes] = ..., node_id: _Optional[bytes] = ..., moved_from: _Optional[bytes] = ...) -> None: ...

class RevokeLeaseNotice(_message.Message):
    __slots__ = ("lease_id", "reason")
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    lease_id: int
    reason: str
    def __init__(self, lease_id: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...

class NodeDiedNotice(_message.Message):
    __slots__ = ("node_id", "reason")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    node_id: bytes
    reason: str
    def __init__(self, node_id: _Optional[bytes] = ..., reason: _Optional[str] = ...) -> None: ...

class ExitRequest(_message.Message):
    __slots__ = ("reason", "force")
    REASON_FIELD_NUMBER: _ClassVar[int]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    reason: str
    force: bool
    def __init__(self, reason: _Optional[str] = ..., force: _Optional[bool] = ...) -> None: ...

class ExitReply(_message.Message):
    __slots__ = ("accepted",)
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    accepted: bool
    def __init__(self, accepted: _Optional[bool] = ...) -> None: ...
