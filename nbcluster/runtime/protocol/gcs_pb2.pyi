from nbcluster.runtime.protocol import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class NodeState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    NODE_STATE_UNSPECIFIED: _ClassVar[NodeState]
    NODE_STATE_ALIVE: _ClassVar[NodeState]
    NODE_STATE_DEAD: _ClassVar[NodeState]

class DrainReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DRAIN_REASON_UNSPECIFIED: _ClassVar[DrainReason]
    DRAIN_REASON_IDLE_TERMINATION: _ClassVar[DrainReason]
    DRAIN_REASON_SHUTDOWN: _ClassVar[DrainReason]

class JobType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_TYPE_UNSPECIFIED: _ClassVar[JobType]
    JOB_TYPE_DRIVER: _ClassVar[JobType]
    JOB_TYPE_SUBMISSION: _ClassVar[JobType]

class JobState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_STATE_UNSPECIFIED: _ClassVar[JobState]
    JOB_STATE_PENDING: _ClassVar[JobState]
    JOB_STATE_RUNNING: _ClassVar[JobState]
    JOB_STATE_SUCCEEDED: _ClassVar[JobState]
    JOB_STATE_FAILED: _ClassVar[JobState]
    JOB_STATE_STOPPED: _ClassVar[JobState]

class EventKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EVENT_KIND_UNSPECIFIED: _ClassVar[EventKind]
    EVENT_KIND_NODE_ADDED: _ClassVar[EventKind]
    EVENT_KIND_NODE_DEAD: _ClassVar[EventKind]
    EVENT_KIND_NODE_STATE: _ClassVar[EventKind]
    EVENT_KIND_JOB_STATE: _ClassVar[EventKind]
    EVENT_KIND_ACTOR_STATE: _ClassVar[EventKind]
    EVENT_KIND_AUTOSCALER: _ClassVar[EventKind]
    EVENT_KIND_TASK_COUNTERS: _ClassVar[EventKind]
    EVENT_KIND_LOG: _ClassVar[EventKind]
    EVENT_KIND_CUSTOM: _ClassVar[EventKind]
    EVENT_KIND_PLACEMENT_GROUP: _ClassVar[EventKind]
    EVENT_KIND_LIVE: _ClassVar[EventKind]

class ActorState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ACTOR_STATE_UNSPECIFIED: _ClassVar[ActorState]
    ACTOR_STATE_PENDING: _ClassVar[ActorState]
    ACTOR_STATE_ALIVE: _ClassVar[ActorState]
    ACTOR_STATE_RESTARTING: _ClassVar[ActorState]
    ACTOR_STATE_DEAD: _ClassVar[ActorState]

class PlacementStrategy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PLACEMENT_STRATEGY_UNSPECIFIED: _ClassVar[PlacementStrategy]
    PLACEMENT_STRATEGY_PACK: _ClassVar[PlacementStrategy]
    PLACEMENT_STRATEGY_SPREAD: _ClassVar[PlacementStrategy]
    PLACEMENT_STRATEGY_STRICT_PACK: _ClassVar[PlacementStrategy]
    PLACEMENT_STRATEGY_STRICT_SPREAD: _ClassVar[PlacementStrategy]

class PlacementGroupState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PLACEMENT_GROUP_STATE_UNSPECIFIED: _ClassVar[PlacementGroupState]
    PLACEMENT_GROUP_STATE_PENDING: _ClassVar[PlacementGroupState]
    PLACEMENT_GROUP_STATE_CREATED: _ClassVar[PlacementGroupState]
    PLACEMENT_GROUP_STATE_REMOVED: _ClassVar[PlacementGroupState]
    PLACEMENT_GROUP_STATE_RESCHEDULING: _ClassVar[PlacementGroupState]
NODE_STATE_UNSPECIFIED: NodeState
NODE_STATE_ALIVE: NodeState
NODE_STATE_DEAD: NodeState
DRAIN_REASON_UNSPECIFIED: DrainReason
DRAIN_REASON_IDLE_TERMINATION: DrainReason
DRAIN_REASON_SHUTDOWN: DrainReason
JOB_TYPE_UNSPECIFIED: JobType
JOB_TYPE_DRIVER: JobType
JOB_TYPE_SUBMISSION: JobType
JOB_STATE_UNSPECIFIED: JobState
JOB_STATE_PENDING: JobState
JOB_STATE_RUNNING: JobState
JOB_STATE_SUCCEEDED: JobState
JOB_STATE_FAILED: JobState
JOB_STATE_STOPPED: JobState
EVENT_KIND_UNSPECIFIED: EventKind
EVENT_KIND_NODE_ADDED: EventKind
EVENT_KIND_NODE_DEAD: EventKind
EVENT_KIND_NODE_STATE: EventKind
EVENT_KIND_JOB_STATE: EventKind
EVENT_KIND_ACTOR_STATE: EventKind
EVENT_KIND_AUTOSCALER: EventKind
EVENT_KIND_TASK_COUNTERS: EventKind
EVENT_KIND_LOG: EventKind
EVENT_KIND_CUSTOM: EventKind
EVENT_KIND_PLACEMENT_GROUP: EventKind
EVENT_KIND_LIVE: EventKind
ACTOR_STATE_UNSPECIFIED: ActorState
ACTOR_STATE_PENDING: ActorState
ACTOR_STATE_ALIVE: ActorState
ACTOR_STATE_RESTARTING: ActorState
ACTOR_STATE_DEAD: ActorState
PLACEMENT_STRATEGY_UNSPECIFIED: PlacementStrategy
PLACEMENT_STRATEGY_PACK: PlacementStrategy
PLACEMENT_STRATEGY_SPREAD: PlacementStrategy
PLACEMENT_STRATEGY_STRICT_PACK: PlacementStrategy
PLACEMENT_STRATEGY_STRICT_SPREAD: PlacementStrategy
PLACEMENT_GROUP_STATE_UNSPECIFIED: PlacementGroupState
PLACEMENT_GROUP_STATE_PENDING: PlacementGroupState
PLACEMENT_GROUP_STATE_CREATED: PlacementGroupState
PLACEMENT_GROUP_STATE_REMOVED: PlacementGroupState
PLACEMENT_GROUP_STATE_RESCHEDULING: PlacementGroupState

