"""Full training of one CTM architecture, with checkpoints that resume exactly.

:func:`train` minimises the task's CTM loss (per sample, (L_t1 + L_t2)/2 over the min-loss tick t1 and the
most-certain tick t2; CTC for sorting) with AdamW, a linear warm-up over ``warmup_steps`` followed by cosine
decay to ``min_lr_ratio`` × lr at ``steps``, the gradient norm clipped to ``grad_clip``, bf16 autocast on CUDA,
and the decays θ projected back into [0, decay_clamp] after every step (``CTM.project_``).

Batch ``i`` of training is ``task.batch("train", i, batch_size, seed)``, a pure function of its arguments, so
the data stream's state is the pair (seed, next batch index). Every ``checkpoint_every`` steps the complete
state (weights, optimizer, scheduler, the torch/CUDA/numpy/python RNG states, the data stream and the loss
history) is written to ``OUT/checkpoints/step-NNNNNNNN.pt`` atomically (:mod:`ctm.train_state`), and read
back with ``torch.load(weights_only=True)``; ``resume=True`` continues from the newest readable one and, on
CPU, reproduces the loss curve of an uninterrupted run exactly. Every ``eval_every`` steps the model is
measured on fixed validation data (accuracy per tick, adaptive-compute exit, ECE) without touching the RNG.
At the end the trained model is written as a bundle to ``OUT/bundle``.

MLflow (or anything else) hooks in through a :class:`TrainCallback`, so this module knows nothing of it.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ctm.bundle import write_bundle
from ctm.evaluation import VALIDATION_SEED
from ctm.loop import Diverged, TrainingLoop, WarmupCosine, lr_factor, make_optimizer
from ctm.metrics import closed_loop_success, exit_metrics, expected_calibration_error
from ctm.result import TaskSpec
from ctm.step import autocast_context
from ctm.train_state import (
    TrainError,
    checkpoint_paths,
    latest_checkpoint,
    read_checkpoint,
    rng_state,
    set_rng_state,
    write_checkpoint,
)
from genome import Genome
from genome.io import write_bytes_atomic

RUN_FILE = "train.json"
# settings that shape the loss curve: a resumed run must keep them
SCHEDULE_FIELDS = ("steps", "batch_size", "learning_rate", "weight_decay", "warmup_steps", "min_lr_ratio",
                   "grad_clip", "seed")


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Settings of one training run. ``None`` batch size / learning rate take the genome's genes."""

    steps: int = 10_000
    batch_size: int | None = None
    learning_rate: float | None = None
    weight_decay: float = 0.0
    warmup_steps: int | None = None  # default: min(500, steps // 10)
    min_lr_ratio: float = 0.0
    grad_clip: float = 1.0
    seed: int = 0
    eval_every: int = 1000
    eval_samples: int = 1024
    exit_threshold: float = 0.8
    checkpoint_every: int = 1000
    keep_checkpoints: int = 2
    log_every: int = 10
    device: str = "cpu"
    amp: bool | None = None  # default: bf16 autocast on CUDA

    def __post_init__(self) -> None:
        at_least = {"steps": 1, "eval_every": 1, "eval_samples": 1, "checkpoint_every": 1, "keep_checkpoints": 1,
                    "log_every": 1, "batch_size": 1, "warmup_steps": 0, "weight_decay": 0, "grad_clip": 0}
        for name, low in at_least.items():
            value = getattr(self, name)
            if value is not None and value < low:
                raise TrainError(f"{name} = {value}: allowed is a number >= {low}")
        if self.learning_rate is not None and not self.learning_rate > 0:
            raise TrainError(f"learning_rate = {self.learning_rate}: allowed is a number > 0")
        if not 0 < self.exit_threshold <= 1:
            raise TrainError(f"exit_threshold = {self.exit_threshold}: allowed is a number in (0, 1]")
        if not 0 <= self.min_lr_ratio <= 1:
            raise TrainError(f"min_lr_ratio = {self.min_lr_ratio}: allowed is a number in [0, 1]")
        try:
            torch.device(self.device)
        except RuntimeError as exc:
            raise TrainError(f"device = {self.device!r}: {exc}") from None

    def resolved(self, genome: Genome) -> TrainConfig:
        """Defaults filled in from the genome and the step count."""
        return TrainConfig(**{**asdict(self), "batch_size": self.batch_size or genome.batch_size,
                              "learning_rate": self.learning_rate or genome.learning_rate,
                              "warmup_steps": min(500, self.steps // 10) if self.warmup_steps is None
                              else self.warmup_steps})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


class TrainCallback:
    """Hooks called by :func:`train`; subclass and override what you need (all no-ops here).

    ``on_start(info)``: genome, genome_hash, task, config, out_dir, start_step (> 0 when resuming), parameters,
    source. ``on_log(step, metrics)``: train_loss and lr every ``log_every`` steps. ``on_eval(step, metrics,
    per_tick_accuracy)``: validation figures. ``on_checkpoint(step, path)``: a checkpoint was written.
    ``on_end(result, status)``: status ``finished``, ``interrupted`` or ``failed``. Raising ``KeyboardInterrupt``
    from a hook stops training like Ctrl-C (the last checkpoint stays).
    """

    def on_start(self, info: dict[str, Any]) -> None: ...

    def on_log(self, step: int, metrics: dict[str, float]) -> None: ...

    def on_eval(self, step: int, metrics: dict[str, float], per_tick_accuracy: list[float]) -> None: ...

    def on_checkpoint(self, step: int, path: Path) -> None: ...

    def on_end(self, result: TrainResult, status: str) -> None: ...


@dataclass
class TrainResult:
    out_dir: Path
    steps: int
    losses: list[float]
    evaluations: list[dict[str, Any]] = field(default_factory=list)
    bundle: Path | None = None
    resumed_from: int = 0

    @property
    def final(self) -> dict[str, Any]:
        return self.evaluations[-1] if self.evaluations else {}


# -- evaluation ----------------------------------------------------------------------------------------------
@torch.no_grad()
def measure(model: nn.Module, task: Any, *, samples: int, batch_size: int, device: torch.device, amp: bool,
            exit_threshold: float) -> tuple[dict[str, float], list[float], list[float]]:
    """Validation figures on ``samples`` fixed samples (the search's validation seed), leaving RNGs untouched.

    Returns (metrics, per-tick accuracy, per-tick certainty); metrics: ``val_accuracy`` (the answer at the most
    certain tick), ``sequence_accuracy``, ``exit_accuracy`` and ``exit_tick_mean`` (stop at the first tick with
    certainty >= ``exit_threshold``), ``ece`` (expected calibration error of the tick-averaged probabilities), and
    for a task the CTM acts in, ``closed_loop_success``.
    """
    was_training = model.training
    model.eval()
    parts: dict[str, list[torch.Tensor]] = {k: [] for k in ("per_tick", "certainty", "answer", "sequence",
                                                            "confidence", "correct")}
    with torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda" else []):
        x, y = task.batch("val", 0, samples, VALIDATION_SEED)
        for lo in range(0, samples, batch_size):
            xb, yb = x[lo:lo + batch_size].to(device), y[lo:lo + batch_size].to(device)
            with autocast_context(device, amp):
                predictions, certainties = model(xb)
            scores = task.score(predictions.float(), certainties.float(), yb)
            for key in ("per_tick", "answer", "sequence", "confidence", "correct"):
                parts[key].append(getattr(scores, key).float().cpu())
            parts["certainty"].append(certainties[:, 1].float().cpu())
    model.train(was_training)
    v = {k: torch.cat(p) for k, p in parts.items()}
    exit_accuracy, exit_tick = exit_metrics(v["per_tick"], v["certainty"], exit_threshold)
    metrics = {"val_accuracy": float(v["answer"].mean()), "sequence_accuracy": float(v["sequence"].mean()),
               "exit_accuracy": exit_accuracy, "exit_tick_mean": exit_tick,
               "ece": expected_calibration_error(v["confidence"], v["correct"])}
    closed = closed_loop_success(model, task, samples=samples, seed=VALIDATION_SEED, device=device,
                                 batch_size=batch_size)
    if closed is not None:  # an agent's task: acting on its own moves
        metrics["closed_loop_success"] = closed
    return metrics, v["per_tick"].mean(0).tolist(), v["certainty"].mean(0).tolist()


# -- the loop (ctm.loop) ---------------------------------------------------------------------------------------
def _progress_bar(enabled: bool) -> Any:
    from rich import progress as rp
    from rich.console import Console

    return rp.Progress(rp.TextColumn("[bold]{task.description}"), rp.BarColumn(), rp.MofNCompleteColumn(),
                       rp.TextColumn("loss {task.fields[loss]}  lr {task.fields[lr]}  val {task.fields[val]}"),
                       rp.TimeElapsedColumn(), rp.TimeRemainingColumn(), console=Console(stderr=True),
                       disable=not enabled)


def train(model: nn.Module, task: Any, *, genome: Genome, task_spec: TaskSpec, config: TrainConfig,
          out_dir: str | Path, resume: bool = False, callback: TrainCallback | None = None, progress: bool = True,
          source: dict[str, Any] | None = None, model_seed: int = 0) -> TrainResult:
    """Train ``model`` (built from ``genome`` for ``task``) and write checkpoints and the final bundle to
    ``out_dir``. With ``resume``, continue from the newest checkpoint there; without it, a directory that
    already holds checkpoints is refused (nothing is overwritten)."""
    out = Path(out_dir)
    cb = callback or TrainCallback()
    config = config.resolved(genome)
    device = torch.device(config.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise TrainError(f"device = {config.device!r}: CUDA is not available on this machine; use --device cpu")
    amp = device.type == "cuda" if config.amp is None else config.amp
    found = latest_checkpoint(out) if out.is_dir() else None
    if found is not None and not resume:
        raise TrainError(f"{out} already holds a training run (checkpoint at step {found[1]['step']}): pass "
                         "--resume to continue it, or choose another output directory")
    if resume and found is None and not (out / RUN_FILE).is_file():
        raise TrainError(f"{out}: nothing to resume (no {RUN_FILE} and no checkpoints there)")

    model.to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer, scheduler = make_optimizer(params, learning_rate=config.learning_rate,
                                          weight_decay=config.weight_decay,
                                          schedule=WarmupCosine(steps=config.steps, warmup=config.warmup_steps or 0,
                                                                min_ratio=config.min_lr_ratio))
    losses: list[float] = []
    evaluations: list[dict[str, Any]] = []
    step = 0
    if found is not None:
        path, state = found
        _check_resume(path, state, genome, task_spec, config)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        set_rng_state(state["rng"], device)
        step = int(state["step"])
        losses = state["losses"].tolist()
        evaluations = json.loads(state["evaluations"])
    else:
        torch.manual_seed(config.seed)
        np.random.seed(config.seed % 2**32)
        random.seed(config.seed)
    started = step
    out.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(out / RUN_FILE, json.dumps({
        "genome_hash": genome.hash, "task": task_spec.to_dict(), "config": config.to_dict(),
        "source": source or {}, "model_seed": model_seed}, indent=1).encode())
    result = TrainResult(out_dir=out, steps=step, losses=losses, evaluations=evaluations, resumed_from=started)
    cb.on_start({"genome": genome, "genome_hash": genome.hash, "task": task_spec, "config": config, "out_dir": out,
                 "start_step": started, "parameters": sum(p.numel() for p in params), "source": source or {}})

    def save_checkpoint() -> None:
        path = write_checkpoint(out, step, {
            "genome_hash": genome.hash, "task": json.dumps(task_spec.to_dict()), "config": json.dumps(config.to_dict()),
            "model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "rng": rng_state(device), "data": {"seed": config.seed, "next_index": step},
            "losses": torch.tensor(losses, dtype=torch.float64), "evaluations": json.dumps(evaluations)},
            keep=config.keep_checkpoints)
        cb.on_checkpoint(step, path)

    def evaluate_now() -> None:
        metrics, per_tick, certainty = measure(model, task, samples=config.eval_samples,
                                               batch_size=config.batch_size or 1, device=device, amp=amp,
                                               exit_threshold=config.exit_threshold)
        evaluations.append({"step": step, **metrics, "per_tick_accuracy": per_tick,
                            "per_tick_certainty": certainty})
        bar.update(bar_task, val=f"{metrics['val_accuracy']:.3f}")
        cb.on_eval(step, metrics, per_tick)

    bar = _progress_bar(progress)
    bar_task = bar.add_task(f"train {genome.hash[:8]}", total=config.steps, completed=step, loss="–",
                            lr="–", val="–")
    loop = TrainingLoop(model=model, task=task, optimizer=optimizer, scheduler=scheduler, params=params,
                        seed=config.seed, batch_size=config.batch_size, grad_clip=config.grad_clip, device=device,
                        amp=amp, step=step, losses=losses)

    def logged(at: int) -> bool:  # the steps whose loss is read back (and logged)
        return (at % config.log_every == 0 or at == config.steps or at % config.checkpoint_every == 0
                or at % config.eval_every == 0)

    def after_step(at: int) -> None:
        nonlocal step
        step = result.steps = at
        if logged(at):
            bar.update(bar_task, completed=at, loss=f"{losses[-1]:.4f}", lr=f"{scheduler.get_last_lr()[0]:.2e}")
            cb.on_log(at, {"train_loss": losses[-1], "lr": scheduler.get_last_lr()[0]})
        if at % config.eval_every == 0 or at == config.steps:
            evaluate_now()
        if at % config.checkpoint_every == 0 or at == config.steps:
            save_checkpoint()

    status = "failed"
    try:
        with bar:
            try:
                loop.run(until=config.steps, flush_every=None, flush_at=logged, after_step=after_step)
            except Diverged as exc:
                what = "loss" if exc.what == "loss" else "gradient"
                raise TrainError(f"training diverged: non-finite {what} at step {exc.step}; lower the learning "
                                 "rate (--lr) or resume from an earlier checkpoint") from None
        result.bundle = write_bundle(out / "bundle", genome=genome, task_spec=task_spec, weights=model.state_dict(),
                                     model_seed=model_seed, overwrite=True,
                                     source={**(source or {}), "trained_steps": step,
                                             "final": {k: v for k, v in result.final.items()
                                                       if isinstance(v, (int, float))}})
        status = "finished"
        return result
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:
        cb.on_end(result, status)


def _check_resume(path: Path, state: dict[str, Any], genome: Genome, task_spec: TaskSpec,
                  config: TrainConfig) -> None:
    if state["genome_hash"] != genome.hash:
        raise TrainError(f"{path}: this checkpoint trains genome {state['genome_hash']}, not {genome.hash}")
    saved_task = json.loads(state["task"])
    if saved_task != json.loads(json.dumps(task_spec.to_dict())):
        raise TrainError(f"{path}: this checkpoint trains task {saved_task}, not {task_spec.to_dict()}")
    saved = json.loads(state["config"])
    changed = [f"{k}: {saved.get(k)!r} at the start, {getattr(config, k)!r} now" for k in SCHEDULE_FIELDS
               if saved.get(k) != getattr(config, k)]
    if changed:
        raise TrainError(f"{path}: resuming must keep the settings that shape the loss curve ({'; '.join(changed)})")
    if state["data"]["next_index"] != state["step"] or state["data"]["seed"] != config.seed:
        raise TrainError(f"{path}: the data stream state does not match the checkpoint's step")


def saved_config(out_dir: str | Path) -> TrainConfig | None:
    """The settings a training directory was started with (from ``train.json``), or None."""
    path = Path(out_dir) / RUN_FILE
    if not path.is_file():
        return None
    return TrainConfig.from_dict(json.loads(path.read_text())["config"])


__all__ = ["TrainCallback", "TrainConfig", "TrainError", "TrainResult", "checkpoint_paths", "latest_checkpoint",
           "lr_factor", "measure", "read_checkpoint", "saved_config", "train"]
