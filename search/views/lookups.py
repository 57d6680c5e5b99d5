"""What other rooms read from the campaign index (:mod:`.index`): a lineage without MLflow, the genome of a record a
strategy's compact history let go, and the run notes' family of a flat campaign."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from genome.genome import Genome
from search.lineage import LineageGraph, LineageNode, walk
from search.views.index import CampaignIndex

__all__ = ["IndexLookup", "index_lineage", "indexed_before", "indexed_genome"]


def index_lineage(root: Path, campaign_id: str, key: str, depth: int | None = None, *,
                  tracking_uri: str = "") -> LineageGraph | None:
    """The ancestry of the genome ``key`` (a hash or a unique prefix) from the campaign index, with the MLflow run
    of every node; ``None`` when the index cannot answer alone (no single match, or a node whose run id it lacks),
    and the caller asks MLflow (:func:`search.tracking.lineages.lineage`), which also words the errors."""
    with CampaignIndex(root, campaign_id) as index:
        index.update()
        hits = index.matching(key.strip().lower(), limit=2) if key.strip() else []
        if len(hits) != 1:
            return None
        missing: list[str] = []

        def node(row: Mapping[str, Any]) -> LineageNode:
            if row["run_id"] is None:
                missing.append(row["hash"])
            return LineageNode(genome_hash=row["hash"], run_id=row["run_id"], campaign=row["campaign"],
                               fitness=row["fitness"], operator=row["operator"], birth=row["birth"],
                               status=row["status"], parents=row["parents"], genes=row["genes"],
                               cell=row["cell"], inherited=row["inherited"])

        def fetch(hashes: list[str], children: list[LineageNode]) -> dict[str, LineageNode | None]:
            rows = index.genomes(hashes)
            return {h: node(rows[h]) if h in rows else None for h in hashes}

        graph = walk(node(index.genomes(hits)[hits[0]]), fetch, depth, tracking_uri)
        if missing or any(not n.found for n in graph.nodes.values()):
            return None
        graph.experiment_id = index.experiment_id()
        return graph


class IndexLookup:
    """The campaign index as the MLflow archiver's run notes read it (:class:`search.tracking.relatives.FamilyLookup`):
    genomes and children the archiver let go. Brought up to date with the journal by :meth:`refresh`, and before
    a read of genomes it lacks; one connection, opened by the thread that reads."""

    def __init__(self, root: Path, campaign_id: str) -> None:
        self.root, self.campaign_id = Path(root), campaign_id
        self._index: CampaignIndex | None = None

    def _open(self) -> CampaignIndex:
        if self._index is None:
            self._index = CampaignIndex(self.root, self.campaign_id)
        return self._index

    def rows(self, hashes: list[str]) -> dict[str, dict[str, Any]]:
        index = self._open()
        rows = index.genomes(hashes)
        if len(rows) < len(set(hashes)):  # results the index has not read yet
            index.update()
            rows = index.genomes(hashes)
        return rows

    def children(self, parent: str, limit: int) -> tuple[int, list[str]]:
        return self._open().children(parent, limit)

    def refresh(self) -> None:
        """Read the journal's new lines (the archiver calls it once per batch, before the batch's notes)."""
        self._open().update()


def indexed_before(root: Path, campaign_id: str, offset: int) -> list[str]:
    """The genomes with a result in the journal's first ``offset`` bytes (from the index brought up to date)."""
    with CampaignIndex(root, campaign_id) as index:
        index.update()
        return index.told_before(offset)


def indexed_genome(root: Path, campaign_id: str, genome_hash: str) -> Genome | None:
    """The genome of an evaluated hash, read from the index brought up to date with the journal (for a record a
    strategy's compact history let go); None if the journal has no result of it."""
    with CampaignIndex(root, campaign_id) as index:
        index.update()
        records = index.records([genome_hash])
    return records[0].genome if records else None
