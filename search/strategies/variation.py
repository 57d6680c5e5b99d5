"""How strategies breed children: iso+line variation of codec vectors, or genome.operators (genetic)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from genome import GenomeSpace, VectorCodec, crossover, mutate
from search.records import Proposal
from search.strategies.evaluated import Evaluated

__all__ = ["Variation"]


class Variation:
    """Mixed into :class:`~search.strategies.base.Strategy`: the ``variation`` setting's operators."""

    rng: np.random.Generator
    space: GenomeSpace
    codec: VectorCodec
    settings: dict[str, Any]

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

