"""Full training: exact resume after a stop (CPU), refusal to overwrite, schedule, evaluation, final bundle."""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any

import pytest
import torch

from ctm import build_model, make_task
from ctm.bundle import load_bundle
from ctm.result import TaskSpec
from ctm.train import TrainCallback, TrainConfig, TrainError, checkpoint_paths, lr_factor, read_checkpoint, train
from genome import Genome

PARITY4 = TaskSpec(name="parity", params={"length": 4})
GENOME = Genome(d_model=16, d_input=8, heads=2, ticks=3, memory_length=2, nlm_hidden=4, n_sync_out=4,
                n_sync_action=4, batch_size=8, dropout=0.1, dropout_nlm=0.1, learning_rate=3e-3)
CONFIG = TrainConfig(steps=16, warmup_steps=4, checkpoint_every=5, eval_every=8, eval_samples=32, log_every=1)


class StopAt(TrainCallback):
    """Stops training like Ctrl-C once ``step`` is reached; records what it sees."""

    def __init__(self, step: int | None = None):
        self.step = step
        self.evals: list[tuple[int, dict[str, float], list[float]]] = []
        self.status: str | None = None

    def on_log(self, step: int, metrics: dict[str, float]) -> None:
        if self.step is not None and step >= self.step:
            raise KeyboardInterrupt

    def on_eval(self, step: int, metrics: dict[str, float], per_tick_accuracy: list[float]) -> None:
        self.evals.append((step, metrics, per_tick_accuracy))

    def on_end(self, result: Any, status: str) -> None:
        self.status = status


def run(out: Path, config: TrainConfig = CONFIG, *, resume: bool = False, callback: TrainCallback | None = None):
    task = make_task(PARITY4)
    model = build_model(GENOME, task, seed=5)
    return train(model, task, genome=GENOME, task_spec=PARITY4, config=config, out_dir=out, resume=resume,
                 callback=callback, progress=False, model_seed=5)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory):
    torch.set_num_threads(1)
    return run(tmp_path_factory.mktemp("full") / "run")


def test_resume_after_a_stop_reproduces_the_loss_curve_exactly(uninterrupted, tmp_path):
    out = tmp_path / "run"
    stopper = StopAt(12)
    with pytest.raises(KeyboardInterrupt):
        run(out, callback=stopper)
    assert stopper.status == "interrupted"
    assert [p.name for p in checkpoint_paths(out)] == ["step-00000005.pt", "step-00000010.pt"]
    resumed = run(out, resume=True)
    assert resumed.resumed_from == 10
    assert resumed.losses == uninterrupted.losses  # bit-identical, including dropout and the data stream
    assert len(resumed.losses) == CONFIG.steps
    assert [e["step"] for e in resumed.evaluations] == [8, 16]
    assert resumed.final["val_accuracy"] == uninterrupted.final["val_accuracy"]
    a, b = load_bundle(resumed.bundle).model.state_dict(), load_bundle(uninterrupted.bundle).model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_checkpoint_holds_the_complete_state_and_loads_weights_only(uninterrupted):
    state = read_checkpoint(checkpoint_paths(uninterrupted.out_dir)[-1])
    assert state["step"] == CONFIG.steps and state["data"] == {"seed": 0, "next_index": CONFIG.steps}
    assert {"model", "optimizer", "scheduler", "rng", "losses"} <= set(state)
    assert {"torch", "numpy", "python", "cuda"} <= set(state["rng"])
    assert state["losses"].tolist() == uninterrupted.losses


def test_an_existing_run_is_never_overwritten_without_resume(uninterrupted):
    before = {p: p.read_bytes() for p in checkpoint_paths(uninterrupted.out_dir)}
    with pytest.raises(TrainError, match=r"already holds a training run.*--resume"):
        run(uninterrupted.out_dir)
    assert {p: p.read_bytes() for p in checkpoint_paths(uninterrupted.out_dir)} == before


def test_resume_refuses_changed_schedule_settings(uninterrupted):
    changed = TrainConfig(**{**CONFIG.to_dict(), "learning_rate": 1e-2})
    with pytest.raises(TrainError, match="learning_rate"):
        run(uninterrupted.out_dir, changed, resume=True)


def test_resume_falls_back_to_an_older_checkpoint_when_the_newest_is_damaged(uninterrupted, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        run(out, callback=StopAt(11))
    newest = checkpoint_paths(out)[-1]
    newest.write_bytes(newest.read_bytes()[:200])
    with pytest.raises(TrainError, match="unreadable"):
        read_checkpoint(newest)
    resumed = run(out, resume=True)
    assert resumed.resumed_from == 5 and resumed.losses == uninterrupted.losses


def test_nothing_to_resume_is_a_clear_error(tmp_path):
    with pytest.raises(TrainError, match="nothing to resume"):
        run(tmp_path / "none", resume=True)


def test_evaluations_report_per_tick_accuracy_exit_and_calibration(uninterrupted):
    final = uninterrupted.final
    assert len(final["per_tick_accuracy"]) == GENOME.ticks and len(final["per_tick_certainty"]) == GENOME.ticks
    assert 1.0 <= final["exit_tick_mean"] <= GENOME.ticks
    assert 0.0 <= final["ece"] <= 1.0 and 0.0 <= final["val_accuracy"] <= 1.0
    bundle = load_bundle(uninterrupted.bundle)
    assert bundle.source["trained_steps"] == CONFIG.steps and bundle.has_weights


def test_learning_rate_warms_up_then_decays_by_cosine():
    factors = [lr_factor(s, steps=100, warmup=10, min_ratio=0.1) for s in range(100)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == pytest.approx(1.0)
    assert factors[10] == pytest.approx(1.0)
    assert factors[55] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert all(a >= b for a, b in itertools.pairwise(factors[10:]))
    assert lr_factor(100, steps=100, warmup=10, min_ratio=0.1) == pytest.approx(0.1)


def test_bad_settings_and_missing_cuda_are_clear_errors(tmp_path):
    with pytest.raises(TrainError, match="steps = 0"):
        TrainConfig(steps=0)
    if not torch.cuda.is_available():
        with pytest.raises(TrainError, match="CUDA is not available"):
            run(tmp_path / "cuda", TrainConfig(**{**CONFIG.to_dict(), "device": "cuda"}))