class NodeInfo(_message.Message):
    __slots__ = ("node_id", "state", "address", "local_endpoint", "hostname", "node_ip", "total", "available", "is_head", "start_time", "end_time", "death_reason", "node_type", "object_store_used", "object_store_capacity", "num_workers", "tasks_running", "pending_demand", "session_dir", "pid", "object_address", "idle", "idle_for_s", "draining", "instance_id", "pending_actor_demand", "memory_used", "memory_total", "drain_reason", "drain_message", "drain_deadline")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    LOCAL_ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    NODE_IP_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    IS_HEAD_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    DEATH_REASON_FIELD_NUMBER: _ClassVar[int]
    NODE_TYPE_FIELD_NUMBER: _ClassVar[int]
    OBJECT_STORE_USED_FIELD_NUMBER: _ClassVar[int]
    OBJECT_STORE_CAPACITY_FIELD_NUMBER: _ClassVar[int]
    NUM_WORKERS_FIELD_NUMBER: _ClassVar[int]
    TASKS_RUNNING_FIELD_NUMBER: _ClassVar[int]
    PENDING_DEMAND_FIELD_NUMBER: _ClassVar[int]
    SESSION_DIR_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    OBJECT_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    IDLE_FIELD_NUMBER: _ClassVar[int]
    IDLE_FOR_S_FIELD_NUMBER: _ClassVar[int]
    DRAINING_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    PENDING_ACTOR_DEMAND_FIELD_NUMBER: _ClassVar[int]
    MEMORY_USED_FIELD_NUMBER: _ClassVar[int]
    MEMORY_TOTAL_FIELD_NUMBER: _ClassVar[int]
    DRAIN_REASON_FIELD_NUMBER: _ClassVar[int]
    DRAIN_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    DRAIN_DEADLINE_FIELD_NUMBER: _ClassVar[int]
    node_id: bytes
    state: NodeState
    address: str
    local_endpoint: str
    hostname: str
    node_ip: str
    total: _common_pb2.ResourceSet
    available: _common_pb2.ResourceSet
    is_head: bool
    start_time: float
    end_time: float
    death_reason: str
    node_type: str
    object_store_used: int
    object_store_capacity: int
    num_workers: int
    tasks_running: int
    pending_demand: _containers.RepeatedCompositeFieldContainer[_common_pb2.ResourceSet]
    session_dir: str
    pid: int
    object_address: str
    idle: bool
    idle_for_s: float
    draining: bool
    instance_id: str
    pending_actor_demand: _containers.RepeatedCompositeFieldContainer[_common_pb2.ResourceSet]
    memory_used: int
    memory_total: int
    drain_reason: DrainReason
    drain_message: str
    drain_deadline: float
    def __init__(self, node_id: _Optional[bytes] = ..., state: _Optional[_Union[NodeState, str]] = ..., address: _Optional[str] = ..., local_endpoint: _Optional[str] = ..., hostname: _Optional[str] = ..., node_ip: _Optional[str] = ..., total: _Optional[_Union[_common_pb2.ResourceSet, _Mapping]] = ..., available: _Optional[_Union[_common_pb2.ResourceSet, _Mapping]] = ..., is_head: _Optional[bool] = ..., start_time: _Optional[float] = ..., end_time: _Optional[float] = ..., death_reason: _Optional[str] = ..., node_type: _Optional[str] = ..., object_store_used: _Optional[int] = ..., object_store_capacity: _Optional[int] = ..., num_workers: _Optional[int] = ..., tasks_running: _Optional[int] = ..., pending_demand: _Optional[_Iterable[_Union[_common_pb2.ResourceSet, _Mapping]]] = ..., session_dir: _Optional[str] = ..., pid: _Optional[int] = ..., object_address: _Optional[str] = ..., idle: _Optional[bool] = ..., idle_for_s: _Optional[float] = ..., draining: _Optional[bool] = ..., instance_id: _Optional[str] = ..., pending_actor_demand: _Optional[_Iterable[_Union[_common_pb2.ResourceSet, _Mapping]]] = ..., memory_used: _Optional[int] = ..., memory_total: _Optional[int] = ..., drain_reason: _Optional[_Union[DrainReason, str]] = ..., drain_message: _Optional[str] = ..., drain_deadline: _Optional[float] = ...) -> None: ...

class RegisterNodeRequest(_message.Message):
    __slots__ = ("node", "node_secret")
    NODE_FIELD_NUMBER: _ClassVar[int]
    NODE_SECRET_FIELD_NUMBER: _ClassVar[int]
    node: NodeInfo
    node_secret: bytes
    def __init__(self, node: _Optional[_Union[NodeInfo, _Mapping]] = ..., node_secret: _Optional[bytes] = ...) -> None: ...

class RegisterNodeReply(_message.Message):
    __slots__ = ("nodes", "launchable")
    NODES_FIELD_NUMBER: _ClassVar[int]
    LAUNCHABLE_FIELD_NUMBER: _ClassVar[int]
    nodes: _containers.RepeatedCompositeFieldContainer[NodeInfo]
    launchable: _containers.RepeatedCompositeFieldContainer[_common_pb2.ResourceSet]
    def __init__(self, nodes: _Optional[_Iterable[_Union[NodeInfo, _Mapping]]] = ..., launchable: _Optional[_Iterable[_Union[_common_pb2.ResourceSet, _Mapping]]] = ...) -> None: ...

class UnregisterNodeRequest(_message.Message):
    __slots__ = ("node_id", "reason", "node_secret")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    NODE_SECRET_FIELD_NUMBER: _ClassVar[int]
    node_id: bytes
    reason: str
    node_secret: bytes
    def __init__(self, node_id: _Optional[bytes] = ..., reason: _Optional[str] = ..., node_secret: _Optional[bytes] = ...) -> None: ...

