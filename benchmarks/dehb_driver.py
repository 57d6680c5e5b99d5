"""DEHB (Awad et al. 2021, the ``dehb`` package) driving a ctmevo worker pool through its ask/tell interface.

One driver for CTM-Bench (the simulated pool) and for real training (Ray or inline): DEHB asks a configuration
in [0, 1]^d and a fidelity; the configuration is decoded by the genome space's :class:`genome.VectorCodec`
(clipped to the cube), the fidelity rounded to a whole number of training steps, and the genome is trained
*from scratch* to it (DEHB has no notion of continuing a checkpoint); the result is told back as
``fitness = 1 - accuracy`` to minimise (a failure as 1) with ``cost = steps``. Jobs are submitted while a
worker is free and the steps asked (done and in flight) stay below the budget. dehb 0.1.2 declares numpy<2 but
runs on numpy 2: install it with ``pip install --no-deps dehb==0.1.2`` (``make bench-install`` does).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from ctm.result import EvalBudget, EvalResult, TaskSpec
from genome import Genome, GenomeSpace, VectorCodec
from workers import EvalJob, Pool


def dehb_run(pool: Pool, *, space: GenomeSpace, task: TaskSpec, rungs: list[int], budget_steps: int, seed: int,
             eval_seed: Callable[[Genome, int], int], val_samples: int = 256, eta: float = 3.0
             ) -> Iterator[tuple[Genome, int, EvalResult]]:
    """Yield (genome, steps, result) for every evaluation DEHB asked, in the order the pool finished them.
    ``eval_seed(genome, n)``: the training seed of the n-th evaluation (1-based)."""
    from dehb import DEHB
    from loguru import logger

    logger.remove()
    codec = VectorCodec(space)
    with tempfile.TemporaryDirectory() as tmp:
        opt = DEHB(f=None, cs=None, dimensions=codec.dim, min_fidelity=rungs[0], max_fidelity=rungs[-1], eta=eta,
                   seed=seed, n_workers=1, output_path=tmp, configspace=False, save_freq="end")
        asked: dict[str, tuple[dict[str, Any], Genome, int]] = {}
        spent = in_flight = n = 0
        while True:
            while pool.free_slots and spent + in_flight < budget_steps:
                info = opt.ask()
                genome = codec.decode(np.clip(np.asarray(info["config"], dtype=float), 0, 1))
                steps = round(info["fidelity"])
                job_id = f"j{n}"
                n += 1
                pool.submit(EvalJob(genome=genome, task=task, budget=EvalBudget(steps=steps, val_samples=val_samples),
                                    seed=eval_seed(genome, n), job_id=job_id))
                asked[job_id] = (info, genome, steps)
                in_flight += steps
            if not pool.in_flight:
                return
            for r in pool.poll(timeout=1.0):
                info, genome, steps = asked.pop(r.job_id)
                in_flight -= steps
                spent += steps
                fitness = r.fitness if r.ok and r.fitness is not None else 0.0
                opt.tell(info, {"fitness": 1.0 - fitness, "cost": steps})
                yield genome, steps, r
