"""What strategies learn after a genome was told: its fitness at a higher fidelity rung (training continued) or
as the mean of more seeds (see :mod:`search.campaign.rungs`). The archive compares like with like."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from search.strategies.evaluated import Evaluated, Revision

__all__ = ["Fidelity", "interleave"]


class UnknownGenomeError(LookupError):
    """A revision of a genome this strategy was never told."""


class Fidelity:
    """Mixed into :class:`~search.strategies.base.Strategy`: :meth:`revise` and the hooks around it."""

    _records: dict[str, Evaluated]
    _revisions: list[tuple[int, Revision]]
    _best: float | None
    codec: Any
    qd: Any

    # -- later knowledge: fidelity rungs and repeated seeds ------------------------------------------------
    top_rung: int = 0  # the highest fidelity rung of the campaign (0: no rungs); set by configure_rungs

    def configure_rungs(self, top: int) -> None:
        """The campaign evaluates genomes at fidelity rungs 0..``top`` (see :mod:`search.campaign.rungs`)."""
        self.top_rung = int(top)

    @property
    def decides_promotions(self) -> bool:
        """True when the strategy's own pruner decides which genome goes on (the campaign's quota is then off)."""
        return False

    def may_promote(self, genome_hash: str) -> bool:
        """Whether the genome may go on to the next rung (strategies with a pruner of their own may say no)."""
        return True

    def cell_elites(self) -> list[tuple[str, int]]:
        """The archive's elites below the top rung as ``(hash, rung)``, the highest rung first, then the fittest:
        what cell promotions (``fidelity.cell_share``, :meth:`search.campaign.rungs.RungScheduler.cell_promotion`)
        take toward the top rung, so that every cell ends with a genome trained as long as the best. A cell's
        elite at a higher rung beats any at a lower one, so a cell listed here has nothing at the top yet."""
        if self.qd is None or self.top_rung == 0:
            return []
        below = [self._records[h] for h in self.qd.elite_hashes()]
        below = [r for r in below if r.rung < self.top_rung and r.fitness is not None]
        below.sort(key=lambda r: (-r.rung, -float(r.fitness or 0.0)))
        return [(r.hash, r.rung) for r in below]

    def revise(self, genome_hash: str, *, fitness: float | None, rung: int, seeds: int) -> None:
        """A told genome measured again: at a higher fidelity ``rung`` (training continued), or with more
        ``seeds`` (``fitness`` is then their mean). The archive compares it like with like (a higher rung wins;
        same rung: the better mean), and its record keeps the new rung, seeds and fitness."""
        if genome_hash not in self._records:
            raise UnknownGenomeError(f"revise({genome_hash}): this genome was never told")
        self._apply_revision(Revision(hash=genome_hash, fitness=fitness, rung=rung, seeds=seeds))

    def _apply_revision(self, rev: Revision) -> None:
        rec = self._records[rev.hash]
        self._revisions.append((len(self._records), rev))
        if rec.ok and rev.fitness is not None and math.isfinite(rev.fitness):
            rec.fitness, rec.rung, rec.seeds = float(rev.fitness), rev.rung, rev.seeds
            self._best = rec.fitness if self._best is None else max(self._best, rec.fitness)
            if rec.values is not None and self.qd is not None:
                self.qd.add(rec.hash, self.codec.encode(rec.proposal.genome), rec.fitness, rec.values,
                            rung=rev.rung, seeds=rev.seeds)
        self._on_revise(rec, rev)

    def _on_revise(self, rec: Evaluated, rev: Revision) -> None:
        """Update strategy-specific structures with a revision (also called on replay)."""
        return None  # nothing by default



def interleave(told: list[Evaluated], revisions: list[tuple[int, Revision]]) -> Iterable[Evaluated | Revision]:
    """The told log in order: each revision after the number of evaluations told before it."""
    pending = iter(revisions)
    nxt = next(pending, None)
    for i, rec in enumerate(told):
        while nxt is not None and nxt[0] <= i:
            yield nxt[1]
            nxt = next(pending, None)
        yield rec
    while nxt is not None:
        yield nxt[1]
        nxt = next(pending, None)
