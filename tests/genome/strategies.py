"""Hypothesis strategies: genomes drawn from the default space and from randomly narrowed spaces."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from genome import GENES, GenomeSpace, RepairError
from genome.genes import ChoiceGene

seeds = st.integers(min_value=0, max_value=2**32 - 1)


@st.composite
def spaces(draw) -> GenomeSpace:
    """The default space with some genes narrowed to a random sub-range (or a fixed value)."""
    config = {}
    for gene in GENES:
        if not draw(st.booleans()):
            continue
        if isinstance(gene, ChoiceGene):
            config[gene.name] = {"choices": draw(st.lists(st.sampled_from(gene.domain), min_size=1, unique=True))}
        else:
            u = sorted(draw(st.lists(st.floats(0, 1), min_size=2, max_size=2)))
            lo, hi = (gene.from_unit(x, gene.domain) for x in u)
            config[gene.name] = {"min": lo, "max": hi}
    try:
        return GenomeSpace.from_config(config)
    except Exception:  # a narrowing with no valid genome: fall back to the default space
        return GenomeSpace.default()


@st.composite
def space_and_genome(draw):
    space = draw(spaces())
    try:
        return space, space.sample(np.random.default_rng(draw(seeds)))
    except RepairError:
        return GenomeSpace.default(), GenomeSpace.default().sample(np.random.default_rng(0))
