"""``multiprocessing.Pool`` on the cluster (as ``ray.util.multiprocessing``): replace
``from multiprocessing import Pool`` by ``from nbcluster.util.multiprocessing import
Pool`` and the pool's processes are actors on the cluster's nodes. ``TimeoutError`` is
``multiprocessing.TimeoutError`` (what ``AsyncResult.get(timeout)`` raises)."""

from multiprocessing import TimeoutError

from nbcluster.util.multiprocessing.pool import Pool
from nbcluster.util.multiprocessing.results import AsyncResult

__all__ = ["AsyncResult", "Pool", "TimeoutError"]
