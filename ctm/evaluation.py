"""Fitness evaluation: train a CTM for a budget, then measure it on fixed validation data.

``evaluate(genome, task, budget, seed)`` trains with AdamW (learning rate and batch size from the genome's
genes; linear warm-up over ``budget.warmup_steps`` then constant; gradient norm clipped to
``budget.grad_clip``) until ``budget.steps`` optimizer steps or ``budget.seconds`` of training, whichever comes
first. Training batches come from ``seed``; validation (``budget.val_samples``) and the behaviour probe
(``PROBE_SAMPLES``) always come from ``VALIDATION_SEED``, so every genome is measured on the same data.

Everything is a pure function of (genome, task, budget, seed) on CPU: weights, pairs, dropout and data are
seeded, and the caller's global RNG is left as it was. Non-finite loss or gradients give a ``diverged``
failure; a torch out-of-memory error gives ``oom``; a genome the task cannot use (``TaskMismatch``) gives
``error``. On CUDA the forward runs under bf16 autocast (``amp``), and ``compile_model`` wraps the model in
``torch.compile``.
"""

from __future__ import annotations

import gc
import math
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

import torch

from ctm.build import build_model
from ctm.metrics import behaviour_vector, exit_metrics, expected_calibration_error, measure_macs
from ctm.model import CTM, count_parameters
from ctm.result import EvalBudget, EvalResult, TaskSpec
from ctm.step import autocast_context, backward_step, read_back
from ctm.tasks import TaskMismatch, make_task
from genome.genome import Genome

VALIDATION_SEED = 20_250_505
PROBE_SAMPLES = 64
MAX_LOSS_POINTS = 256
WEIGHT_DECAY = 0.0
OOM_MESSAGES = ("out of memory", "CUBLAS_STATUS_ALLOC_FAILED", "CUDNN_STATUS_ALLOC_FAILED",
                "can't allocate memory", "Cannot allocate memory", "not enough memory")  # the last: CPU allocator
CUDA_SYNC_EVERY = 16  # on CUDA, read losses back (and check them) every this many steps


class _Diverged(RuntimeError):
    pass


@dataclass
class _Progress:
    """What a failed evaluation still reports."""

    steps: int = 0
    losses: list[float] = field(default_factory=list)
    param_count: int = 0
    macs: int = 0


def evaluate(genome: Genome, task: Any, budget: EvalBudget, seed: int, device: str = "cpu", *,
             batch_size: int | None = None, want_checkpoint: bool = False, compile_model: bool = False,
             amp: bool | None = None) -> EvalResult:
    """Train and measure ``genome`` on ``task`` (a task object, ``TaskSpec`` or its dict). Never raises for
    divergence or out-of-memory: those come back as ``EvalResult.failed``. ``batch_size`` overrides the gene
    (the worker pool halves it after an OOM); ``want_checkpoint`` returns the weights as safetensors bytes."""
    start = time.perf_counter()
    if budget.steps is None and budget.seconds is None:
        raise ValueError("budget.steps = None and budget.seconds = None: allowed is at least one of them set")
    if budget.val_samples < 1:
        raise ValueError(f"budget.val_samples = {budget.val_samples}: allowed is an integer >= 1")
    if isinstance(task, (TaskSpec, dict)):
        task = make_task(task)
    progress = _Progress()
    failure: tuple[str, str, str] | None = None
    try:
        if hasattr(task, "check_genome"):
            task.check_genome(genome)
        dev = torch.device(device)
        devices = [dev.index or 0] if dev.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            result = _run(genome, task, budget, seed, dev, progress, batch_size=batch_size or genome.batch_size,
                          want_checkpoint=want_checkpoint, compile_model=compile_model,
                          amp=(dev.type == "cuda") if amp is None else amp)
        result.metrics["wall_time_s"] = time.perf_counter() - start
        return result
    except TaskMismatch as exc:
        failure = ("error", str(exc), traceback.format_exc())
    except _Diverged as exc:
        failure = ("diverged", str(exc), "")
    except torch.OutOfMemoryError as exc:
        failure = ("oom", f"out of memory: {exc}", traceback.format_exc())
    except RuntimeError as exc:  # allocation failures some backends raise without the typed error
        if not any(s in str(exc) for s in OOM_MESSAGES):
            raise
        failure = ("oom", f"out of memory: {exc}", traceback.format_exc())
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    kind, message, trace = failure
    metrics = {"train_steps": float(progress.steps), "wall_time_s": time.perf_counter() - start}
    if progress.param_count:
        metrics["param_count"] = float(progress.param_count)
    return EvalResult.failed(genome.hash, kind, message, trace, seed=seed, metrics=metrics,
                             train_loss=_compress(progress.losses))


