"""Worker side: run one attempt of a job and turn whatever happens into an :class:`EvalResult`.

This module runs inside Ray worker processes (and in-process for :class:`workers.InlinePool`). It imports
neither Ray nor torch: the evaluation function, named by a ``"module:function"`` path, brings its own imports.
Exceptions never escape :func:`run_attempt`: an out-of-memory error becomes an ``oom`` failure (the pool then
retries with half the batch), any other exception an ``error`` failure with its type and a short traceback.
"""

from __future__ import annotations

import importlib
import os
import socket
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

from ctm.oom import is_out_of_memory
from ctm.result import EvalResult
from workers.job import EvalJob

TRACEBACK_FRAMES = 8  # innermost frames kept in an ``error`` failure's traceback
_FUNCTIONS: dict[str, Callable[..., Any]] = {}


def resolve(path: str) -> Callable[..., Any]:
    """Import ``"package.module:function"`` (cached per process)."""
    fn = _FUNCTIONS.get(path)
    if fn is None:
        module_name, _, attr = path.partition(":")
        obj: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
        if not callable(obj):
            raise TypeError(f"evaluate_fn {path!r} names {type(obj).__name__}, not a function")
        fn = _FUNCTIONS[path] = obj
    return fn


def worker_name() -> str:
    """``host:pid`` of this process, as recorded in ``EvalResult.worker``."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _release_gpu_memory() -> None:
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


def short_traceback(exc: BaseException, frames: int = TRACEBACK_FRAMES) -> str:
    """The innermost ``frames`` frames of ``exc``'s traceback and its message."""
    lines = traceback.format_exception(type(exc), exc, exc.__traceback__, limit=-frames)
    return "".join(lines)[-4000:]


def run_attempt(job: EvalJob, evaluate_fn: str, device: str = "cpu", worker: str = "") -> EvalResult:
    """Evaluate ``job`` once on this process; never raises (except ``KeyboardInterrupt``/``SystemExit``).

    The evaluation function receives the job's genome, task spec, budget and seed, the device, the batch
    size override (``None`` = the genome's gene) and ``want_checkpoint``; ``start`` (a state to continue) and
    ``parent`` (weights to inherit) only when the job has them. Its result gets the job's identity
    (``job_id``) and ``worker`` stamped by the pool.
    """
    started = time.monotonic()
    try:
        fn = resolve(evaluate_fn)
        extra: dict[str, Any] = {}  # only when set: a user's evaluation function may not know these arguments
        if job.start is not None:
            extra["start"] = job.start
        if job.parent is not None:
            extra["parent"] = job.parent
        result = fn(job.genome, job.task, job.budget, job.seed, device=device, batch_size=job.batch_size,
                    want_checkpoint=job.want_checkpoint, **extra)
        if not isinstance(result, EvalResult):
            raise TypeError(f"{evaluate_fn} returned {type(result).__name__}, expected ctm.result.EvalResult")
    except Exception as exc:  # every failure of an evaluation is a result, never an exception
        if is_out_of_memory(exc):
            _release_gpu_memory()
            result = EvalResult.failed(job.genome.hash, "oom", f"{type(exc).__name__} at batch size "
                                       f"{job.effective_batch_size}: {str(exc)[:300]}", short_traceback(exc))
        else:
            result = EvalResult.failed(job.genome.hash, "error", f"{type(exc).__name__}: {str(exc)[:500]}",
                                       short_traceback(exc))
        result.metrics["wall_time_s"] = time.monotonic() - started
    result.worker = worker or worker_name()
    return result
