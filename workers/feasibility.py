"""Can the cluster ever run one evaluation? The request of one evaluation against the resources of each node.

Ray queues a task that no node can hold, silently and for ever, so a campaign asking for more CPUs or GPUs per
evaluation than any node has would wait with 0 evaluations. :func:`check_request` decides at start:

- ``"ok"``: some alive node holds the whole request (CPUs and GPUs on *one* node);
- ``"wait"``: no node does yet, but the cluster autoscales and one of its node types would: the pool waits
  and says so (:attr:`Verdict.message` is its status line);
- ``"never"``: no node, present or to come, can hold it: the pool refuses to start, naming the request, the
  setting to change and what the nodes have.

Everything here is plain data (node resources as Ray's ``ray.nodes()[i]["Resources"]`` mappings), so the
decision is tested without a cluster.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from workers.config import WorkersConfig, WorkersConfigError

__all__ = ["FIELDS", "UnsatisfiableRequest", "Verdict", "check_request", "describe", "evaluation_request"]

FIELDS = {"CPU": "cpus_per_eval", "GPU": "gpus_per_eval"}  # the workers setting behind each resource
_EPS = 1e-9


class UnsatisfiableRequest(WorkersConfigError):
    """No node of the cluster, present or to come, can hold one evaluation; the message names the setting,
    the request and what the nodes have."""


@dataclass(frozen=True)
class Verdict:
    """The outcome of :func:`check_request`; ``problems`` are ``(field, value, allowed)`` for ``"never"``."""

    kind: Literal["ok", "wait", "never"]
    message: str = ""
    problems: list[tuple[str, Any, str]] = field(default_factory=list)


def evaluation_request(config: WorkersConfig, cluster_gpus: float) -> dict[str, float]:
    """What one evaluation reserves on one node: ``{"CPU": …, "GPU": …}`` without zero entries.

    ``gpus_per_eval: null`` means 1 GPU when the cluster has GPUs, else none; a memory-aware share can be a
    whole GPU for a large genome, so memory-aware evaluations must find a node with one GPU.
    """
    gpus = float(config.gpus_per_eval) if config.gpus_per_eval is not None else (1.0 if cluster_gpus > 0 else 0.0)
    if config.gpu_memory_aware and gpus > 0:
        gpus = max(gpus, 1.0)
    request = {"CPU": float(config.cpus_per_eval), "GPU": gpus}
    return {k: v for k, v in request.items() if v > 0}


def describe(resources: Mapping[str, float], keys: Sequence[str] = ("CPU", "GPU")) -> str:
    """``"CPU 4, GPU 1"`` (only the resources an evaluation asks for; absent ones as 0)."""
    return ", ".join(f"{k} {float(resources.get(k, 0.0)):g}" for k in keys) or "nothing"


def _fits(request: Mapping[str, float], resources: Mapping[str, float]) -> bool:
    return all(float(resources.get(k, 0.0)) + _EPS >= v for k, v in request.items())


def _summary(nodes: Sequence[Mapping[str, float]]) -> str:
    if not nodes:
        return "no alive node"
    counts = Counter(describe(n) for n in nodes)
    return f"{len(nodes)} node(s): " + "; ".join(f"{c} × {{{what}}}" for what, c in counts.most_common())


def check_request(request: Mapping[str, float], nodes: Sequence[Mapping[str, float]], *, where: str,
                  node_types: Sequence[Mapping[str, float]] | None = None) -> Verdict:
    """Whether a node of ``nodes`` (alive nodes' resources) can hold ``request``.

    ``node_types``: the resources of each node type an autoscaler may add (``None``: the cluster does not
    autoscale). ``where`` names the cluster in messages (e.g. ``"the Ray cluster at 10.0.0.1:6379"``).
    """
    if not request or any(_fits(request, n) for n in nodes):
        return Verdict("ok")
    wanted = describe(request, list(request))
    if node_types and any(_fits(request, t) for t in node_types):
        return Verdict("wait", f"waiting for the autoscaler of {where} to add a node with {wanted} for one "
                               f"evaluation (now {_summary(nodes)})")
    problems: list[tuple[str, Any, str]] = []
    for key, need in request.items():
        most = max([float(n.get(key, 0.0)) for n in [*nodes, *(node_types or [])]], default=0.0)
        if most + _EPS < need:
            problems.append((FIELDS.get(key, key), need, f"at most {most:g}, the most {key}s one node of {where} "
                             f"has ({_summary(nodes)}); an evaluation runs on one node, so no evaluation could "
                             f"ever start: lower workers.{FIELDS.get(key, key)} or add a larger node"))
    if not problems:  # enough of each, but never on the same node
        problems.append(("cpus_per_eval", request.get("CPU", 0.0),
                         f"a request one node can hold with gpus_per_eval = {request.get('GPU', 0.0):g}: no node "
                         f"of {where} has {wanted} together ({_summary(nodes)})"))
    return Verdict("never", "; ".join(f"workers.{f} = {v:g}: allowed is {a}" for f, v, a in problems), problems)