class ReportNodeStateRequest(_message.Message):
    __slots__ = ("node", "node_secret", "view_epoch", "view_version")
    NODE_FIELD_NUMBER: _ClassVar[int]
    NODE_SECRET_FIELD_NUMBER: _ClassVar[int]
    VIEW_EPOCH_FIELD_NUMBER: _ClassVar[int]
    VIEW_VERSION_FIELD_NUMBER: _ClassVar[int]
    node: NodeInfo
    node_secret: bytes
    view_epoch: int
    view_version: int
    def __init__(self, node: _Optional[_Union[NodeInfo, _Mapping]] = ..., node_secret: _Optional[bytes] = ..., view_epoch: _Optional[int] = ..., view_version: _Optional[int] = ...) -> None: ...

class ReportNodeStateReply(_message.Message):
    __slots__ = ("nodes", "launchable", "view_epoch", "view_version", "view_delta")
    NODES_FIELD_NUMBER: _ClassVar[int]
    LAUNCHABLE_FIELD_NUMBER: _ClassVar[int]
    VIEW_EPOCH_FIELD_NUMBER: _ClassVar[int]
    VIEW_VERSION_FIELD_NUMBER: _ClassVar[int]
    VIEW_DELTA_FIELD_NUMBER: _ClassVar[int]
    nodes: _containers.RepeatedCompositeFieldContainer[NodeInfo]
    launchable: _containers.RepeatedCompositeFieldContainer[_common_pb2.ResourceSet]
    view_epoch: int
    view_version: int
    view_delta: bool
    def __init__(self, nodes: _Optional[_Iterable[_Union[NodeInfo, _Mapping]]] = ..., launchable: _Optional[_Iterable[_Union[_common_pb2.ResourceSet, _Mapping]]] = ..., view_epoch: _Optional[int] = ..., view_version: _Optional[int] = ..., view_delta: _Optional[bool] = ...) -> None: ...

class GetAllNodesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetAllNodesReply(_message.Message):
    __slots__ = ("nodes",)
    NODES_FIELD_NUMBER: _ClassVar[int]
    nodes: _containers.RepeatedCompositeFieldContainer[NodeInfo]
    def __init__(self, nodes: _Optional[_Iterable[_Union[NodeInfo, _Mapping]]] = ...) -> None: ...

class JobInfo(_message.Message):
    __slots__ = ("job_id", "type", "state", "driver", "driver_pid", "entrypoint", "start_time", "end_time", "config", "message", "driver_hostname", "submission_id", "metadata", "runtime_env_json", "entrypoint_resources", "has_exit_code", "exit_code", "supervisor_node_id", "supervisor_pid")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    DRIVER_FIELD_NUMBER: _ClassVar[int]
    DRIVER_PID_FIELD_NUMBER: _ClassVar[int]
    ENTRYPOINT_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    DRIVER_HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    SUBMISSION_ID_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_ENV_JSON_FIELD_NUMBER: _ClassVar[int]
    ENTRYPOINT_RESOURCES_FIELD_NUMBER: _ClassVar[int]
    HAS_EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    SUPERVISOR_NODE_ID_FIELD_NUMBER: _ClassVar[int]
    SUPERVISOR_PID_FIELD_NUMBER: _ClassVar[int]
    job_id: bytes
    type: JobType
    state: JobState
    driver: _common_pb2.Address
    driver_pid: int
    entrypoint: str
    start_time: float
    end_time: float
    config: _common_pb2.JobConfig
    message: str
    driver_hostname: str
    submission_id: str
    metadata: _containers.ScalarMap[str, str]
    runtime_env_json: str
    entrypoint_resources: _common_pb2.ResourceSet
    has_exit_code: bool
    exit_code: int
    supervisor_node_id: bytes
    supervisor_pid: int
    def __init__(self, job_id: _Optional[bytes] = ..., type: _Optional[_Union[JobType, str]] = ..., state: _Optional[_Union[JobState, str]] = ..., driver: _Optional[_Union[_common_pb2.Address, _Mapping]] = ..., driver_pid: _Optional[int] = ..., entrypoint: _Optional[str] = ..., start_time: _Optional[float] = ..., end_time: _Optional[float] = ..., config: _Optional[_Union[_common_pb2.JobConfig, _Mapping]] = ..., message: _Optional[str] = ..., driver_hostname: _Optional[str] = ..., submission_id: _Optional[str] = ..., metadata: _Optional[_Mapping[str, str]] = ..., runtime_env_json: _Optional[str] = ..., entrypoint_resources: _Optional[_Union[_common_pb2.ResourceSet, _Mapping]] = ..., has_exit_code: _Optional[bool] = ..., exit_code: _Optional[int] = ..., supervisor_node_id: _Optional[bytes] = ..., supervisor_pid: _Optional[int] = ...) -> None: ...

