from google.protobuf import descriptor_pb2 as _descriptor_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ErrorCode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ERROR_CODE_UNSPECIFIED: _ClassVar[ErrorCode]
    ERROR_CODE_UNAUTHENTICATED: _ClassVar[ErrorCode]
    ERROR_CODE_INVALID_ARGUMENT: _ClassVar[ErrorCode]
    ERROR_CODE_NOT_FOUND: _ClassVar[ErrorCode]
    ERROR_CODE_ALREADY_EXISTS: _ClassVar[ErrorCode]
    ERROR_CODE_UNAVAILABLE: _ClassVar[ErrorCode]
    ERROR_CODE_INTERNAL: _ClassVar[ErrorCode]
    ERROR_CODE_OBJECT_STORE_FULL: _ClassVar[ErrorCode]
    ERROR_CODE_OWNER_DIED: _ClassVar[ErrorCode]
    ERROR_CODE_OBJECT_LOST: _ClassVar[ErrorCode]
    ERROR_CODE_CANCELLED: _ClassVar[ErrorCode]
    ERROR_CODE_VERSION_MISMATCH: _ClassVar[ErrorCode]
    ERROR_CODE_UNIMPLEMENTED: _ClassVar[ErrorCode]
    ERROR_CODE_PERMISSION_DENIED: _ClassVar[ErrorCode]

