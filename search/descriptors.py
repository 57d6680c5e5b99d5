"""Behaviour descriptors: named functions of (genome, result) → float, with a declared range for binning.

A campaign's YAML chooses them in a ``descriptors`` list; each entry is a name or a mapping::

    descriptors:
      - ticks                                   # a built-in, default range and bins
      - {name: param_count, bins: 8, range: [3, 7]}
      - {name: d_model, bins: 6}                # any gene by name
      - {name: mypkg.desc:depth_ratio, range: [0, 1], bins: 10}   # user-defined module:function

Built-ins (``BUILTINS``):

- ``ticks`` (T) and ``memory_length`` (M): the genes themselves;
- ``param_count``: log10 of ``result.metrics["param_count"]`` (parameters of the built model);
- ``macs_per_forward``: log10 of ``result.metrics["macs_per_forward"]``;
- ``exit_tick``: relative exit tick, ``metrics["exit_tick_mean"] / genome.ticks`` in [0, 1] (adaptive
  compute: the mean tick at which certainty first passes the exit threshold, as a fraction of T);
- ``exit_tick_mean``: the absolute mean exit tick;
- ``ece``: expected calibration error, ``metrics["ece"]`` in [0, 1].

Any other gene name is a gene descriptor: its value for linear genes, ``log2(value)`` for log-scale genes
(``log2(1 + value)`` when the domain starts at 0), the index of the value in the domain for categorical genes
(range ``[-0.5, n - 0.5]``, one bin per choice). Gene descriptors need only the genome, so a failed evaluation
still has a region. User-defined descriptors ``module:function`` are called as ``function(genome, result)``
and must be given a ``range``.

:func:`make_descriptors` checks everything at start-up (names, imports, ranges, bins) and raises a
:class:`DescriptorError` naming the YAML field, the value and what is allowed.
"""

from __future__ import annotations

import importlib
import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ctm.result import EvalResult
from genome import GENE_BY_NAME, GENE_NAMES, Genome, GenomeSpace
from genome.genes import ChoiceGene, IntGene
from search.errors import FieldError

DescriptorFn = Callable[[Genome, EvalResult], float]
DEFAULT_BINS = 10


class DescriptorError(FieldError):
    """A bad ``descriptors`` entry (unknown name, bad range or bins, a module:function that won't import)."""


class DescriptorValueError(ValueError):
    """A descriptor cannot be computed for one evaluation (e.g. a metric the result lacks)."""


@dataclass(frozen=True, kw_only=True)
class Descriptor:
    """One behaviour dimension: ``fn(genome, result)`` binned into ``bins`` equal cells over ``[low, high]``.

    ``genome_only`` descriptors ignore the result (gene descriptors), so failed evaluations can be placed.
    ``limits`` is the range of values the descriptor can ever take (``None`` = unbounded on that side).
    """

    name: str
    label: str
    low: float
    high: float
    bins: int
    fn: DescriptorFn
    genome_only: bool = False
    distinct: int | None = None  # how many distinct values it can take in [low, high] (discrete descriptors)

    @property
    def range(self) -> tuple[float, float]:
        return (self.low, self.high)

    def __call__(self, genome: Genome, result: EvalResult | None) -> float:
        if result is None and not self.genome_only:
            raise DescriptorValueError(f"descriptor {self.name!r} needs an evaluation result")
        try:
            value = self.fn(genome, result)  # type: ignore[arg-type]
        except DescriptorValueError:
            raise
        except Exception as exc:  # a user function failing on one result must not stop a campaign
            raise DescriptorValueError(f"descriptor {self.name!r} failed on genome {genome.hash}: "
                                       f"{type(exc).__name__}: {exc}") from exc
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise DescriptorValueError(f"descriptor {self.name!r} returned {value!r}, not a number") from None
        if not math.isfinite(value):
            raise DescriptorValueError(f"descriptor {self.name!r} returned {value!r}, not a finite number")
        return value

    def normalise(self, value: float) -> float:
        """Position of ``value`` in ``[low, high]`` as a number in [0, 1] (clipped)."""
        return min(max((value - self.low) / (self.high - self.low), 0.0), 1.0)

    def to_config(self) -> dict[str, Any]:
        return {"name": self.name, "bins": self.bins, "range": [self.low, self.high]}


@dataclass(frozen=True)
class _Builtin:
    fn: DescriptorFn
    label: str
    default: tuple[float, float]
    limits: tuple[float | None, float | None]


def _metric(result: EvalResult, key: str, name: str) -> float:
    value = result.metrics.get(key)
    if value is None:
        raise DescriptorValueError(f"descriptor {name!r} needs result.metrics[{key!r}], which this result "
                                   f"lacks (it has {sorted(result.metrics)})")
    return float(value)


