"""Fitness evaluation: train a CTM for a budget, then measure it on fixed validation data.

``evaluate(genome, task, budget, seed)`` trains with AdamW (learning rate and batch size from the genome's
genes; linear warm-up over ``budget.warmup_steps`` then constant; gradient norm clipped to
``budget.grad_clip``; the loop is :class:`ctm.loop.TrainingLoop`) until ``budget.steps`` optimizer steps or
``budget.seconds`` of training, whichever comes first. Training batch ``i`` is
``task.batch("train", i, batch_size, seed)``; validation (``budget.val_samples``) and the behaviour probe
(``PROBE_SAMPLES``) always come from ``VALIDATION_SEED``, so every genome is measured on the same data.

Continuing (fidelity rungs): ``want_checkpoint=True`` returns the evaluation state (:mod:`ctm.eval_state`:
weights, AdamW state, steps, schedule position, RNG, losses) as ``result.checkpoint``; passing it back as
``start`` continues training at step s = its ``steps`` with batch s of the same stream, up to ``budget.steps``
steps IN TOTAL: ``budget.steps`` is the cumulative target, so a ladder [100, 300, 900] trains 100 steps, then
200 more, then 600 more, and on CPU ends with the same weights and fitness as one uninterrupted 900-step
evaluation (bit for bit, given the same seed and batch size). ``budget.seconds`` limits each call's own
training time. A weights-only ``start`` (``safetensors.torch.save(state_dict)``) trains ``budget.steps`` from
step 0 with those weights and a fresh optimizer.

Inheriting (``evaluation.inherit: parent``): ``parent`` (:class:`ctm.result.ParentWeights`) makes the start
the child's weights mapped from the parent's state by :func:`ctm.inherit.inherit` (a pure function of the
parent's state, the child's genes and ``seed``); the child then trains ``budget.steps`` from step 0 with a fresh
optimizer. ``metrics`` say what it owes the parent: ``inherited_fraction`` (share of trainable parameter
elements from the parent), ``inherited_preserving`` (1.0 when the child computes the parent's function) and
``parent_steps`` (the steps the parent had trained). A parent state that cannot be read or does not fit the
parent's genome is logged and the child trains from its own init (``inherited_fraction`` 0.0,
``inherit_failed`` 1.0). A parent trained on another task (``parent.task``, a transfer) gives its CTM core; the
tensors the task's shape decides start from the child's init, counted in ``reinitialised_tensors``.

Everything is a pure function of (genome, task, budget, seed, start) on CPU: weights, pairs, dropout and data
are seeded (a continued start restores its RNG state), and the caller's global RNG is left as it was. The
schedule is a function of the step index and the current ``budget.warmup_steps``. Non-finite loss or gradients
give a ``diverged`` failure; a torch out-of-memory error gives ``oom``; a genome the task cannot use
(``TaskMismatch``) gives ``error``. The fitness is the validation accuracy (``val_accuracy``), except for a task
the CTM acts in (it has ``closed_loop``, e.g. ``pomaze``): there it is ``closed_loop_success``, the share of the
validation episodes the model succeeds in acting on its own answers (``val_accuracy`` stays the per-step
accuracy under teacher forcing). On CUDA the forward runs under bf16 autocast (``amp``), and ``compile_model``
wraps the model in ``torch.compile``.
"""

from __future__ import annotations

import gc
import logging
import math
import time
import traceback
from dataclasses import dataclass
from typing import Any

import torch

from ctm.build import build_model
from ctm.eval_state import EvalState, EvalStateError, load_weights, pack_state, restore_rng, rng_snapshot, unpack_state
from ctm.inherit import InheritError, inherit
from ctm.loop import Diverged, TrainingLoop, make_optimizer, warmup_constant
from ctm.metrics import (
    behaviour_vector,
    closed_loop_success,
    exit_metrics,
    expected_calibration_error,
    measure_macs,
)
from ctm.model import CTM, count_parameters
from ctm.oom import is_out_of_memory
from ctm.result import EvalBudget, EvalResult, ParentWeights, TaskSpec
from ctm.step import autocast_context
from ctm.tasks import TaskMismatch, make_task
from genome.genome import Genome

log = logging.getLogger("ctmevo.evaluate")

VALIDATION_SEED = 20_250_505
PROBE_SAMPLES = 64
MAX_LOSS_POINTS = 256
WEIGHT_DECAY = 0.0
CUDA_SYNC_EVERY = 16  # on CUDA, read losses back (and check them) every this many steps


