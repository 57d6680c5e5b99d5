"""What a Ray cluster says about itself: its alive nodes, the node types its autoscaler may add, and the
address ``"auto"`` stands for. Each asks Ray (some through its private modules) and returns ``None`` when
Ray cannot tell (Ray Client, other Ray versions), so callers fall back to what they knew before."""

from __future__ import annotations

import logging

import ray

__all__ = ["alive_nodes", "autoscaling_node_types", "bootstrap_address"]

log = logging.getLogger(__name__)


def alive_nodes() -> list[dict[str, float]] | None:
    """The resources (``{"CPU": 4.0, "GPU": 1.0, ...}``) of each alive node, or ``None`` if Ray cannot say."""
    try:
        return [dict(n.get("Resources") or {}) for n in ray.nodes() if n.get("Alive")]
    except Exception as exc:
        log.debug("cannot list the cluster's nodes: %s", exc)
        return None


def autoscaling_node_types() -> list[dict[str, float]] | None:
    """The resources of each node type the cluster's autoscaler may add, or ``None`` if it does not autoscale."""
    try:
        from ray._private.state import state

        config = state.get_cluster_config()
    except Exception:  # unknown Ray internals, or Ray Client: treat as a fixed cluster
        return None
    if config is None:
        return None
    types = [{k: float(v) for k, v in group.resources.items()} for group in config.node_group_configs
             if group.max_count != 0]
    return types or None


def bootstrap_address(address: str) -> str:
    """``"auto"`` as Ray resolves it ($RAY_ADDRESS, else the cluster last started here), else ``address``."""
    if address != "auto":
        return address
    try:
        from ray._private.services import get_ray_address_from_environment

        return get_ray_address_from_environment("auto", None) or address
    except Exception:  # no cluster found, or unknown Ray internals: ray.init says so itself
        return address
