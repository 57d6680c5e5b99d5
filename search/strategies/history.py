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

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar

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
    # True: with a compact history its whole state is :meth:`compact_state` (no told log needed to restore it)
    FULL_SNAPSHOT: ClassVar[bool] = False
    _compact: bool
    _told: int
    _records: dict[str, Evaluated]
    _forgotten: set[int | str]
    _sweep_at: int
    _best_hash: str | None
    _successes: int
    _best: float | None
    _failure_kinds: Counter[str]
    _failure_regions: Counter[str]
    _descriptor_errors: int
    qd: Any

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
        60 bytes per evaluation. Only where :meth:`_bounded` (:attr:`BOUNDED_HISTORY`); a campaign asks for it when
        it has no fidelity rungs or repeats (a promotion may pick any genome's record). Call it before anything is
        told; returns whether it took effect. :meth:`record` and :meth:`evaluated` then answer for the retained
        genomes only."""
        if self._bounded() and not self._told:
            self._compact = True
        return self._compact

    def _bounded(self) -> bool:
        """Whether what it proposes depends only on the records :meth:`_retained` names (a strategy whose bound
        is a setting answers from it)."""
        return self.BOUNDED_HISTORY

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

    # -- the whole state without the told log --------------------------------------------------------------
    def compact_state(self) -> dict[str, Any] | None:
        """Everything the told log would rebuild, as plain data, O(records kept): the records, the counters, the
        archive and the strategy's own structures (:meth:`_compact_extra`). Not the duplicate check's hashes:
        the campaign index lists the genomes told (:meth:`load_compact_state`). ``None`` unless the history is
        compact and the strategy is :attr:`FULL_SNAPSHOT`."""
        if not (self._compact and self.FULL_SNAPSHOT):
            return None
        return {"told": self._told, "records": [r.to_dict() for r in self._records.values()],
                "sweep_at": self._sweep_at, "best_hash": self._best_hash, "successes": self._successes,
                "best": self._best, "failure_kinds": dict(self._failure_kinds),
                "failure_regions": dict(self._failure_regions), "descriptor_errors": self._descriptor_errors,
                "archive": self.qd.contents() if self.qd is not None else None, "extra": self._compact_extra()}

    def load_compact_state(self, data: Mapping[str, Any], told: Iterable[str]) -> None:
        """Take the state :meth:`compact_state` saved, on a freshly initialised strategy; ``told``: every genome
        told by then (kept records or not), for the duplicate check."""
        self._records = {}
        for entry in data["records"]:
            rec = Evaluated.from_dict(entry)
            self._records[rec.hash] = rec
        self._forgotten = {hash_key(h) for h in told if h not in self._records}
        self._told, self._sweep_at, self._best_hash = int(data["told"]), int(data["sweep_at"]), data["best_hash"]
        self._successes, self._best = int(data["successes"]), data["best"]
        self._failure_kinds, self._failure_regions = Counter(data["failure_kinds"]), Counter(data["failure_regions"])
        self._descriptor_errors = int(data["descriptor_errors"])
        if data["archive"] is not None and self.qd is not None:
            self.qd.restore(data["archive"])
        self._load_compact_extra(data["extra"])

    def _compact_extra(self) -> dict[str, Any]:
        """What a :attr:`FULL_SNAPSHOT` strategy keeps beyond the records and the archive (e.g. its population)."""
        return {}

    def _load_compact_extra(self, extra: Mapping[str, Any]) -> None:
        return None
