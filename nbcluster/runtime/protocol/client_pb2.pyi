from nbcluster.runtime.protocol import common_pb2 as _common_pb2
from nbcluster.runtime.protocol import gcs_pb2 as _gcs_pb2
from nbcluster.runtime.protocol import node_manager_pb2 as _node_manager_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ClientAttachRequest(_message.Message):
    __slots__ = ("endpoint",)
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    endpoint: str
    def __init__(self, endpoint: _Optional[str] = ...) -> None: ...

class ClientAttachReply(_message.Message):
    __slots__ = ("job_id", "namespace", "address", "node_ip", "inline_threshold")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    NODE_IP_FIELD_NUMBER: _ClassVar[int]
    INLINE_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    job_id: bytes
    namespace: str
    address: _common_pb2.Address
    node_ip: str
    inline_threshold: int
    def __init__(self, job_id: _Optional[bytes] = ..., namespace: _Optional[str] = ..., address: _Optional[_Union[_common_pb2.Address, _Mapping]] = ..., node_ip: _Optional[str] = ..., inline_threshold: _Optional[int] = ...) -> None: ...

class ClientPlacement(_message.Message):
    __slots__ = ("strategy", "node_id", "soft", "placement_group_id", "placement_group_capture")
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    SOFT_FIELD_NUMBER: _ClassVar[int]
    PLACEMENT_GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    PLACEMENT_GROUP_CAPTURE_FIELD_NUMBER: _ClassVar[int]
    strategy: _node_manager_pb2.SchedulingStrategy
    node_id: bytes
    soft: bool
    placement_group_id: bytes
    placement_group_capture: bool
    def __init__(self, strategy: _Optional[_Union[_node_manager_pb2.SchedulingStrategy, str]] = ..., node_id: _Optional[bytes] = ..., soft: _Optional[bool] = ..., placement_group_id: _Optional[bytes] = ..., placement_group_capture: _Optional[bool] = ...) -> None: ...

class ClientTask(_message.Message):
    __slots__ = ("task_id", "function", "args", "top_refs", "contained", "resources", "num_returns", "max_retries", "retry_exceptions", "retry_exception_types", "name", "placement", "context", "actor_id", "class_name", "method", "handle_id", "returns_kind", "generator_backpressure", "concurrency_group", "runtime_env_json")
    class ResourcesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    FUNCTION_FIELD_NUMBER: _ClassVar[int]
    ARGS_FIELD_NUMBER: _ClassVar[int]
    TOP_REFS_FIELD_NUMBER: _ClassVar[int]
    CONTAINED_FIELD_NUMBER: _ClassVar[int]
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    NUM_RETURNS_FIELD_NUMBER: _ClassVar[int]
    MAX_RETRIES_FIELD_NUMBER: _ClassVar[int]
    RETRY_EXCEPTIONS_FIELD_NUMBER: _ClassVar[int]
    RETRY_EXCEPTION_TYPES_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PLACEMENT_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    ACTOR_ID_FIELD_NUMBER: _ClassVar[int]
    CLASS_NAME_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    HANDLE_ID_FIELD_NUMBER: _ClassVar[int]
    RETURNS_KIND_FIELD_NUMBER: _ClassVar[int]
    GENERATOR_BACKPRESSURE_FIELD_NUMBER: _ClassVar[int]
    CONCURRENCY_GROUP_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_ENV_JSON_FIELD_NUMBER: _ClassVar[int]
    task_id: bytes
    function: _common_pb2.FunctionDescriptor
    args: _common_pb2.ObjectPayload
    top_refs: _containers.RepeatedScalarFieldContainer[bytes]
    contained: _containers.RepeatedScalarFieldContainer[bytes]
    resources: _containers.ScalarMap[str, float]
    num_returns: int
    max_retries: int
    retry_exceptions: bool
    retry_exception_types: bytes
    name: str
    placement: ClientPlacement
    context: str
    actor_id: bytes
    class_name: str
    method: str
    handle_id: bytes
    returns_kind: _common_pb2.ReturnsKind
    generator_backpressure: int
    concurrency_group: str
    runtime_env_json: str
    def __init__(self, task_id: _Optional[bytes] = ..., function: _Optional[_Union[_common_pb2.FunctionDescriptor, _Mapping]] = ..., args: _Optional[_Union[_common_pb2.ObjectPayload, _Mapping]] = ..., top_refs: _Optional[_Iterable[bytes]] = ..., contained: _Optional[_Iterable[bytes]] = ..., resources: _Optional[_Mapping[str, float]] = ..., num_returns: _Optional[int] = ..., max_retries: _Optional[int] = ..., retry_exceptions: _Optional[bool] = ..., retry_exception_types: _Optional[bytes] = ..., name: _Optional[str] = ..., placement: _Optional[_Union[ClientPlacement, _Mapping]] = ..., context: _Optional[str] = ..., actor_id: _Optional[bytes] = ..., class_name: _Optional[str] = ..., method: _Optional[str] = ..., handle_id: _Optional[bytes] = ..., returns_kind: _Optional[_Union[_common_pb2.ReturnsKind, str]] = ..., generator_backpressure: _Optional[int] = ..., concurrency_group: _Optional[str] = ..., runtime_env_json: _Optional[str] = ...) -> None: ...

