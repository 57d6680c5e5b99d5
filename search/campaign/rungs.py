"""Fidelity rungs and repeated seeds: which evaluation to run next when a worker is free (asynchronous ASHA).

An evaluation job is a genome at a *rung* (a training budget, cumulative: rungs ``[100, 300, 900]`` train 100
steps, then 200 more, then 600 more, each continuing from the genome's own checkpoint: weights, optimizer, data
stream) and a *repeat* (0 for the campaign's seed of that genome; 1, 2, ... for fresh seeds). Job ids are
``HASH`` (rung 0, repeat 0), ``HASH@R`` (rung R) and ``HASH@R#K`` (repeat K at rung R).

When a worker is free the loop asks :meth:`RungScheduler.next_job` first, then the strategy for a new genome:

1. a **repeat** when re-evaluation is on and repeats would still use at most ``share`` of the training steps
   asked so far (a repeat trains from scratch to its rung, so it costs that rung's steps): of the genomes at
   the top rung with fewer than ``seeds`` seeds, the one with the highest optimistic value (posterior mean +
   one sd under :class:`search.records.NoiseModel`, once some genome has two seeds; before that the best
   mean), evaluated again with a fresh seed, trained from scratch to that rung. A lucky single seed is
   measured again before it is believed; a mean of several seeds needs no more;
2. a **promotion** (ASHA, Li et al. 2020): from the highest rung down, a genome that finished rung r and is in
   the top ``1/eta`` of all genomes that finished rung r (``floor(n_r / eta)`` of them), not yet promoted; it is
   promoted to rung r+1 with no generation barrier, checked whenever a worker is free. With ``fresh``
   promotions (``fidelity.promote: fresh``) the promoted genome trains from scratch to rung r+1 with a fresh
   seed (:func:`job_seed`) instead of continuing its checkpoint: it costs the whole rung, and the value that
   decides at rung r+1 is not the same training run (the same lucky seed) that won at rung r.

3. a **cell promotion** (``fidelity.cell_share`` > 0, after 1. and 2. found nothing): the archive elite of a
   cell with nothing at the top rung yet goes up one rung, whatever its rank there, while cell promotions use
   at most ``cell_share`` of the training steps asked so far (the journal marks them, so a resumed campaign
   counts them again). ASHA alone sends the top ``1/eta`` of every rung up, mostly from one region; this is
   what leaves the archive with a genome trained to the top rung in every cell it reached (quality diversity at
   full fidelity), at a price the campaign file sets.

Everything here is a pure function of the journal's results in order (:meth:`observe`), so a resumed campaign
rebuilds the same state. Promotions compare the first seed's fitness at a rung; what is best is
:func:`search.records.rank` (the mean over the seeds of the highest rung, read with its noise).
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ctm.result import increasing_steps
from search.records import NoiseModel, rank

__all__ = ["Aggregate", "JobKey", "RungScheduler", "job_seed", "repeat_seed"]


@dataclass(frozen=True, order=True)
class JobKey:
    """One evaluation job: a genome at a rung, with a repeat (seed) index."""

    genome_hash: str
    rung: int = 0
    repeat: int = 0

    @property
    def promotion(self) -> bool:
        """A job of the genome's own seed at a rung above the first: it was promoted from the rung below."""
        return self.rung > 0 and self.repeat == 0

    @property
    def id(self) -> str:
        if self.repeat:
            return f"{self.genome_hash}@{self.rung}#{self.repeat}"
        return f"{self.genome_hash}@{self.rung}" if self.rung else self.genome_hash

    @classmethod
    def parse(cls, job_id: str) -> JobKey:
        head, _, repeat = job_id.partition("#")
        genome_hash, _, rung = head.partition("@")
        return cls(genome_hash, int(rung or 0), int(repeat or 0))


def repeat_seed(campaign_seed: int, genome_hash: str, repeat: int) -> int:
    """The training seed of repeat ``repeat`` of a genome (repeat 0: the campaign's usual evaluation seed)."""
    text = f"{campaign_seed}:{genome_hash}" if repeat == 0 else f"{campaign_seed}:{genome_hash}:{repeat}"
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)


def job_seed(campaign_seed: int, key: JobKey, *, fresh: bool = False) -> int:
    """The training seed of a job: its repeat's seed; a ``fresh`` promotion (rung > 0, repeat 0) gets a seed of
    its own rung, so each rung of the genome is an independent training run."""
    if fresh and key.promotion:
        return repeat_seed(campaign_seed, f"{key.genome_hash}@{key.rung}", 0)
    return repeat_seed(campaign_seed, key.genome_hash, key.repeat)


