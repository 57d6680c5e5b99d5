"""Replaying CTM training from CTM-Bench: evaluation functions that answer like ``ctm.evaluate`` in microseconds.

Name one in a campaign file (``workers: {evaluate_fn: "ctm.bench.replay:surrogate"}``) and the campaign, its
strategies, rungs, repeats and resume run unchanged on simulated training:

- ``lookup``: the measured curves exactly (a genome that was not measured is an error); seed ``s`` replays the
  genome's measured seed ``s mod n``;
- ``surrogate`` (gradient boosting) and ``surrogate_forest`` (extra trees, the second model class): any genome of
  the bench space; the value at ``steps`` is the predicted seed mean plus ``z × `` the predicted seed spread,
  with one ``z ~ N(0, 1)`` per (genome, seed): **one seed is one curve**, so a promoted genome continues the same
  draw, and a repeat with another seed is another draw.

Steps between recorded points are interpolated on log(steps) (below the first point, the first point's value);
steps past the last recorded point, ``budget.seconds`` budgets and inherited weights (``parent``) are refused
with a ValueError naming what the bench cannot replay. The result is filled like ``ctm.evaluate``'s: ``fitness``
= validation accuracy, ``metrics`` (``val_accuracy``, ``val_loss``, ``exit_tick_mean``, ``ece``,
``param_count``, ``train_steps``, ``start_step``, and ``train_time_s`` / ``wall_time_s``: the *simulated*
seconds the training would have taken on the machine that built the data, which the simulated pool uses as
the evaluation's duration), per-tick accuracy and certainty and the behaviour vector (the lookup's measured
ones; for the surrogate those of the nearest measured genome at that step, resampled to the genome's ticks),
and, when asked, a checkpoint: a small token naming (genome, seed, steps) that a later rung continues from.
"""

from __future__ import annotations

import hashlib
import json
import math
from functools import cache
from typing import Any

import numpy as np

from ctm.bench.data import MEASURES, Curves, load_curves
from ctm.bench.space import STEPS, TASKS, cost
from ctm.result import EvalBudget, EvalResult, TaskSpec
from genome.genome import Genome

TOKEN = "ctm-bench/1"
_LOG_STEPS = np.log(np.asarray(STEPS, dtype=np.float64))


def bench_key(task: Any) -> str:
    """The bench task a campaign's ``task`` is (ValueError naming the task and the bench's tasks)."""
    spec = task.to_dict() if isinstance(task, TaskSpec) else dict(task) if isinstance(task, dict) else None
    if spec is None:
        raise ValueError(f"task = {task!r}: CTM-Bench replays a task spec, not a task object")
    for key, bench in TASKS.items():
        if bench.task.to_dict() == {"name": spec["name"], "params": dict(spec.get("params") or {})}:
            return key
    known = ", ".join(f"{b.task.name} {b.task.params}" for b in TASKS.values())
    raise ValueError(f"task = {spec}: CTM-Bench has data for {known} only")


@cache
def curves_for(key: str) -> Curves:
    return load_curves(key)


@cache
def surrogate_for(key: str, kind: str) -> Any:
    from ctm.bench.surrogate import Surrogate
    return Surrogate.fit(curves_for(key), kind=kind)  # type: ignore[arg-type]


def seed_z(genome_hash: str, seed: int) -> float:
    """The standard normal draw of (genome, seed): the same for every rung of that seed's curve."""
    digest = hashlib.sha256(f"{genome_hash}:{seed}".encode()).digest()
    u = (int.from_bytes(digest[:8], "big") + 0.5) / 2**64
    return float(np.sqrt(2) * _erfinv(2 * u - 1))


def _erfinv(y: float) -> float:
    from scipy.special import erfinv
    return float(erfinv(y))


def interpolate(values: np.ndarray, steps: int) -> float:
    """``values`` (one per recorded step) at ``steps``, linear in log(steps); clamped below the first point."""
    if steps > STEPS[-1]:
        raise ValueError(f"budget.steps = {steps}: CTM-Bench recorded curves up to {STEPS[-1]} steps; allowed is "
                         f"at most {STEPS[-1]} (rungs and repeats too)")
    return float(np.interp(math.log(max(steps, 1)), _LOG_STEPS, values))


def _point_index(steps: int) -> int:
    """The recorded point nearest to ``steps`` on log(steps)."""
    return int(np.argmin(np.abs(_LOG_STEPS - math.log(max(steps, 1)))))


def _resample(values: list[float], ticks: int) -> list[float]:
    if len(values) == ticks:
        return list(values)
    src = np.linspace(0.0, 1.0, len(values)) if len(values) > 1 else np.zeros(1)
    return np.interp(np.linspace(0.0, 1.0, ticks), src, np.asarray(values)).tolist() if len(values) > 1 \
        else [values[0]] * ticks


def _start_steps(start: bytes | None, genome: Genome, seed: int) -> int:
    if start is None:
        return 0
    try:
        token = json.loads(bytes(start).decode())
        assert token.get("format") == TOKEN
    except (ValueError, UnicodeDecodeError, AssertionError, AttributeError):
        raise ValueError("start: not a CTM-Bench checkpoint token (a real evaluation state cannot be replayed; "
                         "run the campaign with one evaluate_fn from start to end)") from None
    if token["genome"] != genome.hash:
        raise ValueError(f"start: the token belongs to genome {token['genome']}, not to {genome.hash}")
    return int(token["steps"])


