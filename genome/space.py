"""The genome space of a campaign: one domain per gene, narrowed or widened from the defaults in YAML.

A campaign's ``genome_space`` section maps gene names to domains::

    ticks: {min: 5, max: 50}          # an integer or real range (inside the gene's hard limits)
    sync_select: {choices: [random, random-pairing]}
    d_model: 128                      # a single value: the gene is fixed, not searched

Genes not named keep their default domain (see :mod:`genome.genes`).

A space can be centred on a known genome: ``centre`` is a preset name (``genome.preset_names()``) or a
mapping of genes (left-out genes take their defaults). Every gene not named is then fixed at the centre's
value, so only the named genes are searched; ``spread: k`` (a number > 1) also opens every numeric gene whose
default domain is searched to [c / k, c · k] around the centre's value c (integers widened outwards, clipped to
the gene's hard limits; a gene at 0 stays fixed)::

    centre: parity-paper
    spread: 2                         # D in [512, 2048], T in [37, 150], ...
    sync_select: {choices: [random, random-pairing]}

The centre must lie inside the resulting space; a named domain that excludes it is an error.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from genome.errors import GeneProblem, GenomeError
from genome.genes import GENE_BY_NAME, GENE_NAMES, GENES, ChoiceGene, FloatGene, Gene, Value
from genome.genome import Genome, constraint_problems, max_pairs
from genome.presets import PRESETS

Domain = tuple[Any, ...]


class RepairError(ValueError):
    """No valid genome could be made from the given genes inside this space."""


@dataclass(frozen=True)
class GenomeSpace:
    """One domain per gene: ``(low, high)`` for numbers, a tuple of choices for categorical genes."""

    domains: Mapping[str, Domain]

    @classmethod
    def default(cls) -> GenomeSpace:
        return cls({gene.name: tuple(gene.domain) for gene in GENES})

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None, *, source: str = "genome_space") -> GenomeSpace:
        """Build from a YAML mapping (see the module docs, ``centre`` and ``spread`` included); every bad entry is
        reported at once, naming ``source.gene``."""
        if config is None:
            config = {}
        if not isinstance(config, Mapping):
            raise GenomeError([GeneProblem(source, config, "a mapping of gene name to domain")])
        config = dict(config)
        centre = _centre(config.pop("centre", None), config.pop("spread", None), source)
        domains = {gene.name: tuple(gene.domain) for gene in GENES} if centre is None else centre[1]
        problems: list[GeneProblem] = []
        for name, spec in config.items():
            field = f"{source}.{name}"
            gene = GENE_BY_NAME.get(name)
            if gene is None:
                problems.append(GeneProblem(field, spec, f"a known gene: one of {list(GENE_NAMES)}, or centre / "
                                            "spread"))
                continue
            try:
                domains[name] = _parse_domain(gene, spec)
            except (TypeError, ValueError) as exc:
                problems.append(GeneProblem(field, spec, str(exc)))
        if centre is not None:
            genes = centre[0].to_dict()
            problems += [GeneProblem(f"{source}.{name}", spec, f"a domain that contains the centre's {name} = "
                                     f"{genes[name]!r}") for name, spec in config.items()
                         if name in domains and not GENE_BY_NAME[name].contains(genes[name], domains[name])]
        if problems:
            raise GenomeError(problems)
        space = cls(domains)
        try:
            space.sample(_probe_rng())
        except RepairError as exc:
            raise GenomeError([GeneProblem(source, dict(config), f"a space that holds a valid genome ({exc})")]
                              ) from None
        return space

    def to_config(self) -> dict[str, Any]:
        """The YAML form of every domain (round-trips through :meth:`from_config`)."""
        out: dict[str, Any] = {}
        for gene in GENES:
            domain = self.domains[gene.name]
            if isinstance(gene, ChoiceGene):
                out[gene.name] = {"choices": list(domain)}
            else:
                out[gene.name] = {"min": domain[0], "max": domain[1]}
        return out

    # -- queries -------------------------------------------------------------------------------------------
    @property
    def evolvable(self) -> tuple[str, ...]:
        """Genes whose domain holds more than one value (the searched dimensions)."""
        out = []
        for gene in GENES:
            domain = self.domains[gene.name]
            if len(domain) > 1 and (isinstance(gene, ChoiceGene) or domain[0] != domain[1]):
                out.append(gene.name)
        return tuple(out)

    def fixed_value(self, name: str) -> Value:
        domain = self.domains[name]
        return domain[0]

    def check(self, genome: Genome, *, source: str | None = None) -> None:
        """Raise one :class:`GenomeError` naming every gene outside this space's domains."""
        problems = [
            GeneProblem(name, value, GENE_BY_NAME[name].allowed(self.domains[name]))
            for name, value in genome.to_dict().items()
            if not GENE_BY_NAME[name].contains(value, self.domains[name])
        ]
        if problems:
            raise GenomeError(problems, source=source)

    def contains(self, genome: Genome) -> bool:
        try:
            self.check(genome)
        except GenomeError:
            return False
        return True

    # -- construction --------------------------------------------------------------------------------------
    def sample(self, rng: Any, *, attempts: int = 200) -> Genome:
        """A uniformly drawn genome (each gene uniform on its scale), repaired to satisfy the constraints."""
        for _ in range(attempts):
            genes = {gene.name: gene.from_unit(rng.random(), self.domains[gene.name]) for gene in GENES}
            try:
                return self.repair(genes)
            except RepairError:
                continue
        raise RepairError(f"no valid genome found in {attempts} random draws: the domains are too tight")

    def repair(self, genes: Mapping[str, Any]) -> Genome:
        """Deterministically move ``genes`` into this space and onto the constraints, or raise RepairError.

        Values are clipped into their domains; then heads is made to divide d_input (keeping d_input where
        possible), synchronisation sizes are scaled down to what d_model allows, n_self_pairs is reduced
        below the synchronisation sizes, and decay_init_max is clipped to decay_clamp. A genome already in
        the space is returned unchanged.
        """
        g = {name: _clip(GENE_BY_NAME[name], genes[name], self.domains[name]) for name in GENE_NAMES}
        _repair_heads(g, self.domains)
        _repair_sync(g, self.domains)
        if g["decay_init"] != "zeros" and g["decay_init_max"] > g["decay_clamp"]:
            g["decay_init_max"] = max(g["decay_clamp"], self.domains["decay_init_max"][0])
        problems = constraint_problems(g)
        if problems:
            raise RepairError("; ".join(str(p) for p in problems))
        genome = Genome(**g)
        self.check(genome)
        return genome


