"""Checkpoints of the reference implementation (SakanaAI/continuous-thought-machines) in ctmevo, and back.

A reference checkpoint is the torch file its ``tasks/parity/train.py`` saves: a dict with ``model_state_dict``
(names of ``models/ctm.py``) and ``args`` (its ``argparse.Namespace``), besides optimizer, scheduler and RNG
states and metric lists. It is read with ``torch.load(weights_only=True)``; the only non-tensor classes allowed
are ``argparse.Namespace`` and NumPy's array and scalar reconstruction (the RNG state and the metrics are NumPy
values), never general pickle.

- :func:`genome_from_args`: the config → a :class:`genome.Genome` and the parity :class:`TaskSpec`
  (T = iterations, D = d_model, D_in = d_input, M = memory_length, H = memory_hidden_dims, NLM depth 2 when
  deep_memory, n_out / n_action = n_synch_out / n_synch_action, rotational positions, θ learned from 0 and
  clamped to [0, 15], dropout_nlm = dropout unless given);
- :func:`load_reference_checkpoint`: the file → genome, task and ctmevo's state dict
  (:mod:`ctm.reference_weights` maps the tensors);
- :func:`import_reference`: the file → a bundle (``ctm.load_bundle``, ``ctmevo train`` accept it);
- :func:`export_reference`: a parity bundle → a checkpoint the reference loads (``model_state_dict``, ``args``).

Only parity checkpoints map: the reference's mazes and images use ResNet backbones ctmevo does not have, and an
option ctmevo cannot express raises a :class:`ReferenceFormatError` naming the option and its value.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import pickle
import pickletools
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ctm.build import task_shape
from ctm.bundle import load_bundle, write_bundle
from ctm.reference_weights import ReferenceFormatError, to_ctmevo, to_reference
from ctm.result import TaskSpec
from genome.cost import ModelSpec, resolve
from genome.errors import GenomeError
from genome.genome import Genome
from genome.io import write_bytes_atomic

REQUIRED_ARGS = ("iterations", "d_model", "d_input", "heads", "n_synch_out", "n_synch_action", "synapse_depth",
                 "memory_length", "deep_memory", "memory_hidden_dims", "neuron_select_type", "backbone_type",
                 "positional_embedding_type")
SUPPORTED = {"backbone_type": ("parity_backbone",), "positional_embedding_type": ("custom-rotational-1d",),
             "neuron_select_type": ("first-last", "random", "random-pairing"), "do_normalisation": (False,),
             "dataset": ("parity",), "model_type": ("ctm",), "model": ("ctm",)}
REFERENCE_DECAY_CLAMP = 15.0


@dataclass(frozen=True)
class ReferenceCheckpoint:
    """A reference checkpoint in ctmevo's terms: its genome, task, state dict (ctmevo names) and raw config."""

    genome: Genome
    task_spec: TaskSpec
    state_dict: dict[str, Tensor]
    args: dict[str, Any]
    source: dict[str, Any] = field(default_factory=dict)


