"""Distributed, asynchronous, fault-tolerant fitness evaluation.

The campaign submits :class:`EvalJob` s to a pool and receives one :class:`ctm.result.EvalResult` per job as
each finishes (see :mod:`workers.pool` for the loop). Backends: :class:`RayPool` (default; a local or remote
Ray cluster) and :class:`InlinePool` (in-process). :func:`make_pool` builds the one a :class:`WorkersConfig`
names. ``workers`` knows nothing of search strategies; it calls ``config.evaluate_fn`` on the workers.
"""

from workers.config import WorkersConfig, WorkersConfigError
from workers.factory import make_pool
from workers.feasibility import UnsatisfiableRequest
from workers.job import EvalJob
from workers.pool import ClusterUnreachable, InlinePool, Pool, PoolDisconnected

__all__ = ["ClusterUnreachable", "EvalJob", "InlinePool", "Pool", "PoolDisconnected", "RayPool",
           "UnsatisfiableRequest", "WorkersConfig", "WorkersConfigError", "make_pool"]


def __getattr__(name: str) -> object:
    if name == "RayPool":  # imported on first use: importing ray takes a second
        from workers.ray_pool import RayPool

        return RayPool
    raise AttributeError(f"module 'workers' has no attribute {name!r}")