def _replay(kind: str, genome: Genome, task: Any, budget: EvalBudget, seed: int, start: bytes | None,
            parent: Any, want_checkpoint: bool) -> EvalResult:
    if parent is not None:
        raise ValueError("parent: CTM-Bench cannot replay inherited weights (evaluation.inherit); the bench "
                         "measures training from scratch; judge inheritance on real training")
    if budget.seconds is not None:
        raise ValueError(f"budget.seconds = {budget.seconds}: CTM-Bench replays step budgets only; allowed is "
                         "null with evaluation.steps set")
    if budget.steps is None:
        raise ValueError("budget.steps = None: allowed is a step count (CTM-Bench replays step budgets)")
    key = bench_key(task)
    steps = budget.steps
    interpolate(np.zeros(len(STEPS)), steps)  # refuses steps past the last point
    done = _start_steps(start, genome, seed)
    curves = curves_for(key)
    if kind == "lookup":
        row = curves.index.get(genome.hash)
        if row is None:
            raise ValueError(f"genome {genome.hash}: not among the {curves.n} measured genomes of CTM-Bench "
                             f"{key}; allowed are measured genomes (the lookup replays measurements), or use "
                             "ctm.bench.replay:surrogate")
        measured = [s for s in range(curves.seeds) if np.isfinite(curves.values["val_accuracy"][row, s, -1])]
        s = measured[seed % len(measured)]
        values = {m: interpolate(curves.values[m][row, s], steps) for m in MEASURES}
        sps, overhead = float(curves.seconds_per_step[row]), float(curves.overhead_s[row])
        detail = curves.detail[(row, s)][_point_index(steps)]
    else:
        model = surrogate_for(key, "boosting" if kind == "surrogate" else "forest")
        pred = model.predict(genome)
        z = seed_z(genome.hash, seed)
        values = {m: interpolate(pred[m] + z * pred[m + ":spread"], steps) for m in MEASURES}
        values["val_accuracy"] = min(max(values["val_accuracy"], 0.0), 1.0)
        values["ece"] = max(values["ece"], 0.0)
        values["val_loss"] = max(values["val_loss"], 0.0)
        values["exit_tick_mean"] = min(max(values["exit_tick_mean"], 1.0), float(genome.ticks))
        sps, overhead = float(pred["seconds_per_step"][0]), float(pred["overhead_s"][0])
        detail = curves.detail[(_nearest(curves, model, genome), 0)][_point_index(steps)]
    trained = max(steps - done, 0)
    metrics = {**values, "param_count": float(cost(genome, key).params), "train_steps": float(steps),
               "start_step": float(done), "train_time_s": sps * trained, "wall_time_s": sps * trained + overhead,
               "simulated": 1.0}
    checkpoint = None
    if want_checkpoint:
        checkpoint = json.dumps({"format": TOKEN, "genome": genome.hash, "seed": seed, "steps": steps}).encode()
    return EvalResult(genome_hash=genome.hash, fitness=values["val_accuracy"], metrics=metrics,
                      per_tick_accuracy=_resample(detail["per_tick_accuracy"], genome.ticks),
                      per_tick_certainty=_resample(detail["per_tick_certainty"], genome.ticks),
                      behaviour=list(detail["behaviour"]), seed=seed, checkpoint=checkpoint)


_NEAREST: dict[tuple[str, str], int] = {}


def _nearest(curves: Curves, model: Any, genome: Genome) -> int:
    """The measured genome closest to ``genome`` in the codec's unit cube (its per-tick shapes stand in)."""
    key = (curves.task, genome.hash)
    if key not in _NEAREST:
        row = curves.index.get(genome.hash)
        if row is None:
            x = model._codec.encode(genome)
            table = _codec_table(curves.task)
            row = int(np.argmin(((table - x) ** 2).sum(1)))
        _NEAREST[key] = row
    return _NEAREST[key]


@cache
def _codec_table(key: str) -> np.ndarray:
    from genome.codec import VectorCodec
    codec = VectorCodec(TASKS[key].space())
    return np.stack([codec.encode(g) for g in curves_for(key).genomes])


def lookup(genome: Genome, task: Any, budget: EvalBudget, seed: int, device: str = "cpu", *,
           batch_size: int | None = None, want_checkpoint: bool = False, start: bytes | None = None,
           parent: Any = None) -> EvalResult:
    """Replay the measured curve of ``genome`` (see the module doc)."""
    return _replay("lookup", genome, task, budget, seed, start, parent, want_checkpoint)


def surrogate(genome: Genome, task: Any, budget: EvalBudget, seed: int, device: str = "cpu", *,
              batch_size: int | None = None, want_checkpoint: bool = False, start: bytes | None = None,
              parent: Any = None) -> EvalResult:
    """Replay ``genome``'s training from the boosting surrogate (see the module doc)."""
    return _replay("surrogate", genome, task, budget, seed, start, parent, want_checkpoint)


def surrogate_forest(genome: Genome, task: Any, budget: EvalBudget, seed: int, device: str = "cpu", *,
                     batch_size: int | None = None, want_checkpoint: bool = False, start: bytes | None = None,
                     parent: Any = None) -> EvalResult:
    """Replay ``genome``'s training from the extra-trees surrogate (the second model class)."""
    return _replay("forest", genome, task, budget, seed, start, parent, want_checkpoint)
