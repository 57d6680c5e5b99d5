"""Fake evaluation functions for tests and benchmarks: the ``evaluate`` signature without training.

They live in the package (not under ``tests/``) so that every Ray worker can import them wherever the
project is importable, and so that campaigns can be dry-run with ``evaluate_fn:
"workers.testing:fake_evaluate"``. No torch import unless an out-of-memory error is requested.

:func:`fake_evaluate` follows instructions in ``task.params`` (all optional, combinable):

- ``sleep``: seconds to take (``time.sleep``; costs no CPU).
- ``report_dir``: write ``<report_dir>/<genome hash>.<pid>.json`` at the start with the worker's pid,
  node IP, device, batch size and this module's file, so a test can find (and kill) the process running an
  evaluation, or see where its code came from.
- ``hang``: never return. ``hang_once``: a marker file path; the first call creates it and hangs, later calls
  (retries) run normally.
- ``raise``: name of a built-in exception type to raise (message ``"fake failure"``).
- ``diverge``: return a ``diverged`` failure, as ``ctm.evaluate`` does when the loss becomes NaN.
- ``oom_above``: batch sizes above this raise ``torch.OutOfMemoryError`` (or, with ``oom_as_result``,
  return an ``oom`` failure as ``ctm.evaluate`` does), so the pool's halved-batch retry can be tested.
- ``fitness``: the fitness to report (default: a number in [0, 1) from the genome hash and the seed).
"""

from __future__ import annotations

import builtins
import hashlib
import json
import math
import os
import sys
import time
from pathlib import Path
from statistics import NormalDist

from ctm.result import BEHAVIOUR_POINTS, EvalBudget, EvalResult, ParentWeights, TaskSpec
from genome.genome import Genome


def _node_ip() -> str:
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        return str(ray.util.get_node_ip_address())
    return "local"


def _hang() -> None:
    while True:
        time.sleep(3600)


