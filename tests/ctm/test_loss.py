"""The CTM loss over ticks and the maze auto-curriculum mask."""

from __future__ import annotations

import math

import torch

from ctm.loss import certainties_from, curriculum_mask, tick_selection_loss


def test_tick_selection_picks_min_loss_and_max_certainty_ticks() -> None:
    losses = torch.tensor([[3.0, 1.0, 2.0, 5.0], [0.5, 4.0, 6.0, 2.0]], requires_grad=True)
    certainty = torch.tensor([[0.1, 0.2, 0.3, 0.9], [0.8, 0.1, 0.2, 0.3]])
    loss = tick_selection_loss(losses, certainty)
    # sample 0: best tick 1 (1.0), surest tick 3 (5.0); sample 1: best tick 0 (0.5) = surest tick 0 (0.5)
    assert loss.item() == (0.5 * (1.0 + 5.0) + 0.5 * (0.5 + 0.5)) / 2
    loss.backward()
    expected = torch.tensor([[0.0, 0.25, 0.0, 0.25], [0.5, 0.0, 0.0, 0.0]])
    torch.testing.assert_close(losses.grad, expected)


def test_certainty_extremes() -> None:
    uniform = torch.zeros(2, 3 * 4, 5)
    c = certainties_from(uniform, 3, 4)
    torch.testing.assert_close(c[:, 1], torch.zeros(2, 5))
    torch.testing.assert_close(c.sum(1), torch.ones(2, 5))
    sure = torch.zeros(1, 4, 2)
    sure[0, 0] = 50.0
    assert certainties_from(sure, 1, 4)[0, 1].min() > 0.999
    half = torch.tensor([[[0.0], [math.log(3.0)]]])  # p = (1/4, 3/4)
    entropy = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75)) / math.log(2)
    assert abs(certainties_from(half, 1, 2)[0, 1, 0].item() - (1 - entropy)) < 1e-6


def test_curriculum_mask_covers_up_to_first_wrong_step_plus_five() -> None:
    steps, classes = 12, 5
    targets = torch.zeros(1, steps, dtype=torch.long)
    logits = torch.zeros(1, steps, classes, 3)
    logits[:, :, 0, :] = 1.0  # all right ...
    logits[0, 2, 1, 0] = 5.0  # tick 0: first wrong step is 2
    logits[0, 9, 1, 1] = 5.0  # tick 1: first wrong step is 9
    mask = curriculum_mask(logits, targets, extra=5)
    assert mask[0, :, 0].tolist() == [True] * 8 + [False] * 4  # steps 0..7 = 2 + 5
    assert mask[0, :, 1].all()  # 9 + 5 is past the end
    assert mask[0, :, 2].all()  # no wrong step
