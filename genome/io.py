"""Genome files: YAML and JSON with a schema version, read with ``yaml.safe_load`` only.

A file looks like::

    schema_version: 2
    hash: 2ea1ac96df152d4a      # optional on input; checked when present (also for older schemas)
    genes:
      ticks: 25
      ...

Genes a hand-written file leaves out take their defaults; written files list every gene explicitly.
Files from an older schema are upgraded by the functions in ``UPGRADES``; files from a newer schema, or an
older one no upgrade exists for, fail with a :class:`SchemaError` that says so. Reading is bounded
(:mod:`genome.textio`): a huge, binary or non-UTF-8 file, or a YAML alias bomb, is a :class:`GenomeError`
naming the file, not a hang.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from genome.errors import GeneProblem, GenomeError, SchemaError
from genome.genome import LEGACY_VALUES, SCHEMA_VERSION, Genome
from genome.textio import FileReadError, parse_yaml, read_text


def _upgrade_1(genes: dict[str, Any]) -> dict[str, Any]:
    """Schema 1 → 2: positional_embedding appeared (schema-1 models learned a table of positions), and a left-out
    dropout_nlm now follows dropout (in schema 1 it defaulted to 0)."""
    if not isinstance(genes, dict):
        return genes
    return {**LEGACY_VALUES, "dropout_nlm": 0.0, **genes}


# UPGRADES[v] turns the "genes" mapping of schema v into that of schema v + 1.
UPGRADES: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {1: _upgrade_1}


def upgrade_genes(genes: dict[str, Any], version: int, *, source: str = "<genome>") -> dict[str, Any]:
    """The genes of a schema-``version`` mapping in the current schema (a :class:`SchemaError` where no upgrade
    exists). Stores that keep gene mappings without a file (journals) pass the version they wrote."""
    if version > SCHEMA_VERSION:
        raise SchemaError(f"{source}: schema_version {version} was written by a newer ctmevo (this one reads "
                          f"up to {SCHEMA_VERSION}): upgrade ctmevo to read it")
    for v in range(version, SCHEMA_VERSION):
        if v not in UPGRADES:
            readable = sorted({*UPGRADES, SCHEMA_VERSION})
            raise SchemaError(f"{source}: schema_version {version} cannot be read or upgraded by this ctmevo "
                              f"(it reads schema versions {readable})")
        genes = UPGRADES[v](genes)
    return genes


def genome_to_document(genome: Genome) -> dict[str, Any]:
    return {"schema_version": SCHEMA_VERSION, "hash": genome.hash, "genes": genome.to_dict()}


def genome_from_document(doc: Any, *, source: str = "<genome>") -> Genome:
    if not isinstance(doc, dict) or "genes" not in doc:
        raise GenomeError([GeneProblem("genes", doc, "a mapping with 'schema_version' and 'genes' keys")],
                          source=source)
    version = doc.get("schema_version", SCHEMA_VERSION)
    if not isinstance(version, int) or isinstance(version, bool):
        raise SchemaError(f"{source}: schema_version = {version!r}: allowed is an integer <= {SCHEMA_VERSION}")
    genes = upgrade_genes(doc["genes"], version, source=source)
    genome = Genome.from_dict(genes, source=source)
    stated = doc.get("hash")
    if stated is not None and stated != genome.hash:  # hashes are stable across schema upgrades (HASH_SCHEMA)
        raise GenomeError([GeneProblem("hash", stated, f"the hash of these genes, {genome.hash} (the genes were "
                                       "edited: delete the hash line to accept them)")], source=source)
    return genome


_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # libyaml when PyYAML has it: ~10x faster, same YAML


def to_yaml(genome: Genome) -> str:
    return yaml.dump(genome_to_document(genome), Dumper=_DUMPER, sort_keys=False)


def from_yaml(text: str, *, source: str = "<yaml>") -> Genome:
    try:
        doc = parse_yaml(text, source=source)
    except FileReadError as exc:
        raise GenomeError([GeneProblem("yaml", source, f"well-formed, bounded YAML ({exc})")],
                          source=source) from None
    return genome_from_document(doc, source=source)


def to_json(genome: Genome) -> str:
    return json.dumps(genome_to_document(genome), indent=2)


def from_json(text: str, *, source: str = "<json>") -> Genome:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise GenomeError([GeneProblem("json", source, f"well-formed JSON ({exc})")], source=source) from None
    return genome_from_document(doc, source=source)


def jsonable(value: Any, digits: int | None = None) -> Any:
    """``value`` ready for strict JSON: non-finite floats become ``None`` (JSON has no NaN or Infinity), tuples
    lists, keys strings; with ``digits``, floats are kept to that many significant digits. Every JSON writer of
    ctmevo (journal, results, CTM-Bench rows) goes through here."""
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        return float(f"{value:.{digits}g}") if digits is not None else value
    if isinstance(value, dict):
        return {str(k): jsonable(v, digits) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v, digits) for v in value]
    return value


def durable() -> bool:
    """Whether writes are fsynced: yes, unless ``CTMEVO_FSYNC=0`` is set (simulated campaigns on CTM-Bench,
    where a lost tail is re-simulated in microseconds; never for real training)."""
    return os.environ.get("CTMEVO_FSYNC", "1") != "0"


def fsync(fd: int) -> None:
    """``os.fsync(fd)``, unless :func:`durable` says no. Every fsync of ctmevo goes through here."""
    if durable():
        os.fsync(fd)


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    """Replace ``path`` with ``data`` in full or not at all, durably.

    A temporary file in the same directory is written and fsynced, renamed over ``path`` and the directory
    fsynced, so after a crash ``path`` holds either its old or its new content. Every package writes its
    snapshots, bundles and checkpoints through this one function.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
    return path


def fsync_dir(directory: str | Path) -> None:
    """Make a rename or a new file in ``directory`` durable (a no-op where directories cannot be opened)."""
    if not durable():
        return
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save(genome: Genome, path: str | Path) -> Path:
    text = to_json(genome) if Path(path).suffix == ".json" else to_yaml(genome)
    return write_bytes_atomic(path, text.encode())


def load(path: str | Path) -> Genome:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such genome file")
    try:
        text = read_text(path, what="genome file")
    except FileReadError as exc:
        raise GenomeError([GeneProblem("file", str(path), f"a readable UTF-8 genome file ({exc})")],
                          source=str(path)) from None
    return from_json(text, source=str(path)) if path.suffix == ".json" else from_yaml(text, source=str(path))
