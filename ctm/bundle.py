"""Bundles: one CTM architecture in a self-contained directory, with its resolved model and trained weights.

Layout of a bundle directory::

    BUNDLE/
      genome.yaml           the canonical genome: schema_version, hash, every gene (``genome.io.to_yaml``)
      model.yaml            the manifest and the resolved ``genome.cost.ModelSpec`` (every layer size), plain YAML
      weights.safetensors   the CTM's state dict (optional); its size and sha256 are recorded in model.yaml
      MODEL_CARD.md         a human summary (written by ``search.export``; optional)

``model.yaml`` holds ``format: ctmevo-bundle``, ``bundle_version``, ``genome_hash``, ``task`` (name and
params, as in a campaign file), ``model_seed`` (fixes the synchronisation pairs of a fresh build; the pairs are
also buffers in the weights), ``weights`` (``{file, sha256, bytes}`` or null), ``cost`` (parameters, MACs),
``source`` (free-form provenance: campaign, MLflow run, fitness) and ``model`` (``ModelSpec.to_dict()``).

Loading needs torch and the ``ctm``/``genome`` packages only::

    from ctm.bundle import load_bundle
    model, genome, task = load_bundle("exports/best")          # or: bundle = load_bundle(...); bundle.model
    predictions, certainties = model(task.batch("val", 0, 8, seed=0)[0])

Files are written atomically (temporary file, then rename) with the manifest last, so a reader never sees a
manifest that points at a half-written weights file; a tampered or truncated weights file fails the recorded
size/sha256 check with a :class:`BundleError`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import Tensor, nn

from ctm.eval_state import EvalStateError, fit_problems, weights_only
from ctm.result import TaskSpec
from genome import Genome, GenomeError, SchemaError, estimate, from_yaml, resolve, to_yaml
from genome.io import write_bytes_atomic
from genome.textio import FileReadError, load_yaml_file, read_text

BUNDLE_FORMAT = "ctmevo-bundle"
BUNDLE_VERSION = 1
GENOME_FILE = "genome.yaml"
MODEL_FILE = "model.yaml"
WEIGHTS_FILE = "weights.safetensors"
CARD_FILE = "MODEL_CARD.md"
BUNDLE_FILES = (GENOME_FILE, MODEL_FILE, WEIGHTS_FILE, CARD_FILE)


class BundleError(ValueError):
    """A bundle that cannot be written or loaded as asked; the message names the file and what is wrong."""


class BundleExistsError(BundleError):
    """The output directory already holds files and overwriting was not asked for (``path``: that directory)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        super().__init__(f"{path}: directory is not empty; choose another output directory, or overwrite it "
                         "(overwrite=True; on the command line --force)")


@dataclass
class Bundle:
    """A loaded bundle. Unpacks as ``model, genome, task = load_bundle(path)``."""

    path: Path
    model: nn.Module
    genome: Genome
    task: Any
    task_spec: TaskSpec
    manifest: dict[str, Any] = field(default_factory=dict)
    has_weights: bool = False

    def __iter__(self) -> Iterator[Any]:
        return iter((self.model, self.genome, self.task))

    @property
    def source(self) -> dict[str, Any]:
        return dict(self.manifest.get("source") or {})


# -- building ------------------------------------------------------------------------------------------------
def make_task_from_spec(task_spec: TaskSpec) -> Any:
    """The task object for a :class:`TaskSpec` (``ctm.make_task``), its errors re-raised as :class:`BundleError`."""
    from ctm.tasks import make_task

    try:
        return make_task(task_spec)
    except (ValueError, TypeError, ImportError) as exc:
        raise BundleError(f"task {task_spec.name!r} with params {task_spec.params}: {exc}") from None


def build(genome: Genome, task: Any, *, seed: int = 0) -> nn.Module:
    """``ctm.build_model`` for ``genome`` on ``task``; a genome the task cannot use raises :class:`BundleError`."""
    from ctm.build import build_model

    check = getattr(task, "check_genome", None)
    try:
        if check is not None:
            check(genome)
        return build_model(genome, task, seed=seed)
    except ValueError as exc:
        raise BundleError(f"genome {genome.hash} cannot be built for task {task.shape.name!r}: {exc}") from None


def spec_dict(genome: Genome, task: Any) -> dict[str, Any]:
    """The resolved model specification as plain JSON-like data (what model.yaml stores under ``model``)."""
    return json.loads(json.dumps(resolve(genome, task.shape).to_dict()))


