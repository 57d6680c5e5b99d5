"""Learning curves: one training run of a genome, measured at several steps of the same run.

``evaluate_curve(genome, task, steps=[50, 100, 300, 900], seed=s)`` trains once from scratch to the last step
and returns one :class:`ctm.result.EvalResult` per recorded step. It is ``ctm.evaluate`` continued from its own
evaluation state from one recorded step to the next (the continuation that fidelity rungs use), so the point at
step s is, on a CPU, bit for bit what ``evaluate`` with ``budget.steps = s`` and the same seed returns: the
curve *is* the campaign's evaluation, recorded at several rungs. Each result carries validation accuracy and
loss, the exit tick, calibration (ECE), the per-tick accuracy and certainty, the behaviour vector, the
parameter count and ``seconds_per_step`` (training time of that segment over its steps).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from ctm.result import EvalBudget, EvalResult, increasing_steps
from genome.genome import Genome


def evaluate_curve(genome: Genome, task: Any, *, steps: Sequence[int], seed: int, budget: EvalBudget | None = None,
                   device: str = "cpu", amp: bool | None = None) -> list[EvalResult]:
    """Train ``genome`` once to ``steps[-1]`` and measure it at every step of ``steps`` (see the module doc).

    ``budget`` gives everything but the steps (validation samples, warm-up, clipping; ``budget.seconds`` must be
    None: a curve is a function of steps). A failure (divergence, OOM, a genome the task refuses) ends the curve:
    the list holds the points measured before it and the failed result last.
    """
    from ctm.evaluation import evaluate  # torch on first use

    points = increasing_steps(steps)
    budget = budget or EvalBudget()
    if budget.seconds is not None:
        raise ValueError(f"budget.seconds = {budget.seconds}: allowed is None (a curve is measured at steps)")
    out: list[EvalResult] = []
    state: bytes | None = None
    done = 0
    for step in points:
        began = time.perf_counter()
        result = evaluate(genome, task, replace(budget, steps=step), seed, device, want_checkpoint=True,
                          start=state, amp=amp)
        wall = time.perf_counter() - began
        state, result.checkpoint = result.checkpoint, None
        result.metrics["seconds_per_step"] = wall / max(step - done, 1)
        out.append(result)
        if result.failure is not None:
            break
        done = step
    return out
