from nbcluster.runtime.protocol import common_pb2 as _common_pb2
from nbcluster.runtime.protocol import gcs_pb2 as _gcs_pb2
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

class FunctionDescriptor(_message.Message):
    __slots__ = ("function_id", "name", "pickled")
    FUNCTION_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PICKLED_FIELD_NUMBER: _ClassVar[int]
    function_id: bytes
    name: str
    pickled: bytes
    def __init__(self, function_id: _Optional[bytes] = ..., name: _Optional[str] = ..., pickled: _Optional[bytes] = ...) -> None: ...

class TaskSpec(_message.Message):
    __slots__ = ("task_id", "job_id", "parent_task_id", "function", "args", "resolved_refs", "num_returns", "caller", "attempt", "retry_exceptions", "retry_exception_types", "name", "context", "resources")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    PARENT_TASK_ID_FIELD_NUMBER: _ClassVar[int]
    FUNCTION_FIELD_NUMBER: _ClassVar[int]
    ARGS_FIELD_NUMBER: _ClassVar[int]
    RESOLVED_REFS_FIELD_NUMBER: _ClassVar[int]
    NUM_RETURNS_FIELD_NUMBER: _ClassVar[int]
    CALLER_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    RETRY_EXCEPTIONS_FIELD_NUMBER: _ClassVar[int]
    RETRY_EXCEPTION_TYPES_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    task_id: bytes
    job_id: bytes
    parent_task_id: bytes
    function: FunctionDescriptor
    args: _common_pb2.ObjectPayload
    resolved_refs: _containers.RepeatedCompositeFieldContainer[_common_pb2.ObjectPayload]
    num_returns: int
    caller: _common_pb2.Address
    attempt: int
    retry_exceptions: bool
    retry_exception_types: bytes
    name: str
    context: str
    resources: _common_pb2.ResourceSet
    def __init__(self, task_id: _Optional[bytes] = ..., job_id: _Optional[bytes] = ..., parent_task_id: _Optional[bytes] = ..., function: _Optional[_Union[FunctionDescriptor, _Mapping]] = ..., args: _Optional[_Union[_common_pb2.ObjectPayload, _Mapping]] = ..., resolved_refs: _Optional[_Iterable[_Union[_common_pb2.ObjectPayload, _Mapping]]] = ..., num_returns: _Optional[int] = ..., caller: _Optional[_Union[_common_pb2.Address, _Mapping]] = ..., attempt: _Optional[int] = ..., retry_exceptions: _Optional[bool] = ..., retry_exception_types: _Optional[bytes] = ..., name: _Optional[str] = ..., context: _Optional[str] = ..., resources: _Optional[_Union[_common_pb2.ResourceSet, _Mapping]] = ...) -> None: ...

class PushTasksRequest(_message.Message):
    __slots__ = ("job_config", "job_id", "driver", "tasks")
    JOB_CONFIG_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    DRIVER_FIELD_NUMBER: _ClassVar[int]
    TASKS_FIELD_NUMBER: _ClassVar[int]
    job_config: _gcs_pb2.JobConfig
    job_id: bytes
    driver: _common_pb2.Address
    tasks: _containers.RepeatedCompositeFieldContainer[TaskSpec]
    def __init__(self, job_config: _Optional[_Union[_gcs_pb2.JobConfig, _Mapping]] = ..., job_id: _Optional[bytes] = ..., driver: _Optional[_Union[_common_pb2.Address, _Mapping]] = ..., tasks: _Optional[_Iterable[_Union[TaskSpec, _Mapping]]] = ...) -> None: ...

class TaskResult(_message.Message):
    __slots__ = ("task_id", "status", "returns", "retryable", "duration", "pid")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    RETURNS_FIELD_NUMBER: _ClassVar[int]
    RETRYABLE_FIELD_NUMBER: _ClassVar[int]
    DURATION_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    task_id: bytes
    status: TaskStatus
    returns: _containers.RepeatedCompositeFieldContainer[_common_pb2.ObjectPayload]
    retryable: bool
    duration: float
    pid: int
    def __init__(self, task_id: _Optional[bytes] = ..., status: _Optional[_Union[TaskStatus, str]] = ..., returns: _Optional[_Iterable[_Union[_common_pb2.ObjectPayload, _Mapping]]] = ..., retryable: _Optional[bool] = ..., duration: _Optional[float] = ..., pid: _Optional[int] = ...) -> None: ...

class TaskResultsNotice(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[TaskResult]
    def __init__(self, results: _Optional[_Iterable[_Union[TaskResult, _Mapping]]] = ...) -> None: ...

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
    __slots__ = ("text", "is_stderr")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    IS_STDERR_FIELD_NUMBER: _ClassVar[int]
    text: str
    is_stderr: bool
    def __init__(self, text: _Optional[str] = ..., is_stderr: _Optional[bool] = ...) -> None: ...

class LogBatch(_message.Message):
    __slots__ = ("source", "pid", "node_ip", "context", "lines")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    NODE_IP_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    source: str
    pid: int
    node_ip: str
    context: str
    lines: _containers.RepeatedCompositeFieldContainer[LogLine]
    def __init__(self, source: _Optional[str] = ..., pid: _Optional[int] = ..., node_ip: _Optional[str] = ..., context: _Optional[str] = ..., lines: _Optional[_Iterable[_Union[LogLine, _Mapping]]] = ...) -> None: ...

class LeaseWarningNotice(_message.Message):
    __slots__ = ("message",)
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    message: str
    def __init__(self, message: _Optional[str] = ...) -> None: ...

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
