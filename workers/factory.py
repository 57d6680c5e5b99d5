"""``make_pool``: the pool a :class:`~workers.config.WorkersConfig` names (Ray is imported only when chosen)."""

from __future__ import annotations

from workers.config import WorkersConfig
from workers.pool import InlinePool, Pool

__all__ = ["make_pool"]


def make_pool(config: WorkersConfig | None = None, **kwargs: object) -> Pool:
    """The pool named by ``config.backend`` (``"ray"`` by default); keyword arguments go to its constructor."""
    config = config or WorkersConfig()
    if config.backend == "inline":
        return InlinePool(config, **kwargs)  # type: ignore[arg-type]
    if config.backend == "simulated":
        from workers.simulated import SimulatedPool

        return SimulatedPool(config, **kwargs)  # type: ignore[arg-type]
    from workers.ray_pool import RayPool  # imported here: importing ray takes a second

    return RayPool(config, **kwargs)  # type: ignore[arg-type]
