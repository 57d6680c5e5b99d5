"""CTM-Bench's tasks, genome spaces and recorded steps: the one definition the data build, the surrogate and the
replay evaluation share.

The space is the quickstart's, widened where a 2-core CPU can afford it: every structural gene of the CTM is
searched (T ticks, M memory length, NLM depth and width H, D neurons, D_in, heads, synapse depth, the
synchronisation selection and sizes, self-pairs, the decay initialisation, its range and whether it is learned);
the training genes (learning rate, batch size, dropout) are fixed so that a curve measures an architecture.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from ctm.result import EvalBudget, TaskSpec

STEPS: tuple[int, ...] = (10, 25, 50, 100, 200, 300, 600, 900)  # the recorded points of every curve
VAL_SAMPLES = 256

_COMMON: dict[str, Any] = {
    "memory_length": {"min": 1, "max": 12},
    "nlm_depth": {"choices": [1, 2]},
    "nlm_hidden": {"min": 2, "max": 16},
    "d_model": {"min": 16, "max": 96},
    "d_input": {"min": 8, "max": 48},
    "heads": {"choices": [1, 2, 4]},
    "synapse_depth": {"min": 1, "max": 3},
    "sync_select": {"choices": ["first-last", "random", "random-pairing"]},
    "n_sync_out": {"min": 4, "max": 32},
    "n_sync_action": {"min": 0, "max": 32},
    "n_self_pairs": {"min": 0, "max": 4},
    "decay_init": {"choices": ["zeros", "spread", "random"]},
    "decay_init_max": {"min": 0.5, "max": 8.0},
    "decay_learned": {"choices": [True, False]},
    "dropout": 0.0,
    "dropout_nlm": 0.0,
    "batch_size": 32,
    "learning_rate": 0.003,
}


@dataclass(frozen=True, kw_only=True)
class BenchTask:
    """One task of the bench: its spec, its genome space (a campaign's ``genome_space`` mapping) and budget."""

    key: str
    task: TaskSpec
    genome_space: dict[str, Any]

    @property
    def budget(self) -> EvalBudget:
        return EvalBudget(steps=STEPS[-1], val_samples=VAL_SAMPLES)

    def space(self) -> Any:
        from genome.space import GenomeSpace
        return GenomeSpace.from_config(self.genome_space, source=f"ctm-bench {self.key}")


TASKS: dict[str, BenchTask] = {
    "parity10": BenchTask(key="parity10", task=TaskSpec(name="parity", params={"length": 10}),
                          genome_space={"ticks": {"min": 1, "max": 24}, **_COMMON}),
    "sort6": BenchTask(key="sort6", task=TaskSpec(name="sort", params={"length": 6}),
                       genome_space={"ticks": {"min": 6, "max": 24}, **_COMMON}),
}


def bench_task(key: str) -> BenchTask:
    """The bench task called ``key``, or a ValueError listing the known ones."""
    if key not in TASKS:
        raise ValueError(f"task = {key!r}: allowed is one of {sorted(TASKS)}")
    return TASKS[key]


@cache
def task_shape(key: str) -> Any:
    """The ``genome.cost.TaskShape`` of bench task ``key`` (built once per process; imports torch's tasks)."""
    from ctm.tasks import make_task
    return make_task(bench_task(key).task).shape


def cost(genome: Any, key: str) -> Any:
    """The exact cost (parameters, MACs; :func:`genome.cost.estimate`) of ``genome`` on bench task ``key``."""
    from genome.cost import estimate
    return estimate(genome, task_shape(key))


def genome_at(key: str, index: int) -> Any:
    """The ``index``-th genome of task ``key``'s sample: a pure function of (key, index), so every machine that
    builds genome i builds the same one."""
    import numpy as np
    rng = np.random.default_rng([20_261_205, sum(key.encode()), index])
    return bench_task(key).space().sample(rng)
