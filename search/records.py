"""Plain data passed between strategies, the campaign loop, the journal and MLflow, and how its numbers look
(:func:`fmt`, wherever ``search`` shows them: live view, status, lineage, model cards)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ctm.result import EvalResult
from genome import SCHEMA_VERSION, Genome
from genome.io import upgrade_genes


@dataclass(frozen=True, kw_only=True)
class Proposal:
    """A genome a strategy wants evaluated, with its ancestry.

    ``parents`` are parent genome hashes (two for crossover, none for a random sample); ``operator`` names
    how it was made (``sample``, ``mutation``, ``crossover``, ``tpe``, ``nsga2``, ``cmaes``, ``ga``, ...).
    """

    genome: Genome
    parents: tuple[str, ...] = ()
    operator: str = "sample"

    @property
    def genome_hash(self) -> str:
        return self.genome.hash

    def to_dict(self) -> dict[str, Any]:
        return {"genes": self.genome.to_dict(), "schema": SCHEMA_VERSION, "parents": list(self.parents),
                "operator": self.operator}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Proposal:
        """A proposal as :meth:`to_dict` stored it; genes written by an older genome schema (journals before
        ``schema`` was recorded are schema 1) are upgraded, so old campaigns resume with the same genomes."""
        genes = data["genes"]
        version = data.get("schema", 1)
        if version != SCHEMA_VERSION:
            genes = upgrade_genes(dict(genes), int(version), source="journal")
        return cls(genome=Genome.from_dict(genes), parents=tuple(data["parents"]), operator=data["operator"])


@dataclass(kw_only=True)
class EvaluationRecord:
    """One finished evaluation as the journal stores it and MLflow archives it.

    ``birth`` is the order in which the campaign asked for the proposal (0, 1, 2, ...). ``rung`` is the
    fidelity rung the evaluation reached (its training budget, see :mod:`search.campaign.rungs`) and
    ``repeat`` its seed index (0: the genome's campaign seed; 1, 2, ...: fresh seeds of a re-evaluation).
    """

    campaign: str
    birth: int
    proposal: Proposal
    result: EvalResult
    finished_at: float
    extra: dict[str, Any] = field(default_factory=dict)
    rung: int = 0
    repeat: int = 0

    @property
    def genome(self) -> Genome:
        return self.proposal.genome

    def to_dict(self) -> dict[str, Any]:
        data = {"campaign": self.campaign, "birth": self.birth, "proposal": self.proposal.to_dict(),
                "result": self.result.to_dict(), "finished_at": self.finished_at, "extra": self.extra}
        if self.rung or self.repeat:
            data.update(rung=self.rung, repeat=self.repeat)
        return data

    @property
    def cost(self) -> float:
        """Optimizer steps this evaluation trained (a continued one: only the steps after its start)."""
        metrics = self.result.metrics
        return max(0.0, float(metrics.get("train_steps") or 0.0) - float(metrics.get("start_step") or 0.0))

    def slim(self) -> EvaluationRecord:
        """This record without its loss curve, per-tick arrays and behaviour (what a long campaign keeps in
        memory; the journal has them all)."""
        r = self.result
        if not (r.train_loss or r.per_tick_accuracy or r.per_tick_certainty or r.behaviour):
            return self
        light = EvalResult(genome_hash=r.genome_hash, status=r.status, fitness=r.fitness, metrics=r.metrics,
                           failure=r.failure, seed=r.seed, attempts=r.attempts, worker=r.worker)
        return EvaluationRecord(campaign=self.campaign, birth=self.birth, proposal=self.proposal, result=light,
                                finished_at=self.finished_at, extra=self.extra, rung=self.rung, repeat=self.repeat)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EvaluationRecord:
        return cls(campaign=data["campaign"], birth=data["birth"], proposal=Proposal.from_dict(data["proposal"]),
                   result=EvalResult.from_dict(data["result"]), finished_at=data["finished_at"],
                   extra=dict(data.get("extra") or {}), rung=int(data.get("rung", 0)),
                   repeat=int(data.get("repeat", 0)))


# -- choosing the best ---------------------------------------------------------------------------------------
LOWER_IS_BETTER = frozenset({"ece", "exit_tick_mean", "param_count", "macs_per_forward", "wall_time_s",
                             "train_loss"})


def metric_of(record: EvaluationRecord, name: str) -> float | None:
    """``fitness``, a result metric, or a descriptor (``descriptor.NAME`` or ``NAME``) of a record."""
    if name == "fitness":
        return record.result.fitness
    if name in record.result.metrics:
        return record.result.metrics[name]
    descriptors = record.extra.get("descriptors") or {}
    key = name.removeprefix("descriptor.")
    return descriptors.get(key) if isinstance(descriptors, dict) else None


def reported_fitness(record: EvaluationRecord) -> float | None:
    """The genome's fitness as its campaign reported it right after ``record``: with fidelity rungs or repeats,
    the mean over the seeds of its highest rung (``extra["fitness_mean"]``), else the record's own fitness."""
    mean = record.extra.get("fitness_mean")
    return record.result.fitness if mean is None else float(mean)


def metric_names(records: Iterable[EvaluationRecord]) -> set[str]:
    """Every metric :func:`metric_of` can read from some record (for messages listing the choices)."""
    names = {"fitness"}
    for r in records:
        names |= set(r.result.metrics) | {f"descriptor.{d}" for d in (r.extra.get("descriptors") or {})}
    return names


def parse_by(by: str | None) -> tuple[str, bool]:
    """A ranking metric → (name, maximise). ``min:NAME`` / ``max:NAME`` override the default direction
    (metrics in :data:`LOWER_IS_BETTER` are minimised, everything else maximised)."""
    by = by or "fitness"
    if by.startswith(("min:", "max:")):
        return by[4:], by.startswith("max:")
    return by, by not in LOWER_IS_BETTER



@dataclass(frozen=True)
class NoiseModel:
    """Means over few seeds, read with their noise (empirical Bayes, normal–normal).

    A genome's true fitness is drawn from N(``center``, ``spread``) and each seed measures it with noise
    N(0, ``noise``) (variances). :meth:`fit` estimates the three from groups of measurements (one group per genome,
    its seeds): ``noise`` pooled within the groups of two or more seeds, ``center`` and ``spread`` from the group
    means (less the noise their seed counts leave in them). :meth:`posterior` is then what a mean of k seeds says
    about the true value: pulled towards the center the more, the fewer seeds stand behind it. With one seed
    each, the order of the genomes is that of their means; a lucky single seed falls behind a mean of several.
    """

    center: float
    spread: float
    noise: float

    @classmethod
    def fit(cls, groups: Iterable[Sequence[float]]) -> NoiseModel | None:
        """From each genome's measurements; ``None`` when no genome has two (the noise is then unknown)."""
        groups = [g for g in groups if len(g) > 0]
        dof, within = 0, 0.0
        for g in groups:
            if len(g) > 1:
                mean = sum(g) / len(g)
                dof += len(g) - 1
                within += sum((v - mean) ** 2 for v in g)
        if dof == 0 or len(groups) < 2:
            return None
        noise = max(within / dof, 1e-12)
        means = np.array([sum(g) / len(g) for g in groups])
        inverse_counts = float(np.mean([1.0 / len(g) for g in groups]))
        spread = float(np.var(means, ddof=1)) - noise * inverse_counts
        return cls(center=float(means.mean()), spread=max(spread, noise * 1e-3), noise=noise)

    def posterior(self, mean: float, seeds: int) -> tuple[float, float]:
        """Posterior mean and standard deviation of the true value behind a mean of ``seeds`` measurements."""
        precision = 1.0 / self.spread + seeds / self.noise
        return ((self.center / self.spread + seeds * mean / self.noise) / precision, math.sqrt(1.0 / precision))


RANK_QUANTUM = 2.0 ** -26  # beliefs closer than this (after the squash of rank_score) tie, and birth decides
_BIRTHS = 2 ** 22  # births beyond 4,194,303 tie with that one in rank_score


def rank_score(rung: int, belief: float, birth: int, *, maximise: bool = True) -> float:
    """:func:`rank`'s order as one number, higher = better: ``rung + q(belief) + t(birth)``.

    ``q`` squashes the belief (sign-preserving ``log1p``, then ``atan``) into [0, 1) in steps of
    :data:`RANK_QUANTUM` (reversed when minimising); ``t`` < one step, larger for an earlier birth. So a
    higher rung always wins, then the higher belief, then the earlier birth, exactly as :func:`rank` sorts
    (it sorts by this number); MLflow's runs table sorted by the ``rank_score`` metric shows the same order as
    ``ctmevo status``. Exact in float64 for rungs below 32.
    """
    s = math.copysign(math.log1p(abs(belief)), belief)
    squashed = 0.5 + (1.0 if maximise else -1.0) * math.atan(s) / math.pi
    q = math.floor(squashed / RANK_QUANTUM) * RANK_QUANTUM
    return int(rung) + min(q, 1.0 - RANK_QUANTUM) + (_BIRTHS - 1 - min(max(int(birth), 0), _BIRTHS - 1)) * 2.0 ** -48


def noise_models(entries: Sequence[tuple[int, Sequence[float], int]], *,
                 maximise: bool = True) -> dict[int, NoiseModel | None]:
    """Per rung of ``entries`` (see :func:`beliefs`), the :class:`NoiseModel` fitted on its genomes' seeds (in the
    maximised sign), or None while no genome there has two seeds."""
    sign = 1.0 if maximise else -1.0
    groups: dict[int, list[list[float]]] = {}
    for rung, values, _ in entries:
        groups.setdefault(rung, []).append([sign * v for v in values])
    return {rung: NoiseModel.fit(g) for rung, g in groups.items()}


def belief(values: Sequence[float], model: NoiseModel | None, *, maximise: bool = True) -> float:
    """The mean of a genome's seeds ``values`` read with their noise under ``model`` (the plain mean without one)."""
    mean = sum(values) / len(values)
    if model is None:
        return mean
    sign = 1.0 if maximise else -1.0
    return sign * model.posterior(sign * mean, len(values))[0]


def beliefs(entries: Sequence[tuple[int, Sequence[float], int]], *, maximise: bool = True) -> list[float]:
    """Per genome (its highest rung, the values of its seeds there, its birth): the mean over its seeds read with
    their noise (:class:`NoiseModel`, fitted on the genomes at the same rung; the plain mean while no genome there
    has two seeds)."""
    models = noise_models(entries, maximise=maximise)
    return [belief(values, models[rung], maximise=maximise) for rung, values, _ in entries]


def rank(entries: Sequence[tuple[int, Sequence[float], int]], *, maximise: bool = True) -> list[tuple[int, float]]:
    """THE ranking of genomes, used by the campaign's best, ``ctmevo status``, ``export --best``, MLflow's
    ``rank_score`` and CTM-Bench.

    ``entries``: per genome (its highest rung, the values of its seeds there, its birth). Best first: a higher
    rung before a lower one (like is compared with like), then the higher *belief* (:func:`beliefs`), then the
    earlier birth, as one number (:func:`rank_score`). Returns (index into ``entries``, belief), best first.
    """
    belief = beliefs(entries, maximise=maximise)
    score = [rank_score(e[0], b, e[2], maximise=maximise) for e, b in zip(entries, belief, strict=True)]
    return [(i, belief[i]) for i in sorted(range(len(entries)), key=lambda i: -score[i])]


@dataclass(frozen=True)
class Standing:
    """Where one genome stands: its highest fidelity rung, the mean of ``by`` over its seeds there, and the
    record that represents it (its first seed at that rung)."""

    record: EvaluationRecord
    rung: int
    value: float
    seeds: int
    belief: float  # the mean read with its noise (see rank)
    score: float  # rank_score: what the order follows (MLflow's ``rank_score`` metric)


def standings(records: Iterable[EvaluationRecord], by: str | None = None) -> list[Standing]:
    """One standing per genome with the metric ``by`` (default fitness), best first by :func:`rank`. Failed
    evaluations do not count; ``value`` is the plain mean over the seeds of the genome's highest rung."""
    metric, maximise = parse_by(by)
    top: dict[str, list[tuple[EvaluationRecord, float]]] = {}
    for r in records:
        value = metric_of(r, metric) if r.result.ok else None
        if value is None:
            continue
        mine = top.get(r.genome.hash)
        if mine is None or r.rung > mine[0][0].rung:
            top[r.genome.hash] = [(r, value)]
        elif r.rung == mine[0][0].rung:
            mine.append((r, value))
    groups = list(top.values())
    firsts = [min(entries, key=lambda rv: rv[0].repeat)[0] for entries in groups]
    order = rank([(first.rung, [v for _, v in entries], first.birth) for first, entries in zip(firsts, groups,
                                                                                               strict=True)],
                 maximise=maximise)
    return [Standing(firsts[i], firsts[i].rung, sum(v for _, v in groups[i]) / len(groups[i]), len(groups[i]),
                     belief, rank_score(firsts[i].rung, belief, firsts[i].birth, maximise=maximise))
            for i, belief in order]


def ranked(records: Iterable[EvaluationRecord], by: str | None = None) -> list[EvaluationRecord]:
    """One record per genome, best first by :func:`standings`."""
    return [s.record for s in standings(records, by)]


def best_record(records: Iterable[EvaluationRecord], by: str | None = None) -> EvaluationRecord | None:
    """The record of the best genome by :func:`standings`, or ``None`` when none has the metric ``by``."""
    best = standings(records, by)
    return best[0].record if best else None


def inherited_lines(records: Iterable[EvaluationRecord]) -> dict[str, str]:
    """Genome hash → what its start inherited (``inherited: 0.83 of parameters from <hash>``), from the first
    record that says so: a promotion continues the inherited state, and its own record says nothing."""
    out: dict[str, str] = {}
    for r in records:
        if r.extra.get("inherited") and r.genome.hash not in out:
            out[r.genome.hash] = str(r.extra["inherited"])
    return out


def fmt(value: Any, digits: int = 4) -> str:
    """A short readable form: ``—`` for a missing value, 4 significant digits for floats, thousands separators
    for large whole numbers (``12,800``), everything else as ``str``."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 1e4 and value.is_integer() else f"{value:.{digits}g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)
