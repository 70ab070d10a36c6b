from nbcluster.runtime.protocol import common_pb2 as _common_pb2
from nbcluster.runtime.protocol import gcs_pb2 as _gcs_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ClientKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CLIENT_KIND_UNSPECIFIED: _ClassVar[ClientKind]
    CLIENT_KIND_WORKER: _ClassVar[ClientKind]
    CLIENT_KIND_DRIVER: _ClassVar[ClientKind]
    CLIENT_KIND_GCS: _ClassVar[ClientKind]
    CLIENT_KIND_REMOTE: _ClassVar[ClientKind]

class SchedulingStrategy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SCHEDULING_STRATEGY_UNSPECIFIED: _ClassVar[SchedulingStrategy]
    SCHEDULING_STRATEGY_DEFAULT: _ClassVar[SchedulingStrategy]
    SCHEDULING_STRATEGY_SPREAD: _ClassVar[SchedulingStrategy]
    SCHEDULING_STRATEGY_NODE_AFFINITY: _ClassVar[SchedulingStrategy]

class LeaseRejection(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LEASE_REJECTION_UNSPECIFIED: _ClassVar[LeaseRejection]
    LEASE_REJECTION_NODE_FAILED: _ClassVar[LeaseRejection]
    LEASE_REJECTION_CANCELLED: _ClassVar[LeaseRejection]
    LEASE_REJECTION_UNSCHEDULABLE: _ClassVar[LeaseRejection]
CLIENT_KIND_UNSPECIFIED: ClientKind
CLIENT_KIND_WORKER: ClientKind
CLIENT_KIND_DRIVER: ClientKind
CLIENT_KIND_GCS: ClientKind
CLIENT_KIND_REMOTE: ClientKind
SCHEDULING_STRATEGY_UNSPECIFIED: SchedulingStrategy
SCHEDULING_STRATEGY_DEFAULT: SchedulingStrategy
SCHEDULING_STRATEGY_SPREAD: SchedulingStrategy
SCHEDULING_STRATEGY_NODE_AFFINITY: SchedulingStrategy
LEASE_REJECTION_UNSPECIFIED: LeaseRejection
LEASE_REJECTION_NODE_FAILED: LeaseRejection
LEASE_REJECTION_CANCELLED: LeaseRejection
LEASE_REJECTION_UNSCHEDULABLE: LeaseRejection

class RegisterClientRequest(_message.Message):
    __slots__ = ("kind", "address", "pid", "job_id")
    KIND_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    kind: ClientKind
    address: _common_pb2.Address
    pid: int
    job_id: bytes
    def __init__(self, kind: _Optional[_Union[ClientKind, str]] = ..., address: _Optional[_Union[_common_pb2.Address, _Mapping]] = ..., pid: _Optional[int] = ..., job_id: _Optional[bytes] = ...) -> None: ...

class RegisterClientReply(_message.Message):
    __slots__ = ("node_id", "arena_path", "arena_size", "session_dir", "total", "relay_endpoint", "adopted")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    ARENA_PATH_FIELD_NUMBER: _ClassVar[int]
    ARENA_SIZE_FIELD_NUMBER: _ClassVar[int]
    SESSION_DIR_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    RELAY_ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    ADOPTED_FIELD_NUMBER: _ClassVar[int]
    node_id: bytes
    arena_path: str
    arena_size: int
    session_dir: str
    total: _common_pb2.ResourceSet
    relay_endpoint: str
    adopted: _containers.RepeatedCompositeFieldContainer[AdoptedLease]
    def __init__(self, node_id: _Optional[bytes] = ..., arena_path: _Optional[str] = ..., arena_size: _Optional[int] = ..., session_dir: _Optional[str] = ..., total: _Optional[_Union[_common_pb2.ResourceSet, _Mapping]] = ..., relay_endpoint: _Optional[str] = ..., adopted: _Optional[_Iterable[_Union[AdoptedLease, _Mapping]]] = ...) -> None: ...

class AdoptedLease(_message.Message):
    __slots__ = ("lease_id", "worker_id")
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    lease_id: int
    worker_id: bytes
    def __init__(self, lease_id: _Optional[int] = ..., worker_id: _Optional[bytes] = ...) -> None: ...

class LeaseRequest(_message.Message):
    __slots__ = ("request_id", "resources", "job_id", "runtime_env_hash", "description", "placement_resources", "for_actor", "strategy", "affinity_node_id", "affinity_soft", "no_spill", "nested", "retriable")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_ENV_HASH_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    PLACEMENT_RESOURCES_FIELD_NUMBER: _ClassVar[int]
    FOR_ACTOR_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    AFFINITY_NODE_ID_FIELD_NUMBER: _ClassVar[int]
    AFFINITY_SOFT_FIELD_NUMBER: _ClassVar[int]
    NO_SPILL_FIELD_NUMBER: _ClassVar[int]
    NESTED_FIELD_NUMBER: _ClassVar[int]
    RETRIABLE_FIELD_NUMBER: _ClassVar[int]
    request_id: int
    resources: _common_pb2.ResourceSet
    job_id: bytes
    runtime_env_hash: str
    description: str
    placement_resources: _common_pb2.ResourceSet
    for_actor: bool
    strategy: SchedulingStrategy
    affinity_node_id: bytes
    affinity_soft: bool
    no_spill: bool
    nested: bool
    retriable: bool
    def __init__(self, request_id: _Optional[int] = ..., resources: _Optional[_Union[_common_pb2.ResourceSet, _Mapping]] = ..., job_id: _Optional[bytes] = ..., runtime_env_hash: _Optional[str] = ..., description: _Optional[str] = ..., placement_resources: _Optional[_Union[_common_pb2.ResourceSet, _Mapping]] = ..., for_actor: _Optional[bool] = ..., strategy: _Optional[_Union[SchedulingStrategy, str]] = ..., affinity_node_id: _Optional[bytes] = ..., affinity_soft: _Optional[bool] = ..., no_spill: _Optional[bool] = ..., nested: _Optional[bool] = ..., retriable: _Optional[bool] = ...) -> None: ...

class LeaseReply(_message.Message):
    __slots__ = ("lease_id", "worker", "rejection", "reason", "spillback", "gpu_ids")
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    WORKER_FIELD_NUMBER: _ClassVar[int]
    REJECTION_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    SPILLBACK_FIELD_NUMBER: _ClassVar[int]
    GPU_IDS_FIELD_NUMBER: _ClassVar[int]
    lease_id: int
    worker: _common_pb2.Address
    rejection: LeaseRejection
    reason: str
    spillback: _gcs_pb2.NodeInfo
    gpu_ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, lease_id: _Optional[int] = ..., worker: _Optional[_Union[_common_pb2.Address, _Mapping]] = ..., rejection: _Optional[_Union[LeaseRejection, str]] = ..., reason: _Optional[str] = ..., spillback: _Optional[_Union[_gcs_pb2.NodeInfo, _Mapping]] = ..., gpu_ids: _Optional[_Iterable[int]] = ...) -> None: ...

