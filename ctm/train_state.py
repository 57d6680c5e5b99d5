"""Training checkpoints: the complete state of a training run, written atomically and read back safely.

A checkpoint ``OUT/checkpoints/step-NNNNNNNN.pt`` is a ``torch.save`` dict of tensors and plain containers
(read with ``torch.load(weights_only=True)``): ``format``, ``version``, ``step``, ``genome_hash``, ``task`` and
``config`` (JSON text), ``model``, ``optimizer`` and ``scheduler`` state dicts, ``rng`` (torch, CUDA, numpy and
python generator states), ``data`` (the data stream: seed and next batch index), ``losses`` (every step's loss)
and ``evaluations`` (JSON text). Files are written to a temporary name and renamed, so an existing checkpoint is
never partly overwritten; the newest ``keep`` are kept.
"""

from __future__ import annotations

import io
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ctm.eval_state import restore_rng, rng_snapshot
from genome.io import write_bytes_atomic

CHECKPOINT_FORMAT = "ctmevo-train-checkpoint"
CHECKPOINT_VERSION = 1


class TrainError(ValueError):
    """Training cannot start or resume as asked; the message says why and what to do."""


def checkpoint_paths(out_dir: str | Path) -> list[Path]:
    """Checkpoint files of a training directory, oldest first."""
    return sorted((Path(out_dir) / "checkpoints").glob("step-*.pt"))


def rng_state(device: torch.device) -> dict[str, Any]:
    """Every generator a training run draws from: torch's (:func:`ctm.eval_state.rng_snapshot`, the one rule
    for which torch generators a device uses), numpy's global one and Python's."""
    state, pos, has_gauss, gauss = np.random.get_state()[1:]
    return {"cuda": [], **rng_snapshot(device),  # "cuda": that device's state on a GPU, else none
            "numpy": {"key": torch.from_numpy(state.astype(np.int64)), "pos": int(pos), "has_gauss": int(has_gauss),
                      "gauss": float(gauss)},
            "python": random.getstate()}


def set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    """Restore :func:`rng_state` (checkpoints of older versions kept every CUDA device's state as a list)."""
    cuda = state.get("cuda")
    if isinstance(cuda, list):
        state = {k: v for k, v in state.items() if k != "cuda"}
        if device.type == "cuda" and cuda:
            torch.cuda.set_rng_state_all(cuda)
    restore_rng(state, device)
    n = state["numpy"]
    np.random.set_state(("MT19937", n["key"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    random.setstate(_tuples(state["python"]))


def _tuples(value: Any) -> Any:
    return tuple(_tuples(v) for v in value) if isinstance(value, (list, tuple)) else value


def read_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint dict (``weights_only`` loading: tensors and plain containers only)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated zip, pickle errors, …
        raise TrainError(f"{path}: unreadable checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise TrainError(f"{path}: not a ctmevo training checkpoint")
    if state.get("version", 0) > CHECKPOINT_VERSION:
        raise TrainError(f"{path}: checkpoint version {state.get('version')} was written by a newer ctmevo")
    return state


def latest_checkpoint(out_dir: Path) -> tuple[Path, dict[str, Any]] | None:
    """The newest checkpoint that reads back completely (older ones are tried when the newest is damaged)."""
    errors = []
    for path in reversed(checkpoint_paths(out_dir)):
        try:
            return path, read_checkpoint(path)
        except TrainError as exc:
            errors.append(str(exc))
    if errors:
        raise TrainError("no readable checkpoint: " + "; ".join(errors))
    return None


def write_checkpoint(out_dir: Path, step: int, state: dict[str, Any], *, keep: int) -> Path:
    """Write ``state`` as the checkpoint of ``step`` (atomically) and delete all but the newest ``keep``."""
    buffer = io.BytesIO()
    torch.save({"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "step": step, **state}, buffer)
    path = Path(out_dir) / "checkpoints" / f"step-{step:08d}.pt"
    write_bytes_atomic(path, buffer.getvalue())
    for old in checkpoint_paths(out_dir)[:-keep]:
        old.unlink(missing_ok=True)
    return path