@dataclass
class _Progress:
    """What a failed evaluation still reports."""

    start_step: int = 0
    loop: TrainingLoop | None = None
    param_count: int = 0
    macs: int = 0

    @property
    def steps(self) -> int:
        return self.loop.step if self.loop is not None else self.start_step

    @property
    def losses(self) -> list[float]:
        return self.loop.losses if self.loop is not None else []


def evaluate(genome: Genome, task: Any, budget: EvalBudget, seed: int, device: str = "cpu", *,
             batch_size: int | None = None, want_checkpoint: bool = False, start: bytes | None = None,
             parent: ParentWeights | None = None, compile_model: bool = False, amp: bool | None = None
             ) -> EvalResult:
    """Train and measure ``genome`` on ``task`` (a task object, ``TaskSpec`` or its dict). Never raises for
    divergence or out-of-memory: those come back as ``EvalResult.failed``. ``batch_size`` overrides the gene
    (the worker pool halves it after an OOM); ``want_checkpoint`` returns the evaluation state (weights,
    optimizer, steps; :mod:`ctm.eval_state`) as ``result.checkpoint``.

    ``start`` is such a state (training continues at its step up to ``budget.steps`` in total) or a weights-only
    safetensors blob (``budget.steps`` from step 0 with those weights). A ``start`` that is unreadable, of
    another genome or does not fit the model raises :class:`ctm.eval_state.EvalStateError` (a ``ValueError``)
    before any training. ``metrics["train_steps"]`` counts all steps trained, ``metrics["start_step"]`` the
    steps the start state had already done.
    """
    began = time.perf_counter()
    if budget.steps is None and budget.seconds is None:
        raise ValueError("budget.steps = None and budget.seconds = None: allowed is at least one of them set")
    if budget.val_samples < 1:
        raise ValueError(f"budget.val_samples = {budget.val_samples}: allowed is an integer >= 1")
    if start is not None and parent is not None:
        raise ValueError("start and parent are both set: allowed is one of them (continue a state, or inherit)")
    begin = _start_state(start, genome) if start is not None else None
    spec = task.to_dict() if isinstance(task, TaskSpec) else dict(task) if isinstance(task, dict) else None
    if isinstance(task, (TaskSpec, dict)):
        task = make_task(task)
    owed: dict[str, float] = {}
    if parent is not None:
        begin, owed = _inherited_start(parent, genome, task, seed)
    progress = _Progress(start_step=begin.steps if begin is not None and begin.continues else 0)
    failure: tuple[str, str, str] | None = None
    steps: int | None = None
    try:
        if hasattr(task, "check_genome"):
            task.check_genome(genome)
        dev = torch.device(device)
        devices = [dev.index or 0] if dev.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            result = _run(genome, task, budget, seed, dev, progress, batch_size=batch_size or genome.batch_size,
                          want_checkpoint=want_checkpoint, compile_model=compile_model,
                          amp=(dev.type == "cuda") if amp is None else amp, begin=begin, spec=spec)
        result.metrics.update(owed)
        result.metrics["wall_time_s"] = time.perf_counter() - began
        return result
    except TaskMismatch as exc:
        failure = ("error", str(exc), traceback.format_exc())
    except Diverged as exc:
        failure = ("diverged", str(exc), "")
        steps = exc.step - 1
    except torch.OutOfMemoryError as exc:
        failure = ("oom", f"out of memory: {exc}", traceback.format_exc())
    except RuntimeError as exc:  # allocation failures some backends raise without the typed error
        if not is_out_of_memory(exc):
            raise
        failure = ("oom", f"out of memory: {exc}", traceback.format_exc())
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    kind, message, trace = failure
    metrics = {"train_steps": float(progress.steps if steps is None else steps),
               "start_step": float(progress.start_step), "wall_time_s": time.perf_counter() - began, **owed}
    if progress.param_count:
        metrics["param_count"] = float(progress.param_count)
    return EvalResult.failed(genome.hash, kind, message, trace, seed=seed, metrics=metrics,
                             train_loss=_compress(progress.losses))


def _start_state(start: bytes, genome: Genome) -> EvalState:
    """The unpacked ``start``, refused when it records another genome."""
    try:
        state = unpack_state(start)
    except EvalStateError as exc:
        raise EvalStateError(f"start: {exc}") from None
    if state.genome_hash is not None and state.genome_hash != genome.hash:
        raise EvalStateError(f"start: the state belongs to genome {state.genome_hash}, not to {genome.hash}; "
                             "continue an evaluation only with its own genome's state")
    return state