def spec_differences(expected: Mapping[str, Any], actual: Mapping[str, Any], prefix: str = "") -> list[str]:
    """``field: expected X, got Y`` for every leaf that differs between two nested specs (fields the recorded
    spec lacks, added by a later ctmevo, are not compared)."""
    out: list[str] = []
    for key in sorted(expected):
        a, b = expected.get(key), actual.get(key)
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            out += spec_differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}: expected {a!r}, got {b!r}")
    return out


# -- writing -------------------------------------------------------------------------------------------------
def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def weights_bytes(state: Mapping[str, Tensor] | bytes, *, genome_hash: str) -> bytes:
    """safetensors bytes of a state dict, tagged with the genome hash. ``state`` may also be safetensors bytes:
    a weights file or a campaign checkpoint holding a whole evaluation state (:mod:`ctm.eval_state`; only its
    weights are kept)."""
    if isinstance(state, (bytes, bytearray)):
        try:
            state = weights_only(bytes(state))
        except EvalStateError as exc:
            raise BundleError(f"the checkpoint is not a readable weights or evaluation-state file ({exc})") from None
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in state.items()}
    return st_save(tensors, metadata={"format": BUNDLE_FORMAT, "genome_hash": genome_hash})


def write_bundle(out: str | Path, *, genome: Genome, task_spec: TaskSpec, weights: Mapping[str, Tensor] | bytes
                 | None = None, model_seed: int = 0, source: Mapping[str, Any] | None = None,
                 card: str | None = None, overwrite: bool = False) -> Path:
    """Write a bundle directory and return its path.

    ``weights`` is a state dict or safetensors bytes (e.g. a campaign checkpoint); it is loaded into a model
    built from ``genome`` for ``task_spec`` first, so weights that do not fit the architecture are refused
    before anything is written. An existing non-empty ``out`` is refused unless ``overwrite`` is set.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise BundleError(f"{out}: exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise BundleExistsError(out)
    task = make_task_from_spec(task_spec)
    model = build(genome, task, seed=model_seed)
    blob: bytes | None = None
    if weights is not None:
        blob = weights_bytes(weights, genome_hash=genome.hash)
        _load_state(model, st_load(blob), where="the weights")
    cost = estimate(genome, task.shape)
    manifest: dict[str, Any] = {
        "format": BUNDLE_FORMAT, "bundle_version": BUNDLE_VERSION, "genome_hash": genome.hash,
        "task": task_spec.to_dict(), "model_seed": int(model_seed),
        "weights": None if blob is None else {"file": WEIGHTS_FILE, "sha256": sha256_bytes(blob),
                                               "bytes": len(blob)},
        "cost": {"parameters": cost.params, "macs_per_forward": cost.macs_per_forward,
                 "macs_per_tick": cost.macs_per_tick, "parameters_by_part": dict(cost.params_by_part)},
        "source": json.loads(json.dumps(dict(source or {}), default=str)),
        "model": spec_dict(genome, task),
    }
    out.mkdir(parents=True, exist_ok=True)
    if blob is not None:
        write_bytes_atomic(out / WEIGHTS_FILE, blob)
    else:
        (out / WEIGHTS_FILE).unlink(missing_ok=True)
    write_bytes_atomic(out / GENOME_FILE, to_yaml(genome).encode())
    if card is not None:
        write_bytes_atomic(out / CARD_FILE, card.encode())
    header = "# ctmevo bundle manifest and resolved model (every layer size); see MODEL_CARD.md\n"
    write_bytes_atomic(out / MODEL_FILE, (header + yaml.safe_dump(manifest, sort_keys=False)).encode())
    return out


# -- reading -------------------------------------------------------------------------------------------------
def bundle_dir(path: str | Path) -> Path:
    """The bundle directory for a directory, or for a file inside one (model.yaml, genome.yaml, ...)."""
    p = Path(path)
    if not p.exists():
        raise BundleError(f"{p}: no such bundle directory or file")
    return p if p.is_dir() else p.parent


def is_bundle(path: str | Path) -> bool:
    p = Path(path)
    return (p / MODEL_FILE).is_file() if p.is_dir() else p.name == MODEL_FILE or (p.parent / MODEL_FILE).is_file()


def read_manifest(path: str | Path) -> dict[str, Any]:
    """The checked contents of ``model.yaml`` (newer bundle versions are refused)."""
    root = bundle_dir(path)
    file = root / MODEL_FILE
    if not file.is_file():
        raise BundleError(f"{root}: not a bundle (no {MODEL_FILE}); make one with 'ctmevo export'")
    try:
        doc = load_yaml_file(file, what="bundle manifest")
    except FileReadError as exc:
        raise BundleError(str(exc)) from None
    if not isinstance(doc, dict) or doc.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"{file}: format = {getattr(doc, 'get', lambda _k: None)('format')!r}: "
                          f"allowed is {BUNDLE_FORMAT!r}")
    version = doc.get("bundle_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise BundleError(f"{file}: bundle_version = {version!r}: allowed is an integer in [1, {BUNDLE_VERSION}]")
    if version > BUNDLE_VERSION:
        raise BundleError(f"{file}: bundle_version {version} was written by a newer ctmevo (this one reads up to "
                          f"{BUNDLE_VERSION}): upgrade ctmevo to load it")
    for key in ("genome_hash", "task", "model"):
        if key not in doc:
            raise BundleError(f"{file}: the field {key!r} is missing")
    return doc


def read_genome(path: str | Path) -> Genome:
    """The genome of a bundle (or of a genome file), with schema and hash checked."""
    p = Path(path)
    file = p / GENOME_FILE if p.is_dir() else p
    if not file.is_file():
        raise BundleError(f"{file}: no such genome file")
    try:
        return from_yaml(read_text(file, what="genome file"), source=str(file))
    except (GenomeError, SchemaError, FileReadError) as exc:
        raise BundleError(str(exc)) from None


def read_weights(root: Path, manifest: Mapping[str, Any]) -> dict[str, Tensor] | None:
    """The recorded weights after the size and sha256 checks, or None when the bundle has none."""
    info = manifest.get("weights")
    if not info:
        return None
    file = root / str(info.get("file", WEIGHTS_FILE))
    if not file.is_file():
        raise BundleError(f"{file}: missing; model.yaml records weights for this bundle (re-export it)")
    data = file.read_bytes()
    if len(data) != info.get("bytes"):
        raise BundleError(f"{file}: {len(data)} bytes, but model.yaml records {info.get('bytes')}: the file was "
                          "truncated or replaced; re-export the bundle")
    digest = sha256_bytes(data)
    if digest != info.get("sha256"):
        raise BundleError(f"{file}: sha256 {digest[:16]}… does not match the recorded {str(info.get('sha256'))[:16]}…:"
                          " the file was modified or corrupted; re-export the bundle")
    try:
        return st_load(data)
    except (SafetensorError, ValueError, RuntimeError) as exc:
        raise BundleError(f"{file}: not a readable safetensors file ({exc})") from None


def _load_state(model: nn.Module, state: Mapping[str, Tensor], *, where: str) -> None:
    """``load_state_dict(strict=True)`` with shape and key mismatches reported as a :class:`BundleError`."""
    parts = fit_problems(state, model.state_dict())
    if parts:
        raise BundleError(f"{where} do not fit the model built from the genome and task ({', '.join(parts)}); "
                          "the task's shapes must match the ones the weights were trained for")
    model.load_state_dict(dict(state), strict=True)


def load_bundle(path: str | Path, device: str | torch.device = "cpu", *, task: TaskSpec | None = None,
                weights: bool = True) -> Bundle:
    """Load a bundle: the model (in eval mode, on ``device``) with its weights, its genome and its task.

    ``task`` overrides the recorded task (e.g. a longer parity); with weights, its shapes must match the
    recorded model, or a :class:`BundleError` lists the differing fields. ``weights=False`` gives the model
    freshly initialised from the recorded seed.
    """
    root = bundle_dir(path)
    manifest = read_manifest(root)
    genome = read_genome(root)
    if genome.hash != manifest["genome_hash"]:
        raise BundleError(f"{root / GENOME_FILE}: genome {genome.hash} is not the one model.yaml records "
                          f"({manifest['genome_hash']}): the bundle's files come from different exports")
    recorded = TaskSpec.from_dict(manifest["task"])
    task_spec = task or recorded
    task_obj = make_task_from_spec(task_spec)
    state = read_weights(root, manifest) if weights else None
    actual = spec_dict(genome, task_obj)
    if state is not None and task is not None:
        diffs = spec_differences(manifest["model"], actual)
        if diffs:
            raise BundleError(f"task {task_spec.name!r} with params {task_spec.params} does not match the shapes "
                              f"the weights in {root} were trained for: " + "; ".join(diffs[:6]))
    model = build(genome, task_obj, seed=int(manifest.get("model_seed", 0)))
    if state is not None:
        _load_state(model, state, where=f"the weights in {root}")
    model.to(device).eval()
    return Bundle(path=root, model=model, genome=genome, task=task_obj, task_spec=task_spec, manifest=manifest,
                  has_weights=state is not None)