class ReturnWorkerRequest(_message.Message):
    __slots__ = ("lease_id", "worker_failed")
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    WORKER_FAILED_FIELD_NUMBER: _ClassVar[int]
    lease_id: int
    worker_failed: bool
    def __init__(self, lease_id: _Optional[int] = ..., worker_failed: _Optional[bool] = ...) -> None: ...

class CancelLeaseRequest(_message.Message):
    __slots__ = ("request_id",)
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    request_id: int
    def __init__(self, request_id: _Optional[int] = ...) -> None: ...

class WorkerFailureCauseRequest(_message.Message):
    __slots__ = ("worker_id",)
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    worker_id: bytes
    def __init__(self, worker_id: _Optional[bytes] = ...) -> None: ...

class WorkerFailureCauseReply(_message.Message):
    __slots__ = ("found", "message", "out_of_memory", "retriable")
    FOUND_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    OUT_OF_MEMORY_FIELD_NUMBER: _ClassVar[int]
    RETRIABLE_FIELD_NUMBER: _ClassVar[int]
    found: bool
    message: str
    out_of_memory: bool
    retriable: bool
    def __init__(self, found: _Optional[bool] = ..., message: _Optional[str] = ..., out_of_memory: _Optional[bool] = ..., retriable: _Optional[bool] = ...) -> None: ...

