"""evaluate(parent=...): a child's evaluation that starts from its parent's trained weights (``ctm.inherit``)."""

from __future__ import annotations

import pytest
from ctm_testutil import tiny
from safetensors.torch import save

from ctm import EvalBudget, EvalResult, ParentWeights, TaskSpec, evaluate
from ctm.eval_state import weights_only
from workers import EvalJob

PARITY = TaskSpec(name="parity", params={"length": 4})
BUDGET = EvalBudget(steps=6, val_samples=24)


def comparable(result: EvalResult) -> dict:
    data = result.to_dict()
    data["metrics"].pop("wall_time_s")
    data["metrics"].pop("train_time_s", None)  # seconds: timing, not a result
    return data


@pytest.fixture(scope="module")
def parent() -> ParentWeights:
    genome = tiny(ticks=5)
    result = evaluate(genome, PARITY, EvalBudget(steps=12, val_samples=24), seed=1, want_checkpoint=True)
    assert result.ok and result.checkpoint is not None
    return ParentWeights(genome=genome, state=result.checkpoint)


def test_a_ticks_child_starts_from_the_parents_exact_weights(parent: ParentWeights) -> None:
    child = tiny(ticks=8)  # T changes no parameter
    inherited = evaluate(child, PARITY, BUDGET, seed=4, parent=parent)
    assert inherited.ok
    assert inherited.metrics["inherited_fraction"] == 1.0 and inherited.metrics["inherited_preserving"] == 1.0
    assert inherited.metrics["parent_steps"] == 12 and inherited.metrics["train_steps"] == 6
    # the same as starting from the parent's weights by hand: fresh optimizer, budget.steps from step 0
    by_hand = evaluate(child, PARITY, BUDGET, seed=4, start=save(weights_only(parent.state)))
    mine, theirs = comparable(inherited), comparable(by_hand)
    for key in ("inherited_fraction", "inherited_preserving", "parent_steps"):
        mine["metrics"].pop(key)
    assert mine == theirs
    scratch = evaluate(child, PARITY, BUDGET, seed=4)
    assert scratch.train_loss[0] != inherited.train_loss[0]  # it did not train from its own init


def test_inheriting_is_deterministic_and_maps_other_genes(parent: ParentWeights) -> None:
    child = tiny(ticks=5, memory_length=6, nlm_hidden=6, n_sync_out=8)
    first = evaluate(child, PARITY, BUDGET, seed=2, parent=parent)
    again = evaluate(child, PARITY, BUDGET, seed=2, parent=parent)
    assert comparable(first) == comparable(again)  # a pure function of parent state, child genes and seed
    assert 0.5 < first.metrics["inherited_fraction"] < 1.0


def test_a_parent_state_that_cannot_be_used_leaves_the_child_on_its_own_init(parent: ParentWeights) -> None:
    child = tiny(ticks=7)
    wrong = ParentWeights(genome=tiny(d_model=40), state=parent.state)  # the state is not this genome's
    result = evaluate(child, PARITY, BUDGET, seed=3, parent=wrong)
    scratch = evaluate(child, PARITY, BUDGET, seed=3)
    assert result.ok and result.metrics["inherit_failed"] == 1.0 and result.metrics["inherited_fraction"] == 0.0
    assert result.fitness == scratch.fitness and result.train_loss == scratch.train_loss


def test_a_job_either_continues_its_own_state_or_inherits(parent: ParentWeights) -> None:
    with pytest.raises(ValueError, match="start and parent are both set"):
        evaluate(tiny(), PARITY, BUDGET, seed=0, start=parent.state, parent=parent)
    with pytest.raises(ValueError, match=r"EvalJob\.start and EvalJob\.parent are both set"):
        EvalJob(genome=tiny(), task=PARITY, budget=BUDGET, start=parent.state, parent=parent)
    with pytest.raises(TypeError, match=r"ParentWeights\.state"):
        ParentWeights(genome=tiny(), state="not bytes")  # type: ignore[arg-type]


def test_a_transfer_to_another_task_keeps_the_core_and_reinitialises_the_heads(parent: ParentWeights) -> None:
    """Parity 4 → parity 7: the output head (7 positions × 2 classes, not 4 × 2) starts from the child's own
    init, every other tensor is the parent's trained one."""
    import torch

    from ctm.build import build_model
    from ctm.eval_state import unpack_state
    from ctm.inherit import inherit, task_tensors

    longer = TaskSpec(name="parity", params={"length": 7})
    genome = parent.genome
    heads = task_tensors(genome, PARITY, longer)
    assert "output.weight" in heads and "output.bias" in heads
    assert task_tensors(genome, PARITY, PARITY) == ()
    trained = unpack_state(parent.state).weights
    got = inherit(genome, trained, genome, longer, seed=5, parent_task=PARITY)
    init = build_model(genome, longer, seed=5).state_dict()
    assert got.reinitialised == heads and not got.function_preserving
    assert "another task: re-initialised output.bias (8,) → (14,)" in got.not_preserved[0]
    for name, value in got.weights.items():
        source = init if name in heads else trained
        assert torch.equal(value, source[name]), name
    # the evaluation reports the re-initialised heads and trains the transferred model
    moved = ParentWeights(genome=genome, state=parent.state, task=PARITY)
    result = evaluate(genome, longer, BUDGET, seed=5, parent=moved)
    assert result.ok and result.metrics["reinitialised_tensors"] == len(heads)
    assert result.metrics["inherited_fraction"] > 0.5 and result.metrics["inherited_preserving"] == 0.0
    job = EvalJob(genome=genome, task=longer, budget=BUDGET, parent=moved)
    assert job.parent is not None and job.parent.task == PARITY
    with pytest.raises(TypeError, match=r"ParentWeights\.task"):
        ParentWeights(genome=genome, state=parent.state, task={"name": "parity"})  # type: ignore[arg-type]
