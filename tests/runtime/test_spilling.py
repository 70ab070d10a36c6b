"""The object store's bound: spilling to the session directory, restoring, pinning."""

from __future__ import annotations

import gc
import os

import numpy as np
import pytest

import nbcluster
from nbcluster.exceptions import ObjectStoreFullError
from nbcluster.runtime.core import worker_state

from ..conftest import node_stats, wait_for

MiB = 1 << 20


def test_store_bound_spills_and_restores(start_cluster):
    start_cluster(num_cpus=1, object_store_memory=100 * MiB)
    session_dir = worker_state.current.session.dir
    arrays = [np.full(5 * MiB, i, dtype=np.float64) for i in range(3)]  # 40 MiB each
    refs = [nbcluster.put(a) for a in arrays]
    stats = node_stats()
    assert stats.store_used <= 100 * MiB and stats.num_spilled >= 1
    spilled = os.listdir(session_dir / "spill")
    assert spilled and all(any(r.hex() == name for r in refs) for name in spilled)
    for i, ref in enumerate(refs):  # every value comes back, spilled ones restored
        value = nbcluster.get(ref)
        assert value[0] == i and value.shape == arrays[i].shape
        del value
    assert node_stats().restored_total >= 1
    del refs, arrays, ref
    gc.collect()
    wait_for(lambda: node_stats().num_objects == 0, message="all objects freed")
    wait_for(lambda: not os.listdir(session_dir / "spill"), message="spill files removed with their refs")
    assert node_stats().store_used == 0


def test_pinned_objects_are_never_spilled(start_cluster):
    start_cluster(num_cpus=1, object_store_memory=100 * MiB)
    first = nbcluster.put(np.full(5 * MiB, 1.0))
    view = nbcluster.get(first)  # maps the object: pinned while the view lives
    wait_for(lambda: node_stats().num_pinned == 1, message="the object pinned")
    second = nbcluster.put(np.full(5 * MiB, 2.0))
    third = nbcluster.put(np.full(5 * MiB, 3.0))  # does not fit: something must spill
    states = {o.object_id: o.state for o in node_stats(include_objects=True).objects}
    assert states[first.binary()] == "SEALED", "a pinned object was spilled"
    assert node_stats().num_spilled >= 1
    assert view[0] == 1.0
    # Nothing can make room for more than the unpinned space: a clear error.
    more = [second, third]
    with pytest.raises(ObjectStoreFullError, match="pinned"):
        more.append(nbcluster.put(np.zeros(8 * MiB)))  # 64 MiB > 100 - 40 pinned
    del view
    gc.collect()
    wait_for(lambda: node_stats().num_pinned == 0, message="the pin released with the view")
    assert nbcluster.get(third)[0] == 3.0


def test_object_larger_than_the_store_is_a_clear_error(start_cluster):
    start_cluster(num_cpus=1, object_store_memory=50 * MiB)
    with pytest.raises(ObjectStoreFullError, match="object_store_memory"):
        nbcluster.put(np.zeros(10 * MiB))
