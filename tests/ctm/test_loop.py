"""ctm.loop: the shared training loop's read-back cadence, divergence step numbers and schedules."""

from __future__ import annotations

import pytest
import torch
from ctm_testutil import tiny

from ctm import build_model
from ctm.loop import Diverged, TrainingLoop, make_optimizer, warmup_constant
from ctm.tasks.parity import ParityTask


class NaNFrom(ParityTask):
    """Parity whose loss turns NaN from training step ``bad`` (1-based) on."""

    def __init__(self, bad: int, **params):
        super().__init__(**params)
        self.bad, self.calls = bad, 0

    def loss(self, predictions, certainties, targets):
        self.calls += 1
        loss = super().loss(predictions, certainties, targets)
        return loss * float("nan") if self.calls >= self.bad else loss


def make_loop(task: ParityTask, **extra) -> TrainingLoop:
    torch.manual_seed(0)
    model = build_model(tiny(), task)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer, scheduler = make_optimizer(params, learning_rate=1e-3, weight_decay=0.0, schedule=warmup_constant(4))
    return TrainingLoop(model=model, task=task, optimizer=optimizer, scheduler=scheduler, params=params, seed=0,
                        batch_size=4, grad_clip=1.0, device=torch.device("cpu"), **extra)


def test_read_back_cadence_and_after_step_order() -> None:
    loop = make_loop(ParityTask(length=4))
    seen: list[tuple[int, int]] = []
    loop.run(until=7, flush_every=None, flush_at=lambda s: s % 3 == 0,
             after_step=lambda s: seen.append((s, len(loop.losses))))
    assert seen == [(1, 0), (2, 0), (3, 3), (4, 3), (5, 3), (6, 6), (7, 6)]
    assert loop.step == 7 and len(loop.losses) == 7  # the rest is read back at the end


@pytest.mark.parametrize("flush_every", [1, 4])
def test_divergence_names_its_step_whatever_the_read_back_cadence(flush_every: int) -> None:
    loop = make_loop(NaNFrom(3, length=4))
    with pytest.raises(Diverged, match=r"non-finite loss .* at training step 3") as caught:
        loop.run(until=8, flush_every=flush_every)
    assert caught.value.step == 3 and caught.value.what == "loss" and len(loop.losses) == 2


def test_a_continuing_loop_starts_at_its_step_and_schedule_position() -> None:
    fresh = make_loop(ParityTask(length=4))
    fresh.run(until=2)
    params = fresh.params
    optimizer, scheduler = make_optimizer(params, learning_rate=1e-3, weight_decay=0.0, schedule=warmup_constant(4),
                                          optimizer_state=fresh.optimizer.state_dict(), start_step=2)
    assert scheduler.last_epoch == 2 and optimizer.param_groups[0]["lr"] == 1e-3 * (3 / 4)
    assert warmup_constant(0)(0) == 1.0 and warmup_constant(4)(0) == 0.25 and warmup_constant(4)(10) == 1.0
