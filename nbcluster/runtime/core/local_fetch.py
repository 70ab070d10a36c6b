"""``wait(fetch_local=True)`` (Ray's default): a ref counts as ready once its value is on
this node — inline, in this node's store, or pulled here from the node that holds it.
With ``fetch_local=False`` a ref is ready as soon as its value exists anywhere."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from nbcluster.exceptions import ObjectLostError

__all__ = ["fetch_here"]


def fetch_here(core: Any, oids: Sequence[bytes], timeout: float | None) -> set[bytes]:
    """Of ``oids`` (objects with a value), those whose value is on this node once the
    others were pulled here (in ``timeout`` seconds at most). A lost object counts as
    here: ``get`` of it raises why."""
    entries = core.refs.entries
    here: set[bytes] = set()
    remote = []
    for oid in oids:
        entry = entries.get(oid)
        payload = entry.payload if entry is not None else None
        if payload is None:
            continue
        if payload.HasField("data") or payload.node_id == core.node_id or core.node_id in (entry.locations or ()):
            here.add(oid)
        else:
            remote.append(payload)
    if not remote:
        return here

    async def pull() -> None:
        views = await core.pin_views(remote)  # a copy lands in this node's store
        views.clear()  # unpinned: the copy stays, as any secondary copy, until evicted

    try:
        core.run_sync(asyncio.wait_for(pull(), timeout))
    except (asyncio.TimeoutError, TimeoutError):
        return here
    except ObjectLostError:
        pass
    return here | {p.object_id for p in remote}