def _run(genome: Genome, task: Any, budget: EvalBudget, seed: int, dev: torch.device, progress: _Progress, *,
         batch_size: int, want_checkpoint: bool, compile_model: bool, amp: bool) -> EvalResult:
    model = build_model(genome, task, seed=seed).to(dev)
    progress.param_count = count_parameters(model)
    probe_x, probe_y = task.batch("probe", 0, PROBE_SAMPLES, VALIDATION_SEED)
    progress.macs = measure_macs(model, probe_x[:1].to(dev))
    forward = torch.compile(model) if compile_model else model

    _train(model, forward, task, budget, seed, dev, progress, batch_size, amp, genome.learning_rate)

    model.eval()
    val_x, val_y = task.batch("val", 0, budget.val_samples, VALIDATION_SEED)
    val = _measure(forward, task, val_x, val_y, batch_size, dev, amp)
    probe = _measure(forward, task, probe_x, probe_y, batch_size, dev, amp)
    exit_acc, exit_tick = exit_metrics(val["per_tick"], val["certainty"], budget.exit_threshold)
    accuracy = float(val["answer"].mean())
    metrics = {
        "val_accuracy": accuracy, "per_step_accuracy": accuracy,
        "sequence_accuracy": float(val["sequence"].mean()), "exit_accuracy": exit_acc,
        "exit_tick_mean": exit_tick, "ece": expected_calibration_error(val["confidence"], val["correct"]),
        "param_count": float(progress.param_count), "macs_per_forward": float(progress.macs),
        "train_steps": float(progress.steps),
    }
    per_tick_accuracy = val["per_tick"].mean(0).tolist()
    per_tick_certainty = val["certainty"].mean(0).tolist()
    checkpoint = _checkpoint(model) if want_checkpoint else None
    return EvalResult(
        genome_hash=genome.hash, fitness=accuracy, metrics=metrics, per_tick_accuracy=per_tick_accuracy,
        per_tick_certainty=per_tick_certainty, train_loss=_compress(progress.losses),
        behaviour=behaviour_vector(probe["per_tick"].mean(0).tolist(), probe["certainty"].mean(0).tolist()),
        seed=seed, checkpoint=checkpoint,
    )


def _train(model: CTM, forward: Any, task: Any, budget: EvalBudget, seed: int, dev: torch.device,
           progress: _Progress, batch_size: int, amp: bool, learning_rate: float) -> None:
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=learning_rate, weight_decay=WEIGHT_DECAY)
    warmup = max(budget.warmup_steps, 0)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / warmup) if warmup
                                                 else 1.0)
    sync_every = CUDA_SYNC_EVERY if dev.type == "cuda" else 1
    pending: list[torch.Tensor] = []
    began = time.perf_counter()
    model.train()
    step = 0
    while (budget.steps is None or step < budget.steps) and (
            budget.seconds is None or time.perf_counter() - began < budget.seconds):
        x, y = task.batch("train", step, batch_size, seed)
        pending.append(backward_step(forward, task, x, y, optimizer=optimizer, params=params,
                                     grad_clip=budget.grad_clip, device=dev, amp=amp))
        if len(pending) >= sync_every:
            _flush(pending, progress)
        optimizer.step()
        schedule.step()
        model.project_()
        step += 1
        progress.steps = step
    _flush(pending, progress)


def _flush(pending: list[torch.Tensor], progress: _Progress) -> None:
    """Read back the pending (loss, gradient norm) pairs; raise ``_Diverged`` at the first non-finite one."""
    for loss, norm in read_back(pending):
        if not (math.isfinite(loss) and math.isfinite(norm)):
            at = len(progress.losses) + 1
            what = "loss" if not math.isfinite(loss) else "gradient norm"
            raise _Diverged(f"non-finite {what} ({loss if what == 'loss' else norm}) at training step {at}")
        progress.losses.append(loss)


@torch.no_grad()
def _measure(forward: Any, task: Any, x: torch.Tensor, y: torch.Tensor, batch_size: int, dev: torch.device,
             amp: bool) -> dict[str, torch.Tensor]:
    """Scores over a whole split, in chunks of ``batch_size``: per_tick, certainty [N, T], answer, sequence,
    confidence, correct."""
    parts: dict[str, list[torch.Tensor]] = {k: [] for k in ("per_tick", "certainty", "answer", "sequence",
                                                            "confidence", "correct")}
    for lo in range(0, len(x), batch_size):
        xb, yb = x[lo:lo + batch_size].to(dev), y[lo:lo + batch_size].to(dev)
        with autocast_context(dev, amp):
            predictions, certainties = forward(xb)
        scores = task.score(predictions.float(), certainties.float(), yb)
        for key in ("per_tick", "answer", "sequence", "confidence", "correct"):
            parts[key].append(getattr(scores, key).detach().float().cpu())
        parts["certainty"].append(certainties[:, 1].detach().float().cpu())
    return {k: torch.cat(v) for k, v in parts.items()}


def _compress(losses: list[float]) -> list[float]:
    """At most ``MAX_LOSS_POINTS`` values: consecutive steps averaged in equal chunks."""
    if len(losses) <= MAX_LOSS_POINTS:
        return list(losses)
    chunk = math.ceil(len(losses) / MAX_LOSS_POINTS)
    return [sum(losses[i:i + chunk]) / len(losses[i:i + chunk]) for i in range(0, len(losses), chunk)]


def _checkpoint(model: CTM) -> bytes:
    from safetensors.torch import save
    return save({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()})
