"""Talk to the cluster's autoscaler (Ray's ``ray.autoscaler.sdk``)::

    from nbcluster.autoscaler import request_resources
    request_resources(num_cpus=8)                    # scale up ahead of the work
    request_resources(bundles=[{"GPU": 1}] * 2)      # replaces the request above
    request_resources(num_cpus=0)                    # withdraw it
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from nbcluster.runtime.protocol import common_pb2, gcs_pb2
from nbcluster.runtime.state import AutoscalerState, gcs_call, get_autoscaler_state
from nbcluster.runtime.transport import methods

__all__ = ["AutoscalerState", "get_autoscaler_state", "request_resources", "set_worker_bounds"]


def _bundles(num_cpus: int | None, bundles: Sequence[Mapping[str, float]] | None) -> list[dict[str, float]]:
    out: list[dict[str, float]] = []
    if num_cpus is not None:
        if isinstance(num_cpus, bool) or not isinstance(num_cpus, int) or num_cpus < 0:
            raise ValueError(f"num_cpus must be a whole number >= 0, got {num_cpus!r}")
        out += [{"CPU": 1.0}] * num_cpus
    if bundles is not None:
        if isinstance(bundles, Mapping) or not isinstance(bundles, Sequence):
            raise TypeError('bundles must be a list of dicts such as [{"CPU": 1, "GPU": 1}]')
        for i, bundle in enumerate(bundles):
            if not isinstance(bundle, Mapping) or not all(
                isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0
                for k, v in bundle.items()
            ):
                raise ValueError(f"bundles[{i}] must map resource names to numbers >= 0, got {bundle!r}")
            out.append({k: float(v) for k, v in bundle.items()})
    return out


def request_resources(
    num_cpus: int | None = None,
    bundles: Sequence[Mapping[str, float]] | None = None,
    *,
    address: str | None = None,
) -> None:
    """Ask the autoscaler to make room for ``num_cpus`` one-CPU bundles plus
    ``bundles``, whatever runs now: nodes are added until the cluster's total
    resources could hold them all, and nodes they need are not removed as idle.
    Each call replaces the previous request; ``request_resources(num_cpus=0)``
    withdraws it. NbclusterError with the head's reason when it refuses the request."""
    request = gcs_pb2.RequestResourcesRequest(
        bundles=[common_pb2.ResourceSet(amounts=b) for b in _bundles(num_cpus, bundles)]
    )
    gcs_call(methods.Gcs.RequestResources, request, address)


def set_worker_bounds(
    min_workers: int,
    max_workers: int,
    *,
    node_type: str | None = None,
    address: str | None = None,
    token: str | None = None,
) -> str:
    """Let the autoscaler keep between ``min_workers`` and ``max_workers`` nodes of
    ``node_type`` (default: the cluster's only worker type) from now on; the cluster's
    own max_workers grows to fit. ``set_worker_bounds(n, n)`` scales to n nodes (idle
    ones above n go after the idle timeout). Returns the node type's name. ``address``
    and ``token``: another cluster than this driver's (as in ``nbcluster.state``)."""
    for name, value in (("min_workers", min_workers), ("max_workers", max_workers)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} must be a whole number >= 0, got {value!r}")
    if min_workers > max_workers:
        raise ValueError(f"min_workers ({min_workers}) must not be above max_workers ({max_workers})")
    request = gcs_pb2.SetWorkerBoundsRequest(node_type=node_type or "", min_workers=min_workers, max_workers=max_workers)
    return gcs_call(methods.Gcs.SetWorkerBounds, request, address, token).node_type
