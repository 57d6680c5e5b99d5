"""Variation operators and distance, each driven by an explicit ``numpy.random.Generator``.

- :func:`mutate`: every searched gene mutates with probability ``rate`` (default 1/n, at least one gene),
  each by its own rule: integers take a Gaussian step on their scale (log scale for widths), reals a Gaussian
  step, categories are resampled among the other choices. The child is repaired into the space, and it is
  never identical to the parent.
- :func:`crossover`: uniform crossover of two parents, repaired.
- :func:`distance`: mean per-gene distance in [0, 1] over the searched genes (position on the gene's scale
  for numbers, 0/1 for categories).
"""

from __future__ import annotations

import numpy as np

from genome.genes import GENE_BY_NAME, GENE_NAMES, ChoiceGene, FloatGene, IntGene
from genome.genome import Genome
from genome.space import GenomeSpace, RepairError

MUTATION_SIGMA = 0.12  # step size as a fraction of the domain on the gene's scale


def mutate(
    parent: Genome,
    space: GenomeSpace,
    rng: np.random.Generator,
    *,
    rate: float | None = None,
    sigma: float = MUTATION_SIGMA,
    attempts: int = 50,
) -> Genome:
    """A valid child of ``parent`` that differs from it in at least one gene."""
    names = space.evolvable
    if not names:
        raise RepairError("the genome space has no searched gene: every domain is a single value")
    rate = 1.0 / len(names) if rate is None else rate
    base = parent.to_dict()
    for _ in range(attempts):
        chosen = [n for n in names if rng.random() < rate] or [names[rng.integers(len(names))]]
        genes = dict(base)
        for name in chosen:
            genes[name] = _mutate_gene(name, base[name], space, rng, sigma)
        try:
            child = space.repair(genes)
        except RepairError:
            continue
        if child != parent:
            return child
    raise RepairError(f"no valid, different child of {parent.hash} found in {attempts} attempts")


def _mutate_gene(name: str, value, space: GenomeSpace, rng: np.random.Generator, sigma: float):
    gene = GENE_BY_NAME[name]
    domain = space.domains[name]
    if isinstance(gene, ChoiceGene):
        others = [c for c in domain if c != value]
        return others[rng.integers(len(others))] if others else value
    inside = min(max(value, domain[0]), domain[1])
    u = gene.to_unit(inside, domain) + rng.normal(0.0, sigma)
    new = gene.from_unit(min(max(u, 0.0), 1.0), domain)
    if isinstance(gene, IntGene) and new == inside:  # a step too small to move an integer: move by one
        step = 1 if rng.random() < 0.5 else -1
        new = min(max(inside + step, domain[0]), domain[1])
        if new == inside:
            new = min(max(inside - step, domain[0]), domain[1])
    return new


def crossover(a: Genome, b: Genome, space: GenomeSpace, rng: np.random.Generator, *, attempts: int = 50
              ) -> Genome:
    """Uniform crossover: each gene from either parent with probability 1/2, then repaired."""
    ga, gb = a.to_dict(), b.to_dict()
    for _ in range(attempts):
        genes = {n: (ga[n] if rng.random() < 0.5 else gb[n]) for n in GENE_NAMES}
        try:
            return space.repair(genes)
        except RepairError:
            continue
    raise RepairError(f"no valid crossover of {a.hash} and {b.hash} found in {attempts} attempts")


def gene_distance(name: str, x, y, space: GenomeSpace) -> float:
    gene = GENE_BY_NAME[name]
    domain = space.domains[name]
    if isinstance(gene, ChoiceGene):
        return float(x != y)
    assert isinstance(gene, IntGene | FloatGene)
    clip = lambda v: min(max(v, domain[0]), domain[1])  # noqa: E731
    return abs(gene.to_unit(clip(x), domain) - gene.to_unit(clip(y), domain))


def distance(a: Genome, b: Genome, space: GenomeSpace) -> float:
    """Normalised distance in [0, 1]: 0 for equal genomes, 1 when every searched gene is at opposite ends."""
    names = space.evolvable or GENE_NAMES
    ga, gb = a.to_dict(), b.to_dict()
    return float(np.mean([gene_distance(n, ga[n], gb[n], space) for n in names]))
