"""evaluate(): result contents, determinism on CPU, checkpoints, typed failures."""

from __future__ import annotations

import dataclasses
import io

import pytest
import torch
from ctm_testutil import tiny
from safetensors.torch import load

import ctm.evaluation
from ctm import BEHAVIOUR_POINTS, EvalBudget, EvalResult, TaskSpec, build_model, evaluate, make_task
from ctm.eval_state import weights_only
from ctm.tasks.parity import ParityTask
from genome.cost import estimate

PARITY = TaskSpec(name="parity", params={"length": 4})
BUDGET = EvalBudget(steps=4, val_samples=24)


def comparable(result: EvalResult) -> dict:
    data = result.to_dict()
    data["metrics"].pop("wall_time_s")
    data["metrics"].pop("train_time_s", None)  # seconds: timing, not a result
    return data


def test_result_contents() -> None:
    genome = tiny(ticks=6)
    result = evaluate(genome, PARITY, BUDGET, seed=0)
    assert result.ok and result.failure is None and result.genome_hash == genome.hash
    m = result.metrics
    for key in ("val_accuracy", "per_step_accuracy", "sequence_accuracy", "exit_accuracy", "exit_tick_mean",
                "ece", "param_count", "macs_per_forward", "train_steps", "wall_time_s"):
        assert key in m, key
    assert result.fitness == m["val_accuracy"] and 0 <= result.fitness <= 1
    shape = make_task(PARITY).shape
    assert m["param_count"] == estimate(genome, shape).params
    assert m["macs_per_forward"] == estimate(genome, shape).macs_per_forward
    assert m["train_steps"] == 4 and len(result.train_loss) == 4
    assert len(result.per_tick_accuracy) == len(result.per_tick_certainty) == 6
    assert len(result.behaviour) == 2 * BEHAVIOUR_POINTS and 1 <= m["exit_tick_mean"] <= 6
    assert EvalResult.from_dict(result.to_dict()) == dataclasses.replace(result, checkpoint=None)


def test_behaviour_length_is_fixed_whatever_the_ticks() -> None:
    for ticks in (1, 3):
        result = evaluate(tiny(ticks=ticks), PARITY, EvalBudget(steps=1, val_samples=8), seed=0)
        assert len(result.behaviour) == 2 * BEHAVIOUR_POINTS and len(result.per_tick_accuracy) == ticks


def test_deterministic_on_cpu_and_seed_dependent() -> None:
    genome = tiny(dropout=0.1)
    a, b = (evaluate(genome, PARITY, BUDGET, seed=3) for _ in range(2))
    assert comparable(a) == comparable(b)
    assert comparable(evaluate(genome, PARITY, BUDGET, seed=4)) != comparable(a)


def test_global_rng_is_left_alone() -> None:
    torch.manual_seed(9)
    expected = torch.rand(2)
    torch.manual_seed(9)
    evaluate(tiny(), PARITY, EvalBudget(steps=1, val_samples=8), seed=0)
    assert torch.equal(torch.rand(2), expected)


def test_checkpoint_round_trip() -> None:
    genome = tiny()
    result = evaluate(genome, PARITY, BUDGET, seed=1, want_checkpoint=True)
    assert isinstance(result.checkpoint, bytes)
    model = build_model(genome, make_task(PARITY), seed=99)
    model.load_state_dict(weights_only(result.checkpoint))  # the checkpoint is a full evaluation state now
    assert "checkpoint" not in result.to_dict()
    assert evaluate(genome, PARITY, BUDGET, seed=1).checkpoint is None
    io.BytesIO(result.checkpoint)  # plain bytes


def test_batch_size_gene_and_override(monkeypatch: pytest.MonkeyPatch) -> None:
    sizes: list[tuple[str, int]] = []
    original = ParityTask.batch

    def spy(self, split, index, batch_size, seed):
        sizes.append((split, batch_size))
        return original(self, split, index, batch_size, seed)

    monkeypatch.setattr(ParityTask, "batch", spy)
    evaluate(tiny(batch_size=6), PARITY, EvalBudget(steps=2, val_samples=8), seed=0)
    assert [s for split, s in sizes if split == "train"] == [6, 6]
    sizes.clear()
    evaluate(tiny(batch_size=6), PARITY, EvalBudget(steps=2, val_samples=8), seed=0, batch_size=3)
    assert [s for split, s in sizes if split == "train"] == [3, 3]


