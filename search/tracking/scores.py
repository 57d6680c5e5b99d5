"""The ``rank_score`` metric of evaluation runs, kept in the order ``ctmevo status`` shows.

Sorting MLflow's runs table by ``rank_score`` (descending) must give the order of :func:`search.records.standings`
(:func:`search.records.rank_score`). A genome's belief depends on every genome at its rung (the noise model is
fitted on them all), so a score logged earlier can go stale when others arrive. :class:`ScoreBoard` follows the
campaign's results as the archiver writes them and says which runs need their score logged:

- every batch (:meth:`ScoreBoard.due`): the batch's genomes, scored with the noise models of the last full
  rescoring (O(batch), whatever the campaign's size);
- a full rescoring (``full=True``, or by itself every :data:`FULL_EVERY_S` seconds): every genome
  with refitted models, and the runs whose score changed among those that stand, or stood when last logged,
  among the :data:`TOP` best;
- at the end (``everything=True``): every run whose score changed.

So the head of the table (what a researcher reads) agrees with ``status`` within seconds, further down a
score is at most as stale as the last full rescoring, and the whole table agrees after the campaign's last batch.

A ``flat`` campaign (one rung, one seed: no genome is ever measured twice) has no noise model, so a score never
changes once logged: the board then keeps only the genomes not yet logged and the best, not every genome.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from mlflow.entities import Metric

from search.records import EvaluationRecord, NoiseModel, belief, noise_models, rank_score

__all__ = ["FULL_EVERY_S", "TOP", "ScoreBoard"]

TOP = 100  # the runs table's first page
FULL_EVERY_S = 5.0  # how often the archiver rescores every genome (O(genomes), a third of a second at 100,000)


@dataclass
class _Genome:
    rung: int
    birth: int
    values: dict[int, float] = field(default_factory=dict)  # repeat → fitness at ``rung``
    steps: float | None = None  # training steps at ``rung``


class ScoreBoard:
    """Every genome's standing inputs (highest rung, its seeds' fitness there, birth), their current scores and
    the scores last logged."""

    def __init__(self, *, top: int = TOP, flat: bool = False) -> None:
        self.top, self.flat = top, flat
        self._genomes: dict[str, _Genome] = {}  # flat: those not logged yet
        self._models: dict[int, NoiseModel | None] = {}  # per rung, from the last full rescoring
        self._current: dict[str, float] = {}
        self._logged: dict[str, float] = {}
        self._last_ms = 0
        self._last_full = float("-inf")  # when every genome was last rescored (time.monotonic)
        self._flat_best: tuple[str, _Genome] | None = None  # flat: the best so far (the first of equals)

    def add(self, record: EvaluationRecord, *, pending: bool = True) -> None:
        """Follow one result (failures do not count, as in :func:`search.records.standings`). ``pending=False``: its
        score will not be asked for (already logged, or only :meth:`best` is read), so a flat board keeps nothing
        of it but a better best."""
        fitness = record.result.fitness
        if not record.result.ok or fitness is None:
            return
        if self.flat and (self._flat_best is None or fitness > self._flat_best[1].values[0]):
            self._flat_best = (record.genome.hash, _Genome(record.rung, record.birth, {0: float(fitness)},
                                                           record.result.metrics.get("train_steps")))
        if self.flat and not pending:
            return
        g = self._genomes.get(record.genome.hash)
        if g is None or record.rung > g.rung:
            g = self._genomes[record.genome.hash] = _Genome(record.rung, record.birth)
        elif record.rung < g.rung:
            return
        if not g.values or record.repeat < min(g.values):
            g.birth = record.birth
            g.steps = record.result.metrics.get("train_steps")
        g.values[record.repeat] = float(fitness)

    def _score(self, h: str) -> float:
        g = self._genomes[h]
        return rank_score(g.rung, belief(list(g.values.values()), self._models.get(g.rung)), g.birth)

    def rescore(self) -> None:
        """Refit the noise models on every genome and score them all (:func:`search.records.rank`'s numbers)."""
        self._last_full = time.monotonic()
        self._models = noise_models([(g.rung, list(g.values.values()), g.birth) for g in self._genomes.values()])
        self._current = {h: self._score(h) for h in self._genomes}

    def best(self) -> tuple[str, int, list[float], float | None, float] | None:
        """(hash, rung, its seeds' fitness there, training steps, rank_score) of the best genome as last scored."""
        if self.flat:
            if self._flat_best is None:
                return None
            h, g = self._flat_best
            values = list(g.values.values())
            return h, g.rung, values, g.steps, rank_score(g.rung, belief(values, None), g.birth)
        if not self._current:
            return None
        h = max(self._current, key=lambda k: self._current[k])
        g = self._genomes[h]
        return h, g.rung, list(g.values.values()), g.steps, self._current[h]

    def due(self, also: Iterable[str] = (), *, full: bool | None = None, everything: bool = False) -> dict[str, float]:
        """Scores to log: of the genomes ``also`` (just written); with ``full`` (default: when the last full
        rescoring is :data:`FULL_EVERY_S` old), after a rescoring, also of every genome whose score changed and that
        stands or stood among the :attr:`top` best; with ``everything``, of every genome whose score changed. Call
        :meth:`logged` once they are written."""
        also = {h for h in also if h in self._genomes}
        if full is None:
            full = time.monotonic() - self._last_full >= FULL_EVERY_S
        if full or everything:
            self.rescore()
        else:
            self._current.update({h: self._score(h) for h in also})
        now = self._current
        if self.flat:  # scores never change: only the genomes not logged yet are due
            return {h: now[h] for h in (now if everything else also)}
        if everything:
            return {h: s for h, s in now.items() if h in also or self._logged.get(h) != s}
        out = {h: now[h] for h in also}
        if full and now:
            cut = sorted(now.values(), reverse=True)[min(self.top, len(now)) - 1]
            out.update({h: s for h, s in now.items()
                        if h in self._logged and self._logged[h] != s and (s >= cut or self._logged[h] >= cut)})
        return out

    def logged(self, scores: dict[str, float]) -> None:
        if self.flat:  # a logged score is final: the genome is let go
            for h in scores:
                self._genomes.pop(h, None)
                self._current.pop(h, None)
            return
        self._logged.update(scores)

    def points(self, scores: Mapping[str, float], run_ids: Mapping[str, str]) -> dict[str, list[Metric]]:
        """Run id → its new ``rank_score`` point, for the genomes of ``scores`` that have a run in ``run_ids``;
        each call's timestamp is later than the last (MLflow shows a metric's latest point)."""
        self._last_ms = max(int(time.time() * 1000), self._last_ms + 1)
        return {run_ids[h]: [Metric("rank_score", score, self._last_ms, 0)] for h, score in scores.items()
                if h in run_ids}