class RegisterJobRequest(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: JobInfo
    def __init__(self, job: _Optional[_Union[JobInfo, _Mapping]] = ...) -> None: ...

class RegisterJobReply(_message.Message):
    __slots__ = ("job_id", "session_dir", "head_node_id")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_DIR_FIELD_NUMBER: _ClassVar[int]
    HEAD_NODE_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: bytes
    session_dir: str
    head_node_id: bytes
    def __init__(self, job_id: _Optional[bytes] = ..., session_dir: _Optional[str] = ..., head_node_id: _Optional[bytes] = ...) -> None: ...

class ReportJobRequest(_message.Message):
    __slots__ = ("job_id", "logs", "started", "pid", "exited", "exit_code", "stopped", "message")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    LOGS_FIELD_NUMBER: _ClassVar[int]
    STARTED_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    EXITED_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    STOPPED_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    job_id: bytes
    logs: bytes
    started: bool
    pid: int
    exited: bool
    exit_code: int
    stopped: bool
    message: str
    def __init__(self, job_id: _Optional[bytes] = ..., logs: _Optional[bytes] = ..., started: _Optional[bool] = ..., pid: _Optional[int] = ..., exited: _Optional[bool] = ..., exit_code: _Optional[int] = ..., stopped: _Optional[bool] = ..., message: _Optional[str] = ...) -> None: ...

class ReportJobReply(_message.Message):
    __slots__ = ("stop",)
    STOP_FIELD_NUMBER: _ClassVar[int]
    stop: bool
    def __init__(self, stop: _Optional[bool] = ...) -> None: ...

class FinishJobRequest(_message.Message):
    __slots__ = ("job_id", "state", "message")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    job_id: bytes
    state: JobState
    message: str
    def __init__(self, job_id: _Optional[bytes] = ..., state: _Optional[_Union[JobState, str]] = ..., message: _Optional[str] = ...) -> None: ...

class UpdateJobMetadataRequest(_message.Message):
    __slots__ = ("job_id", "metadata")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    job_id: bytes
    metadata: _containers.ScalarMap[str, str]
    def __init__(self, job_id: _Optional[bytes] = ..., metadata: _Optional[_Mapping[str, str]] = ...) -> None: ...

class UpdateJobMetadataReply(_message.Message):
    __slots__ = ("job", "changed")
    JOB_FIELD_NUMBER: _ClassVar[int]
    CHANGED_FIELD_NUMBER: _ClassVar[int]
    job: JobInfo
    changed: bool
    def __init__(self, job: _Optional[_Union[JobInfo, _Mapping]] = ..., changed: _Optional[bool] = ...) -> None: ...

class GetAllJobsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetAllJobsReply(_message.Message):
    __slots__ = ("jobs", "progress")
    JOBS_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[JobInfo]
    progress: _containers.RepeatedCompositeFieldContainer[JobProgress]
    def __init__(self, jobs: _Optional[_Iterable[_Union[JobInfo, _Mapping]]] = ..., progress: _Optional[_Iterable[_Union[JobProgress, _Mapping]]] = ...) -> None: ...

class JobProgress(_message.Message):
    __slots__ = ("job_id", "submitted", "running", "finished", "failed")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    SUBMITTED_FIELD_NUMBER: _ClassVar[int]
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    FINISHED_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    job_id: bytes
    submitted: int
    running: int
    finished: int
    failed: int
    def __init__(self, job_id: _Optional[bytes] = ..., submitted: _Optional[int] = ..., running: _Optional[int] = ..., finished: _Optional[int] = ..., failed: _Optional[int] = ...) -> None: ...

class KvPutRequest(_message.Message):
    __slots__ = ("namespace", "key", "value", "overwrite")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    OVERWRITE_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    key: bytes
    value: bytes
    overwrite: bool
    def __init__(self, namespace: _Optional[str] = ..., key: _Optional[bytes] = ..., value: _Optional[bytes] = ..., overwrite: _Optional[bool] = ...) -> None: ...

class KvPutReply(_message.Message):
    __slots__ = ("added",)
    ADDED_FIELD_NUMBER: _ClassVar[int]
    added: bool
    def __init__(self, added: _Optional[bool] = ...) -> None: ...

class KvGetRequest(_message.Message):
    __slots__ = ("namespace", "key")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    key: bytes
    def __init__(self, namespace: _Optional[str] = ..., key: _Optional[bytes] = ...) -> None: ...

class KvGetReply(_message.Message):
    __slots__ = ("found", "value")
    FOUND_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    found: bool
    value: bytes
    def __init__(self, found: _Optional[bool] = ..., value: _Optional[bytes] = ...) -> None: ...

class KvDelRequest(_message.Message):
    __slots__ = ("namespace", "key", "by_prefix")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    BY_PREFIX_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    key: bytes
    by_prefix: bool
    def __init__(self, namespace: _Optional[str] = ..., key: _Optional[bytes] = ..., by_prefix: _Optional[bool] = ...) -> None: ...

class KvDelReply(_message.Message):
    __slots__ = ("deleted",)
    DELETED_FIELD_NUMBER: _ClassVar[int]
    deleted: int
    def __init__(self, deleted: _Optional[int] = ...) -> None: ...

class KvKeysRequest(_message.Message):
    __slots__ = ("namespace", "prefix")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    PREFIX_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    prefix: bytes
    def __init__(self, namespace: _Optional[str] = ..., prefix: _Optional[bytes] = ...) -> None: ...

class KvKeysReply(_message.Message):
    __slots__ = ("keys",)
    KEYS_FIELD_NUMBER: _ClassVar[int]
    keys: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, keys: _Optional[_Iterable[bytes]] = ...) -> None: ...

class Event(_message.Message):
    __slots__ = ("seq", "kind", "time", "message", "node_id", "job_id", "data_json", "source")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    DATA_JSON_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    seq: int
    kind: EventKind
    time: float
    message: str
    node_id: bytes
    job_id: bytes
    data_json: str
    source: str
    def __init__(self, seq: _Optional[int] = ..., kind: _Optional[_Union[EventKind, str]] = ..., time: _Optional[float] = ..., message: _Optional[str] = ..., node_id: _Optional[bytes] = ..., job_id: _Optional[bytes] = ..., data_json: _Optional[str] = ..., source: _Optional[str] = ...) -> None: ...

class PublishRequest(_message.Message):
    __slots__ = ("events",)
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[Event]
    def __init__(self, events: _Optional[_Iterable[_Union[Event, _Mapping]]] = ...) -> None: ...

class WatchRequest(_message.Message):
    __slots__ = ("kinds", "after_seq", "replay", "mark_live")
    KINDS_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQ_FIELD_NUMBER: _ClassVar[int]
    REPLAY_FIELD_NUMBER: _ClassVar[int]
    MARK_LIVE_FIELD_NUMBER: _ClassVar[int]
    kinds: _containers.RepeatedScalarFieldContainer[EventKind]
    after_seq: int
    replay: bool
    mark_live: bool
    def __init__(self, kinds: _Optional[_Iterable[_Union[EventKind, str]]] = ..., after_seq: _Optional[int] = ..., replay: _Optional[bool] = ..., mark_live: _Optional[bool] = ...) -> None: ...

