"""Evaluation functions and a task module that fail the way real user code does, for the fault tests.

``oom_once_evaluate``: the first attempt of each job (batch size from the genome) asks torch's CPU allocator
for 400 TB (``torch.empty(10**14)``), a real allocation failure on any machine; the retry with a halved batch
succeeds like :func:`tests.search.campaign_fakes.landscape_evaluate`.
"""

from __future__ import annotations

from ctm.result import EvalBudget, EvalResult, TaskSpec
from genome import Genome
from tests.search.campaign_fakes import landscape_evaluate


def oom_once_evaluate(genome: Genome, task: TaskSpec, budget: EvalBudget, seed: int, device: str = "cpu", *,
                      batch_size: int | None = None, want_checkpoint: bool = False) -> EvalResult:
    import torch

    if batch_size is None:  # the first attempt: more memory than any machine has
        torch.empty(10**14)
    return landscape_evaluate(genome, task, budget, seed, device, batch_size=batch_size,
                              want_checkpoint=want_checkpoint)