def _safe_globals() -> list[Any]:
    """``argparse.Namespace`` and NumPy's data-only reconstructors (arrays, scalars, numeric dtypes), under the
    module names NumPy 1 and 2 pickle them with."""
    try:
        from numpy._core import multiarray
    except ImportError:  # NumPy 1
        from numpy.core import multiarray  # type: ignore[no-redef]
    numeric = (np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64,
               np.float16, np.float32, np.float64)
    out: list[Any] = [argparse.Namespace, np.ndarray, np.dtype, multiarray._reconstruct, multiarray.scalar,
                      *{type(np.dtype(t)) for t in numeric}]
    for name in ("_reconstruct", "scalar"):
        for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
            out.append((getattr(multiarray, name), f"{module}.{name}"))
    return out


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint dict, loaded with ``weights_only=True`` and the allowlist above."""
    path = Path(path)
    if not path.is_file():
        raise ReferenceFormatError(f"{path}: no such reference checkpoint file")
    try:
        with torch.serialization.safe_globals(_safe_globals()), warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "Detected pickle protocol 4 …": the refusal says it all
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as exc:
        raise ReferenceFormatError(f"{path}: {refusal_cause(exc)}") from None
    if not isinstance(checkpoint, dict) or "model_state_dict" not in checkpoint or "args" not in checkpoint:
        keys = sorted(checkpoint) if isinstance(checkpoint, dict) else type(checkpoint).__name__
        raise ReferenceFormatError(f"{path}: a reference checkpoint holds 'model_state_dict' and 'args'; found {keys}")
    return checkpoint


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def refusal_cause(exc: BaseException) -> str:
    """Why torch's safe loader refused a file, in one line: the cause buried in its long message (which also
    suggests ``weights_only=False``, something ctmevo never does with a file it did not write)."""
    text = _ANSI.sub("", str(exc))
    glob = re.search(r"GLOBAL ([\w.]+)", text)
    if glob and ("blocked" in text or glob.group(1).split(".")[0] in ("posix", "nt", "os", "subprocess", "builtins")):
        return (f"refused: loading it would call {glob.group(1)} (a pickle that runs code, not a checkpoint); "
                "ctmevo reads checkpoints only as tensors and plain data")
    if glob:
        return (f"refused: it pickles the Python object {glob.group(1)} (a whole model or another class), not a "
                "state dict; save the reference model's state_dict() and args with torch.save and import that")
    opcode = re.search(r"[Uu]nsupported (?:operand|opcode) (\d+)", text)
    if opcode:
        code = int(opcode.group(1))
        name = getattr(pickletools.code2op.get(chr(code)), "name", None) if code < 256 else None
        if name is None:  # not a pickle opcode at all: the bytes are no pickle
            return "not a torch checkpoint (a damaged file, or another format)"
        return (f"refused: it uses the pickle opcode {name} ({code}), which builds arbitrary Python objects; "
                "torch's safe loader reads tensors and plain data only")
    if "magic number" in text or "zip archive" in text or "EOF" in text or isinstance(exc, EOFError):
        return "not a torch checkpoint (a damaged file, or another format)"
    first = next((line.strip() for line in text.splitlines() if line.strip()), type(exc).__name__)
    return f"not a checkpoint ctmevo can read safely ({first[:200]})"


def _args_dict(args: Any) -> dict[str, Any]:
    if isinstance(args, argparse.Namespace):
        return dict(vars(args))
    if isinstance(args, Mapping):
        return dict(args)
    raise ReferenceFormatError(f"args = {type(args).__name__}: allowed is the reference's argparse.Namespace or a "
                               "mapping")


def genome_from_args(args: Any) -> tuple[Genome, TaskSpec]:
    """The genome and parity task of a reference config (its argparse ``args``, as a Namespace or a mapping)."""
    a = _args_dict(args)
    missing = [k for k in REQUIRED_ARGS if k not in a]
    if missing:
        raise ReferenceFormatError(f"the reference config lacks {missing}: not a CTM checkpoint of the reference")
    backbone = a.get("backbone_type", "parity_backbone")
    if backbone != "parity_backbone":
        raise ReferenceFormatError(f"reference option backbone_type = {backbone!r}: a maze or image-classification "
                                   "model (ResNet backbone); ctmevo imports the reference's parity checkpoints "
                                   "(backbone_type 'parity_backbone') only")
    for option, allowed in SUPPORTED.items():
        value = a.get(option, allowed[0])
        if option == "do_normalisation":
            value = bool(value)
        if value not in allowed:
            raise ReferenceFormatError(f"reference option {option} = {value!r} is not supported by ctmevo: allowed is "
                                       f"one of {list(allowed)}")
    length = a.get("parity_sequence_length", (a.get("out_dims") or 0) // 2)
    if not isinstance(length, int) or length < 1 or a.get("out_dims", 2 * length) != 2 * length:
        raise ReferenceFormatError(f"reference option parity_sequence_length = {length!r} (out_dims = "
                                   f"{a.get('out_dims')!r}): allowed is a positive length with out_dims = 2·length")
    if not a["heads"]:
        raise ReferenceFormatError("reference option heads = 0 (no attention) is not supported: allowed is at least 1")
    dropout = float(a.get("dropout") or 0.0)
    select = a["neuron_select_type"]
    genes = dict(ticks=a["iterations"], memory_length=a["memory_length"], nlm_depth=2 if a["deep_memory"] else 1,
                 nlm_hidden=a["memory_hidden_dims"], d_model=a["d_model"], d_input=a["d_input"], heads=a["heads"],
                 positional_embedding="rotational", synapse_depth=a["synapse_depth"], sync_select=select,
                 n_sync_out=a["n_synch_out"], n_sync_action=a["n_synch_action"],
                 n_self_pairs=a.get("n_random_pairing_self", 0) if select == "random-pairing" else 0,
                 decay_init="zeros", decay_learned=True, decay_clamp=REFERENCE_DECAY_CLAMP, dropout=dropout,
                 dropout_nlm=dropout if a.get("dropout_nlm") is None else float(a["dropout_nlm"]))
    if "lr" in a:
        genes["learning_rate"] = a["lr"]
    if "batch_size" in a:
        genes["batch_size"] = a["batch_size"]
    try:
        genome = Genome(**genes)
    except GenomeError as exc:
        raise ReferenceFormatError(f"the reference config is not a ctmevo genome: {exc}") from None
    return genome, TaskSpec(name="parity", params={"length": length})


def model_spec(genome: Genome, task_spec: TaskSpec) -> ModelSpec:
    return resolve(genome, task_shape(task_spec))


def from_reference(state: Mapping[str, Tensor], args: Any, *, source: Mapping[str, Any] | None = None
                   ) -> ReferenceCheckpoint:
    """A reference state dict and config (in memory) in ctmevo's terms."""
    genome, task_spec = genome_from_args(args)
    if not isinstance(state, Mapping) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ReferenceFormatError("model_state_dict: allowed is a mapping of names to tensors")
    mapped = to_ctmevo(state, model_spec(genome, task_spec))
    return ReferenceCheckpoint(genome=genome, task_spec=task_spec, state_dict=mapped, args=_args_dict(args),
                               source=dict(source or {}))


