"""``build_model(genome, task)``: the CTM of ``genome.cost.resolve(genome, task.shape)``, seeded."""

from __future__ import annotations

from typing import Any

import torch

from ctm.model import CTM
from ctm.result import TaskSpec
from genome.cost import TaskShape, resolve
from genome.genome import Genome


def task_shape(task: Any) -> TaskShape:
    """The ``TaskShape`` of a task object, a ``TaskSpec`` (built first) or a ``TaskShape`` itself."""
    if isinstance(task, TaskShape):
        return task
    if isinstance(task, TaskSpec):
        from ctm.tasks import make_task
        task = make_task(task)
    shape = getattr(task, "shape", None)
    if not isinstance(shape, TaskShape):
        raise TypeError(f"task = {task!r}: allowed is a task object with a TaskShape `shape`, a TaskSpec or a "
                        "TaskShape")
    return shape


def build_model(genome: Genome, task: Any, *, seed: int = 0) -> CTM:
    """Build the CTM for ``genome`` on ``task`` (a task object, ``TaskSpec`` or ``TaskShape``).

    ``seed`` fixes the initial weights (drawn inside a forked RNG, so the caller's global RNG is untouched),
    the synchronisation pairs and a random decay initialisation. The trainable parameter count equals
    ``genome.cost.estimate(genome, task.shape).params`` exactly.
    """
    spec = resolve(genome, task_shape(task))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return CTM(spec, seed=seed)
