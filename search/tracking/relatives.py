"""The family the run notes are made from: every evaluation as a note shows it (:class:`~.notes.Relative`), with
its parents and children; bounded in a flat campaign, where the campaign index holds what it lets go."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import Any, Protocol

from search.lineage import generation_of
from search.records import EvaluationRecord
from search.tracking.notes import CHILDREN_SHOWN, Relative, evaluation_note

__all__ = ["Family", "FamilyLookup"]


class FamilyLookup(Protocol):
    """Where a bounded :class:`Family` reads the genomes it let go (the campaign index: :mod:`search.views.index`)."""

    def rows(self, hashes: list[str]) -> dict[str, dict[str, Any]]:
        """``{hash: row}`` of the hashes it knows (:meth:`search.views.index.CampaignIndex.genomes`' rows)."""

    def children(self, parent: str, limit: int) -> tuple[int, list[str]]:
        """How many children ``parent`` has, and the ``limit`` best of them (as of the last :meth:`refresh`)."""

    def refresh(self) -> None:
        """Take in the results written since (before the notes of a batch)."""


class Family:
    """Every evaluation as the run notes show it (:class:`Relative`), with its children in birth order: what the
    archiver makes the notes from.

    With a ``lookup`` (a flat campaign: one result per genome, so a node never changes once made) it keeps only the
    ``keep`` latest nodes, and children lists only for the genomes new since the last :meth:`refresh` (a batch):
    a node it let go is read back from the lookup, and so are an older parent's children (their count and the
    best :data:`CHILDREN_SHOWN`): its memory is bounded.
    """

    def __init__(self, *, lookup: FamilyLookup | None = None, keep: int = 20_000) -> None:
        self.nodes: dict[str, Relative] = {}  # with a lookup: the latest, oldest first
        self.children: dict[str, list[str]] = {}  # with a lookup: of the genomes new since the last refresh
        self.lookup, self.keep, self._remembered = lookup, keep, 0
        self._fresh: set[str] = set()  # with a lookup: remembered since the last refresh (no child elsewhere)

    @property
    def runs(self) -> int:
        """Genomes remembered (one run each)."""
        return self._remembered if self.lookup is not None else len(self.nodes)

    def remember(self, record: EvaluationRecord, run_id: str | None) -> None:
        """Note ``record`` as a node of the family (its generation, its run), and as a child of its parents."""
        h = record.genome.hash
        parents = tuple(dict.fromkeys(record.proposal.parents))
        known = self.relatives(parents) if self.lookup is not None else self.nodes
        generation = generation_of(known[p].generation if p in known else None for p in parents)
        cell = record.extra.get("cell")
        node = Relative.of_record(record, run_id=run_id, generation=generation,
                                  cell=None if cell is None else str(cell))
        before = self.nodes.get(h)
        if before is not None and before.inherited and not node.inherited:  # a promotion of an inherited start
            node = replace(node, inherited=before.inherited)
        if self.lookup is not None:
            self._remembered += 1
            self.nodes.pop(h, None)
            self.nodes[h] = node
            while len(self.nodes) > self.keep:
                del self.nodes[next(iter(self.nodes))]
            if len(self._fresh) >= self.keep:  # many results without a batch (followed, not written)
                self.refresh(lookup=False)
            self._fresh.add(h)
            parents = tuple(p for p in parents if p in self._fresh)
        else:
            self.nodes[h] = node
        for p in parents:
            children = self.children.setdefault(p, [])
            if h not in children:
                children.append(h)

    def relatives(self, hashes: Iterable[str]) -> dict[str, Relative]:
        """The nodes of ``hashes`` that are known: kept, else (or to learn its run) read from the lookup."""
        out = {h: node for h in hashes if (node := self.nodes.get(h)) is not None
               and (node.run_id is not None or self.lookup is None)}
        missing = [h for h in dict.fromkeys(hashes) if h not in out]
        if missing and self.lookup is not None:
            for h, row in self.lookup.rows(missing).items():
                out[h] = Relative(genome_hash=h, run_id=row["run_id"], fitness=row["fitness"],
                                  operator=row["operator"], birth=row["birth"], generation=row["generation"],
                                  cell=row["cell"], status=row["status"] or "ok", parents=tuple(row["parents"]),
                                  genes=row["genes"], inherited=row["inherited"] or "")
        return out

    def node(self, genome_hash: str) -> Relative | None:
        return self.relatives([genome_hash]).get(genome_hash)

    def refresh(self, *, lookup: bool = True) -> None:
        """Before a batch's notes: the lookup takes in the results since, the new genomes' children lists restart."""
        self._fresh.clear()
        self.children.clear()
        if lookup and self.lookup is not None:
            self.lookup.refresh()

    def note(self, genome_hash: str, *, experiment_id: str, campaign_run_id: str | None) -> str:
        """The description of ``genome_hash``'s run (:func:`evaluation_note`)."""
        me = self.node(genome_hash)
        assert me is not None, f"a note of {genome_hash}, which was never remembered"
        parents = self.relatives(me.parents)
        if self.lookup is None or genome_hash in self._fresh:  # a new genome's children are new too
            children = [self.nodes[c] for c in self.children.get(genome_hash, [])]
            count = None
        else:
            count, best = self.lookup.children(genome_hash, CHILDREN_SHOWN)
            found = self.relatives(best)
            children = [found[c] for c in best if c in found]
        return evaluation_note(me, experiment_id=experiment_id, campaign_run_id=campaign_run_id,
                               parents={p: parents.get(p) for p in me.parents}, children=children,
                               children_count=count)
