"""Compact history: a strategy that breeds only from its archive or population keeps the told genomes it no longer
reads as hashes alone (mixed into :class:`~search.strategies.base.Strategy`).

A campaign of a million evaluations would otherwise hold a record (genome, parents, descriptors) of each in the
driver. With :meth:`History.compact_history`, records not :meth:`~History._retained` are let go whenever the
records kept have doubled since the last sweep, so memory is bounded by twice what is retained (plus
:data:`SWEEP_MIN`) and about 60 bytes per told genome for the duplicate check. Asks are unchanged: what a bounded
strategy proposes reads only retained records and the duplicate check, and replaying the journal sweeps at the
same points.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from search.strategies.evaluated import Evaluated

__all__ = ["SWEEP_MIN", "History", "hash_key"]

SWEEP_MIN = 4096  # records kept before the first sweep


def hash_key(genome_hash: str) -> int | str:
    """A told genome's hash as a compact history stores it: an int (about 60 bytes with its set slot, not 110)."""
    try:
        return int(genome_hash, 16)
    except ValueError:
        return genome_hash


class History:
    """:meth:`compact_history` and what it needs of the strategy."""

    # True: what it proposes depends only on the records :meth:`_retained` names (an archive, a population), so it
    # can keep the other told genomes as hashes alone
    BOUNDED_HISTORY: ClassVar[bool] = False
    _compact: bool
    _told: int
    _records: dict[str, Evaluated]
    _forgotten: set[int | str]
    _sweep_at: int
    _best_hash: str | None

    def elite_hashes(self) -> Sequence[str]:
        raise NotImplementedError

    def _init_history(self) -> None:
        self._told = 0  # results told (with a compact history, more than the records kept)
        self._forgotten = set()  # told genomes whose records were let go
        self._sweep_at = SWEEP_MIN
        self._best_hash = None  # the best genome so far: always retained (its weights are kept)

    def compact_history(self) -> bool:
        """Keep in memory only the told records this strategy still needs (:meth:`_retained`: its archive or
        population, and the best genome); every other told genome is remembered by its hash alone (its duplicate
        check), and its record lives in the campaign's journal. Memory is then bounded by the archive, plus about
        60 bytes per evaluation. Only where :attr:`BOUNDED_HISTORY`; a campaign asks for it when it has no fidelity
        rungs or repeats (a promotion may pick any genome's record). Call it before anything is told; returns
        whether it took effect. :meth:`record` and :meth:`evaluated` then answer for the retained genomes only."""
        if self.BOUNDED_HISTORY and not self._told:
            self._compact = True
        return self._compact

    def told(self, genome_hash: str) -> bool:
        """Whether ``genome_hash``'s result was told (also when its record was let go: :meth:`compact_history`)."""
        return genome_hash in self._records or hash_key(genome_hash) in self._forgotten

    def _retained(self) -> set[str]:
        """The told genomes whose records the strategy still reads (with :meth:`compact_history`): its archive's
        elites by default; population-based strategies add their members."""
        return set(self.elite_hashes())

    def _sweep(self) -> None:
        """Let go of the records not retained (amortised: when the records have doubled since the last sweep)."""
        keep = self._retained()
        if self._best_hash is not None:
            keep.add(self._best_hash)
        for h in [h for h in self._records if h not in keep]:
            del self._records[h]
            self._forgotten.add(hash_key(h))
        self._sweep_at = max(SWEEP_MIN, 2 * len(self._records))