def _inherited_start(parent: ParentWeights, genome: Genome, task: Any, seed: int
                     ) -> tuple[EvalState | None, dict[str, float]]:
    """The child's start mapped from ``parent`` and the metrics saying what it owes it (see the module doc)."""
    try:
        state = unpack_state(bytes(parent.state))
        got = inherit(parent.genome, state.weights, genome, task, seed=seed, parent_task=parent.task)
    except (EvalStateError, InheritError) as exc:
        log.warning("%s cannot inherit from %s (%s); it trains from its own initialisation", genome.hash,
                    parent.genome.hash, exc)
        return None, {"inherited_fraction": 0.0, "inherit_failed": 1.0}
    metrics = {"inherited_fraction": got.inherited_fraction, "inherited_preserving": float(got.function_preserving),
               "parent_steps": float(state.steps)}
    if got.reinitialised:
        metrics["reinitialised_tensors"] = float(len(got.reinitialised))
        log.info("%s from %s on another task: %s", genome.hash, parent.genome.hash, got.not_preserved[0])
    return EvalState(weights=got.weights), metrics


def _run(genome: Genome, task: Any, budget: EvalBudget, seed: int, dev: torch.device, progress: _Progress, *,
         batch_size: int, want_checkpoint: bool, compile_model: bool, amp: bool, begin: EvalState | None,
         spec: dict[str, Any] | None) -> EvalResult:
    model = build_model(genome, task, seed=seed)
    if begin is not None:
        load_weights(model, begin.weights, where="start")
    model = model.to(dev)
    progress.param_count = count_parameters(model)
    probe_x, probe_y = task.batch("probe", 0, PROBE_SAMPLES, VALIDATION_SEED)
    progress.macs = measure_macs(model, probe_x[:1].to(dev))
    forward = torch.compile(model) if compile_model else model

    trained = time.perf_counter()
    loop = _train(model, forward, task, budget, seed, dev, progress, batch_size, amp, genome.learning_rate, begin)
    trained = time.perf_counter() - trained
    rng = rng_snapshot(dev)

    model.eval()
    val_x, val_y = task.batch("val", 0, budget.val_samples, VALIDATION_SEED)
    val = _measure(forward, task, val_x, val_y, batch_size, dev, amp)
    probe = _measure(forward, task, probe_x, probe_y, batch_size, dev, amp)
    exit_acc, exit_tick = exit_metrics(val["per_tick"], val["certainty"], budget.exit_threshold)
    accuracy = float(val["answer"].mean())
    closed = closed_loop_success(model, task, samples=budget.val_samples, seed=VALIDATION_SEED, device=dev,
                                 batch_size=batch_size)
    metrics = {
        "val_accuracy": accuracy, "per_step_accuracy": accuracy,
        "sequence_accuracy": float(val["sequence"].mean()), "exit_accuracy": exit_acc,
        "exit_tick_mean": exit_tick, "ece": expected_calibration_error(val["confidence"], val["correct"]),
        "param_count": float(progress.param_count), "macs_per_forward": float(progress.macs),
        "train_steps": float(loop.step), "start_step": float(progress.start_step),
        "val_loss": float(val["loss"].sum() / len(val_y)), "train_time_s": trained,
    }
    if closed is not None:  # an agent's task: what it achieves acting on its own is its fitness
        metrics["closed_loop_success"] = closed
    per_tick_accuracy = val["per_tick"].mean(0).tolist()
    per_tick_certainty = val["certainty"].mean(0).tolist()
    checkpoint = None
    if want_checkpoint:
        checkpoint = pack_state(EvalState(
            weights=model.state_dict(), genome_hash=genome.hash, optimizer=loop.optimizer.state_dict(),
            steps=loop.step, schedule_step=loop.scheduler.last_epoch, rng=rng, losses=loop.losses,
            meta={"task": spec, "seed": seed, "batch_size": batch_size, "learning_rate": genome.learning_rate,
                  "warmup_steps": budget.warmup_steps}))
    return EvalResult(
        genome_hash=genome.hash, fitness=accuracy if closed is None else closed, metrics=metrics,
        per_tick_accuracy=per_tick_accuracy, per_tick_certainty=per_tick_certainty, train_loss=_compress(loop.losses),
        behaviour=behaviour_vector(probe["per_tick"].mean(0).tolist(), probe["certainty"].mean(0).tolist()),
        seed=seed, checkpoint=checkpoint,
    )