class BlockedNotice(_message.Message):
    __slots__ = ("blocked",)
    BLOCKED_FIELD_NUMBER: _ClassVar[int]
    blocked: bool
    def __init__(self, blocked: _Optional[bool] = ...) -> None: ...

class CreateObjectRequest(_message.Message):
    __slots__ = ("object_id", "size", "owner")
    OBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    object_id: bytes
    size: int
    owner: _common_pb2.Address
    def __init__(self, object_id: _Optional[bytes] = ..., size: _Optional[int] = ..., owner: _Optional[_Union[_common_pb2.Address, _Mapping]] = ...) -> None: ...

class CreateObjectReply(_message.Message):
    __slots__ = ("offset",)
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    offset: int
    def __init__(self, offset: _Optional[int] = ...) -> None: ...

class ObjectIds(_message.Message):
    __slots__ = ("object_ids",)
    OBJECT_IDS_FIELD_NUMBER: _ClassVar[int]
    object_ids: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, object_ids: _Optional[_Iterable[bytes]] = ...) -> None: ...

class GetObjectsRequest(_message.Message):
    __slots__ = ("object_ids", "node_hints")
    OBJECT_IDS_FIELD_NUMBER: _ClassVar[int]
    NODE_HINTS_FIELD_NUMBER: _ClassVar[int]
    object_ids: _containers.RepeatedScalarFieldContainer[bytes]
    node_hints: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, object_ids: _Optional[_Iterable[bytes]] = ..., node_hints: _Optional[_Iterable[bytes]] = ...) -> None: ...

class GetObjectsReply(_message.Message):
    __slots__ = ("offsets", "sizes", "missing")
    OFFSETS_FIELD_NUMBER: _ClassVar[int]
    SIZES_FIELD_NUMBER: _ClassVar[int]
    MISSING_FIELD_NUMBER: _ClassVar[int]
    offsets: _containers.RepeatedScalarFieldContainer[int]
    sizes: _containers.RepeatedScalarFieldContainer[int]
    missing: _containers.RepeatedScalarFieldContainer[bool]
    def __init__(self, offsets: _Optional[_Iterable[int]] = ..., sizes: _Optional[_Iterable[int]] = ..., missing: _Optional[_Iterable[bool]] = ...) -> None: ...

class StoredObject(_message.Message):
    __slots__ = ("object_id", "size", "state", "pins")
    OBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PINS_FIELD_NUMBER: _ClassVar[int]
    object_id: bytes
    size: int
    state: str
    pins: int
    def __init__(self, object_id: _Optional[bytes] = ..., size: _Optional[int] = ..., state: _Optional[str] = ..., pins: _Optional[int] = ...) -> None: ...

class WorkerStats(_message.Message):
    __slots__ = ("worker_id", "pid", "state", "job_id", "lease_id")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    worker_id: bytes
    pid: int
    state: str
    job_id: bytes
    lease_id: int
    def __init__(self, worker_id: _Optional[bytes] = ..., pid: _Optional[int] = ..., state: _Optional[str] = ..., job_id: _Optional[bytes] = ..., lease_id: _Optional[int] = ...) -> None: ...

class GetNodeStatsRequest(_message.Message):
    __slots__ = ("include_objects",)
    INCLUDE_OBJECTS_FIELD_NUMBER: _ClassVar[int]
    include_objects: bool
    def __init__(self, include_objects: _Optional[bool] = ...) -> None: ...