class ActorMethod(_message.Message):
    __slots__ = ("name", "num_returns", "is_async", "returns_kind", "generator_backpressure", "signature")
    NAME_FIELD_NUMBER: _ClassVar[int]
    NUM_RETURNS_FIELD_NUMBER: _ClassVar[int]
    IS_ASYNC_FIELD_NUMBER: _ClassVar[int]
    RETURNS_KIND_FIELD_NUMBER: _ClassVar[int]
    GENERATOR_BACKPRESSURE_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    name: str
    num_returns: int
    is_async: bool
    returns_kind: _common_pb2.ReturnsKind
    generator_backpressure: int
    signature: str
    def __init__(self, name: _Optional[str] = ..., num_returns: _Optional[int] = ..., is_async: _Optional[bool] = ..., returns_kind: _Optional[_Union[_common_pb2.ReturnsKind, str]] = ..., generator_backpressure: _Optional[int] = ..., signature: _Optional[str] = ...) -> None: ...

class ActorInfo(_message.Message):
    __slots__ = ("actor_id", "name", "namespace", "class_name", "state", "job_id", "owner", "detached", "address", "node_id", "pid", "num_restarts", "max_restarts", "max_task_retries", "death_cause", "resources", "placement_resources", "max_concurrency", "is_async", "methods", "version", "start_time", "end_time", "creation_task", "scheduling_strategy", "affinity_node_id", "affinity_soft", "placement_group_id", "placement_group_capture", "job_config")
    ACTOR_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    CLASS_NAME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    DETACHED_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    NUM_RESTARTS_FIELD_NUMBER: _ClassVar[int]
    MAX_RESTARTS_FIELD_NUMBER: _ClassVar[int]
    MAX_TASK_RETRIES_FIELD_NUMBER: _ClassVar[int]
    DEATH_CAUSE_FIELD_NUMBER: _ClassVar[int]
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    PLACEMENT_RESOURCES_FIELD_NUMBER: _ClassVar[int]
    MAX_CONCURRENCY_FIELD_NUMBER: _ClassVar[int]
    IS_ASYNC_FIELD_NUMBER: _ClassVar[int]
    METHODS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    CREATION_TASK_FIELD_NUMBER: _ClassVar[int]
    SCHEDULING_STRATEGY_FIELD_NUMBER: _ClassVar[int]
    AFFINITY_NODE_ID_FIELD_NUMBER: _ClassVar[int]
    AFFINITY_SOFT_FIELD_NUMBER: _ClassVar[int]
    PLACEMENT_GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    PLACEMENT_GROUP_CAPTURE_FIELD_NUMBER: _ClassVar[int]
    JOB_CONFIG_FIELD_NUMBER: _ClassVar[int]
    actor_id: bytes
    name: str
    namespace: str
    class_name: str
    state: ActorState
    job_id: bytes
    owner: _common_pb2.Address
    detached: bool
    address: _common_pb2.Address
    node_id: bytes
    pid: int
    num_restarts: int
    max_restarts: int
    max_task_retries: int
    death_cause: str
    resources: _common_pb2.ResourceSet
    placement_resources: _common_pb2.ResourceSet
    max_concurrency: int
    is_async: bool
    methods: _containers.RepeatedCompositeFieldContainer[ActorMethod]
    version: int
    start_time: float
    end_time: float
    creation_task: _common_pb2.TaskSpec
    scheduling_strategy: int
    affinity_node_id: bytes
    affinity_soft: bool
    placement_group_id: bytes
    placement_group_capture: bool
    job_config: _common_pb2.JobConfig
    def __init__(self, actor_id: _Optional[bytes] = ..., name: _Optional[str] = ..., namespace: _Optional[str] = ..., class_name: _Optional[str] = ..., state: _Optional[_Union[ActorState, str]] = ..., job_id: _Optional[bytes] = ..., owner: _Optional[_Union[_common_pb2.Address, _Mapping]] = ..., detached: _Optional[bool] = ..., address: _Optional[_Union[_common_pb2.Address, _Mapping]] = ..., node_id: _Optional[bytes] = ..., pid: _Optional[int] = ..., num_restarts: _Optional[int] = ..., max_restarts: _Optional[int] = ..., max_task_retries: _Optional[int] = ..., death_cause: _Optional[str] = ..., resources: _Optional[_Union[_common_pb2.ResourceSet, _Mapping]] = ..., placement_resources: _Optional[_Union[_common_pb2.ResourceSet, _Mapping]] = ..., max_concurrency: _Optional[int] = ..., is_async: _Optional[bool] = ..., methods: _Optional[_Iterable[_Union[ActorMethod, _Mapping]]] = ..., version: _Optional[int] = ..., start_time: _Optional[float] = ..., end_time: _Optional[float] = ..., creation_task: _Optional[_Union[_common_pb2.TaskSpec, _Mapping]] = ..., scheduling_strategy: _Optional[int] = ..., affinity_node_id: _Optional[bytes] = ..., affinity_soft: _Optional[bool] = ..., placement_group_id: _Optional[bytes] = ..., placement_group_capture: _Optional[bool] = ..., job_config: _Optional[_Union[_common_pb2.JobConfig, _Mapping]] = ...) -> None: ...

class CreateActorRequest(_message.Message):
    __slots__ = ("actor", "get_if_exists")
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    GET_IF_EXISTS_FIELD_NUMBER: _ClassVar[int]
    actor: ActorInfo
    get_if_exists: bool
    def __init__(self, actor: _Optional[_Union[ActorInfo, _Mapping]] = ..., get_if_exists: _Optional[bool] = ...) -> None: ...

