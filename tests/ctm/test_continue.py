"""evaluate(start=...): training that continues from an evaluation state, or starts from given weights."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from ctm_testutil import tiny
from safetensors.torch import save as st_save

from ctm import EvalBudget, EvalResult, TaskSpec, build_model, evaluate, make_task
from ctm.bundle import weights_bytes
from ctm.eval_state import EvalStateError, unpack_state, weights_only
from ctm.tasks.parity import ParityTask

PARITY = TaskSpec(name="parity", params={"length": 4})
GENOME = tiny(dropout=0.2, dropout_nlm=0.1)  # dropout: the continued run must continue the RNG stream too


def budget(steps: int | None, **extra) -> EvalBudget:
    # warm-up 6: the ladder's first rung ends inside the warm-up, so the schedule's position matters
    return EvalBudget(steps=steps, val_samples=16, warmup_steps=6, **extra)


def comparable(result: EvalResult) -> dict:
    data = result.to_dict()
    for key in ("wall_time_s", "train_time_s", "start_step"):
        data["metrics"].pop(key)
    return data


@pytest.fixture(scope="module")
def uninterrupted() -> EvalResult:
    return evaluate(GENOME, PARITY, budget(10), seed=3, want_checkpoint=True)


def test_a_ladder_of_rungs_ends_exactly_where_one_uninterrupted_run_ends(uninterrupted: EvalResult) -> None:
    state, results = None, []
    for steps in (4, 7, 10):  # budget.steps is cumulative: 4, then 3 more, then 3 more
        result = evaluate(GENOME, PARITY, budget(steps), seed=3, want_checkpoint=True, start=state)
        assert result.ok, result.failure
        results.append(result)
        state = result.checkpoint
    assert [(r.metrics["start_step"], r.metrics["train_steps"]) for r in results] == [(0, 4), (4, 7), (7, 10)]
    last = results[-1]
    assert uninterrupted.metrics["start_step"] == 0
    # bit-identical on CPU: weights, optimizer moments, RNG, losses (the whole state blob), fitness and metrics
    assert last.checkpoint == uninterrupted.checkpoint
    assert comparable(last) == comparable(uninterrupted)
    assert last.fitness == uninterrupted.fitness and len(last.train_loss) == 10


def test_continuing_reads_the_next_batches_of_the_same_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    first = evaluate(GENOME, PARITY, budget(4), seed=3, want_checkpoint=True)
    seen: list[tuple[int, int]] = []
    original = ParityTask.batch

    def spy(self, split, index, batch_size, seed):
        if split == "train":
            seen.append((index, seed))
        return original(self, split, index, batch_size, seed)

    monkeypatch.setattr(ParityTask, "batch", spy)
    evaluate(GENOME, PARITY, budget(7), seed=3, start=first.checkpoint)
    assert seen == [(4, 3), (5, 3), (6, 3)]


def test_a_start_at_or_past_the_budget_trains_no_more(uninterrupted: EvalResult) -> None:
    again = evaluate(GENOME, PARITY, budget(10), seed=3, want_checkpoint=True, start=uninterrupted.checkpoint)
    assert again.metrics["train_steps"] == 10 and again.metrics["start_step"] == 10
    assert again.checkpoint == uninterrupted.checkpoint and again.fitness == uninterrupted.fitness


def test_a_seconds_budget_continues_from_the_state() -> None:
    first = evaluate(GENOME, PARITY, budget(2), seed=0, want_checkpoint=True)
    more = evaluate(GENOME, PARITY, budget(None, seconds=0.2), seed=0, start=first.checkpoint)
    assert more.ok and more.metrics["start_step"] == 2 and more.metrics["train_steps"] > 2


def test_a_weights_only_start_trains_the_whole_budget_with_a_fresh_optimizer(uninterrupted: EvalResult) -> None:
    # the initial weights themselves as a start: exactly the fresh evaluation
    initial = st_save(build_model(GENOME, make_task(PARITY), seed=3).state_dict())
    fresh = evaluate(GENOME, PARITY, budget(10), seed=3, want_checkpoint=True, start=initial)
    assert fresh.metrics["start_step"] == 0 and fresh.checkpoint == uninterrupted.checkpoint
    # trained weights (of a 4-step state, optimizer dropped): 10 steps from step 0, a different run
    trained = weights_only(evaluate(GENOME, PARITY, budget(4), seed=3, want_checkpoint=True).checkpoint)
    for blob in (st_save(trained), weights_bytes(trained, genome_hash=GENOME.hash)):
        result = evaluate(GENOME, PARITY, budget(10), seed=3, want_checkpoint=True, start=blob)
        assert result.metrics["start_step"] == 0 and result.metrics["train_steps"] == 10
        assert unpack_state(result.checkpoint).steps == 10 and len(result.train_loss) == 10
        assert result.checkpoint != uninterrupted.checkpoint


def test_a_start_of_another_genome_is_refused_before_training(uninterrupted: EvalResult) -> None:
    other = tiny(dropout=0.2, dropout_nlm=0.1, learning_rate=2e-3)  # same shapes, another genome
    with pytest.raises(EvalStateError, match=f"belongs to genome {GENOME.hash}, not to {other.hash}"):
        evaluate(other, PARITY, budget(10), seed=3, start=uninterrupted.checkpoint)
    assert issubclass(EvalStateError, ValueError)
    bigger = tiny(d_model=32)  # untagged weights: the shapes are checked
    with pytest.raises(EvalStateError, match=r"do not fit the model.*shape mismatch"):
        evaluate(bigger, PARITY, budget(2), seed=0, start=st_save(weights_only(uninterrupted.checkpoint)))
    with pytest.raises(EvalStateError, match="start: not a readable safetensors"):
        evaluate(GENOME, PARITY, budget(2), seed=0, start=b"garbage")


class NaNAtOnce(ParityTask):
    """Parity whose loss is NaN from the first call on (an injected divergence)."""

    def loss(self, predictions, certainties, targets):
        return super().loss(predictions, certainties, targets) * float("nan")


def test_divergence_while_continuing_reports_total_steps() -> None:
    first = evaluate(GENOME, PARITY, budget(2), seed=0, want_checkpoint=True)
    result = evaluate(GENOME, NaNAtOnce(length=4), budget(6), seed=0, start=first.checkpoint)
    assert result.status == "diverged" and "training step 3" in result.failure.message
    assert result.metrics["train_steps"] == 2 and result.metrics["start_step"] == 2
    assert len(result.train_loss) == 2  # the losses of the first two steps, carried in the state


def test_the_global_rng_is_left_alone_when_continuing() -> None:
    first = evaluate(GENOME, PARITY, budget(2), seed=0, want_checkpoint=True)
    torch.manual_seed(9)
    expected = torch.rand(2)
    torch.manual_seed(9)
    evaluate(GENOME, PARITY, budget(3), seed=0, start=first.checkpoint)
    assert torch.equal(torch.rand(2), expected)


def test_results_without_checkpoint_stay_small(uninterrupted: EvalResult) -> None:
    assert "checkpoint" not in uninterrupted.to_dict()
    restored = EvalResult.from_dict(uninterrupted.to_dict())
    assert restored == dataclasses.replace(uninterrupted, checkpoint=None)
