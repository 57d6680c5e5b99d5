"""A vector codec: genome ⇄ point in [0, 1]^d, so vector-space optimisers search the same space.

One dimension per searched gene (:attr:`GenomeSpace.evolvable`): numbers map linearly on their scale (log for
widths), categories to equal-width bins. Fixed genes are not encoded; decoding fills them from the space.
Decoding an arbitrary point clips it to the cube and repairs the genes deterministically, so any optimiser
proposal becomes a valid genome, and ``decode(encode(g)) == g`` for every genome in the space.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from genome.genes import GENE_BY_NAME, GENE_NAMES
from genome.genome import Genome
from genome.space import GenomeSpace


class VectorCodec:
    def __init__(self, space: GenomeSpace):
        self.space = space
        self.names: tuple[str, ...] = space.evolvable

    @property
    def dim(self) -> int:
        return len(self.names)

    def encode(self, genome: Genome) -> np.ndarray:
        genes = genome.to_dict()
        return np.array(
            [GENE_BY_NAME[n].to_unit(genes[n], self.space.domains[n]) for n in self.names], dtype=np.float64
        )

    def decode(self, x: Sequence[float] | np.ndarray) -> Genome:
        x = np.asarray(x, dtype=np.float64)
        if x.shape != (self.dim,):
            raise ValueError(f"expected a vector of length {self.dim} (genes {list(self.names)}), got {x.shape}")
        if not np.all(np.isfinite(x)):
            raise ValueError("cannot decode a vector with NaN or infinite entries")
        genes = {n: self.space.fixed_value(n) for n in GENE_NAMES}
        for name, u in zip(self.names, np.clip(x, 0.0, 1.0), strict=True):
            genes[name] = GENE_BY_NAME[name].from_unit(float(u), self.space.domains[name])
        return self.space.repair(genes)