class CreateActorReply(_message.Message):
    __slots__ = ("actor", "existed")
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    EXISTED_FIELD_NUMBER: _ClassVar[int]
    actor: ActorInfo
    existed: bool
    def __init__(self, actor: _Optional[_Union[ActorInfo, _Mapping]] = ..., existed: _Optional[bool] = ...) -> None: ...

class GetActorInfoRequest(_message.Message):
    __slots__ = ("actor_id", "name", "namespace", "after_version", "wait")
    ACTOR_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    AFTER_VERSION_FIELD_NUMBER: _ClassVar[int]
    WAIT_FIELD_NUMBER: _ClassVar[int]
    actor_id: bytes
    name: str
    namespace: str
    after_version: int
    wait: bool
    def __init__(self, actor_id: _Optional[bytes] = ..., name: _Optional[str] = ..., namespace: _Optional[str] = ..., after_version: _Optional[int] = ..., wait: _Optional[bool] = ...) -> None: ...

class GetActorInfoReply(_message.Message):
    __slots__ = ("found", "actor")
    FOUND_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    found: bool
    actor: ActorInfo
    def __init__(self, found: _Optional[bool] = ..., actor: _Optional[_Union[ActorInfo, _Mapping]] = ...) -> None: ...

class KillActorRequest(_message.Message):
    __slots__ = ("actor_id", "no_restart", "reason")
    ACTOR_ID_FIELD_NUMBER: _ClassVar[int]
    NO_RESTART_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    actor_id: bytes
    no_restart: bool
    reason: str
    def __init__(self, actor_id: _Optional[bytes] = ..., no_restart: _Optional[bool] = ..., reason: _Optional[str] = ...) -> None: ...

class ListActorsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListActorsReply(_message.Message):
    __slots__ = ("actors",)
    ACTORS_FIELD_NUMBER: _ClassVar[int]
    actors: _containers.RepeatedCompositeFieldContainer[ActorInfo]
    def __init__(self, actors: _Optional[_Iterable[_Union[ActorInfo, _Mapping]]] = ...) -> None: ...

class ReportActorExitRequest(_message.Message):
    __slots__ = ("actor_id", "reason")
    ACTOR_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    actor_id: bytes
    reason: str
    def __init__(self, actor_id: _Optional[bytes] = ..., reason: _Optional[str] = ...) -> None: ...

class TaskEvent(_message.Message):
    __slots__ = ("task_id", "job_id", "name", "state", "time", "node_id", "attempt", "error", "actor_id", "parent_task_id")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ACTOR_ID_FIELD_NUMBER: _ClassVar[int]
    PARENT_TASK_ID_FIELD_NUMBER: _ClassVar[int]
    task_id: bytes
    job_id: bytes
    name: str
    state: str
    time: float
    node_id: bytes
    attempt: int
    error: str
    actor_id: bytes
    parent_task_id: bytes
    def __init__(self, task_id: _Optional[bytes] = ..., job_id: _Optional[bytes] = ..., name: _Optional[str] = ..., state: _Optional[str] = ..., time: _Optional[float] = ..., node_id: _Optional[bytes] = ..., attempt: _Optional[int] = ..., error: _Optional[str] = ..., actor_id: _Optional[bytes] = ..., parent_task_id: _Optional[bytes] = ...) -> None: ...

class TaskAttempt(_message.Message):
    __slots__ = ("task_id", "attempt", "node_id", "worker_id", "worker_pid", "start_time", "end_time", "failed")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    WORKER_PID_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    task_id: bytes
    attempt: int
    node_id: bytes
    worker_id: bytes
    worker_pid: int
    start_time: float
    end_time: float
    failed: bool
    def __init__(self, task_id: _Optional[bytes] = ..., attempt: _Optional[int] = ..., node_id: _Optional[bytes] = ..., worker_id: _Optional[bytes] = ..., worker_pid: _Optional[int] = ..., start_time: _Optional[float] = ..., end_time: _Optional[float] = ..., failed: _Optional[bool] = ...) -> None: ...

class ReportTaskEventsRequest(_message.Message):
    __slots__ = ("events", "dropped", "attempts")
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    DROPPED_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[TaskEvent]
    dropped: int
    attempts: _containers.RepeatedCompositeFieldContainer[TaskAttempt]
    def __init__(self, events: _Optional[_Iterable[_Union[TaskEvent, _Mapping]]] = ..., dropped: _Optional[int] = ..., attempts: _Optional[_Iterable[_Union[TaskAttempt, _Mapping]]] = ...) -> None: ...

class TaskRecord(_message.Message):
    __slots__ = ("task_id", "job_id", "name", "state", "node_id", "attempt", "submit_time", "start_time", "end_time", "error", "actor_id", "worker_id", "worker_pid", "parent_task_id", "attempts")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    SUBMIT_TIME_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ACTOR_ID_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    WORKER_PID_FIELD_NUMBER: _ClassVar[int]
    PARENT_TASK_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    task_id: bytes
    job_id: bytes
    name: str
    state: str
    node_id: bytes
    attempt: int
    submit_time: float
    start_time: float
    end_time: float
    error: str
    actor_id: bytes
    worker_id: bytes
    worker_pid: int
    parent_task_id: bytes
    attempts: _containers.RepeatedCompositeFieldContainer[TaskAttempt]
    def __init__(self, task_id: _Optional[bytes] = ..., job_id: _Optional[bytes] = ..., name: _Optional[str] = ..., state: _Optional[str] = ..., node_id: _Optional[bytes] = ..., attempt: _Optional[int] = ..., submit_time: _Optional[float] = ..., start_time: _Optional[float] = ..., end_time: _Optional[float] = ..., error: _Optional[str] = ..., actor_id: _Optional[bytes] = ..., worker_id: _Optional[bytes] = ..., worker_pid: _Optional[int] = ..., parent_task_id: _Optional[bytes] = ..., attempts: _Optional[_Iterable[_Union[TaskAttempt, _Mapping]]] = ...) -> None: ...

