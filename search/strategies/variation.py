"""How strategies make proposals: random samples, children bred by the ``variation`` setting (iso+line variation
of codec vectors, or genome.operators), tournaments, and the retry that keeps proposals new."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from genome import Genome, GenomeSpace, RepairError, VectorCodec, crossover, mutate
from search.records import Proposal
from search.strategies.evaluated import Evaluated, enumerate_space, ghash, phash

ENUMERATE_LIMIT = 5_000  # spaces with at most this many gene combinations are enumerated when sampling fails

__all__ = ["Variation"]


class Variation:
    """Mixed into :class:`~search.strategies.base.Strategy`: sampling, breeding and selection helpers."""

    rng: np.random.Generator
    space: GenomeSpace
    codec: VectorCodec
    settings: dict[str, Any]
    exhausted: bool
    _enumerated: list[Genome] | None

    def _taken(self, genome_hash: str) -> bool:
        raise NotImplementedError

    def _breed(self, parents: Sequence[Evaluated], crossover_ok: bool = True) -> Proposal:
        """A child of ``parents`` by the ``variation`` setting: iso+line of the first two parents, or
        (genetic) a uniform crossover of two parents with probability ``crossover_rate``, else a mutation
        of the first."""
        s = self.settings
        if s["variation"] == "iso_line":
            return self._iso_line(parents[0], parents[-1])
        if crossover_ok and len(parents) >= 2 and self.rng.random() < s["crossover_rate"]:
            a, b = parents[0], parents[1]
            child = crossover(a.proposal.genome, b.proposal.genome, self.space, self.rng)
            return Proposal(genome=child, parents=(a.hash, b.hash), operator="crossover")
        p = parents[0]
        child = mutate(p.proposal.genome, self.space, self.rng, rate=s["mutation_rate"], sigma=s["mutation_sigma"])
        return Proposal(genome=child, parents=(p.hash,), operator="mutation")

    def _iso_line(self, a: Evaluated, b: Evaluated) -> Proposal:
        """Iso+line variation (Vassiliades & Mouret 2018) on codec vectors: x_a + σ_iso·N(0, I) + σ_line·N(0, 1)·
        (x_b − x_a), decoded (clipped and repaired) into a genome."""
        xa, xb = self.codec.encode(a.proposal.genome), self.codec.encode(b.proposal.genome)
        x = xa + self.rng.normal(0.0, self.settings["iso_sigma"], size=xa.shape)
        x = x + self.rng.normal(0.0, self.settings["line_sigma"]) * (xb - xa)
        child = self.codec.decode(np.clip(x, 0.0, 1.0))
        return Proposal(genome=child, parents=(a.hash, b.hash), operator="iso_line")

    def _fresh(self, make: Callable[[], Proposal]) -> Proposal | None:
        """A proposal from ``make`` whose genome is new; after ``max_resample`` duplicates, a random sample."""
        for _ in range(self.settings["max_resample"]):
            try:
                proposal = make()
            except RepairError:
                continue
            if not self._taken(phash(proposal)):
                return proposal
        return self._sample()

    def _sample(self) -> Proposal | None:
        """A uniformly random new genome; None (and ``exhausted``) when none is left to find."""
        for _ in range(self.settings["max_resample"]):
            try:
                genome = self.space.sample(self.rng)
            except RepairError:
                continue
            if not self._taken(ghash(genome)):
                self.exhausted = False
                return Proposal(genome=genome, operator="sample")
        left = [g for g in self._enumerate() if not self._taken(ghash(g))]
        if left:
            self.exhausted = False
            return Proposal(genome=left[int(self.rng.integers(len(left)))], operator="sample")
        self.exhausted = True
        return None

    def _enumerate(self) -> list[Genome]:
        """Every valid genome of a small space (sorted by hash); [] for spaces too large to list."""
        if self._enumerated is None:
            self._enumerated = list(enumerate_space(self.space, ENUMERATE_LIMIT))
            self._enumerated.sort(key=ghash)
        return self._enumerated

    def _tournament(self, pool: Sequence[Evaluated], key: Callable[[Evaluated], Any], size: int) -> Evaluated:
        """Tournament selection: the best by ``key`` of ``size`` members drawn without replacement."""
        picks = self.rng.choice(len(pool), size=min(size, len(pool)), replace=False)
        return max((pool[int(i)] for i in picks), key=key)