def test_learning_rate_gene_is_used() -> None:
    slow = evaluate(tiny(learning_rate=1e-6), PARITY, BUDGET, seed=0, want_checkpoint=True)
    fast = evaluate(tiny(learning_rate=1e-2), PARITY, BUDGET, seed=0, want_checkpoint=True)
    start = build_model(tiny(), make_task(PARITY), seed=0).state_dict()
    moved = {name: float((load(r.checkpoint)["output.weight"] - start["output.weight"]).abs().max())
             for name, r in (("slow", slow), ("fast", fast))}
    assert moved["slow"] < 1e-4 < moved["fast"]


def test_seconds_budget() -> None:
    result = evaluate(tiny(), PARITY, EvalBudget(steps=None, seconds=0.3, val_samples=8), seed=0)
    assert result.ok and result.metrics["train_steps"] >= 1
    with pytest.raises(ValueError, match=r"budget\.steps"):
        evaluate(tiny(), PARITY, EvalBudget(steps=None, seconds=None), seed=0)


class NaNAfterTwo(ParityTask):
    """Parity whose loss turns NaN at the third training step (an injected divergence)."""

    calls = 0

    def loss(self, predictions, certainties, targets):
        NaNAfterTwo.calls += 1
        loss = super().loss(predictions, certainties, targets)
        return loss * float("nan") if NaNAfterTwo.calls > 2 else loss


def test_divergence_is_a_typed_failure() -> None:
    NaNAfterTwo.calls = 0
    result = evaluate(tiny(), NaNAfterTwo(length=4), BUDGET, seed=0)
    assert result.status == "diverged" and result.failure.kind == "diverged"
    assert "step 3" in result.failure.message and result.fitness is None
    assert len(result.train_loss) == 2 and result.metrics["param_count"] > 0


def test_huge_learning_rate_never_raises() -> None:
    result = evaluate(tiny(learning_rate=1.0), PARITY, EvalBudget(steps=3, val_samples=8, grad_clip=0.0), seed=0)
    assert result.status in ("ok", "diverged")


def test_out_of_memory_is_a_typed_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(self, x, track=False):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(ctm.evaluation.CTM, "forward", boom)
    result = evaluate(tiny(), PARITY, BUDGET, seed=0)
    assert result.status == "oom" and result.failure.kind == "oom"
    assert "out of memory" in result.failure.message


def test_task_mismatch_is_an_error_result() -> None:
    result = evaluate(tiny(ticks=3), TaskSpec(name="sort", params={"length": 5}), BUDGET, seed=0)
    assert result.status == "error" and "ticks = 3" in result.failure.message


@pytest.mark.parametrize("spec", [
    TaskSpec(name="maze", params={"size": 7, "route_length": 8, "stride": 2}),
    TaskSpec(name="sort", params={"length": 4}),
])
def test_sequence_tasks_report_per_step_and_sequence_accuracy(spec: TaskSpec) -> None:
    result = evaluate(tiny(ticks=5), spec, EvalBudget(steps=2, val_samples=8), seed=0)
    assert result.ok
    assert result.fitness == result.metrics["per_step_accuracy"]
    assert 0 <= result.metrics["sequence_accuracy"] <= result.fitness


def test_array_task_end_to_end(tmp_path) -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    inputs = rng.normal(size=(60, 3)).astype(np.float32)
    np.savez(tmp_path / "t.npz", inputs=inputs, labels=(inputs[:, 0] > 0).astype(np.int64))
    spec = TaskSpec(name="array", params={"path": str(tmp_path / "t.npz")})
    result = evaluate(tiny(), spec, EvalBudget(steps=3, val_samples=100), seed=0)
    assert result.ok and result.metrics["sequence_accuracy"] == result.fitness


def test_evaluate_prints_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    evaluate(tiny(), PARITY, EvalBudget(steps=1, val_samples=8), seed=0)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""