class GetNodeStatsReply(_message.Message):
    __slots__ = ("node_id", "total", "available", "store_used", "store_capacity", "num_objects", "num_spilled", "spilled_bytes", "num_pinned", "workers", "pending_leases", "restored_total", "spilled_total", "leases_granted", "objects")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    STORE_USED_FIELD_NUMBER: _ClassVar[int]
    STORE_CAPACITY_FIELD_NUMBER: _ClassVar[int]
    NUM_OBJECTS_FIELD_NUMBER: _ClassVar[int]
    NUM_SPILLED_FIELD_NUMBER: _ClassVar[int]
    SPILLED_BYTES_FIELD_NUMBER: _ClassVar[int]
    NUM_PINNED_FIELD_NUMBER: _ClassVar[int]
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    PENDING_LEASES_FIELD_NUMBER: _ClassVar[int]
    RESTORED_TOTAL_FIELD_NUMBER: _ClassVar[int]
    SPILLED_TOTAL_FIELD_NUMBER: _ClassVar[int]
    LEASES_GRANTED_FIELD_NUMBER: _ClassVar[int]
    OBJECTS_FIELD_NUMBER: _ClassVar[int]
    node_id: bytes
    total: _common_pb2.ResourceSet
    available: _common_pb2.ResourceSet
    store_used: int
    store_capacity: int
    num_objects: int
    num_spilled: int
    spilled_bytes: int
    num_pinned: int
    workers: _containers.RepeatedCompositeFieldContainer[WorkerStats]
    pending_leases: int
    restored_total: int
    spilled_total: int
    leases_granted: int
    objects: _containers.RepeatedCompositeFieldContainer[StoredObject]
    def __init__(self, node_id: _Optional[bytes] = ..., total: _Optional[_Union[_common_pb2.ResourceSet, _Mapping]] = ..., available: _Optional[_Union[_common_pb2.ResourceSet, _Mapping]] = ..., store_used: _Optional[int] = ..., store_capacity: _Optional[int] = ..., num_objects: _Optional[int] = ..., num_spilled: _Optional[int] = ..., spilled_bytes: _Optional[int] = ..., num_pinned: _Optional[int] = ..., workers: _Optional[_Iterable[_Union[WorkerStats, _Mapping]]] = ..., pending_leases: _Optional[int] = ..., restored_total: _Optional[int] = ..., spilled_total: _Optional[int] = ..., leases_granted: _Optional[int] = ..., objects: _Optional[_Iterable[_Union[StoredObject, _Mapping]]] = ...) -> None: ...

class ShutdownNodeRequest(_message.Message):
    __slots__ = ("reason",)
    REASON_FIELD_NUMBER: _ClassVar[int]
    reason: str
    def __init__(self, reason: _Optional[str] = ...) -> None: ...

class RelayChunk(_message.Message):
    __slots__ = ("target", "data")
    TARGET_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    target: str
    data: bytes
    def __init__(self, target: _Optional[str] = ..., data: _Optional[bytes] = ...) -> None: ...

class RelayPreamble(_message.Message):
    __slots__ = ("token", "via", "target")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    VIA_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    token: str
    via: str
    target: str
    def __init__(self, token: _Optional[str] = ..., via: _Optional[str] = ..., target: _Optional[str] = ...) -> None: ...

class PullObjectRequest(_message.Message):
    __slots__ = ("object_id", "requester")
    OBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    REQUESTER_FIELD_NUMBER: _ClassVar[int]
    object_id: bytes
    requester: str
    def __init__(self, object_id: _Optional[bytes] = ..., requester: _Optional[str] = ...) -> None: ...

class HandoffObject(_message.Message):
    __slots__ = ("object_id", "size", "owner")
    OBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    object_id: bytes
    size: int
    owner: _common_pb2.Address
    def __init__(self, object_id: _Optional[bytes] = ..., size: _Optional[int] = ..., owner: _Optional[_Union[_common_pb2.Address, _Mapping]] = ...) -> None: ...