def _centre(centre: Any, spread: Any, source: str) -> tuple[Genome, dict[str, Domain]] | None:
    """The centre genome and the domains around it (each gene fixed, or spread), or None without a centre."""
    if centre is None:
        if spread is not None:
            raise GenomeError([GeneProblem(f"{source}.spread", spread, "spread only together with a centre")])
        return None
    allowed = f"a preset name (one of {list(PRESETS)}) or a mapping of genes"
    if isinstance(centre, str):
        if centre not in PRESETS:
            raise GenomeError([GeneProblem(f"{source}.centre", centre, allowed)])
        genome = Genome(**PRESETS[centre].genes)
    elif isinstance(centre, Mapping):
        try:
            genome = Genome.from_dict(dict(centre))
        except GenomeError as exc:
            raise GenomeError([GeneProblem(f"{source}.centre.{p.gene}", p.value, p.allowed)
                               for p in exc.problems]) from None
    else:
        raise GenomeError([GeneProblem(f"{source}.centre", centre, allowed)])
    if spread is not None and (isinstance(spread, bool) or not isinstance(spread, (int, float))
                               or not math.isfinite(spread) or spread <= 1):
        raise GenomeError([GeneProblem(f"{source}.spread", spread, "a number > 1")])
    genes = genome.to_dict()
    domains: dict[str, Domain] = {}
    for gene in GENES:
        value = genes[gene.name]
        searched = len(set(gene.domain)) > 1
        if spread is None or isinstance(gene, ChoiceGene) or not searched or value == 0:
            domains[gene.name] = (value,) if isinstance(gene, ChoiceGene) else (value, value)
        elif isinstance(gene, FloatGene):
            low, high = gene.coerce(value / spread), gene.coerce(value * spread)
            domains[gene.name] = (max(gene.low, low), min(gene.high, high))
        else:
            domains[gene.name] = (max(gene.low, math.floor(value / spread)), min(gene.high, math.ceil(value * spread)))
    return genome, domains