class ListTasksRequest(_message.Message):
    __slots__ = ("job_id", "limit", "task_ids")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    TASK_IDS_FIELD_NUMBER: _ClassVar[int]
    job_id: bytes
    limit: int
    task_ids: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, job_id: _Optional[bytes] = ..., limit: _Optional[int] = ..., task_ids: _Optional[_Iterable[bytes]] = ...) -> None: ...

class ListTasksReply(_message.Message):
    __slots__ = ("tasks", "total")
    TASKS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    tasks: _containers.RepeatedCompositeFieldContainer[TaskRecord]
    total: int
    def __init__(self, tasks: _Optional[_Iterable[_Union[TaskRecord, _Mapping]]] = ..., total: _Optional[int] = ...) -> None: ...

class GetClusterInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetClusterInfoReply(_message.Message):
    __slots__ = ("session_dir", "version", "start_time", "head_node_id", "gcs_address", "local_endpoint", "head_pid", "calls_served", "jobs_address")
    class CallsServedEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    SESSION_DIR_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    HEAD_NODE_ID_FIELD_NUMBER: _ClassVar[int]
    GCS_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    LOCAL_ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    HEAD_PID_FIELD_NUMBER: _ClassVar[int]
    CALLS_SERVED_FIELD_NUMBER: _ClassVar[int]
    JOBS_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    session_dir: str
    version: str
    start_time: float
    head_node_id: bytes
    gcs_address: str
    local_endpoint: str
    head_pid: int
    calls_served: _containers.ScalarMap[str, int]
    jobs_address: str
    def __init__(self, session_dir: _Optional[str] = ..., version: _Optional[str] = ..., start_time: _Optional[float] = ..., head_node_id: _Optional[bytes] = ..., gcs_address: _Optional[str] = ..., local_endpoint: _Optional[str] = ..., head_pid: _Optional[int] = ..., calls_served: _Optional[_Mapping[str, int]] = ..., jobs_address: _Optional[str] = ...) -> None: ...

class RequestResourcesRequest(_message.Message):
    __slots__ = ("bundles",)
    BUNDLES_FIELD_NUMBER: _ClassVar[int]
    bundles: _containers.RepeatedCompositeFieldContainer[_common_pb2.ResourceSet]
    def __init__(self, bundles: _Optional[_Iterable[_Union[_common_pb2.ResourceSet, _Mapping]]] = ...) -> None: ...

class SetWorkerBoundsRequest(_message.Message):
    __slots__ = ("node_type", "min_workers", "max_workers")
    NODE_TYPE_FIELD_NUMBER: _ClassVar[int]
    MIN_WORKERS_FIELD_NUMBER: _ClassVar[int]
    MAX_WORKERS_FIELD_NUMBER: _ClassVar[int]
    node_type: str
    min_workers: int
    max_workers: int
    def __init__(self, node_type: _Optional[str] = ..., min_workers: _Optional[int] = ..., max_workers: _Optional[int] = ...) -> None: ...

class SetWorkerBoundsReply(_message.Message):
    __slots__ = ("node_type",)
    NODE_TYPE_FIELD_NUMBER: _ClassVar[int]
    node_type: str
    def __init__(self, node_type: _Optional[str] = ...) -> None: ...

class GetAutoscalerStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class NodeTypeStatus(_message.Message):
    __slots__ = ("name", "resources", "running", "pending", "min_workers", "max_workers", "stopping")
    NAME_FIELD_NUMBER: _ClassVar[int]
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    PENDING_FIELD_NUMBER: _ClassVar[int]
    MIN_WORKERS_FIELD_NUMBER: _ClassVar[int]
    MAX_WORKERS_FIELD_NUMBER: _ClassVar[int]
    STOPPING_FIELD_NUMBER: _ClassVar[int]
    name: str
    resources: _common_pb2.ResourceSet
    running: int
    pending: int
    min_workers: int
    max_workers: int
    stopping: int
    def __init__(self, name: _Optional[str] = ..., resources: _Optional[_Union[_common_pb2.ResourceSet, _Mapping]] = ..., running: _Optional[int] = ..., pending: _Optional[int] = ..., min_workers: _Optional[int] = ..., max_workers: _Optional[int] = ..., stopping: _Optional[int] = ...) -> None: ...

