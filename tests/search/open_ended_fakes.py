"""A synthetic skill landscape for open-ended tests, where stepping stones matter by construction.

A model's state is a *skill*: the parity length it has mastered. Training ``n`` steps on length L moves the
skill towards L at a speed that falls with the square of the gap (a model that masters L - 2 learns L fast,
one from scratch learns a long L slowly), scaled by the genome's quality (ticks near 10, memory near 4).
Fitness is 0.5 + 0.5 · min(skill, L) / L, like an accuracy from chance to perfect. The checkpoint is JSON
(hash, steps, seed, skill, length); a transfer (``parent.task``) starts from the parent's skill.
"""

from __future__ import annotations

import json
import os
import time

from ctm.result import EvalBudget, EvalResult, ParentWeights, TaskSpec
from genome import Genome
from workers.testing import ok_result

RATE = 0.03  # skill per step at gap 0, for a genome of quality 1


def quality(genome: Genome) -> float:
    return max(0.2, 1.0 - abs(genome.ticks - 10) / 20 - abs(genome.memory_length - 4) / 10)


def train(skill: float, length: int, steps: int, q: float) -> float:
    for _ in range(steps // 10):
        gap = max(0.0, length - skill)
        skill = min(float(length), skill + 10 * RATE * q / (1.0 + gap * gap / 4.0))
    return skill


def skill_evaluate(genome: Genome, task: TaskSpec, budget: EvalBudget, seed: int, device: str = "cpu", *,
                   batch_size: int | None = None, want_checkpoint: bool = False, start: bytes | None = None,
                   parent: ParentWeights | None = None) -> EvalResult:
    time.sleep(float(os.environ.get("CTMEVO_TEST_EVAL_SLEEP", "0")))
    length, steps = int(task.params["length"]), int(budget.steps or 0)
    skill, done = 0.0, 0
    if start is not None:
        state = json.loads(start)
        skill, done = float(state["skill"]), int(state["steps"])
    elif parent is not None:
        state = json.loads(parent.state)
        skill = float(state["skill"])
        assert parent.task is None or int(parent.task.params["length"]) == int(state["length"])
    skill = train(skill, length, steps - done, quality(genome))
    fitness = 0.5 + 0.5 * min(skill, length) / length
    result = ok_result(genome, seed, fitness, wall_time_s=0.001, batch_size=batch_size)
    result.metrics.update({"train_steps": float(steps - done), "param_count": 1000.0})
    if parent is not None and parent.task is not None:
        result.metrics["reinitialised_tensors"] = 2.0
    if want_checkpoint:
        result.checkpoint = json.dumps({"hash": genome.hash, "steps": steps, "seed": seed, "skill": skill,
                                        "length": length}).encode()
    return result
