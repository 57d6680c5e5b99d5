"""A cheap, deterministic stand-in for ``ctm.evaluate`` so campaign tests exercise the loop, not training.

Used through the campaign file (``workers: {evaluate_fn: "tests.search.campaign_fakes:landscape_evaluate"}``).
Fitness is a smooth function of ticks and memory length plus a small hash-derived term, so archives fill in
a reproducible way. ``CTMEVO_TEST_EVAL_SLEEP`` (seconds, default 0.02) makes each evaluation take a while,
so that a killed process has work in flight. Genomes with 7 or 14 ticks fail, to check failures are kept.
"""

from __future__ import annotations

import os
import time

from ctm.result import EvalBudget, EvalResult, TaskSpec
from genome import Genome
from workers.testing import default_fitness, ok_result


def landscape_evaluate(genome: Genome, task: TaskSpec, budget: EvalBudget, seed: int, device: str = "cpu", *,
                       batch_size: int | None = None, want_checkpoint: bool = False,
                  start: bytes | None = None) -> EvalResult:
    time.sleep(float(os.environ.get("CTMEVO_TEST_EVAL_SLEEP", "0.02")))
    if genome.ticks in (7, 14):
        return EvalResult.failed(genome.hash, "error", "ValueError: unlucky tick count", seed=seed)
    fitness = 1.0 - abs(genome.ticks - 10) / 20 - abs(genome.memory_length - 4) / 10
    fitness += 0.01 * default_fitness(genome, seed)
    result = ok_result(genome, seed, fitness, wall_time_s=0.02, batch_size=batch_size)
    result.metrics.update({"param_count": 1000.0 + genome.d_model, "ece": 0.1, "exit_tick_mean": 1.0})
    if want_checkpoint:
        result.checkpoint = b"not-a-real-checkpoint"
    return result
