"""Declared strategy settings: type, range, default and meaning, validated with errors naming the YAML field."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from genome import PRESETS, Genome, GenomeError, GenomeSpace, SchemaError, load
from search.errors import FieldError


class StrategyConfigError(FieldError):
    """A bad ``strategy`` section: unknown name, unknown setting, a value of the wrong type or out of range."""


@dataclass(frozen=True, kw_only=True)
class Setting:
    """One setting a strategy accepts.

    ``kind`` is ``int``, ``float``, ``bool``, ``str`` or ``list`` (of ``item`` values); ``low``/``high`` bound
    numbers (``low_open``/``high_open`` make the bound strict); ``choices`` restricts strings and list items;
    ``nullable`` allows ``null`` (meaning "use the documented automatic value").
    """

    kind: type
    default: Any
    doc: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple[Any, ...] | None = None
    nullable: bool = False
    item: type = str

    def allowed(self) -> str:
        if self.kind is list:
            what = f"a list of {self.item.__name__}" + (f" from {list(self.choices)}" if self.choices else "")
        elif self.choices is not None:
            what = f"one of {list(self.choices)}"
        elif self.kind in (int, float):
            noun = "an integer" if self.kind is int else "a number"
            lo = "" if self.low is None else f"{'>' if self.low_open else '>='} {self.low:g}"
            hi = "" if self.high is None else f"{'<' if self.high_open else '<='} {self.high:g}"
            what = f"{noun} {lo}{' and ' if lo and hi else ''}{hi}".rstrip()
        else:
            what = f"a {self.kind.__name__}"
        return what + (" or null" if self.nullable else "")

    def check(self, value: Any, field: str) -> Any:
        """The validated (and normalised: int → float where a float is expected) value, or raise."""
        if value is None:
            if self.nullable:
                return None
            raise StrategyConfigError(field, value, self.allowed())
        if self.kind is list:
            if not isinstance(value, (list, tuple)) or not value:
                raise StrategyConfigError(field, value, self.allowed())
            for v in value:
                if not isinstance(v, self.item) or (self.choices is not None and v not in self.choices):
                    raise StrategyConfigError(field, value, self.allowed())
            return list(value)
        if self.kind is bool:
            if not isinstance(value, bool):
                raise StrategyConfigError(field, value, self.allowed())
            return value
        if self.kind is str:
            if not isinstance(value, str) or (self.choices is not None and value not in self.choices):
                raise StrategyConfigError(field, value, self.allowed())
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise StrategyConfigError(field, value, self.allowed())
        if self.kind is int:
            if isinstance(value, float) and not value.is_integer():
                raise StrategyConfigError(field, value, self.allowed())
            value = int(value)
        else:
            value = float(value)
            if not math.isfinite(value):
                raise StrategyConfigError(field, value, self.allowed())
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            raise StrategyConfigError(field, value, self.allowed())
        if self.high is not None and (value > self.high or (self.high_open and value == self.high)):
            raise StrategyConfigError(field, value, self.allowed())
        return value


def validate_settings(schema: Mapping[str, Setting], settings: Mapping[str, Any] | None, field: str
                      ) -> dict[str, Any]:
    """Every setting of ``schema`` with its validated value (defaults filled in); ``field`` prefixes names."""
    settings = {} if settings is None else settings
    if not isinstance(settings, Mapping):
        raise StrategyConfigError(field, settings, "a mapping of setting name to value")
    unknown = sorted(k for k in settings if k not in schema)
    if unknown:
        raise StrategyConfigError(f"{field}.{unknown[0]}", settings[unknown[0]],
                                  f"a known setting: one of {sorted(schema)}")
    return {name: spec.check(settings[name], f"{field}.{name}") if name in settings else spec.default
            for name, spec in schema.items()}


# Settings shared by the strategies that breed genomes with genome.operators.
MUTATION_SETTINGS: dict[str, Setting] = {
    "mutation_rate": Setting(kind=float, default=None, nullable=True, low=0.0, high=1.0, low_open=True,
                             doc="probability that each searched gene mutates (null: 1 / number of genes)"),
    "mutation_sigma": Setting(kind=float, default=0.12, low=0.0, high=1.0, low_open=True,
                              doc="Gaussian step of a numeric gene, as a fraction of its domain on its scale"),
    "crossover_rate": Setting(kind=float, default=0.2, low=0.0, high=1.0,
                              doc="probability that a child is a uniform crossover of two parents "
                              "(genetic variation)"),
    "variation": Setting(kind=str, default="iso_line", choices=("iso_line", "genetic"),
                         doc="iso_line: Gaussian plus directional variation of codec vectors (Vassiliades & "
                         "Mouret 2018); genetic: genome.operators mutation and uniform crossover"),
    "iso_sigma": Setting(kind=float, default=0.1, low=0.0, high=1.0, doc="σ_iso of iso_line"),
    "line_sigma": Setting(kind=float, default=0.5, low=0.0, high=10.0, doc="σ_line of iso_line"),
}
# The settings that act only under one ``variation``: giving one while the other variation is chosen is refused.
VARIATION_ONLY: dict[str, tuple[str, ...]] = {"genetic": ("mutation_rate", "mutation_sigma", "crossover_rate"),
                                              "iso_line": ("iso_sigma", "line_sigma")}


def check_at_most(settings: Mapping[str, Any], field: str, name: str, limit: str) -> None:
    """``settings[name] <= settings[limit]`` (a sample, tournament or subset drawn from a population), or a
    :class:`StrategyConfigError` naming ``{field}.{name}``."""
    if settings[name] > settings[limit]:
        raise StrategyConfigError(f"{field}.{name}", settings[name], f"at most {limit} = {settings[limit]}")


def check_variation(given: Mapping[str, Any], variation: str, field: str) -> None:
    """Refuse a setting ``given`` explicitly that the chosen ``variation`` would ignore."""
    for kind, names in VARIATION_ONLY.items():
        for name in names:
            if kind != variation and name in given:
                raise StrategyConfigError(f"{field}.{name}", given[name], f"left out: {name} acts only with "
                                          f"variation: {kind}, and this strategy uses variation: {variation} "
                                          f"(set variation: {kind} to use it)")


COMMON_SETTINGS: dict[str, Setting] = {
    "seed_genomes": Setting(kind=list, item=str, default=None, nullable=True,
                            doc="genomes proposed first, before the strategy's own: preset names (ctmevo presets, "
                            "e.g. parity-paper) or genome files; each must lie inside genome_space"),
    "qd_offset": Setting(kind=float, default=0.0, doc="fixed offset subtracted from fitness in the QD-score "
                         "(choose it at or below the lowest fitness you expect)"),
    "max_resample": Setting(kind=int, default=100, low=1, high=100_000,
                            doc="attempts at finding a genome not yet evaluated or in flight before falling "
                            "back to random samples"),
}


def resolve_seed_genomes(entries: Sequence[str], space: GenomeSpace, field: str) -> list[Genome]:
    """``seed_genomes`` entries → genomes: a preset name, else a genome file; each must lie inside ``space``."""
    genomes = []
    for i, entry in enumerate(entries):
        where = f"{field}.seed_genomes[{i}]"
        try:
            genome = Genome.preset(entry) if entry in PRESETS else load(entry)
        except FileNotFoundError:
            raise StrategyConfigError(where, entry, f"a preset name (one of {sorted(PRESETS)}) or a genome "
                                      "file that exists") from None
        except (GenomeError, SchemaError, ValueError) as exc:
            raise StrategyConfigError(where, entry, f"a valid genome file ({exc})") from None
        try:
            space.check(genome, source=entry)
        except GenomeError as exc:
            raise StrategyConfigError(where, entry, f"a genome inside genome_space; this one is not: {exc}"
                                      ) from None
        genomes.append(genome)
    return genomes