def _log10_metric(key: str, name: str) -> DescriptorFn:
    def fn(genome: Genome, result: EvalResult) -> float:
        value = _metric(result, key, name)
        if value <= 0:
            raise DescriptorValueError(f"descriptor {name!r}: metrics[{key!r}] = {value!r} must be > 0")
        return math.log10(value)
    return fn


def _relative_exit(genome: Genome, result: EvalResult) -> float:
    return min(max(_metric(result, "exit_tick_mean", "exit_tick") / genome.ticks, 0.0), 1.0)


BUILTINS: dict[str, _Builtin] = {
    "param_count": _Builtin(_log10_metric("param_count", "param_count"), "log10 parameters", (3.0, 8.0),
                            (0.0, None)),
    "macs_per_forward": _Builtin(_log10_metric("macs_per_forward", "macs_per_forward"), "log10 MACs / forward",
                                 (4.0, 11.0), (0.0, None)),
    "exit_tick": _Builtin(_relative_exit, "relative exit tick", (0.0, 1.0), (0.0, 1.0)),
    "exit_tick_mean": _Builtin(lambda g, r: _metric(r, "exit_tick_mean", "exit_tick_mean"), "mean exit tick",
                               (0.0, 100.0), (0.0, None)),  # default range: [0, largest ticks of the space]
    "ece": _Builtin(lambda g, r: _metric(r, "ece", "ece"), "calibration error (ECE)", (0.0, 1.0), (0.0, 1.0)),
}
DESCRIPTOR_NAMES: tuple[str, ...] = (*BUILTINS, *GENE_NAMES)
_ENTRY_KEYS = ("name", "bins", "range", "label")


def _gene_descriptor(name: str, space: GenomeSpace) -> tuple[DescriptorFn, str, tuple[float, float],
                                                             tuple[float, float], int | None, int]:
    """(fn, label, default range, limits, distinct values, default bins) of a gene descriptor."""
    gene = GENE_BY_NAME[name]
    domain = space.domains[name]
    if isinstance(gene, ChoiceGene):
        n = len(domain)

        def index(genome: Genome, result: EvalResult | None) -> float:
            value = getattr(genome, name)
            return float(domain.index(value)) if value in domain else float(gene.choices.index(value))

        span = (-0.5, n - 0.5)
        return index, f"{name} ({' / '.join(map(str, domain))})", span, span, n, n
    lo, hi = domain
    if gene.scale == "log":
        shift = 1 if lo < 1 else 0
        label = f"log2({'1 + ' if shift else ''}{name})"

        def log_value(genome: Genome, result: EvalResult | None) -> float:
            return math.log2(getattr(genome, name) + shift)

        rng = (math.log2(lo + shift), math.log2(hi + shift))
        limits = (math.log2(gene.low + shift), math.log2(gene.high + shift))
        distinct = hi - lo + 1 if isinstance(gene, IntGene) else None
        return log_value, label, rng, limits, distinct, min(DEFAULT_BINS, distinct or DEFAULT_BINS)
    distinct = hi - lo + 1 if isinstance(gene, IntGene) else None
    return (lambda g, r: float(getattr(g, name))), name, (float(lo), float(hi)), (float(gene.low),
            float(gene.high)), distinct, min(DEFAULT_BINS, distinct or DEFAULT_BINS)


def _import_fn(spec: str, field: str) -> DescriptorFn:
    module_name, _, attr = spec.partition(":")
    allowed = "an importable module:function taking (genome, result) and returning a float"
    if not module_name or not attr:
        raise DescriptorError(field, spec, allowed)
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # ImportError, or any error raised while importing the user's module
        raise DescriptorError(field, spec, f"{allowed} (importing {module_name!r} failed: "
                              f"{type(exc).__name__}: {exc})") from None
    fn = getattr(module, attr, None)
    if fn is None:
        raise DescriptorError(field, spec, f"{allowed} (module {module_name!r} has no attribute {attr!r})")
    if not callable(fn):
        raise DescriptorError(field, spec, f"{allowed} ({spec} is a {type(fn).__name__}, not callable)")
    return fn


def _parse_range(value: Any, field: str) -> tuple[float, float]:
    ok = isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 2 and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value)
    if not ok or not value[0] < value[1]:
        raise DescriptorError(field, value, "[low, high] with finite numbers, low < high")
    return (float(value[0]), float(value[1]))


