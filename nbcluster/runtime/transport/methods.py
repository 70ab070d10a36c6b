"""The method table: every RPC of the protocol, numbered, read from the .proto schema.

Both carriers use this one table. The framed carrier sends a method's index in each
frame; the gRPC carrier uses its path (``/nbcluster.Gcs/RegisterNode``). The table's
digest travels in the framed carrier's ``Hello`` so two processes built from different
schemas refuse each other clearly.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from google.protobuf import message_factory

from nbcluster.runtime.protocol import (
    client_pb2,
    common_pb2,
    core_worker_pb2,
    gcs_pb2,
    node_manager_pb2,
)

_FILES = (common_pb2, gcs_pb2, node_manager_pb2, core_worker_pb2, client_pb2)


@dataclass(frozen=True, slots=True)
class Method:
    """One RPC: its number on the framed carrier and its message classes."""

    index: int
    service: str
    name: str
    path: str
    request: type
    reply: type
    server_streaming: bool
    #: Client-streaming methods (the relay) exist on the gRPC carrier only.
    client_streaming: bool = False
    #: Who may call it (``common_pb2.SCOPE_*``): the ``scope`` option in the .proto.
    scope: int = common_pb2.SCOPE_DRIVER

    def __repr__(self) -> str:
        return f"<Method {self.service}.{self.name}>"


def _build() -> tuple[list[Method], dict[str, SimpleNamespace], str]:
    services = []
    for module in _FILES:
        services.extend(module.DESCRIPTOR.services_by_name.values())
    services.sort(key=lambda s: s.full_name)
    table: list[Method] = []
    by_service: dict[str, SimpleNamespace] = {}
    digest = hashlib.sha1()
    for service in services:
        ns = SimpleNamespace()
        for method in service.methods:
            entry = Method(
                index=len(table),
                service=service.name,
                name=method.name,
                path=f"/{service.full_name}/{method.name}",
                request=message_factory.GetMessageClass(method.input_type),
                reply=message_factory.GetMessageClass(method.output_type),
                server_streaming=method.server_streaming,
                client_streaming=method.client_streaming,
                scope=method.GetOptions().Extensions[common_pb2.scope] or common_pb2.SCOPE_DRIVER,
            )
            table.append(entry)
            setattr(ns, method.name, entry)
            digest.update(entry.path.encode())
            digest.update(method.input_type.full_name.encode())
            digest.update(method.output_type.full_name.encode())
            digest.update(bytes([entry.scope]))
        by_service[service.name] = ns
    return table, by_service, digest.hexdigest()[:16]


TABLE, _SERVICES, PROTOCOL_DIGEST = _build()

#: ``Gcs.RegisterNode`` etc.: the Method objects, by service and name.
Gcs: Any = _SERVICES["Gcs"]
NodeManager: Any = _SERVICES["NodeManager"]
CoreWorker: Any = _SERVICES["CoreWorker"]
ClientProxy: Any = _SERVICES["ClientProxy"]


def methods_of(service: str) -> list[Method]:
    """The methods of one service, in table order."""
    return [m for m in TABLE if m.service == service]


def permission_message(method: Method) -> str:
    """Why a driver credential may not call ``method``."""
    return (
        f"{method.service}.{method.name} needs the cluster token; this caller has a driver credential, "
        "which runs tasks, actors and jobs but does not administer the cluster: use the head's token file"
    )
