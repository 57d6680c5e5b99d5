"""``WorkersConfig``: how fitness evaluations are run (the ``workers:`` section of an experiment file).

Every field is plain data so that the config can live in YAML and in the journal. :meth:`WorkersConfig.from_dict`
rejects unknown keys, and construction checks every field, naming the field, the value and what is allowed.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field, fields
from typing import Any

BACKENDS = ("ray", "inline", "simulated")
DEFAULT_EVALUATE_FN = "ctm:evaluate"  # ctm loads its evaluation module (and torch) lazily
_DOTTED = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*$")


class WorkersConfigError(ValueError):
    """A ``workers`` setting is invalid; the message names every bad field, its value and what is allowed."""

    def __init__(self, problems: list[tuple[str, Any, str]]) -> None:
        self.problems = problems
        lines = [f"workers.{name} = {_quoted(value)}: allowed is {allowed}" for name, value, allowed in problems]
        super().__init__("invalid workers config:\n  " + "\n  ".join(lines))


@dataclass(frozen=True, kw_only=True)
class WorkersConfig:
    """Settings of the evaluation pool.

    - ``backend``: ``"ray"`` (default) or ``"inline"`` (in-process, one evaluation at a time; for debugging).
    - ``address``: ``None`` starts a local Ray cluster owned by the pool; ``"auto"`` joins the cluster started
      on this machine with ``ray start``; ``"host:port"`` joins that cluster's GCS; ``"ray://host:port"``
      connects through Ray Client (timeouts then count from submission, see :class:`workers.RayPool`).
    - ``num_cpus`` / ``num_gpus``: size of the local cluster (``None``: what the machine has); ignored when
      joining a cluster.
    - ``cpus_per_eval``: CPUs reserved by one evaluation.
    - ``gpus_per_eval``: GPUs per evaluation; a fraction below 1 packs several evaluations on one GPU,
      a whole number above 1 gives several GPUs. ``None``: 1 when the cluster has GPUs, else 0.
    - ``gpu_memory_aware``: size each evaluation's GPU share from the genome's cost model
      (``genome.cost.training_memory_bytes``) and ``gpu_memory_gib`` (memory of one GPU): shares are
      1, 1/2, 1/4 or 1/8 of a GPU, so large genomes get a whole GPU and small ones share. The share replaces
      ``gpus_per_eval``, which then only says whether evaluations use GPUs at all (``0``: they do not).
    - ``concurrency``: evaluations in flight at once. ``None``: as many as the cluster's current resources
      fit (re-read every few seconds, so a lost node shrinks it). Set it on an autoscaling cluster: jobs
      beyond the current capacity then wait in Ray's queue, and that demand is what adds nodes.
    - ``timeout_s``: wall-clock limit of one evaluation attempt, counted from its start on a worker
      (``None``: no limit); exceeded ⇒ the attempt is cancelled and reported as a ``timeout`` failure.
    - ``max_retries``: how often a job is resubmitted after its worker process or node died.
    - ``evaluate_fn``: ``"module:function"`` called as ``fn(genome, task, budget, seed, device, *,
      batch_size, want_checkpoint[, start]) -> EvalResult`` on the worker (``start`` only for a continued
      evaluation: the bytes of its training state).
    - ``runtime_env``: Ray runtime environment for the workers (e.g. ``{"working_dir": "."}`` or
      ``{"py_modules": [...]}``), see docs/cluster.md; ``None``: the workers' own Python environment.
    - ``disconnect_after_s``: the pool raises :class:`workers.PoolDisconnected` once the cluster has been
      unreachable this long (keep it below Ray's 60 s GCS reconnect limit, after which Ray exits the driver).
    """

    backend: str = "ray"
    address: str | None = None
    num_cpus: int | None = None
    num_gpus: int | None = None
    cpus_per_eval: float = 1.0
    gpus_per_eval: float | None = None
    gpu_memory_aware: bool = False
    gpu_memory_gib: float | None = None
    concurrency: int | None = None
    timeout_s: float | None = None
    max_retries: int = 2
    evaluate_fn: str = DEFAULT_EVALUATE_FN
    runtime_env: dict[str, Any] | None = field(default=None)
    disconnect_after_s: float = 20.0

    def __post_init__(self) -> None:
        problems = _problems(self)
        if problems:
            raise WorkersConfigError(problems)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> WorkersConfig:
        """Build from a mapping (e.g. the ``workers:`` section of an experiment YAML); unknown keys are errors."""
        data = dict(data or {})
        known = {f.name for f in fields(cls)}
        unknown = [k for k in data if k not in known]
        if unknown:
            raise WorkersConfigError([(str(k), data[k], f"a known key: one of {sorted(known)}")
                                      for k in unknown])
        return cls(**data)


def _quoted(value: Any, limit: int = 200) -> str:
    """``repr(value)`` cut short (as ``genome.errors.quoted``), so a huge value never makes a huge message."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text):,} characters)"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _problems(c: WorkersConfig) -> list[tuple[str, Any, str]]:
    p: list[tuple[str, Any, str]] = []
    if c.backend not in BACKENDS:
        p.append(("backend", c.backend, f"one of {list(BACKENDS)}"))
    if c.address is not None and (not isinstance(c.address, str) or not c.address.strip()):
        p.append(("address", c.address, 'null (start a local cluster), "auto", "host:port" or "ray://host:port"'))
    for name in ("num_cpus", "num_gpus", "concurrency"):
        value = getattr(c, name)
        if value is not None and (not _is_int(value) or value < (1 if name == "concurrency" else 0)):
            low = 1 if name == "concurrency" else 0
            p.append((name, value, f"null (automatic) or a whole number >= {low}"))
    if not _is_number(c.cpus_per_eval) or c.cpus_per_eval < 0:
        p.append(("cpus_per_eval", c.cpus_per_eval, "a number >= 0"))
    g = c.gpus_per_eval
    if g is not None and (not _is_number(g) or g < 0 or (g > 1 and g != int(g))):
        p.append(("gpus_per_eval", g, "null (automatic), 0, a fraction in (0, 1] or a whole number"))
    if not isinstance(c.gpu_memory_aware, bool):
        p.append(("gpu_memory_aware", c.gpu_memory_aware, "true or false"))
    if c.gpu_memory_gib is not None and (not _is_number(c.gpu_memory_gib) or c.gpu_memory_gib <= 0):
        p.append(("gpu_memory_gib", c.gpu_memory_gib, "null or a number > 0 (GiB of one GPU)"))
    if c.gpu_memory_aware is True and c.gpu_memory_gib is None:
        p.append(("gpu_memory_gib", None, "a number > 0 (GiB of one GPU) when gpu_memory_aware is true"))
    if c.timeout_s is not None and (not _is_number(c.timeout_s) or c.timeout_s <= 0):
        p.append(("timeout_s", c.timeout_s, "null (no limit) or a number of seconds > 0"))
    if not _is_int(c.max_retries) or c.max_retries < 0:
        p.append(("max_retries", c.max_retries, "a whole number >= 0"))
    if not isinstance(c.evaluate_fn, str) or not _DOTTED.match(c.evaluate_fn):
        p.append(("evaluate_fn", c.evaluate_fn, 'a "package.module:function" path, e.g. "ctm:evaluate"'))
    if c.runtime_env is not None and not isinstance(c.runtime_env, dict):
        p.append(("runtime_env", c.runtime_env, "null or a mapping (a Ray runtime environment)"))
    if not _is_number(c.disconnect_after_s) or c.disconnect_after_s <= 0:
        p.append(("disconnect_after_s", c.disconnect_after_s, "a number of seconds > 0"))
    return p + _impossible(c, p)


def _impossible(c: WorkersConfig, earlier: list[tuple[str, Any, str]]) -> list[tuple[str, Any, str]]:
    """Requests the config alone shows no worker could ever meet: a local cluster (``address: null``) of
    ``num_cpus`` CPUs cannot start an evaluation that needs more (the campaign would wait forever)."""
    if c.backend != "ray" or c.address is not None or {name for name, _, _ in earlier} & {
            "num_cpus", "num_gpus", "cpus_per_eval", "gpus_per_eval"}:
        return []
    p: list[tuple[str, Any, str]] = []
    if c.num_cpus is not None and c.cpus_per_eval > c.num_cpus:
        p.append(("cpus_per_eval", c.cpus_per_eval, f"at most num_cpus = {c.num_cpus}, the CPUs of the local Ray "
                  "cluster (no evaluation could ever start): lower cpus_per_eval or raise num_cpus"))
    g = c.gpus_per_eval
    if c.num_gpus is not None and g is not None and g > c.num_gpus:
        p.append(("gpus_per_eval", g, f"at most num_gpus = {c.num_gpus}, the GPUs of the local Ray cluster (no "
                  "evaluation could ever start): lower gpus_per_eval (0 runs on CPUs) or raise num_gpus"))
    return p