def make_descriptor(entry: Any, *, field: str, space: GenomeSpace | None = None) -> Descriptor:
    """One descriptor from a YAML entry (a name, or a mapping with name, bins, range, label)."""
    space = space or GenomeSpace.default()
    if isinstance(entry, str):
        entry = {"name": entry}
    if not isinstance(entry, Mapping):
        raise DescriptorError(field, entry, "a descriptor name or a mapping {name, bins, range, label}")
    unknown = [k for k in entry if k not in _ENTRY_KEYS]
    if unknown:
        raise DescriptorError(f"{field}.{unknown[0]}", entry[unknown[0]], f"one of the keys {list(_ENTRY_KEYS)}")
    name = entry.get("name")
    if not isinstance(name, str) or not name:
        raise DescriptorError(f"{field}.name", name, f"one of {list(DESCRIPTOR_NAMES)} or module:function")
    distinct: int | None = None
    genome_only = False
    if ":" in name:
        fn = _import_fn(name, f"{field}.name")
        if "range" not in entry:
            raise DescriptorError(f"{field}.range", None, f"[low, high]: a user-defined descriptor ({name}) "
                                  "must declare its range")
        label, default, limits, bins = name.rpartition(":")[2], None, (None, None), DEFAULT_BINS
    elif name in BUILTINS:
        b = BUILTINS[name]
        fn, label, default, limits, bins = b.fn, b.label, b.default, b.limits, DEFAULT_BINS
        if name == "exit_tick_mean":  # at most T ticks: the campaign's largest ticks
            default = (0.0, float(space.domains["ticks"][1]))
    elif name in GENE_BY_NAME:
        fn, label, default, limits, distinct, bins = _gene_descriptor(name, space)
        genome_only = True
    else:
        raise DescriptorError(f"{field}.name", name, f"one of {list(DESCRIPTOR_NAMES)} or a user-defined "
                              "module:function")
    rng = _parse_range(entry["range"], f"{field}.range") if "range" in entry else default
    assert rng is not None
    lo_lim, hi_lim = limits
    if (lo_lim is not None and rng[0] < lo_lim - 1e-9) or (hi_lim is not None and rng[1] > hi_lim + 1e-9):
        raise DescriptorError(f"{field}.range", list(rng), f"a range inside the values {name} can take, "
                              f"[{'-inf' if lo_lim is None else f'{lo_lim:g}'}, "
                              f"{'inf' if hi_lim is None else f'{hi_lim:g}'}]")
    if distinct is not None and "range" in entry and not isinstance(GENE_BY_NAME[name], ChoiceGene):
        distinct = None  # a custom range on an integer gene: the bin check below uses the span instead
    bins = entry.get("bins", bins)
    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 1:
        raise DescriptorError(f"{field}.bins", bins, "a positive integer")
    if distinct is not None and bins > distinct:
        raise DescriptorError(f"{field}.bins", bins, f"at most {distinct}: {name} takes only {distinct} "
                              f"distinct values in {list(rng)}, so more bins would leave cells that can "
                              "never be filled")
    label = entry.get("label", label)
    if not isinstance(label, str):
        raise DescriptorError(f"{field}.label", label, "a string")
    return Descriptor(name=name, label=label, low=rng[0], high=rng[1], bins=bins, fn=fn,
                      genome_only=genome_only, distinct=distinct)


def make_descriptors(config_list: Any, field: str = "descriptors", *, space: GenomeSpace | None = None
                     ) -> list[Descriptor]:
    """Validate and build the ``descriptors`` section of a campaign (``None`` or ``[]`` → no descriptors).

    ``space`` (the campaign's genome space) sets the default range of gene descriptors; without it the
    genes' default domains are used.
    """
    if config_list is None:
        return []
    if isinstance(config_list, (str, Mapping)) or not isinstance(config_list, Sequence):
        raise DescriptorError(field, config_list, "a list of descriptors (names or {name, bins, range})")
    out: list[Descriptor] = []
    for i, entry in enumerate(config_list):
        descriptor = make_descriptor(entry, field=f"{field}[{i}]", space=space)
        if any(d.name == descriptor.name for d in out):
            raise DescriptorError(f"{field}[{i}].name", descriptor.name, "a descriptor not already listed")
        out.append(descriptor)
    return out


def describe(descriptors: Sequence[Descriptor], genome: Genome, result: EvalResult | None) -> list[float]:
    """The descriptor vector of one evaluation (raises :class:`DescriptorValueError` if one can't be computed)."""
    return [d(genome, result) for d in descriptors]


def describe_result(descriptors: Sequence[Descriptor], genome: Genome, result: EvalResult
                    ) -> tuple[list[float] | None, str | None]:
    """The one rule every consumer (journal, archive, MLflow, export) uses for an evaluation's descriptors.

    All descriptors or none: ``(values, None)``, or ``(None, reason)`` when one cannot be computed. A failed
    evaluation (or an "ok" one without a finite fitness) is described only when every descriptor needs the
    genome alone (gene descriptors), so failures can still be placed in a region of the archive.
    """
    if not descriptors:
        return None, None
    fitness = result.fitness
    usable = result.ok and isinstance(fitness, numbers.Real) and not isinstance(fitness, bool) and math.isfinite(
        fitness)
    try:
        return describe(descriptors, genome, result if usable else None), None
    except DescriptorValueError as exc:
        return None, str(exc)