def load_reference_checkpoint(path: str | Path) -> ReferenceCheckpoint:
    """Read a checkpoint saved by the reference's parity training and map it onto a genome and ctmevo's weights."""
    path = Path(path)
    checkpoint = read_checkpoint(path)
    source = {"reference_checkpoint": str(path), "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    if isinstance(checkpoint.get("iteration"), int):
        source["iteration"] = checkpoint["iteration"]
    return from_reference(checkpoint["model_state_dict"], checkpoint["args"], source=source)


def _plain(value: Any) -> Any:
    """A JSON/YAML-safe copy of a config value."""
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return str(value)


def import_reference(checkpoint_path: str | Path, out_dir: str | Path, *, overwrite: bool = False) -> Path:
    """Write a reference checkpoint as a ctmevo bundle (genome.yaml, model.yaml, weights, MODEL_CARD.md)."""
    ref = load_reference_checkpoint(checkpoint_path)
    card = (f"# Imported reference CTM\n\nImported from the reference implementation's checkpoint "
            f"`{Path(checkpoint_path).name}` (sha256 {ref.source['sha256'][:16]}…) by `ctm.import_reference`.\n"
            f"Task: {ref.task_spec.name} {ref.task_spec.params}; genome {ref.genome.hash}.\n")
    source = {**ref.source, "reference_args": {k: _plain(v) for k, v in sorted(ref.args.items())}}
    return write_bundle(out_dir, genome=ref.genome, task_spec=ref.task_spec, weights=ref.state_dict, source=source,
                        card=card, overwrite=overwrite)


def reference_args(genome: Genome, task_spec: TaskSpec) -> argparse.Namespace:
    """The reference parity config that builds the same model (what ``genome_from_args`` reads back)."""
    if task_spec.name != "parity":
        raise ReferenceFormatError(f"task {task_spec.name!r}: only parity models map onto the reference")
    if genome.decay_clamp != REFERENCE_DECAY_CLAMP:
        raise ReferenceFormatError(f"decay_clamp = {genome.decay_clamp:g}: the reference clamps θ to [0, 15]; allowed "
                                   "is 15")
    length = task_shape(task_spec).out_positions
    return argparse.Namespace(
        model_type="ctm", dataset="parity", parity_sequence_length=length, out_dims=2 * length,
        iterations=genome.ticks, d_model=genome.d_model, d_input=genome.d_input, heads=genome.heads,
        n_synch_out=genome.n_sync_out, n_synch_action=genome.n_sync_action, synapse_depth=genome.synapse_depth,
        memory_length=genome.memory_length, deep_memory=genome.nlm_depth == 2, memory_hidden_dims=genome.nlm_hidden,
        do_normalisation=False, backbone_type="parity_backbone", positional_embedding_type="custom-rotational-1d",
        dropout=genome.dropout, dropout_nlm=genome.dropout_nlm, neuron_select_type=genome.sync_select,
        n_random_pairing_self=genome.n_self_pairs, lr=genome.learning_rate, batch_size=genome.batch_size)


def export_reference(bundle: str | Path, out_path: str | Path) -> Path:
    """Write a parity bundle as a reference checkpoint (``model_state_dict`` and ``args``) at ``out_path``."""
    loaded = load_bundle(bundle)
    if not loaded.has_weights:
        raise ReferenceFormatError(f"{bundle}: the bundle has no weights to export")
    args = reference_args(loaded.genome, loaded.task_spec)
    state = to_reference(loaded.model.state_dict(), loaded.model.spec)
    buffer = io.BytesIO()
    torch.save({"model_state_dict": state, "args": args}, buffer)
    return write_bytes_atomic(out_path, buffer.getvalue())
