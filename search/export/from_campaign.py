"""Locating an evaluation in a campaign directory: its journal, archive, checkpoints and ``campaign.yaml``."""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Any

from ctm.result import TaskSpec
from genome.textio import FileReadError, load_yaml_file
from search.campaign.loop import Campaign
from search.export.located import ExportError, Located, by_hash, normalise_cell
from search.journal import Journal, JournalCorruptError
from search.paths import CampaignPaths, default_tracking_uri
from search.records import EvaluationRecord, best_record, metric_names, parse_by, standings

__all__ = ["locate_in_campaign"]

_RUN_ID = re.compile(r"^[0-9a-f]{32}$")


def _campaign(root: Path) -> tuple[dict[str, Any], list[EvaluationRecord], str | None]:
    paths = CampaignPaths(root)
    if not paths.config.is_file():
        raise ExportError(f"{root} is not a campaign directory (no campaign.yaml); start one with 'ctmevo run FILE'")
    try:
        config = load_yaml_file(paths.config, what="campaign file")
    except FileReadError as exc:
        raise ExportError(str(exc)) from None
    if not isinstance(config, dict) or not isinstance(config.get("task"), dict):
        raise ExportError(f"{paths.config}: no 'task' section; is this a campaign directory made by 'ctmevo run'?")
    try:
        records = Journal(paths.journal).records() if paths.journal.is_file() else []
    except JournalCorruptError as exc:
        raise ExportError(str(exc)) from None
    uri = (config.get("tracking") or {}).get("uri")
    if uri is None and paths.mlflow_db.is_file():
        uri = default_tracking_uri(paths)
    return config, records, uri


def _cell_elite(root: Path, cell: str) -> str | None:
    """The genome hash holding ``cell`` in the campaign's archive (replayed from its state, else archive.csv)."""
    try:
        rows: list[dict[str, Any]] = Campaign.open(root).strategy.archive_rows()
    except Exception:  # an older or partly written campaign: fall back to the last archive table
        table = CampaignPaths(root).archive_csv
        if not table.is_file():
            return None
        with table.open() as fh:
            rows = list(csv.DictReader(fh))
    for row in rows:
        if row.get("cell") is not None and normalise_cell(str(row["cell"])) == cell:
            return str(row["hash"])
    return None


def locate_in_campaign(root: Path, *, key: str | None, best: bool, by: str | None, cell: str | None,
                       tracking_uri: str | None) -> Located:
    """One evaluation of the campaign in ``root``: by genome hash prefix or run id, best by a metric, or cell."""
    config, records, uri = _campaign(root)
    uri = tracking_uri or uri
    record: EvaluationRecord | None = None
    run_id = None
    if key is not None:
        key = key.strip().lower()
        record = by_hash(records, key) if len(key) <= 16 else None
        if record is None and _RUN_ID.match(key) and uri:
            from search.export.from_mlflow import hash_of_run

            run_id = key
            record = by_hash(records, hash_of_run(uri, key))
        if record is None:
            raise ExportError(f"{key!r}: no evaluation with this genome hash or run id in "
                              f"{CampaignPaths(root).journal} ({len(records)} evaluations)")
    elif best:
        record = best_record(records, by)
        if record is None:
            metric = parse_by(by)[0]
            if not any(r.result.ok for r in records):
                raise ExportError(f"{root}: the campaign has no successful evaluation yet ({len(records)} "
                                  "finished); run or resume it first")
            raise ExportError(f"--by {metric}: no successful evaluation has this metric; known metrics: "
                              f"{sorted(metric_names(records))}")
    else:
        wanted = normalise_cell(str(cell))
        elite = _cell_elite(root, wanted)
        if elite is None:
            raise ExportError(f"--cell {cell}: no elite in that cell of the archive of {root}")
        record = by_hash(records, elite)
        if record is None:
            raise ExportError(f"--cell {cell}: its elite {elite} is not in the journal of {root}")
    standing = next((s for s in standings(records) if s.record.genome.hash == record.genome.hash), None)
    if standing is not None:  # the genome's first seed at its highest rung: the one whose weights are kept
        record = standing.record
    evaluation = config.get("evaluation") or {}
    found = Located(record=record, task=TaskSpec.from_dict(config["task"]), run_id=run_id, tracking_uri=uri,
                    campaign_dir=root, exit_threshold=float(evaluation.get("exit_threshold", 0.8)),
                    records=records, cell=None if cell is None else normalise_cell(str(cell)),
                    seeds=standing.seeds if standing else 1, mean_fitness=standing.value if standing else None)
    checkpoint = CampaignPaths(root).checkpoint(record.genome.hash)
    if checkpoint.is_file():
        found.checkpoint, found.checkpoint_source = checkpoint.read_bytes(), str(checkpoint)
    if uri:
        from search.export.from_mlflow import enrich_from_mlflow

        enrich_from_mlflow(found)
    return found