class ClientSubmitRequest(_message.Message):
    __slots__ = ("tasks",)
    TASKS_FIELD_NUMBER: _ClassVar[int]
    tasks: _containers.RepeatedCompositeFieldContainer[ClientTask]
    def __init__(self, tasks: _Optional[_Iterable[_Union[ClientTask, _Mapping]]] = ...) -> None: ...

class ClientCreateActorRequest(_message.Message):
    __slots__ = ("info", "cls", "args", "top_refs", "contained", "get_if_exists")
    INFO_FIELD_NUMBER: _ClassVar[int]
    CLS_FIELD_NUMBER: _ClassVar[int]
    ARGS_FIELD_NUMBER: _ClassVar[int]
    TOP_REFS_FIELD_NUMBER: _ClassVar[int]
    CONTAINED_FIELD_NUMBER: _ClassVar[int]
    GET_IF_EXISTS_FIELD_NUMBER: _ClassVar[int]
    info: _gcs_pb2.ActorInfo
    cls: _common_pb2.FunctionDescriptor
    args: _common_pb2.ObjectPayload
    top_refs: _containers.RepeatedScalarFieldContainer[bytes]
    contained: _containers.RepeatedScalarFieldContainer[bytes]
    get_if_exists: bool
    def __init__(self, info: _Optional[_Union[_gcs_pb2.ActorInfo, _Mapping]] = ..., cls: _Optional[_Union[_common_pb2.FunctionDescriptor, _Mapping]] = ..., args: _Optional[_Union[_common_pb2.ObjectPayload, _Mapping]] = ..., top_refs: _Optional[_Iterable[bytes]] = ..., contained: _Optional[_Iterable[bytes]] = ..., get_if_exists: _Optional[bool] = ...) -> None: ...

class ClientCreateActorReply(_message.Message):
    __slots__ = ("actor", "handle")
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    HANDLE_FIELD_NUMBER: _ClassVar[int]
    actor: _gcs_pb2.ActorInfo
    handle: _common_pb2.ObjectRefInfo
    def __init__(self, actor: _Optional[_Union[_gcs_pb2.ActorInfo, _Mapping]] = ..., handle: _Optional[_Union[_common_pb2.ObjectRefInfo, _Mapping]] = ...) -> None: ...

class ClientBorrowActorRequest(_message.Message):
    __slots__ = ("actor",)
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    actor: _gcs_pb2.ActorInfo
    def __init__(self, actor: _Optional[_Union[_gcs_pb2.ActorInfo, _Mapping]] = ...) -> None: ...

class ClientPutRequest(_message.Message):
    __slots__ = ("object_id", "total_size", "offset", "data", "last", "contained", "for_task")
    OBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    LAST_FIELD_NUMBER: _ClassVar[int]
    CONTAINED_FIELD_NUMBER: _ClassVar[int]
    FOR_TASK_FIELD_NUMBER: _ClassVar[int]
    object_id: bytes
    total_size: int
    offset: int
    data: bytes
    last: bool
    contained: _containers.RepeatedScalarFieldContainer[bytes]
    for_task: bool
    def __init__(self, object_id: _Optional[bytes] = ..., total_size: _Optional[int] = ..., offset: _Optional[int] = ..., data: _Optional[bytes] = ..., last: _Optional[bool] = ..., contained: _Optional[_Iterable[bytes]] = ..., for_task: _Optional[bool] = ...) -> None: ...

class ClientGetRequest(_message.Message):
    __slots__ = ("object_ids", "timeout")
    OBJECT_IDS_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    object_ids: _containers.RepeatedScalarFieldContainer[bytes]
    timeout: float
    def __init__(self, object_ids: _Optional[_Iterable[bytes]] = ..., timeout: _Optional[float] = ...) -> None: ...

