"""Plain data the strategies keep per told evaluation, and small helpers shared by them."""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from genome import GENE_BY_NAME, GENE_NAMES, Genome, GenomeError, GenomeSpace
from genome.genes import ChoiceGene, IntGene
from search.descriptors import Descriptor
from search.records import Proposal


def ghash(genome: Genome) -> str:
    """``genome.hash``, memoised on the exact gene values (``repr`` tells 0.0 from -0.0, 1 from True)."""
    return _hash_of(genome, tuple(repr(getattr(genome, name)) for name in GENE_NAMES))


@functools.lru_cache(maxsize=1 << 12)  # the genomes in play now (parents, children, elites), not all
def _hash_of(genome: Genome, key: tuple[str, ...]) -> str:
    return genome.hash


def phash(proposal: Proposal) -> str:
    return ghash(proposal.genome)


@dataclass(kw_only=True)
class Evaluated:
    """One told evaluation as the strategy keeps it (plain data).

    ``status`` is ``"ok"`` or a failure kind (``EvalResult.status``; ``"invalid"`` for an "ok" result whose
    fitness is missing or not finite). ``values`` are the descriptor values (``None`` when they could not be
    computed), ``behaviour`` the behaviour vector of the result, ``cell`` the archive cell it landed in.
    """

    proposal: Proposal
    status: str
    fitness: float | None = None
    values: list[float] | None = None
    behaviour: list[float] | None = None
    cell: str | None = None
    region: str | None = None
    rung: int = 0  # the fidelity rung ``fitness`` was measured at
    seeds: int = 1  # how many seeds ``fitness`` is the mean of
    hash: str = field(init=False)  # the genome's canonical hash, computed once

    def __post_init__(self) -> None:
        self.hash = phash(self.proposal)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict[str, Any]:
        return {"proposal": self.proposal.to_dict(), "status": self.status, "fitness": self.fitness,
                "values": self.values, "behaviour": self.behaviour, "cell": self.cell, "region": self.region,
                "rung": self.rung, "seeds": self.seeds}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Evaluated:
        return cls(proposal=Proposal.from_dict(data["proposal"]), status=data["status"],
                   fitness=data["fitness"], values=data["values"], behaviour=data["behaviour"],
                   cell=data["cell"], region=data["region"], rung=int(data.get("rung", 0)),
                   seeds=int(data.get("seeds", 1)))



def behaviour_vector(rec: Evaluated, *, source: str, descriptors: list[Descriptor], dim: int | None
                     ) -> np.ndarray | None:
    """The behaviour a novelty-style strategy compares: the descriptor values normalised to [0, 1]
    (``source == "descriptors"``) or the result's behaviour vector; ``None`` for a failed result, a missing
    vector, or one whose length differs from ``dim`` (the length of those already kept, if any)."""
    if not rec.ok:
        return None
    if source == "descriptors":
        if rec.values is None:
            return None
        vec = np.array([d.normalise(v) for d, v in zip(descriptors, rec.values, strict=True)])
    else:
        if not rec.behaviour:
            return None
        vec = np.asarray(rec.behaviour, dtype=np.float64)
    return vec if dim is None or vec.shape == (dim,) else None


@dataclass(frozen=True)
class Revision:
    """Later knowledge of a told genome: its ``fitness`` measured at a higher fidelity ``rung``, or as the mean of
    more ``seeds`` (``fitness`` None: that measurement failed; the genome keeps what it had)."""

    hash: str
    fitness: float | None
    rung: int
    seeds: int

    def to_dict(self) -> dict[str, Any]:
        return {"hash": self.hash, "fitness": self.fitness, "rung": self.rung, "seeds": self.seeds}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Revision:
        return cls(hash=data["hash"], fitness=data["fitness"], rung=int(data["rung"]), seeds=int(data["seeds"]))


def enumerate_space(space: GenomeSpace, limit: int) -> Iterable[Genome]:
    """Every valid genome of ``space`` when its searched genes have at most ``limit`` combinations, else []."""
    values: list[tuple[str, list[Any]]] = []
    total = 1
    for name in space.evolvable:
        gene, domain = GENE_BY_NAME[name], space.domains[name]
        if isinstance(gene, ChoiceGene):
            options = list(domain)
        elif isinstance(gene, IntGene):
            options = list(range(domain[0], domain[1] + 1))
        else:
            return []  # a searched real gene: effectively unbounded
        total *= len(options)
        if total > limit:
            return []
        values.append((name, options))
    fixed = {name: space.fixed_value(name) for name in space.domains if name not in space.evolvable}
    out = []
    for combo in itertools.product(*(options for _, options in values)):
        genes = {**fixed, **{name: v for (name, _), v in zip(values, combo, strict=True)}}
        try:
            genome = Genome(**genes)
        except GenomeError:
            continue
        if space.contains(genome):
            out.append(genome)
    return out


def plain(value: Any) -> Any:
    """numpy scalars and containers → plain Python (for the random generator's state)."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    return value
