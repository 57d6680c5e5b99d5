"""The ``rank_score`` metric of evaluation runs, kept in the order ``ctmevo status`` shows.

Sorting MLflow's runs table by ``rank_score`` (descending) must give the order of :func:`search.records.standings`
(:func:`search.records.rank_score`). A genome's belief depends on every genome at its rung (the noise model is
fitted on them all), so a score logged earlier can go stale when others arrive. :class:`ScoreBoard` follows the
campaign's results as the archiver writes them and says which runs need their score logged again: every run
whose score changed and that stands, or stood when last logged, among the :data:`TOP` best. So the head of the
table (what a researcher reads) always agrees with ``status``; further down, a run's score is at most as stale
as its last result, and the whole table agrees again after the campaign's last batch (:meth:`ScoreBoard.due`
with ``everything=True``).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from mlflow.entities import Metric

from search.records import EvaluationRecord, beliefs, rank_score

__all__ = ["TOP", "ScoreBoard"]

TOP = 100  # the runs table's first page


@dataclass
class _Genome:
    rung: int
    birth: int
    values: dict[int, float] = field(default_factory=dict)  # repeat → fitness at ``rung``
    steps: float | None = None  # training steps at ``rung``


class ScoreBoard:
    """Every genome's standing inputs (highest rung, its seeds' fitness there, birth) and the scores last logged."""

    def __init__(self, *, top: int = TOP) -> None:
        self.top = top
        self._genomes: dict[str, _Genome] = {}
        self._logged: dict[str, float] = {}
        self._last_ms = 0

    def add(self, record: EvaluationRecord) -> None:
        """Follow one result (failures do not count, as in :func:`search.records.standings`)."""
        fitness = record.result.fitness
        if not record.result.ok or fitness is None:
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

    def scores(self) -> dict[str, float]:
        """Genome hash → its ``rank_score`` now."""
        names = list(self._genomes)
        entries = [(g.rung, list(g.values.values()), g.birth) for g in self._genomes.values()]
        return {h: rank_score(e[0], b, e[2]) for h, e, b in zip(names, entries, beliefs(entries), strict=True)}

    def best(self) -> tuple[str, int, list[float], float | None, float] | None:
        """(hash, rung, its seeds' fitness there, training steps, rank_score) of the best genome, or None."""
        scores = self.scores()
        if not scores:
            return None
        h = max(scores, key=lambda k: scores[k])
        g = self._genomes[h]
        return h, g.rung, list(g.values.values()), g.steps, scores[h]

    def due(self, also: Iterable[str] = (), *, everything: bool = False) -> dict[str, float]:
        """Scores to log: of the genomes ``also`` (just written), of every genome whose score changed and that
        stands or stood among the :attr:`top` best, or (``everything``) of every genome whose score changed.
        Call :meth:`logged` once they are written."""
        now = self.scores()
        also = set(also)
        if everything:
            return {h: s for h, s in now.items() if h in also or self._logged.get(h) != s}
        cut = sorted(now.values(), reverse=True)[min(self.top, len(now)) - 1] if now else 0.0
        return {h: s for h, s in now.items()
                if h in also or (self._logged.get(h, s) != s and (s >= cut or self._logged[h] >= cut))}

    def logged(self, scores: dict[str, float]) -> None:
        self._logged.update(scores)

    def points(self, scores: Mapping[str, float], run_ids: Mapping[str, str]) -> dict[str, list[Metric]]:
        """Run id → its new ``rank_score`` point, for the genomes of ``scores`` that have a run in ``run_ids``;
        each call's timestamp is later than the last (MLflow shows a metric's latest point)."""
        self._last_ms = max(int(time.time() * 1000), self._last_ms + 1)
        return {run_ids[h]: [Metric("rank_score", score, self._last_ms, 0)] for h, score in scores.items()
                if h in run_ids}