@dataclass
class Aggregate:
    """What is known of one genome: its highest rung with a result, and the fitness values of its seeds there."""

    rung: int = -1
    values: dict[int, float | None] = field(default_factory=dict)  # repeat → fitness (None: failed)

    @property
    def seeds(self) -> int:
        return sum(v is not None for v in self.values.values())

    @property
    def mean(self) -> float | None:
        good = [v for v in self.values.values() if v is not None]
        return sum(good) / len(good) if good else None


class RungScheduler:
    """ASHA promotions and repeated seeds over ``rungs`` (cumulative training steps; one rung = no promotions).

    ``eta``: promote the top ``1/eta`` of a rung; ``seeds``: how many seeds the best genomes get (1 = no
    repeats); ``share``: at most this fraction of all training steps asked goes to repeats; ``fresh``: promotions
    train from scratch (they cost their whole rung).

    Cost: a result, a promotion and "what is best" take O(log n) (sorted lists per rung and a lazy heap), so a
    driver with a thousand workers and 100,000 genomes asks as fast at the end as at the start. A repeat scans
    the genomes at the top rung. With one rung and one seed (``flat``: nothing is ever promoted or repeated) it
    keeps no genome but the best: its memory does not grow with the campaign.
    """

    def __init__(self, *, rungs: list[int], eta: float = 3.0, seeds: int = 1, share: float = 0.0,
                 fresh: bool = False, cell_share: float = 0.0) -> None:
        increasing_steps(rungs, field="rungs")
        self.rungs, self.eta, self.seeds, self.share = list(rungs), float(eta), int(seeds), float(share)
        self.fresh, self.cell_share = bool(fresh), float(cell_share)
        self.cell_steps = 0  # training steps asked by cell promotions
        self.finished: list[dict[str, float | None]] = [{} for _ in rungs]  # rung → hash → fitness (repeat 0)
        self.promoted: list[set[str]] = [set() for _ in rungs]  # promoted FROM rung r (pending or done)
        self.aggregates: dict[str, Aggregate] = defaultdict(Aggregate)
        self.repeats_asked: dict[str, set[int]] = defaultdict(set)  # hash → repeat indices asked (top rung)
        self.jobs = 0  # jobs asked in all (new genomes, promotions, repeats)
        self.repeat_jobs = 0
        self.steps = 0  # training steps asked in all (a promotion costs the difference between its rungs)
        self.steps_answered = 0  # of those, the steps of jobs that have their result (steps - this: in flight)
        self.repeat_steps = 0
        # indexes of the above, kept in step: rung → sorted (-fitness, arrival, hash) of all successful finishers,
        # and of those not promoted yet; genomes at the top rung; a lazy max-heap of (rung, mean) for best()
        self._ranked: list[list[tuple[float, int, str]]] = [[] for _ in rungs]
        self._waiting: list[list[tuple[float, int, str]]] = [[] for _ in rungs]
        self._entry: dict[tuple[int, str], tuple[float, int, str]] = {}
        self._arrivals = itertools.count()
        self._order: dict[str, int] = {}  # genome → when it was first seen (ties go to the earlier)
        self._at_top: set[str] = set()
        self._at_rung: list[set[str]] = [set() for _ in rungs]  # genomes whose highest rung with a result is r
        self._best: tuple[int, tuple[str, Aggregate] | None] = (-1, None)  # (observations, best()) cached
        self.flat = len(self.rungs) == 1 and self.seeds <= 1
        self._flat_best: tuple[str, Aggregate] | None = None  # flat: the best so far (the first of equals)
        self._flat_fitness = -math.inf

    def flat_state(self) -> dict[str, Any]:
        """A flat scheduler's whole state (counters and the best) as plain data (:meth:`load_flat_state`)."""
        assert self.flat, "only a flat scheduler's state is its counters"
        best = None if self._flat_best is None else [self._flat_best[0], self._flat_best[1].rung,
                                                     list(self._flat_best[1].values.items())]
        return {"jobs": self.jobs, "steps": self.steps, "steps_answered": self.steps_answered,
                "repeat_jobs": self.repeat_jobs, "repeat_steps": self.repeat_steps, "best": best,
                "best_fitness": self._flat_fitness if best else None}

    def load_flat_state(self, data: Mapping[str, Any]) -> None:
        self.jobs, self.steps, self.steps_answered = int(data["jobs"]), int(data["steps"]), int(data["steps_answered"])
        self.repeat_jobs, self.repeat_steps = int(data["repeat_jobs"]), int(data["repeat_steps"])
        if data["best"] is not None:
            h, rung, values = data["best"]
            self._flat_best = (h, Aggregate(int(rung), {int(r): v for r, v in values}))
            self._flat_fitness = float(data["best_fitness"])

    @property
    def top(self) -> int:
        return len(self.rungs) - 1

    # -- what happened ---------------------------------------------------------------------------------------
    def asked(self, key: JobKey, *, cell: bool = False) -> None:
        """A job was journaled (a new genome, a promotion or a repeat; ``cell``: a cell promotion)."""
        self.jobs += 1
        self.steps += self.cost(key)
        if cell:
            self.cell_steps += self.cost(key)
        if key.promotion:
            self._mark_promoted(key.rung - 1, key.genome_hash)
        if key.repeat > 0:
            self.repeat_jobs += 1
            self.repeat_steps += self.cost(key)
            self.repeats_asked[key.genome_hash].add(key.repeat)

    def cost(self, key: JobKey) -> int:
        """Training steps the job will take: a promotion continues from the rung below (unless ``fresh``), a
        repeat starts over."""
        if key.promotion and not self.fresh:
            return self.rungs[key.rung] - self.rungs[key.rung - 1]
        return self.rungs[key.rung]

    def veto(self, key: JobKey) -> None:
        """The strategy refused the promotion ``key``: the genome is never promoted from the rung below."""
        self._mark_promoted(key.rung - 1, key.genome_hash)

    def preview(self, key: JobKey, fitness: float | None) -> Aggregate:
        """The genome's aggregate as :meth:`observe` would make it, without changing anything."""
        agg = self.aggregates.get(key.genome_hash, Aggregate())
        if key.rung > agg.rung:
            return Aggregate(key.rung, {key.repeat: fitness})
        if key.rung == agg.rung:
            return Aggregate(agg.rung, {**agg.values, key.repeat: fitness})
        return Aggregate(agg.rung, dict(agg.values))

    def observe(self, key: JobKey, fitness: float | None) -> Aggregate:
        """A result (``fitness`` None for a failure); returns the genome's aggregate after it."""
        h = key.genome_hash
        self.steps_answered += self.cost(key)
        if self.flat:  # one result per genome: its aggregate is that result, and only the best is kept
            agg = Aggregate(key.rung, {key.repeat: fitness})
            if fitness is not None and (self._flat_best is None or fitness > self._flat_fitness):
                self._flat_best, self._flat_fitness = (h, agg), fitness
            return agg
        self._order.setdefault(h, len(self._order))
        if key.repeat == 0:
            self._unrank(key.rung, h)
            self.finished[key.rung][h] = fitness
            if fitness is not None:
                entry = self._entry[(key.rung, h)] = (-fitness, next(self._arrivals), h)
                bisect.insort(self._ranked[key.rung], entry)
                if h not in self.promoted[key.rung]:
                    bisect.insort(self._waiting[key.rung], entry)
        agg = self.aggregates[h]
        if key.rung > agg.rung:
            if agg.rung >= 0:
                self._at_rung[agg.rung].discard(h)
            agg.rung, agg.values = key.rung, {}
            self._at_rung[key.rung].add(h)
        if key.rung == agg.rung:
            agg.values[key.repeat] = fitness
        if agg.rung == self.top:
            self._at_top.add(h)
        return agg

    # -- what to run next ----------------------------------------------------------------------------------
    def next_job(self, *, quota: bool = True) -> JobKey | None:
        """A repeat or a promotion to run now (see the module docstring), or None: ask for a new genome.
        ``quota=False``: every finished genome is promotable (a strategy's own pruner decides instead)."""
        return self._repeat() or self._promotion(quota)

    def _promotion(self, use_quota: bool = True) -> JobKey | None:
        for rung in range(self.top - 1, -1, -1):
            done, waiting = self.finished[rung], self._waiting[rung]
            quota = math.floor(len(done) / self.eta) if use_quota else len(done)
            if quota < 1 or not waiting:
                continue
            best = waiting[0]  # the best genome not promoted yet: promoted if it ranks in the top `quota`
            if bisect.bisect_left(self._ranked[rung], best) < quota:
                return JobKey(best[2], rung + 1, 0)
        return None

    def _repeat(self) -> JobKey | None:
        if self.seeds <= 1:
            return None
        price = self.rungs[self.top]  # what a repeat costs (all repeats are at the top rung)
        if self.repeat_steps + price > self.share * (self.steps + price):
            return None
        top = [(h, self.aggregates[h]) for h in self._at_top]
        noise = NoiseModel.fit([v for v in agg.values.values() if v is not None] for _, agg in top
                               if agg.mean is not None and 0 in agg.values)
        best: tuple[float, int, str] | None = None
        for h, agg in top:
            if agg.mean is None or 0 not in agg.values:
                continue  # only genomes measured at the top rung are measured again
            asked = len(self.repeats_asked[h] | set(agg.values))
            if asked >= self.seeds or any(r > agg.rung for r in self._pending_promotion(h)):
                continue
            if noise is None:
                score = agg.mean
            else:  # the most optimistic plausible value: where one more seed may change which genome is best
                mean, sd = noise.posterior(agg.mean, agg.seeds)
                score = mean + sd
            candidate = (score, -self._order[h], h)
            if best is None or candidate > best:
                best = candidate
        if best is None:
            return None
        h = best[2]
        repeat = max(self.repeats_asked[h] | set(self.aggregates[h].values)) + 1
        return JobKey(h, self.aggregates[h].rung, repeat)

    def cell_room(self) -> bool:
        """Whether the cheapest promotion (one rung up) would still fit in ``cell_share``."""
        if self.cell_share <= 0 or self.top == 0:
            return False
        return self._cell_fits(min(self.cost(JobKey("", r, 0)) for r in range(1, self.top + 1)))

    def _cell_fits(self, price: int) -> bool:
        """Whether cell promotions would use at most ``cell_share`` of the steps asked with ``price`` more."""
        return self.cell_steps + price <= self.cell_share * (self.steps + price)

    def cell_promotion(self, elites: Callable[[], Iterable[tuple[str, int]]]) -> JobKey | None:
        """The first of ``elites()`` (``(hash, rung)`` in the strategy's order, see
        :meth:`search.strategies.fidelity.Fidelity.cell_elites`) that may go up one rung now, if cell promotions
        would still use at most ``cell_share`` of the training steps asked; else None. ``elites`` is called only
        when some promotion could fit (:meth:`cell_room`), so a large archive is not ranked at every fill."""
        if not self.cell_room():
            return None
        for h, rung in elites():
            if rung >= self.top or h in self.promoted[rung] or self.finished[rung].get(h) is None:
                continue
            key = JobKey(h, rung + 1, 0)
            # the first in line waits until it fits (cheaper ones after it would starve it)
            return key if self._cell_fits(self.cost(key)) else None
        return None

    def _pending_promotion(self, h: str) -> list[int]:
        """Rungs ``h`` was promoted to but has no result at yet."""
        return [r + 1 for r in range(self.top) if h in self.promoted[r] and h not in self.finished[r + 1]]

    def _mark_promoted(self, rung: int, h: str) -> None:
        if h in self.promoted[rung]:
            return
        self.promoted[rung].add(h)
        entry = self._entry.get((rung, h))
        if entry is not None:
            _remove(self._waiting[rung], entry)

    def _unrank(self, rung: int, h: str) -> None:
        entry = self._entry.pop((rung, h), None)
        if entry is not None:  # the same job's result again (never in a journal; kept correct anyway)
            _remove(self._ranked[rung], entry)
            _remove(self._waiting[rung], entry)

    # -- what is best ------------------------------------------------------------------------------------------
    def best(self) -> tuple[str, Aggregate] | None:
        """The genome reported as best, by :func:`search.records.rank` (the one ranking of ctmevo): among the
        genomes at the highest rung reached, the highest mean read with its noise (a lucky single seed ranks
        below a steady mean of several); ties go to the genome seen first. Recomputed only after new results,
        over the genomes at that rung."""
        if self.flat:
            return self._flat_best
        if self._best[0] == self.steps_answered:
            return self._best[1]
        out = None
        for rung in range(self.top, -1, -1):
            entries = [(h, self.aggregates[h]) for h in self._at_rung[rung] if self.aggregates[h].mean is not None]
            if entries:
                entries.sort(key=lambda e: self._order[e[0]])
                order = rank([(rung, [v for v in agg.values.values() if v is not None], self._order[h])
                              for h, agg in entries])
                out = entries[order[0][0]]
                break
        self._best = (self.steps_answered, out)
        return out

    def best_metrics(self, spent_steps: float, *, exact: bool = False) -> dict[str, float]:
        """The best as the live view, status and MLflow report it: a mean over seeds, at a rung.

        The ranking costs O(genomes), so after every result it is redone only while the campaign is small (20
        genomes), then once every 5 % more results (between, the best of the last ranking is reported; that is the
        O(n²) a campaign of thousands of evaluations would otherwise spend here); ``exact`` (the campaign's end)
        ranks now. :meth:`best` itself is always exact."""
        stale = self.steps_answered - self._best[0]
        fresh = exact or self.flat or stale >= max(1, len(self.aggregates) // 20)
        best = self.best() if fresh else self._best[1]
        cells = {"cell_promotion_steps": float(self.cell_steps)} if self.cell_share > 0 else {}
        if best is None or best[1].mean is None:
            return {"train_steps_spent": float(spent_steps), **cells}
        return {"best_mean_fitness": best[1].mean, "best_seeds": float(best[1].seeds),
                "best_rung": float(best[1].rung), "train_steps_spent": float(spent_steps), **cells}


def _remove(items: list[tuple[float, int, str]], entry: tuple[float, int, str]) -> None:
    """Remove ``entry`` from the sorted list ``items`` if it is there."""
    i = bisect.bisect_left(items, entry)
    if i < len(items) and items[i] == entry:
        del items[i]