class TakeObjectsRequest(_message.Message):
    __slots__ = ("from_node_id", "objects", "timeout_s")
    FROM_NODE_ID_FIELD_NUMBER: _ClassVar[int]
    OBJECTS_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_S_FIELD_NUMBER: _ClassVar[int]
    from_node_id: bytes
    objects: _containers.RepeatedCompositeFieldContainer[HandoffObject]
    timeout_s: float
    def __init__(self, from_node_id: _Optional[bytes] = ..., objects: _Optional[_Iterable[_Union[HandoffObject, _Mapping]]] = ..., timeout_s: _Optional[float] = ...) -> None: ...

class TakeObjectsReply(_message.Message):
    __slots__ = ("taken",)
    TAKEN_FIELD_NUMBER: _ClassVar[int]
    taken: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, taken: _Optional[_Iterable[bytes]] = ...) -> None: ...

class MovedObject(_message.Message):
    __slots__ = ("object_id", "owner_worker_id")
    OBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    OWNER_WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    object_id: bytes
    owner_worker_id: bytes
    def __init__(self, object_id: _Optional[bytes] = ..., owner_worker_id: _Optional[bytes] = ...) -> None: ...

class ObjectsMovedRequest(_message.Message):
    __slots__ = ("from_node_id", "to_node_id", "objects")
    FROM_NODE_ID_FIELD_NUMBER: _ClassVar[int]
    TO_NODE_ID_FIELD_NUMBER: _ClassVar[int]
    OBJECTS_FIELD_NUMBER: _ClassVar[int]
    from_node_id: bytes
    to_node_id: bytes
    objects: _containers.RepeatedCompositeFieldContainer[MovedObject]
    def __init__(self, from_node_id: _Optional[bytes] = ..., to_node_id: _Optional[bytes] = ..., objects: _Optional[_Iterable[_Union[MovedObject, _Mapping]]] = ...) -> None: ...

class ObjectsMovedReply(_message.Message):
    __slots__ = ("unknown",)
    UNKNOWN_FIELD_NUMBER: _ClassVar[int]
    unknown: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, unknown: _Optional[_Iterable[bytes]] = ...) -> None: ...

class GetClusterViewRequest(_message.Message):
    __slots__ = ("node_id",)
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    node_id: bytes
    def __init__(self, node_id: _Optional[bytes] = ...) -> None: ...

class GetClusterViewReply(_message.Message):
    __slots__ = ("nodes",)
    NODES_FIELD_NUMBER: _ClassVar[int]
    nodes: _containers.RepeatedCompositeFieldContainer[_gcs_pb2.NodeInfo]
    def __init__(self, nodes: _Optional[_Iterable[_Union[_gcs_pb2.NodeInfo, _Mapping]]] = ...) -> None: ...

class CheckHealthRequest(_message.Message):
    __slots__ = ("node_id",)
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    node_id: bytes
    def __init__(self, node_id: _Optional[bytes] = ...) -> None: ...

