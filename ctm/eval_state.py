"""Evaluation states: where a fitness evaluation stopped, as one safetensors blob, so that a later evaluation
of the same genome continues its training instead of restarting it (fidelity rungs: train to 100 steps, later
continue to 300, then to 900).

A state blob is the bytes of a safetensors file (no pickle anywhere):

- the weights, one tensor per key of the CTM's ``state_dict()``, under exactly those keys;
- under the reserved prefix ``RESERVED`` (``"__evalstate__/"``), which no module attribute can start with:
  ``optimizer/<parameter index>/<name>`` (AdamW's per-parameter ``step``, ``exp_avg`` m and ``exp_avg_sq`` v),
  ``rng/torch`` and ``rng/cuda`` (torch generator states after the last step, so dropout continues its
  stream) and ``losses`` (float64, the training loss of every step so far);
- string metadata, in sorted order so that equal states give equal bytes: ``format`` (``ctmevo-eval-state``),
  ``version``, ``genome_hash``, ``steps`` (optimizer steps trained so far = the next training batch index),
  ``schedule_step`` (the learning-rate schedule's position), ``optimizer_groups`` (JSON: AdamW's param groups:
  lr, initial_lr, betas, eps, weight_decay, …) and ``meta`` (JSON: task spec, seed, batch size, learning rate,
  warm-up).

``safetensors.torch.load(blob)`` therefore still yields the weights (plus reserved keys to drop:
:func:`weights_only` does it). A weights-only blob (``safetensors.torch.save(model.state_dict())``, or a
bundle's ``weights.safetensors``) is a valid start as well: it has no optimizer state and ``steps = 0``.
Problems (unreadable bytes, unknown format or version, reserved keys in a weights file, another genome,
weights that do not fit the model) raise :class:`EvalStateError` naming the problem.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import Tensor, nn

STATE_FORMAT = "ctmevo-eval-state"
STATE_VERSION = 1
RESERVED = "__evalstate__/"
OPTIMIZER = RESERVED + "optimizer/"
RNG = RESERVED + "rng/"
LOSSES = RESERVED + "losses"
# weights-only files accepted as a start: no format, safetensors' "pt", a bundle's weights (ctm.bundle.BUNDLE_FORMAT)
WEIGHTS_FORMATS = (None, "pt", "ctmevo-bundle")


class EvalStateError(ValueError):
    """An evaluation state (or weights blob) that cannot be read or used as asked; the message says why."""


@dataclass(kw_only=True)
class EvalState:
    """The unpacked contents of a state blob.

    ``optimizer`` is an AdamW ``state_dict`` ready for ``load_state_dict`` (``None``: a weights-only start,
    which trains from step 0 with a fresh optimizer). ``steps`` counts optimizer steps trained so far,
    ``schedule_step`` is the position of the learning-rate schedule (equal to ``steps`` for evaluations),
    ``rng`` holds torch generator states (``torch``, and ``cuda`` when trained on a GPU), ``losses`` the
    per-step training losses, ``meta`` plain JSON data (task spec, seed, batch size, …). ``genome_hash`` is
    ``None`` for a weights file that records none.
    """

    weights: dict[str, Tensor]
    genome_hash: str | None = None
    optimizer: dict[str, Any] | None = None
    steps: int = 0
    schedule_step: int | None = None
    rng: dict[str, Tensor] = field(default_factory=dict)
    losses: list[float] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    format: str = STATE_FORMAT

    @property
    def continues(self) -> bool:
        """True when training resumes from this state (it holds optimizer state), False for a fresh start."""
        return self.optimizer is not None


def pack_state(state: EvalState) -> bytes:
    """The safetensors bytes of ``state`` (see the module docstring for the layout)."""
    tensors = {k: _cpu(v) for k, v in state.weights.items()}
    bad = sorted(k for k in tensors if k.startswith(RESERVED))
    if bad:
        raise EvalStateError(f"weights keys {bad[:3]}: allowed are keys not starting with {RESERVED!r}")
    groups: list[dict[str, Any]] = []
    if state.optimizer is not None:
        for index, values in state.optimizer["state"].items():
            for name, value in values.items():
                if not isinstance(value, Tensor):
                    raise EvalStateError(f"optimizer state {index}/{name} = {value!r}: allowed are tensors")
                tensors[f"{OPTIMIZER}{int(index)}/{name}"] = _cpu(value)
        groups = [_json_group(g) for g in state.optimizer["param_groups"]]
    for name, value in state.rng.items():
        tensors[RNG + name] = _cpu(value)
    tensors[LOSSES] = torch.tensor(list(state.losses), dtype=torch.float64)
    metadata = {
        "format": STATE_FORMAT, "version": str(STATE_VERSION), "genome_hash": state.genome_hash or "",
        "steps": str(int(state.steps)),
        "schedule_step": str(int(state.steps if state.schedule_step is None else state.schedule_step)),
        "optimizer_groups": json.dumps(groups) if state.optimizer is not None else "null",
        "meta": json.dumps(state.meta, sort_keys=True),
    }
    return _sorted_metadata(st_save(tensors, metadata=metadata))


def unpack_state(data: bytes) -> EvalState:
    """An :class:`EvalState` from a state blob or from a weights-only safetensors blob (``steps = 0``, no
    optimizer; ``genome_hash`` from a bundle's weights file, else ``None``)."""
    metadata = read_metadata(data)
    try:
        tensors = st_load(bytes(data))
    except (SafetensorError, ValueError, RuntimeError) as exc:
        raise EvalStateError(f"not a readable safetensors blob ({exc})") from None
    fmt = metadata.get("format")
    if fmt in WEIGHTS_FORMATS:
        reserved = sorted(k for k in tensors if k.startswith(RESERVED))
        if reserved:
            raise EvalStateError(f"a weights file (format = {fmt!r}) holds reserved tensors {reserved[:3]}")
        return EvalState(weights=tensors, genome_hash=metadata.get("genome_hash") or None, format="weights")
    if fmt != STATE_FORMAT:
        raise EvalStateError(f"format = {fmt!r}: allowed is {STATE_FORMAT!r} or a weights-only safetensors file")
    version = _int(metadata, "version")
    if version > STATE_VERSION:
        raise EvalStateError(f"version = {version}: this state was written by a newer ctmevo (this one reads up to "
                             f"{STATE_VERSION})")
    steps, schedule_step = _int(metadata, "steps"), _int(metadata, "schedule_step")
    groups = _json(metadata, "optimizer_groups")
    optimizer = None
    if groups is not None:
        per_param: dict[int, dict[str, Tensor]] = {}
        for key, value in tensors.items():
            if key.startswith(OPTIMIZER):
                index, _, name = key[len(OPTIMIZER):].partition("/")
                if not index.isdigit() or not name:
                    raise EvalStateError(f"tensor {key!r}: allowed optimizer keys are {OPTIMIZER}<index>/<name>")
                per_param.setdefault(int(index), {})[name] = value
        optimizer = {"state": dict(sorted(per_param.items())), "param_groups": [_group(g) for g in groups]}
    losses = tensors.get(LOSSES)
    return EvalState(
        weights={k: v for k, v in tensors.items() if not k.startswith(RESERVED)},
        genome_hash=metadata.get("genome_hash") or None, optimizer=optimizer, steps=steps, schedule_step=schedule_step,
        rng={k[len(RNG):]: v for k, v in tensors.items() if k.startswith(RNG)},
        losses=[] if losses is None else losses.tolist(), meta=_json(metadata, "meta") or {})


def weights_only(data: bytes) -> dict[str, Tensor]:
    """The model weights of a state blob or weights blob: exactly the CTM's ``state_dict`` keys, ready for
    ``model.load_state_dict`` or ``ctm.bundle.write_bundle(weights=...)``."""
    return unpack_state(data).weights


def read_metadata(data: bytes) -> dict[str, str]:
    """The ``__metadata__`` of safetensors bytes (``{}`` when there is none), read from the header only."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise EvalStateError(f"state = {type(data).__name__}: allowed is the bytes of a safetensors file")
    try:
        (length,) = struct.unpack("<Q", bytes(data[:8]))
        if not 0 < length <= len(data) - 8:
            raise ValueError(f"header length {length} does not fit in {len(data)} bytes")
        header = json.loads(bytes(data[8:8 + length]))
    except (struct.error, ValueError, UnicodeDecodeError) as exc:
        raise EvalStateError(f"not a readable safetensors blob ({exc})") from None
    metadata = header.get("__metadata__") if isinstance(header, dict) else None
    return dict(metadata) if isinstance(metadata, dict) else {}


def fit_problems(weights: Mapping[str, Tensor], own: Mapping[str, Tensor]) -> list[str]:
    """What keeps ``weights`` from loading strictly into a model whose ``state_dict`` is ``own``: shape
    mismatches, missing and unexpected tensors (empty when they fit)."""
    missing = sorted(set(own) - set(weights))
    unexpected = sorted(set(weights) - set(own))
    shapes = [f"{k}: weights {tuple(weights[k].shape)}, model {tuple(own[k].shape)}"
              for k in sorted(set(own) & set(weights)) if tuple(own[k].shape) != tuple(weights[k].shape)]
    parts = []
    if shapes:
        parts.append("shape mismatch: " + "; ".join(shapes[:5]) + (" …" if len(shapes) > 5 else ""))
    if missing:
        parts.append(f"missing tensors {missing[:5]}")
    if unexpected:
        parts.append(f"unexpected tensors {unexpected[:5]}")
    return parts


def load_weights(model: nn.Module, weights: Mapping[str, Tensor], *, where: str = "the start state") -> None:
    """``model.load_state_dict(weights, strict=True)``, with mismatches raised as :class:`EvalStateError`."""
    problems = fit_problems(weights, model.state_dict())
    if problems:
        raise EvalStateError(f"{where}: the weights do not fit the model built from the genome and task "
                             f"({', '.join(problems)})")
    model.load_state_dict(dict(weights), strict=True)


def rng_snapshot(device: torch.device) -> dict[str, Tensor]:
    """The torch generator states that training on ``device`` draws from (dropout)."""
    state = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def restore_rng(state: Mapping[str, Tensor], device: torch.device) -> None:
    """Set the generators of :func:`rng_snapshot` (a CUDA state only when training on CUDA again)."""
    if "torch" in state:
        torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def _sorted_metadata(blob: bytes) -> bytes:
    """``blob`` with its header's metadata in sorted key order, so equal states give equal bytes (safetensors
    writes metadata in hash-map order). The header keeps its length; if it would not, ``blob`` is returned."""
    (length,) = struct.unpack("<Q", blob[:8])
    raw = blob[8:8 + length]
    header = json.loads(raw)
    header["__metadata__"] = dict(sorted(header["__metadata__"].items()))
    ordered = {"__metadata__": header.pop("__metadata__"), **header}
    text = json.dumps(ordered, separators=(",", ":"), ensure_ascii=False).encode()
    text += b" " * (length - len(text))
    if len(text) != length or json.loads(text) != json.loads(raw):
        return blob
    return blob[:8] + text + blob[8 + length:]


def _cpu(value: Tensor) -> Tensor:
    return value.detach().to("cpu").contiguous()


def _json_group(group: Mapping[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in group.items():
        if isinstance(value, Tensor):
            raise EvalStateError(f"optimizer param group {key} = tensor: allowed are plain numbers")
        out[key] = list(value) if isinstance(value, tuple) else value
    return out


def _group(group: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON param group back to the optimizer's types (lists other than ``params`` were tuples: betas)."""
    return {k: tuple(v) if isinstance(v, list) and k != "params" else v for k, v in group.items()}


def _int(metadata: Mapping[str, str], key: str) -> int:
    try:
        return int(metadata[key])
    except (KeyError, ValueError):
        raise EvalStateError(f"metadata {key} = {metadata.get(key)!r}: allowed is an integer") from None


def _json(metadata: Mapping[str, str], key: str) -> Any:
    try:
        return json.loads(metadata[key])
    except (KeyError, ValueError):
        raise EvalStateError(f"metadata {key} = {metadata.get(key)!r}: allowed is JSON text") from None


__all__ = ["RESERVED", "STATE_FORMAT", "STATE_VERSION", "EvalState", "EvalStateError", "fit_problems",
           "load_weights", "pack_state", "read_metadata", "restore_rng", "rng_snapshot", "unpack_state",
           "weights_only"]
