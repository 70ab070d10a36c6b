"""nbcluster: a Python cluster runtime in the Ray model, built for Jupyter.

The API has Ray's names and semantics::

    import nbcluster

    nbcluster.init()                    # an embedded local cluster

    @nbcluster.remote
    def square(x):
        return x * x

    print(nbcluster.get([square.remote(i) for i in range(4)]))
"""

from nbcluster import actor, exceptions, state
from nbcluster._version import __version__
from nbcluster.runtime.actor import ActorHandle, method
from nbcluster.runtime.api import (
    ClusterInfo,
    available_resources,
    cancel,
    cluster_resources,
    get,
    get_actor,
    get_gpu_ids,
    init,
    is_initialized,
    kill,
    nodes,
    put,
    remote,
    shutdown,
    wait,
)
from nbcluster.runtime.context import RuntimeContext, get_runtime_context
from nbcluster.runtime.core.generators import DynamicObjectRefGenerator, ObjectRefGenerator
from nbcluster.runtime.core.object_ref import ObjectRef
from nbcluster.runtime.remote_function import RemoteFunction
from nbcluster.runtime.timeline import timeline

__all__ = [
    "__version__",
    "ActorHandle",
    "ClusterInfo",
    "DynamicObjectRefGenerator",
    "ObjectRef",
    "ObjectRefGenerator",
    "RemoteFunction",
    "RuntimeContext",
    "available_resources",
    "cancel",
    "cluster_resources",
    "actor",
    "exceptions",
    "get",
    "get_actor",
    "get_gpu_ids",
    "get_runtime_context",
    "init",
    "is_initialized",
    "kill",
    "method",
    "nodes",
    "put",
    "remote",
    "shutdown",
    "state",
    "timeline",
    "wait",
]


def load_ipython_extension(ip: object) -> None:
    """``%load_ext nbcluster``: the ``%cluster`` and ``%%remote`` magics."""
    from nbcluster.kernel_ext import load_ipython_extension as load

    load(ip)


def unload_ipython_extension(ip: object) -> None:
    """``%unload_ext nbcluster``: remove the magics and their cell hooks."""
    from nbcluster.kernel_ext import unload_ipython_extension as unload

    unload(ip)


def _jupyter_server_extension_points() -> list[dict[str, object]]:
    """The Jupyter server extension ``nbcluster`` (``nbcluster.server_ext``), imported
    only when the server loads it."""
    from nbcluster.server_ext.app import NbclusterApp

    return [{"module": "nbcluster.server_ext.app", "app": NbclusterApp}]
