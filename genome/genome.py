"""The genome: an immutable, typed value that fully determines a CTM variant for a given task."""

from __future__ import annotations

import contextlib
import hashlib
import json
from dataclasses import dataclass, fields
from functools import cached_property
from typing import Any

from genome.errors import GeneProblem, GenomeError
from genome.genes import GENE_BY_NAME, GENE_NAMES

SCHEMA_VERSION = 2  # of genome files; ``genome.io.UPGRADES`` reads older ones
HASH_LENGTH = 16
# The hash payload keeps the schema-1 form so that every genome hashed before schema 2 keeps its hash: genes added
# later enter it only when they differ from the value that reproduces the schema-1 model (LEGACY_VALUES).
HASH_SCHEMA = 1
LEGACY_VALUES: dict[str, Any] = {"positional_embedding": "learned"}


def _default(name: str) -> Any:
    """A gene's default value: declared once, in :mod:`genome.genes`."""
    return GENE_BY_NAME[name].default


@dataclass(frozen=True, kw_only=True)
class Genome:
    """One CTM variant. Field names are the gene names of :mod:`genome.genes` (see its docs for meaning).

    ``dropout_nlm`` left out takes the value of ``dropout``. :meth:`preset` gives the paper's configurations
    by name (``genome.presets``).

    Construction coerces types (``64.0`` → ``64``, floats quantised) and checks every gene against its hard
    limits and every cross-gene constraint, raising one :class:`GenomeError` naming all problems. Whether a
    genome lies inside a *campaign's* domains is checked by :meth:`genome.space.GenomeSpace.check`. The
    defaults are the genes' (:mod:`genome.genes`); the fields are listed here for readers and type checkers.
    """

    ticks: int = _default("ticks")
    memory_length: int = _default("memory_length")
    nlm_depth: int = _default("nlm_depth")
    nlm_hidden: int = _default("nlm_hidden")
    d_model: int = _default("d_model")
    d_input: int = _default("d_input")
    heads: int = _default("heads")
    synapse_depth: int = _default("synapse_depth")
    sync_select: str = _default("sync_select")
    n_sync_out: int = _default("n_sync_out")
    n_sync_action: int = _default("n_sync_action")
    n_self_pairs: int = _default("n_self_pairs")
    decay_init: str = _default("decay_init")
    decay_init_max: float = _default("decay_init_max")
    decay_learned: bool = _default("decay_learned")
    decay_clamp: float = _default("decay_clamp")
    dropout: float = _default("dropout")
    dropout_nlm: float | None = None  # None: the value of ``dropout`` (as the reference's dropout_nlm)
    learning_rate: float = _default("learning_rate")
    batch_size: int = _default("batch_size")
    positional_embedding: str = _default("positional_embedding")

    def __post_init__(self) -> None:
        problems: list[GeneProblem] = []
        derived_nlm = self.dropout_nlm is None
        for name in GENE_NAMES:
            gene = GENE_BY_NAME[name]
            if name == "dropout_nlm" and derived_nlm:  # follows dropout (declared before it, already checked)
                object.__setattr__(self, name, self.dropout)
                if any(p.gene == "dropout" for p in problems):
                    continue
            raw = getattr(self, name)
            try:
                value = gene.coerce(raw)
            except TypeError as exc:
                problems.append(GeneProblem(name, raw, f"{gene.allowed()} ({exc})"))
                continue
            object.__setattr__(self, name, value)
            if not gene.contains(value, gene.limits):
                problems.append(GeneProblem(name, raw, gene.allowed()))
        if not problems:
            problems = constraint_problems(self.to_dict())
        if problems:
            raise GenomeError(problems)

    # -- identity -----------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """All genes, explicitly, in declaration order (values are plain scalars: no deep copy needed)."""
        return {name: getattr(self, name) for name in GENE_NAMES}

    def canonical_json(self) -> str:
        """The bytes the hash is computed from: the hash schema and the genes, keys sorted, no whitespace.

        Every gene is included except a gene of :data:`LEGACY_VALUES` at its legacy value, so that a genome of
        an older schema hashes as it did then. ``json`` writes floats with ``repr`` (shortest round-trip form,
        identical on every platform and Python >= 3.1) and the genes are quantised on construction, so the text
        is stable everywhere.
        """
        genes = {k: v for k, v in self.to_dict().items() if k not in LEGACY_VALUES or v != LEGACY_VALUES[k]}
        payload = {"schema_version": HASH_SCHEMA, "genes": genes}
        return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True)

    @cached_property
    def hash(self) -> str:
        """Canonical content hash (first 16 hex digits of SHA-256): same genes ⇒ same hash."""
        return hashlib.sha256(self.canonical_json().encode("ascii")).hexdigest()[:HASH_LENGTH]

    def sizes(self) -> str:
        """The paper's symbols in one line: ``T=25 M=10 D=256 D_in=64`` (ticks, memory length, neurons, input
        width), as every listing of genomes shows them."""
        return f"T={self.ticks} M={self.memory_length} D={self.d_model} D_in={self.d_input}"

    def replace(self, **changes: Any) -> Genome:
        return Genome(**{**self.to_dict(), **changes})

    def diff(self, other: Genome) -> dict[str, tuple[Any, Any]]:
        """Genes whose values differ: ``{gene: (self's value, other's value)}``."""
        a, b = self.to_dict(), other.to_dict()
        return {k: (a[k], b[k]) for k in GENE_NAMES if a[k] != b[k]}

    @classmethod
    def preset(cls, name: str) -> Genome:
        """A named configuration of the paper (``genome.preset_names()`` lists them); unknown names raise a
        :class:`GenomeError` listing the valid ones."""
        from genome.presets import preset_genes

        return cls(**preset_genes(name))

    @classmethod
    def from_dict(cls, genes: dict[str, Any], *, source: str | None = None) -> Genome:
        """Build from a mapping of genes; missing genes take their defaults, unknown genes are an error."""
        if not isinstance(genes, dict):
            raise GenomeError([GeneProblem("genes", genes, "a mapping of gene name to value")], source=source)
        unknown = [k for k in genes if k not in GENE_BY_NAME]
        if unknown:
            raise GenomeError(
                [GeneProblem(str(k), genes[k], f"a known gene name: one of {list(GENE_NAMES)}") for k in unknown],
                source=source,
            )
        try:
            key = (cls, *((k, type(v), v) for k, v in genes.items()))
            cached = _PARSED.get(key)
        except TypeError:  # an unhashable value: validated below, and refused
            key, cached = None, None
        if cached is not None:
            return cached
        try:
            genome = cls(**genes)
        except GenomeError as exc:
            raise GenomeError(exc.problems, source=source) from None
        if key is not None:
            if len(_PARSED) >= _PARSED_MAX:
                with contextlib.suppress(RuntimeError, KeyError, StopIteration):  # another thread got there first
                    _PARSED.pop(next(iter(_PARSED)))
            _PARSED[key] = genome
        return genome