class DemandStatus(_message.Message):
    __slots__ = ("shape", "kind", "count", "status", "reason")
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    shape: _common_pb2.ResourceSet
    kind: str
    count: int
    status: str
    reason: str
    def __init__(self, shape: _Optional[_Union[_common_pb2.ResourceSet, _Mapping]] = ..., kind: _Optional[str] = ..., count: _Optional[int] = ..., status: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class InstanceStatus(_message.Message):
    __slots__ = ("instance_id", "node_type", "state", "node_id", "reason", "since")
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    NODE_TYPE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    instance_id: str
    node_type: str
    state: str
    node_id: bytes
    reason: str
    since: float
    def __init__(self, instance_id: _Optional[str] = ..., node_type: _Optional[str] = ..., state: _Optional[str] = ..., node_id: _Optional[bytes] = ..., reason: _Optional[str] = ..., since: _Optional[float] = ...) -> None: ...

class GetAutoscalerStatusReply(_message.Message):
    __slots__ = ("enabled", "cluster_name", "node_types", "demand", "instances", "events", "max_workers", "idle_timeout_s")
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_NAME_FIELD_NUMBER: _ClassVar[int]
    NODE_TYPES_FIELD_NUMBER: _ClassVar[int]
    DEMAND_FIELD_NUMBER: _ClassVar[int]
    INSTANCES_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    MAX_WORKERS_FIELD_NUMBER: _ClassVar[int]
    IDLE_TIMEOUT_S_FIELD_NUMBER: _ClassVar[int]
    enabled: bool
    cluster_name: str
    node_types: _containers.RepeatedCompositeFieldContainer[NodeTypeStatus]
    demand: _containers.RepeatedCompositeFieldContainer[DemandStatus]
    instances: _containers.RepeatedCompositeFieldContainer[InstanceStatus]
    events: _containers.RepeatedCompositeFieldContainer[Event]
    max_workers: int
    idle_timeout_s: float
    def __init__(self, enabled: _Optional[bool] = ..., cluster_name: _Optional[str] = ..., node_types: _Optional[_Iterable[_Union[NodeTypeStatus, _Mapping]]] = ..., demand: _Optional[_Iterable[_Union[DemandStatus, _Mapping]]] = ..., instances: _Optional[_Iterable[_Union[InstanceStatus, _Mapping]]] = ..., events: _Optional[_Iterable[_Union[Event, _Mapping]]] = ..., max_workers: _Optional[int] = ..., idle_timeout_s: _Optional[float] = ...) -> None: ...

class ShutdownRequest(_message.Message):
    __slots__ = ("reason",)
    REASON_FIELD_NUMBER: _ClassVar[int]
    reason: str
    def __init__(self, reason: _Optional[str] = ...) -> None: ...

class IssueCertificateRequest(_message.Message):
    __slots__ = ("csr_pem",)
    CSR_PEM_FIELD_NUMBER: _ClassVar[int]
    csr_pem: bytes
    def __init__(self, csr_pem: _Optional[bytes] = ...) -> None: ...

class IssueCertificateReply(_message.Message):
    __slots__ = ("cert_pem", "ca_pem")
    CERT_PEM_FIELD_NUMBER: _ClassVar[int]
    CA_PEM_FIELD_NUMBER: _ClassVar[int]
    cert_pem: bytes
    ca_pem: bytes
    def __init__(self, cert_pem: _Optional[bytes] = ..., ca_pem: _Optional[bytes] = ...) -> None: ...

class Bundle(_message.Message):
    __slots__ = ("index", "resources", "node_id")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    index: int
    resources: _common_pb2.ResourceSet
    node_id: bytes
    def __init__(self, index: _Optional[int] = ..., resources: _Optional[_Union[_common_pb2.ResourceSet, _Mapping]] = ..., node_id: _Optional[bytes] = ...) -> None: ...

class PlacementGroupInfo(_message.Message):
    __slots__ = ("placement_group_id", "name", "namespace", "strategy", "bundles", "state", "job_id", "detached", "create_time", "ready_time", "end_time", "reason", "version", "attempts", "num_reschedules")
    PLACEMENT_GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    BUNDLES_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    DETACHED_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    READY_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    NUM_RESCHEDULES_FIELD_NUMBER: _ClassVar[int]
    placement_group_id: bytes
    name: str
    namespace: str
    strategy: PlacementStrategy
    bundles: _containers.RepeatedCompositeFieldContainer[Bundle]
    state: PlacementGroupState
    job_id: bytes
    detached: bool
    create_time: float
    ready_time: float
    end_time: float
    reason: str
    version: int
    attempts: int
    num_reschedules: int
    def __init__(self, placement_group_id: _Optional[bytes] = ..., name: _Optional[str] = ..., namespace: _Optional[str] = ..., strategy: _Optional[_Union[PlacementStrategy, str]] = ..., bundles: _Optional[_Iterable[_Union[Bundle, _Mapping]]] = ..., state: _Optional[_Union[PlacementGroupState, str]] = ..., job_id: _Optional[bytes] = ..., detached: _Optional[bool] = ..., create_time: _Optional[float] = ..., ready_time: _Optional[float] = ..., end_time: _Optional[float] = ..., reason: _Optional[str] = ..., version: _Optional[int] = ..., attempts: _Optional[int] = ..., num_reschedules: _Optional[int] = ...) -> None: ...

class CreatePlacementGroupRequest(_message.Message):
    __slots__ = ("group",)
    GROUP_FIELD_NUMBER: _ClassVar[int]
    group: PlacementGroupInfo
    def __init__(self, group: _Optional[_Union[PlacementGroupInfo, _Mapping]] = ...) -> None: ...

class CreatePlacementGroupReply(_message.Message):
    __slots__ = ("group", "warning")
    GROUP_FIELD_NUMBER: _ClassVar[int]
    WARNING_FIELD_NUMBER: _ClassVar[int]
    group: PlacementGroupInfo
    warning: str
    def __init__(self, group: _Optional[_Union[PlacementGroupInfo, _Mapping]] = ..., warning: _Optional[str] = ...) -> None: ...

class RemovePlacementGroupRequest(_message.Message):
    __slots__ = ("placement_group_id",)
    PLACEMENT_GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    placement_group_id: bytes
    def __init__(self, placement_group_id: _Optional[bytes] = ...) -> None: ...

class GetPlacementGroupRequest(_message.Message):
    __slots__ = ("placement_group_id", "name", "namespace", "wait_until_ready", "timeout_s")
    PLACEMENT_GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    WAIT_UNTIL_READY_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_S_FIELD_NUMBER: _ClassVar[int]
    placement_group_id: bytes
    name: str
    namespace: str
    wait_until_ready: bool
    timeout_s: float
    def __init__(self, placement_group_id: _Optional[bytes] = ..., name: _Optional[str] = ..., namespace: _Optional[str] = ..., wait_until_ready: _Optional[bool] = ..., timeout_s: _Optional[float] = ...) -> None: ...

class GetPlacementGroupReply(_message.Message):
    __slots__ = ("found", "group")
    FOUND_FIELD_NUMBER: _ClassVar[int]
    GROUP_FIELD_NUMBER: _ClassVar[int]
    found: bool
    group: PlacementGroupInfo
    def __init__(self, found: _Optional[bool] = ..., group: _Optional[_Union[PlacementGroupInfo, _Mapping]] = ...) -> None: ...

class ListPlacementGroupsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListPlacementGroupsReply(_message.Message):
    __slots__ = ("groups",)
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    groups: _containers.RepeatedCompositeFieldContainer[PlacementGroupInfo]
    def __init__(self, groups: _Optional[_Iterable[_Union[PlacementGroupInfo, _Mapping]]] = ...) -> None: ...