class ClientObject(_message.Message):
    __slots__ = ("object_id", "size", "data", "stored", "is_error")
    OBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    STORED_FIELD_NUMBER: _ClassVar[int]
    IS_ERROR_FIELD_NUMBER: _ClassVar[int]
    object_id: bytes
    size: int
    data: bytes
    stored: bool
    is_error: bool
    def __init__(self, object_id: _Optional[bytes] = ..., size: _Optional[int] = ..., data: _Optional[bytes] = ..., stored: _Optional[bool] = ..., is_error: _Optional[bool] = ...) -> None: ...

class ClientGetReply(_message.Message):
    __slots__ = ("objects", "timed_out")
    OBJECTS_FIELD_NUMBER: _ClassVar[int]
    TIMED_OUT_FIELD_NUMBER: _ClassVar[int]
    objects: _containers.RepeatedCompositeFieldContainer[ClientObject]
    timed_out: bool
    def __init__(self, objects: _Optional[_Iterable[_Union[ClientObject, _Mapping]]] = ..., timed_out: _Optional[bool] = ...) -> None: ...

class ClientReadRequest(_message.Message):
    __slots__ = ("object_id", "offset", "length", "done")
    OBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    LENGTH_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    object_id: bytes
    offset: int
    length: int
    done: bool
    def __init__(self, object_id: _Optional[bytes] = ..., offset: _Optional[int] = ..., length: _Optional[int] = ..., done: _Optional[bool] = ...) -> None: ...

class ClientReadReply(_message.Message):
    __slots__ = ("data",)
    DATA_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    def __init__(self, data: _Optional[bytes] = ...) -> None: ...

class ClientWaitRequest(_message.Message):
    __slots__ = ("object_ids", "num_returns", "timeout", "generators")
    OBJECT_IDS_FIELD_NUMBER: _ClassVar[int]
    NUM_RETURNS_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    GENERATORS_FIELD_NUMBER: _ClassVar[int]
    object_ids: _containers.RepeatedScalarFieldContainer[bytes]
    num_returns: int
    timeout: float
    generators: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, object_ids: _Optional[_Iterable[bytes]] = ..., num_returns: _Optional[int] = ..., timeout: _Optional[float] = ..., generators: _Optional[_Iterable[bytes]] = ...) -> None: ...

class ClientWaitReply(_message.Message):
    __slots__ = ("ready",)
    READY_FIELD_NUMBER: _ClassVar[int]
    ready: _containers.RepeatedScalarFieldContainer[bool]
    def __init__(self, ready: _Optional[_Iterable[bool]] = ...) -> None: ...

class ClientGeneratorNextRequest(_message.Message):
    __slots__ = ("task_id", "peek")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    PEEK_FIELD_NUMBER: _ClassVar[int]
    task_id: bytes
    peek: bool
    def __init__(self, task_id: _Optional[bytes] = ..., peek: _Optional[bool] = ...) -> None: ...

class ClientGeneratorNextReply(_message.Message):
    __slots__ = ("object_id", "ready", "finished")
    OBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    READY_FIELD_NUMBER: _ClassVar[int]
    FINISHED_FIELD_NUMBER: _ClassVar[int]
    object_id: bytes
    ready: bool
    finished: bool
    def __init__(self, object_id: _Optional[bytes] = ..., ready: _Optional[bool] = ..., finished: _Optional[bool] = ...) -> None: ...

class ClientHoldRequest(_message.Message):
    __slots__ = ("refs",)
    REFS_FIELD_NUMBER: _ClassVar[int]
    refs: _containers.RepeatedCompositeFieldContainer[_common_pb2.ObjectRefInfo]
    def __init__(self, refs: _Optional[_Iterable[_Union[_common_pb2.ObjectRefInfo, _Mapping]]] = ...) -> None: ...

class ClientCancelRequest(_message.Message):
    __slots__ = ("object_id", "force", "recursive", "context")
    OBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    RECURSIVE_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    object_id: bytes
    force: bool
    recursive: bool
    context: str
    def __init__(self, object_id: _Optional[bytes] = ..., force: _Optional[bool] = ..., recursive: _Optional[bool] = ..., context: _Optional[str] = ...) -> None: ...

class ClientCancelReply(_message.Message):
    __slots__ = ("cancelled",)
    CANCELLED_FIELD_NUMBER: _ClassVar[int]
    cancelled: int
    def __init__(self, cancelled: _Optional[int] = ...) -> None: ...