def _probe_rng() -> Any:
    import numpy as np

    return np.random.default_rng(0)


def _parse_domain(gene: Gene, spec: Any) -> Domain:
    if isinstance(gene, ChoiceGene):
        values = spec.get("choices") if isinstance(spec, Mapping) else spec if isinstance(spec, list) else [spec]
        if isinstance(spec, Mapping) and set(spec) - {"choices"}:
            raise ValueError(f"{{choices: [...]}} with choices from {list(gene.choices)}")
        if not values:
            raise ValueError(f"a non-empty list of choices from {list(gene.choices)}")
        out = []
        for value in values:
            value = gene.coerce(value)
            if value not in gene.choices:
                raise ValueError(f"choices from {list(gene.choices)}")
            if value not in out:
                out.append(value)
        return tuple(out)
    if isinstance(spec, Mapping):
        if set(spec) != {"min", "max"}:
            raise ValueError(f"{{min: .., max: ..}} with {gene.allowed()}")
        low, high = gene.coerce(spec["min"]), gene.coerce(spec["max"])
    else:
        low = high = gene.coerce(spec)
    if not (gene.low <= low <= high <= gene.high):
        raise ValueError(f"min <= max, both {gene.allowed()}")
    if gene.scale == "log" and isinstance(low, float) and low <= 0:
        raise ValueError(f"a positive min on this log-scale gene, {gene.allowed()}")
    return (low, high)


def _clip(gene: Gene, value: Any, domain: Domain) -> Value:
    value = gene.coerce(value)
    if isinstance(gene, ChoiceGene):
        if value in domain:
            return value
        if value in gene.choices and all(isinstance(c, int) and not isinstance(c, bool) for c in domain):
            return min(domain, key=lambda c: (abs(c - value), c))  # nearest integer choice
        return domain[0]
    return min(max(value, domain[0]), domain[1])


def _repair_heads(g: dict[str, Any], domains: Mapping[str, Domain]) -> None:
    if g["d_input"] % g["heads"] == 0:
        return
    divisors = [h for h in domains["heads"] if g["d_input"] % h == 0]
    if divisors:
        below = [h for h in divisors if h <= g["heads"]]
        g["heads"] = max(below) if below else min(divisors)
        return
    low, high = domains["d_input"]
    h = g["heads"]
    candidates = [m for m in (g["d_input"] // h * h, (g["d_input"] // h + 1) * h) if low <= m <= high]
    if candidates:
        g["d_input"] = min(candidates, key=lambda m: abs(m - g["d_input"]))


def _repair_sync(g: dict[str, Any], domains: Mapping[str, Domain]) -> None:
    d, select = g["d_model"], g["sync_select"]
    lo_out, lo_act = domains["n_sync_out"][0], domains["n_sync_action"][0]
    if select == "first-last":
        total = g["n_sync_out"] + g["n_sync_action"]
        if total > d:
            out = max(lo_out, g["n_sync_out"] * d // total)
            g["n_sync_out"] = out
            g["n_sync_action"] = max(lo_act, min(g["n_sync_action"], d - out))
    elif select == "random":
        g["n_sync_out"] = max(lo_out, min(g["n_sync_out"], d))
        g["n_sync_action"] = max(lo_act, min(g["n_sync_action"], d))
    else:
        bound = min(g["n_sync_out"], g["n_sync_action"]) if g["n_sync_action"] > 0 else g["n_sync_out"]
        g["n_self_pairs"] = max(domains["n_self_pairs"][0], min(g["n_self_pairs"], bound - 1, d))
        cap = max_pairs(select, d, g["n_self_pairs"])
        g["n_sync_out"] = max(lo_out, min(g["n_sync_out"], cap))
        g["n_sync_action"] = max(lo_act, min(g["n_sync_action"], cap))