_PARSED: dict[tuple, Genome] = {}  # genomes read back recently (a journal names each genome at its ask and result)
_PARSED_MAX = 4096


def max_pairs(sync_select: str, d_model: int, n_self: int = 0) -> int:
    """How many neurons (first-last, random) or pairs (random-pairing) one synchronisation can use."""
    if sync_select == "random-pairing":
        return min(n_self, d_model) + d_model * (d_model - 1) // 2
    return d_model


def constraint_problems(genes: dict[str, Any]) -> list[GeneProblem]:
    """Every cross-gene constraint that ``genes`` (already inside their limits) violates."""
    problems: list[GeneProblem] = []
    d = genes["d_model"]
    n_out, n_act, n_self = genes["n_sync_out"], genes["n_sync_action"], genes["n_self_pairs"]
    select = genes["sync_select"]

    if genes["d_input"] % genes["heads"]:
        problems.append(GeneProblem("heads", genes["heads"],
                                    f"a divisor of d_input = {genes['d_input']}"))
    if select == "first-last":
        if n_out + n_act > d:
            problems.append(GeneProblem("n_sync_out + n_sync_action", n_out + n_act,
                                        f"at most d_model = {d} with first-last selection"))
    elif select == "random":
        for name, n in (("n_sync_out", n_out), ("n_sync_action", n_act)):
            if n > d:
                problems.append(GeneProblem(name, n, f"at most d_model = {d} with random selection"))
    else:
        if n_self > d:
            problems.append(GeneProblem("n_self_pairs", n_self, f"at most d_model = {d}"))
        bound = min(n_out, n_act) if n_act > 0 else n_out
        if n_self >= bound:
            problems.append(GeneProblem("n_self_pairs", n_self, f"less than {bound} (n_sync_out and a "
                                        "non-zero n_sync_action) with random-pairing selection"))
        for name, n in (("n_sync_out", n_out), ("n_sync_action", n_act)):
            if n > max_pairs(select, d, n_self):
                problems.append(GeneProblem(name, n, f"at most {max_pairs(select, d, n_self)} distinct "
                                            f"pairs for d_model = {d}"))
    if genes["decay_init"] != "zeros" and genes["decay_init_max"] > genes["decay_clamp"]:
        problems.append(GeneProblem("decay_init_max", genes["decay_init_max"],
                                    f"at most decay_clamp = {genes['decay_clamp']:g}"))
    return problems


GENOME_FIELDS = tuple(f.name for f in fields(Genome))
assert GENOME_FIELDS == GENE_NAMES, "Genome fields and genome.genes.GENES must list the same genes in order"