class Scope(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SCOPE_UNSPECIFIED: _ClassVar[Scope]
    SCOPE_DRIVER: _ClassVar[Scope]
    SCOPE_CLUSTER: _ClassVar[Scope]

class ReturnsKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RETURNS_KIND_UNSPECIFIED: _ClassVar[ReturnsKind]
    RETURNS_KIND_STREAMING: _ClassVar[ReturnsKind]
    RETURNS_KIND_DYNAMIC: _ClassVar[ReturnsKind]

class TaskKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TASK_KIND_UNSPECIFIED: _ClassVar[TaskKind]
    TASK_KIND_NORMAL: _ClassVar[TaskKind]
    TASK_KIND_ACTOR_CREATION: _ClassVar[TaskKind]
    TASK_KIND_ACTOR_TASK: _ClassVar[TaskKind]
ERROR_CODE_UNSPECIFIED: ErrorCode
ERROR_CODE_UNAUTHENTICATED: ErrorCode
ERROR_CODE_INVALID_ARGUMENT: ErrorCode
ERROR_CODE_NOT_FOUND: ErrorCode
ERROR_CODE_ALREADY_EXISTS: ErrorCode
ERROR_CODE_UNAVAILABLE: ErrorCode
ERROR_CODE_INTERNAL: ErrorCode
ERROR_CODE_OBJECT_STORE_FULL: ErrorCode
ERROR_CODE_OWNER_DIED: ErrorCode
ERROR_CODE_OBJECT_LOST: ErrorCode
ERROR_CODE_CANCELLED: ErrorCode
ERROR_CODE_VERSION_MISMATCH: ErrorCode
ERROR_CODE_UNIMPLEMENTED: ErrorCode
ERROR_CODE_PERMISSION_DENIED: ErrorCode
SCOPE_UNSPECIFIED: Scope
SCOPE_DRIVER: Scope
SCOPE_CLUSTER: Scope
RETURNS_KIND_UNSPECIFIED: ReturnsKind
RETURNS_KIND_STREAMING: ReturnsKind
RETURNS_KIND_DYNAMIC: ReturnsKind
TASK_KIND_UNSPECIFIED: TaskKind
TASK_KIND_NORMAL: TaskKind
TASK_KIND_ACTOR_CREATION: TaskKind
TASK_KIND_ACTOR_TASK: TaskKind
SCOPE_FIELD_NUMBER: _ClassVar[int]
scope: _descriptor.FieldDescriptor

class Empty(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Address(_message.Message):
    __slots__ = ("node_id", "worker_id", "endpoint")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    node_id: bytes
    worker_id: bytes
    endpoint: str
    def __init__(self, node_id: _Optional[bytes] = ..., worker_id: _Optional[bytes] = ..., endpoint: _Optional[str] = ...) -> None: ...

class ResourceSet(_message.Message):
    __slots__ = ("amounts",)
    class AmountsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    AMOUNTS_FIELD_NUMBER: _ClassVar[int]
    amounts: _containers.ScalarMap[str, float]
    def __init__(self, amounts: _Optional[_Mapping[str, float]] = ...) -> None: ...

class ObjectRefInfo(_message.Message):
    __slots__ = ("object_id", "owner")
    OBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    object_id: bytes
    owner: Address
    def __init__(self, object_id: _Optional[bytes] = ..., owner: _Optional[_Union[Address, _Mapping]] = ...) -> None: ...

class ObjectPayload(_message.Message):
    __slots__ = ("object_id", "data", "node_id", "size", "contained", "is_error")
    OBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    CONTAINED_FIELD_NUMBER: _ClassVar[int]
    IS_ERROR_FIELD_NUMBER: _ClassVar[int]
    object_id: bytes
    data: bytes
    node_id: bytes
    size: int
    contained: _containers.RepeatedCompositeFieldContainer[ObjectRefInfo]
    is_error: bool
    def __init__(self, object_id: _Optional[bytes] = ..., data: _Optional[bytes] = ..., node_id: _Optional[bytes] = ..., size: _Optional[int] = ..., contained: _Optional[_Iterable[_Union[ObjectRefInfo, _Mapping]]] = ..., is_error: _Optional[bool] = ...) -> None: ...

class RpcError(_message.Message):
    __slots__ = ("code", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: ErrorCode
    message: str
    def __init__(self, code: _Optional[_Union[ErrorCode, str]] = ..., message: _Optional[str] = ...) -> None: ...

class Hello(_message.Message):
    __slots__ = ("token", "protocol", "peer")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    PEER_FIELD_NUMBER: _ClassVar[int]
    token: str
    protocol: str
    peer: Address
    def __init__(self, token: _Optional[str] = ..., protocol: _Optional[str] = ..., peer: _Optional[_Union[Address, _Mapping]] = ...) -> None: ...

class HelloReply(_message.Message):
    __slots__ = ("peer",)
    PEER_FIELD_NUMBER: _ClassVar[int]
    peer: Address
    def __init__(self, peer: _Optional[_Union[Address, _Mapping]] = ...) -> None: ...

class JobConfig(_message.Message):
    __slots__ = ("sys_path", "cwd", "namespace", "log_to_driver", "runtime_env_hash", "runtime_env_json")
    SYS_PATH_FIELD_NUMBER: _ClassVar[int]
    CWD_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    LOG_TO_DRIVER_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_ENV_HASH_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_ENV_JSON_FIELD_NUMBER: _ClassVar[int]
    sys_path: _containers.RepeatedScalarFieldContainer[str]
    cwd: str
    namespace: str
    log_to_driver: bool
    runtime_env_hash: str
    runtime_env_json: str
    def __init__(self, sys_path: _Optional[_Iterable[str]] = ..., cwd: _Optional[str] = ..., namespace: _Optional[str] = ..., log_to_driver: _Optional[bool] = ..., runtime_env_hash: _Optional[str] = ..., runtime_env_json: _Optional[str] = ...) -> None: ...

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
    __slots__ = ("task_id", "job_id", "parent_task_id", "function", "args", "resolved_refs", "num_returns", "caller", "attempt", "retry_exceptions", "retry_exception_types", "name", "context", "resources", "kind", "actor_id", "method", "max_concurrency", "is_async", "class_name", "returns_kind", "generator_backpressure", "concurrency_groups", "concurrency_group", "placement_group_id", "placement_group_capture", "gpu_ids")
    class ConcurrencyGroupsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
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
    KIND_FIELD_NUMBER: _ClassVar[int]
    ACTOR_ID_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    MAX_CONCURRENCY_FIELD_NUMBER: _ClassVar[int]
    IS_ASYNC_FIELD_NUMBER: _ClassVar[int]
    CLASS_NAME_FIELD_NUMBER: _ClassVar[int]
    RETURNS_KIND_FIELD_NUMBER: _ClassVar[int]
    GENERATOR_BACKPRESSURE_FIELD_NUMBER: _ClassVar[int]
    CONCURRENCY_GROUPS_FIELD_NUMBER: _ClassVar[int]
    CONCURRENCY_GROUP_FIELD_NUMBER: _ClassVar[int]
    PLACEMENT_GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    PLACEMENT_GROUP_CAPTURE_FIELD_NUMBER: _ClassVar[int]
    GPU_IDS_FIELD_NUMBER: _ClassVar[int]
    task_id: bytes
    job_id: bytes
    parent_task_id: bytes
    function: FunctionDescriptor
    args: ObjectPayload
    resolved_refs: _containers.RepeatedCompositeFieldContainer[ObjectPayload]
    num_returns: int
    caller: Address
    attempt: int
    retry_exceptions: bool
    retry_exception_types: bytes
    name: str
    context: str
    resources: ResourceSet
    kind: TaskKind
    actor_id: bytes
    method: str
    max_concurrency: int
    is_async: bool
    class_name: str
    returns_kind: ReturnsKind
    generator_backpressure: int
    concurrency_groups: _containers.ScalarMap[str, int]
    concurrency_group: str
    placement_group_id: bytes
    placement_group_capture: bool
    gpu_ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, task_id: _Optional[bytes] = ..., job_id: _Optional[bytes] = ..., parent_task_id: _Optional[bytes] = ..., function: _Optional[_Union[FunctionDescriptor, _Mapping]] = ..., args: _Optional[_Union[ObjectPayload, _Mapping]] = ..., resolved_refs: _Optional[_Iterable[_Union[ObjectPayload, _Mapping]]] = ..., num_returns: _Optional[int] = ..., caller: _Optional[_Union[Address, _Mapping]] = ..., attempt: _Optional[int] = ..., retry_exceptions: _Optional[bool] = ..., retry_exception_types: _Optional[bytes] = ..., name: _Optional[str] = ..., context: _Optional[str] = ..., resources: _Optional[_Union[ResourceSet, _Mapping]] = ..., kind: _Optional[_Union[TaskKind, str]] = ..., actor_id: _Optional[bytes] = ..., method: _Optional[str] = ..., max_concurrency: _Optional[int] = ..., is_async: _Optional[bool] = ..., class_name: _Optional[str] = ..., returns_kind: _Optional[_Union[ReturnsKind, str]] = ..., generator_backpressure: _Optional[int] = ..., concurrency_groups: _Optional[_Mapping[str, int]] = ..., concurrency_group: _Optional[str] = ..., placement_group_id: _Optional[bytes] = ..., placement_group_capture: _Optional[bool] = ..., gpu_ids: _Optional[_Iterable[int]] = ...) -> None: ...