def default_fitness(genome: Genome, seed: int) -> float:
    """A deterministic stand-in fitness in [0, 1) from the genome hash and the seed."""
    digest = hashlib.sha256(f"{genome.hash}:{seed}".encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2**32


def ok_result(genome: Genome, seed: int, fitness: float, *, wall_time_s: float = 0.0,
              batch_size: int | None = None) -> EvalResult:
    """A successful result shaped like ``ctm.evaluate``'s (metrics, per-tick curves, behaviour vector)."""
    ticks = genome.ticks
    acc = [fitness * (t + 1) / ticks for t in range(ticks)]
    return EvalResult(
        genome_hash=genome.hash, fitness=fitness, seed=seed,
        metrics={"val_accuracy": fitness, "wall_time_s": wall_time_s, "train_steps": 0.0,
                 "batch_size": float(batch_size or genome.batch_size)},
        per_tick_accuracy=acc, per_tick_certainty=list(acc),
        behaviour=[fitness] * (2 * BEHAVIOUR_POINTS),
    )


def fake_evaluate(genome: Genome, task: TaskSpec, budget: EvalBudget, seed: int, device: str = "cpu", *,
                  batch_size: int | None = None, want_checkpoint: bool = False,
                  start: bytes | None = None) -> EvalResult:
    """Behave as ``task.params`` says (see the module docstring); otherwise succeed at once."""
    p = task.params
    started, started_at = time.monotonic(), time.time()
    batch = batch_size or genome.batch_size
    if p.get("report_dir"):
        record = {"pid": os.getpid(), "node_ip": _node_ip(), "genome_hash": genome.hash, "device": device,
                  "batch_size": batch, "time": time.time(), "module": __file__}
        path = Path(p["report_dir"]) / f"{genome.hash}.{os.getpid()}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record))
        tmp.replace(path)
    if p.get("hang"):
        _hang()
    if p.get("hang_once"):
        marker = Path(p["hang_once"])
        try:
            marker.touch(exist_ok=False)
        except FileExistsError:
            pass
        else:
            _hang()
    if p.get("sleep"):
        time.sleep(float(p["sleep"]))
    if p.get("raise"):
        raise getattr(builtins, p["raise"])("fake failure")
    if p.get("diverge"):
        return EvalResult.failed(genome.hash, "diverged", "loss became nan at step 3", seed=seed)
    if p.get("oom_above") is not None and batch > int(p["oom_above"]):
        message = f"CUDA out of memory (fake) at batch size {batch}"
        if p.get("oom_as_result"):
            return EvalResult.failed(genome.hash, "oom", message, seed=seed)
        import torch  # only this path needs torch

        raise torch.OutOfMemoryError(message)
    fitness = float(p["fitness"]) if "fitness" in p else default_fitness(genome, seed)
    result = ok_result(genome, seed, fitness, wall_time_s=time.monotonic() - started, batch_size=batch)
    result.metrics["started_at_unix"] = started_at
    if want_checkpoint:
        result.checkpoint = b"fake-checkpoint:" + genome.hash.encode()
    return result


def lognormal_evaluate(genome: Genome, task: TaskSpec, budget: EvalBudget, seed: int, device: str = "cpu", *,
                       batch_size: int | None = None, want_checkpoint: bool = False,
                       start: bytes | None = None) -> EvalResult:
    """Sleep for a log-normal duration (median ``CTMEVO_FAKE_MEDIAN_S``, default 2 s; log-space spread
    ``CTMEVO_FAKE_SIGMA``, default 1), drawn from the genome hash and seed (the same job always sleeps the same
    time), then succeed with :func:`default_fitness`; ``started_at_unix`` and ``ended_at_unix`` stamp when."""
    median = float(os.environ.get("CTMEVO_FAKE_MEDIAN_S", "2"))
    sigma = float(os.environ.get("CTMEVO_FAKE_SIGMA", "1"))
    u = (int.from_bytes(hashlib.sha256(f"sleep:{genome.hash}:{seed}".encode()).digest()[:6], "big") + 0.5) / 2**48
    duration = median * math.exp(sigma * NormalDist().inv_cdf(u))
    started_at = time.time()
    time.sleep(duration)
    result = ok_result(genome, seed, default_fitness(genome, seed), wall_time_s=duration, batch_size=batch_size)
    result.metrics.update(started_at_unix=started_at, ended_at_unix=time.time())
    return result


def noop_evaluate(genome: Genome, task: TaskSpec, budget: EvalBudget, seed: int, device: str = "cpu", *,
                  batch_size: int | None = None, want_checkpoint: bool = False,
                  start: bytes | None = None) -> EvalResult:
    """Return a minimal success at once: measures the pool's own overhead."""
    return EvalResult(genome_hash=genome.hash, fitness=0.0, seed=seed)


def rung_evaluate(genome: Genome, task: TaskSpec, budget: EvalBudget, seed: int, device: str = "cpu", *,
                  batch_size: int | None = None, want_checkpoint: bool = False,
                  start: bytes | None = None, parent: ParentWeights | None = None) -> EvalResult:
    """A stand-in for fidelity rungs, continued training and inheritance: fitness grows with the steps trained
    (a smooth function of ticks and memory length, saturating) and varies a little with the seed; the
    checkpoint is a JSON record of (hash, steps, seed, the steps it started from, the node that ran it). A
    ``start`` that is not this genome's own state of fewer steps with the same seed, or a ``parent`` state that
    is not the parent genome's own, is an ``error`` result, so that a test sees whether jobs really start where
    they should. An inheriting child counts the parent's steps as a head start and reports
    ``inherited_fraction`` (the share of genes it shares with the parent) and ``parent_steps``.
    ``task.params["sleep"]``: seconds to take (default 0.02)."""
    time.sleep(float(task.params.get("sleep", os.environ.get("CTMEVO_TEST_EVAL_SLEEP", "0.02"))))
    steps = int(budget.steps or 0)
    started = head_start = 0
    if start is not None:
        state = json.loads(start)
        if state["hash"] != genome.hash or state["steps"] >= steps or state["seed"] != seed:
            return EvalResult.failed(genome.hash, "error", f"ValueError: not my state: {state}", seed=seed)
        started = int(state["steps"])
    owed: dict[str, float] = {}
    if parent is not None:
        state = json.loads(parent.state)
        if state["hash"] != parent.genome.hash:
            return EvalResult.failed(genome.hash, "error", f"ValueError: not the parent's state: {state}", seed=seed)
        mine, theirs = genome.to_dict(), parent.genome.to_dict()
        head_start = int(state["steps"])
        owed = {"inherited_fraction": sum(mine[g] == theirs.get(g) for g in mine) / len(mine),
                "parent_steps": float(head_start)}
    base = 1.0 - abs(genome.ticks - 10) / 20 - abs(genome.memory_length - 4) / 10
    fitness = base * (1.0 - math.exp(-(steps + head_start) / 300.0)) + 0.02 * (default_fitness(genome, seed) - 0.5)
    result = ok_result(genome, seed, fitness, wall_time_s=0.02, batch_size=batch_size)
    result.metrics.update({"train_steps": float(steps), "start_step": float(started), "param_count": 1000.0,
                           **owed})
    if want_checkpoint:
        result.checkpoint = json.dumps({"hash": genome.hash, "steps": steps, "seed": seed, "from": started,
                                        "node": _node_ip()}).encode()
    return result