def _train(model: CTM, forward: Any, task: Any, budget: EvalBudget, seed: int, dev: torch.device,
           progress: _Progress, batch_size: int, amp: bool, learning_rate: float,
           begin: EvalState | None) -> TrainingLoop:
    """Train from scratch, from ``begin``'s weights (fresh optimizer) or continuing ``begin`` (its optimizer,
    schedule position, RNG and data stream position) up to ``budget.steps`` steps in total."""
    params = [p for p in model.parameters() if p.requires_grad]
    resume = begin is not None and begin.continues
    optimizer, scheduler = make_optimizer(
        params, learning_rate=learning_rate, weight_decay=WEIGHT_DECAY, schedule=warmup_constant(budget.warmup_steps),
        optimizer_state=begin.optimizer if resume else None,
        start_step=(begin.schedule_step or 0) if resume else 0)
    if resume:
        restore_rng(begin.rng, dev)
    loop = TrainingLoop(model=model, forward=forward, task=task, optimizer=optimizer, scheduler=scheduler,
                        params=params, seed=seed, batch_size=batch_size, grad_clip=budget.grad_clip, device=dev,
                        amp=amp, step=progress.start_step, losses=list(begin.losses) if resume else [])
    progress.loop = loop
    loop.run(until=budget.steps, seconds=budget.seconds, flush_every=CUDA_SYNC_EVERY if dev.type == "cuda" else 1)
    return loop


@torch.no_grad()
def _measure(forward: Any, task: Any, x: torch.Tensor, y: torch.Tensor, batch_size: int, dev: torch.device,
             amp: bool) -> dict[str, torch.Tensor]:
    """Scores over a whole split, in chunks of ``batch_size``: per_tick, certainty [N, T], answer, sequence,
    confidence, correct, and loss (each chunk's mean loss times its size, so ``loss.sum() / N`` is the mean)."""
    parts: dict[str, list[torch.Tensor]] = {k: [] for k in ("per_tick", "certainty", "answer", "sequence",
                                                            "confidence", "correct", "loss")}
    for lo in range(0, len(x), batch_size):
        xb, yb = x[lo:lo + batch_size].to(dev), y[lo:lo + batch_size].to(dev)
        with autocast_context(dev, amp):
            predictions, certainties = forward(xb)
        scores = task.score(predictions.float(), certainties.float(), yb)
        for key in ("per_tick", "answer", "sequence", "confidence", "correct"):
            parts[key].append(getattr(scores, key).detach().float().cpu())
        parts["certainty"].append(certainties[:, 1].detach().float().cpu())
        loss = task.loss(predictions.float(), certainties.float(), yb)
        parts["loss"].append((loss.detach().float() * len(xb)).reshape(1).cpu())
    return {k: torch.cat(v) for k, v in parts.items()}


def measure_state(genome: Genome, task: Any, state: bytes, *, samples: int, seed: int, device: str = "cpu",
                  batch_size: int = 256) -> float:
    """The fitness of a trained model (``state``: an evaluation state or weights blob of ``genome`` on ``task``) on
    ``samples`` fresh validation samples drawn with ``seed``: a model judged on data its search never saw (the
    fitness uses :data:`VALIDATION_SEED`). Validation accuracy, or closed-loop success for an agent's task."""
    if isinstance(task, (TaskSpec, dict)):
        task = make_task(task)
    dev = torch.device(device)
    model = build_model(genome, task)
    load_weights(model, unpack_state(state).weights, where="state")
    model = model.to(dev).eval()
    closed = closed_loop_success(model, task, samples=samples, seed=seed, device=dev, batch_size=batch_size)
    if closed is not None:
        return closed
    x, y = task.batch("val", 0, samples, seed)
    return float(_measure(model, task, x, y, batch_size, dev, False)["answer"].mean())


def _compress(losses: list[float]) -> list[float]:
    """At most ``MAX_LOSS_POINTS`` values: consecutive steps averaged in equal chunks."""
    if len(losses) <= MAX_LOSS_POINTS:
        return list(losses)
    chunk = math.ceil(len(losses) / MAX_LOSS_POINTS)
    return [sum(losses[i:i + chunk]) / len(losses[i:i + chunk]) for i in range(0, len(losses), chunk)]