class CheckHealthReply(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class StartJobRequest(_message.Message):
    __slots__ = ("job", "gcs_address")
    JOB_FIELD_NUMBER: _ClassVar[int]
    GCS_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    job: _gcs_pb2.JobInfo
    gcs_address: str
    def __init__(self, job: _Optional[_Union[_gcs_pb2.JobInfo, _Mapping]] = ..., gcs_address: _Optional[str] = ...) -> None: ...

class StartJobReply(_message.Message):
    __slots__ = ("started", "reason")
    STARTED_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    started: bool
    reason: str
    def __init__(self, started: _Optional[bool] = ..., reason: _Optional[str] = ...) -> None: ...

class StopJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: bytes
    def __init__(self, job_id: _Optional[bytes] = ...) -> None: ...

class DrainNodeRequest(_message.Message):
    __slots__ = ("reason",)
    REASON_FIELD_NUMBER: _ClassVar[int]
    reason: str
    def __init__(self, reason: _Optional[str] = ...) -> None: ...

class DrainNodeReply(_message.Message):
    __slots__ = ("accepted", "busy")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    BUSY_FIELD_NUMBER: _ClassVar[int]
    accepted: bool
    busy: str
    def __init__(self, accepted: _Optional[bool] = ..., busy: _Optional[str] = ...) -> None: ...

class ClientJob(_message.Message):
    __slots__ = ("config", "metadata", "entrypoint", "reconnect_grace_s")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    ENTRYPOINT_FIELD_NUMBER: _ClassVar[int]
    RECONNECT_GRACE_S_FIELD_NUMBER: _ClassVar[int]
    config: _common_pb2.JobConfig
    metadata: _containers.ScalarMap[str, str]
    entrypoint: str
    reconnect_grace_s: float
    def __init__(self, config: _Optional[_Union[_common_pb2.JobConfig, _Mapping]] = ..., metadata: _Optional[_Mapping[str, str]] = ..., entrypoint: _Optional[str] = ..., reconnect_grace_s: _Optional[float] = ...) -> None: ...

class StartClientSessionRequest(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: ClientJob
    def __init__(self, job: _Optional[_Union[ClientJob, _Mapping]] = ...) -> None: ...

class StartClientSessionReply(_message.Message):
    __slots__ = ("endpoint",)
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    endpoint: str
    def __init__(self, endpoint: _Optional[str] = ...) -> None: ...

class BundleSpec(_message.Message):
    __slots__ = ("placement_group_id", "index", "resources")
    PLACEMENT_GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    placement_group_id: bytes
    index: int
    resources: _common_pb2.ResourceSet
    def __init__(self, placement_group_id: _Optional[bytes] = ..., index: _Optional[int] = ..., resources: _Optional[_Union[_common_pb2.ResourceSet, _Mapping]] = ...) -> None: ...

class PrepareBundlesRequest(_message.Message):
    __slots__ = ("bundles",)
    BUNDLES_FIELD_NUMBER: _ClassVar[int]
    bundles: _containers.RepeatedCompositeFieldContainer[BundleSpec]
    def __init__(self, bundles: _Optional[_Iterable[_Union[BundleSpec, _Mapping]]] = ...) -> None: ...

class NodeResources(_message.Message):
    __slots__ = ("total", "available")
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    total: _common_pb2.ResourceSet
    available: _common_pb2.ResourceSet
    def __init__(self, total: _Optional[_Union[_common_pb2.ResourceSet, _Mapping]] = ..., available: _Optional[_Union[_common_pb2.ResourceSet, _Mapping]] = ...) -> None: ...

class PrepareBundlesReply(_message.Message):
    __slots__ = ("prepared", "reason", "resources")
    PREPARED_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    prepared: bool
    reason: str
    resources: NodeResources
    def __init__(self, prepared: _Optional[bool] = ..., reason: _Optional[str] = ..., resources: _Optional[_Union[NodeResources, _Mapping]] = ...) -> None: ...

class CommitBundlesRequest(_message.Message):
    __slots__ = ("bundles",)
    BUNDLES_FIELD_NUMBER: _ClassVar[int]
    bundles: _containers.RepeatedCompositeFieldContainer[BundleSpec]
    def __init__(self, bundles: _Optional[_Iterable[_Union[BundleSpec, _Mapping]]] = ...) -> None: ...

class CommitBundlesReply(_message.Message):
    __slots__ = ("resources",)
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    resources: NodeResources
    def __init__(self, resources: _Optional[_Union[NodeResources, _Mapping]] = ...) -> None: ...

class ReleaseBundlesRequest(_message.Message):
    __slots__ = ("placement_group_id", "indexes", "removed", "reason")
    PLACEMENT_GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    INDEXES_FIELD_NUMBER: _ClassVar[int]
    REMOVED_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    placement_group_id: bytes
    indexes: _containers.RepeatedScalarFieldContainer[int]
    removed: bool
    reason: str
    def __init__(self, placement_group_id: _Optional[bytes] = ..., indexes: _Optional[_Iterable[int]] = ..., removed: _Optional[bool] = ..., reason: _Optional[str] = ...) -> None: ...

class ReleaseBundlesReply(_message.Message):
    __slots__ = ("resources",)
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    resources: NodeResources
    def __init__(self, resources: _Optional[_Union[NodeResources, _Mapping]] = ...) -> None: ...
