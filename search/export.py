"""Export an evaluated architecture out of a campaign: find it, write a bundle, register it in MLflow.

An evaluation is found (:func:`locate`) by an MLflow run id, a genome hash (or unique prefix), the best by
fitness or by any metric (``--best --by METRIC``; ``min:``/``max:`` set the direction, known lower-is-better
metrics such as ``ece`` are minimised by default), or an archive cell (the cell's current elite). The source is
a campaign directory (its journal, checkpoints, ``campaign.yaml`` and MLflow store) or, without one, an MLflow
tracking server alone (evaluation runs found by their ``ctmevo.*`` tags, see :mod:`search.mlflow_payload`).

:func:`export` writes the bundle (``ctm.bundle``: genome.yaml, model.yaml, the search's weights when the
campaign kept a checkpoint, MODEL_CARD.md) and logs the model to MLflow (``mlflow.pytorch.log_model``: genes as
the logged model's params, the evaluation's metrics linked to it) in an ``export`` run tagged with the source
run id, so ``mlflow.pytorch.load_model(model_uri)`` gives the same module as ``ctm.bundle.load_bundle``.
The export run uses its own tag names (``ctmevo.export.*``), never the evaluation keys the campaign tracker
looks runs up by.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ctm.bundle import CARD_FILE, BundleError, read_manifest, write_bundle
from ctm.result import EvalResult, TaskSpec
from genome import Genome, GenomeError, SchemaError, from_yaml
from genome.io import write_bytes_atomic
from search.export_card import model_card
from search.journal import Journal, JournalCorruptError
from search.mlflow_payload import TAG_CAMPAIGN, TAG_CELL, TAG_HASH, TAG_KIND, TAG_OPERATOR, TAG_PARENT_HASHES
from search.records import EvaluationRecord, Proposal

LOWER_IS_BETTER = frozenset({"ece", "exit_tick_mean", "param_count", "macs_per_forward", "wall_time_s",
                             "train_loss"})
TAG_EXPORT_HASH = "ctmevo.export.genome_hash"
TAG_EXPORT_CAMPAIGN = "ctmevo.export.campaign"
TAG_SOURCE_RUN = "ctmevo.source_run_id"
_RUN_ID = re.compile(r"^[0-9a-f]{32}$")


class ExportError(ValueError):
    """The evaluation asked for cannot be found or exported; the message says what to change."""


@dataclass
class Located:
    """One evaluation and everything known about where it came from."""

    record: EvaluationRecord
    task: TaskSpec
    run_id: str | None = None
    tracking_uri: str | None = None
    experiment_id: str | None = None
    campaign_dir: Path | None = None
    cell: str | None = None
    checkpoint: bytes | None = None
    checkpoint_source: str | None = None
    exit_threshold: float = 0.8
    records: list[EvaluationRecord] = field(default_factory=list)  # the whole journal (lineage)

    @property
    def genome(self) -> Genome:
        return self.record.genome


@dataclass
class Exported:
    bundle: Path
    located: Located
    export_run_id: str | None = None
    model_uri: str | None = None
    warning: str | None = None


# -- choosing ------------------------------------------------------------------------------------------------
def metric_of(record: EvaluationRecord, name: str) -> float | None:
    """``fitness``, a result metric, or a descriptor (``descriptor.NAME`` or ``NAME``) of a record."""
    if name == "fitness":
        return record.result.fitness
    if name in record.result.metrics:
        return record.result.metrics[name]
    descriptors = record.extra.get("descriptors") or {}
    key = name.removeprefix("descriptor.")
    return descriptors.get(key) if isinstance(descriptors, dict) else None


def parse_by(by: str | None) -> tuple[str, bool]:
    """``--by`` → (metric, maximise). ``min:NAME`` / ``max:NAME`` override the default direction."""
    by = by or "fitness"
    if by.startswith(("min:", "max:")):
        return by[4:], by.startswith("max:")
    return by, by not in LOWER_IS_BETTER


def best_of(records: list[EvaluationRecord], by: str | None = None) -> EvaluationRecord:
    metric, maximise = parse_by(by)
    scored = [(v, r) for r in records if r.result.ok and (v := metric_of(r, metric)) is not None]
    if not scored:
        raise ExportError(f"--by {metric}: no successful evaluation has this metric; known metrics: "
                          f"{sorted(_metric_names(records))}")
    sign = 1.0 if maximise else -1.0
    return max(scored, key=lambda vr: (sign * vr[0], -vr[1].birth))[1]


def _metric_names(records: list[EvaluationRecord]) -> set[str]:
    names = {"fitness"}
    for r in records:
        names |= set(r.result.metrics) | {f"descriptor.{d}" for d in (r.extra.get("descriptors") or {})}
    return names


def normalise_cell(cell: str) -> str:
    """``"3_7"``, ``"3,7"``, ``"(3, 7)"`` → ``"3_7"``; ``"12"`` → ``"12"`` (the archive's cell names)."""
    numbers = re.findall(r"\d+", str(cell))
    if not numbers:
        raise ExportError(f"--cell {cell!r}: allowed is a cell name such as 3_7 (grid) or 12 (CVT)")
    return "_".join(str(int(n)) for n in numbers)


def by_hash(records: list[EvaluationRecord], key: str) -> EvaluationRecord | None:
    hits = {r.genome.hash: r for r in records if r.genome.hash.startswith(key)}
    if len(hits) > 1:
        raise ExportError(f"genome hash prefix {key!r} is ambiguous: it matches {sorted(hits)[:10]}; give more "
                          "digits")
    return next(iter(hits.values()), None)


# -- campaign directories ------------------------------------------------------------------------------------
def _campaign(root: Path) -> tuple[dict[str, Any], list[EvaluationRecord], str | None]:
    from search.campaign import CampaignPaths

    paths = CampaignPaths(root)
    if not paths.config.is_file() or not paths.journal.is_file():
        raise ExportError(f"{root} is not a campaign directory (no campaign.yaml and journal.jsonl)")
    try:
        config = yaml.safe_load(paths.config.read_text())
    except yaml.YAMLError as exc:
        raise ExportError(f"{paths.config}: malformed YAML: {exc}".replace("\n", " ")) from None
    if not isinstance(config, dict) or not isinstance(config.get("task"), dict):
        raise ExportError(f"{paths.config}: no 'task' section; is this a campaign directory made by 'ctmevo run'?")
    try:
        records = Journal(paths.journal).records()
    except JournalCorruptError as exc:
        raise ExportError(str(exc)) from None
    uri = (config.get("tracking") or {}).get("uri")
    if uri is None and paths.mlflow_db.is_file():
        uri = f"sqlite:///{paths.mlflow_db.resolve()}"  # as search.reporting.tracking_uri_for
    return config, records, uri


def _cell_elite(root: Path, cell: str) -> str | None:
    """The genome hash holding ``cell`` in the campaign's archive (replayed from its state, else archive.csv)."""
    try:
        from search.campaign import Campaign

        rows = Campaign.open(root).strategy.archive_rows()
    except Exception:  # an older or partly written campaign: fall back to the last archive table
        table = root / "plots" / "archive.csv"
        if not table.is_file():
            return None
        import csv

        with table.open() as fh:
            rows = list(csv.DictReader(fh))
    for row in rows:
        if row.get("cell") is not None and normalise_cell(str(row["cell"])) == cell:
            return str(row["hash"])
    return None


def locate(key: str | None = None, *, best: bool = False, by: str | None = None, cell: str | None = None,
           campaign: str | Path | None = None, tracking_uri: str | None = None) -> Located:
    """Find one evaluation (exactly one of ``key`` (run id or genome hash prefix), ``best``, ``cell``)."""
    if sum([key is not None, best, cell is not None]) != 1:
        raise ExportError("say which evaluation: a run id or genome hash, --best [--by METRIC], or --cell CELL "
                          "(exactly one)")
    if campaign is None:
        uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
        if not uri:
            raise ExportError("say where the evaluations are: --campaign DIR, or --tracking-uri URI "
                              "(or MLFLOW_TRACKING_URI)")
        from search.export_mlflow import locate_in_mlflow

        return locate_in_mlflow(uri, key=key, best=best, by=by, cell=None if cell is None else normalise_cell(cell))
    root = Path(campaign)
    config, records, uri = _campaign(root)
    uri = tracking_uri or uri
    record: EvaluationRecord | None = None
    run_id = None
    if key is not None:
        key = key.strip().lower()
        record = by_hash(records, key) if len(key) <= 16 else None
        if record is None and _RUN_ID.match(key) and uri:
            from search.export_mlflow import hash_of_run

            run_id = key
            record = by_hash(records, hash_of_run(uri, key))
        if record is None:
            raise ExportError(f"{key!r}: no evaluation with this genome hash or run id in {root / 'journal.jsonl'} "
                              f"({len(records)} evaluations)")
    elif best:
        record = best_of(records, by)
    else:
        wanted = normalise_cell(str(cell))
        elite = _cell_elite(root, wanted)
        if elite is None:
            raise ExportError(f"--cell {cell}: no elite in that cell of the archive of {root}")
        record = by_hash(records, elite)
        if record is None:
            raise ExportError(f"--cell {cell}: its elite {elite} is not in the journal of {root}")
    evaluation = config.get("evaluation") or {}
    found = Located(record=record, task=TaskSpec.from_dict(config["task"]), run_id=run_id, tracking_uri=uri,
                    campaign_dir=root, exit_threshold=float(evaluation.get("exit_threshold", 0.8)),
                    records=records, cell=None if cell is None else normalise_cell(str(cell)))
    checkpoint = root / "checkpoints" / f"{record.genome.hash}.safetensors"
    if checkpoint.is_file():
        found.checkpoint, found.checkpoint_source = checkpoint.read_bytes(), str(checkpoint)
    if uri:
        from search.export_mlflow import enrich_from_mlflow

        enrich_from_mlflow(found)
    return found


# -- writing -------------------------------------------------------------------------------------------------
def train_command(out: Path, task: TaskSpec) -> str:
    params = " ".join(f"--param {k}={v}" for k, v in task.params.items())
    return f"ctmevo train {out} --task {task.name} {params} --steps 10000 --device cuda".replace("  ", " ")


def export(found: Located, out: str | Path, *, register: bool = True, overwrite: bool = False,
           registered_name: str | None = None) -> Exported:
    """Write the bundle for ``found`` to ``out`` and (``register``) log it to MLflow as a PyTorch model."""
    out = Path(out)
    source = {"campaign": found.record.campaign, "campaign_dir": str(found.campaign_dir or ""),
              "run_id": found.run_id, "tracking_uri": found.tracking_uri, "experiment_id": found.experiment_id,
              "fitness": found.record.result.fitness, "cell": found.cell, "birth": found.record.birth,
              "checkpoint": found.checkpoint_source}
    try:
        write_bundle(out, genome=found.genome, task_spec=found.task, weights=found.checkpoint,
                     model_seed=found.record.result.seed, source=source, overwrite=overwrite)
    except BundleError as exc:
        hint = " (ctmevo export --force overwrites it)" if "not empty" in str(exc) else ""
        raise ExportError(f"{exc}{hint}") from None
    result = Exported(bundle=out, located=found)
    if register and found.tracking_uri:
        from search.export_mlflow import log_bundle_model

        try:
            result.export_run_id, result.model_uri = log_bundle_model(out, found, registered_name=registered_name)
        except Exception as exc:  # the bundle stands on its own; MLflow being away must not lose it
            result.warning = f"the model was not registered in MLflow at {found.tracking_uri}: {exc}"
    card = model_card(found, read_manifest(out), out=out, train=train_command(out, found.task),
                      export_run_id=result.export_run_id, model_uri=result.model_uri)
    write_bytes_atomic(out / CARD_FILE, card.encode())
    if result.export_run_id:
        from search.export_mlflow import attach_file

        attach_file(str(found.tracking_uri), result.export_run_id, out / CARD_FILE)
    return result


def record_from_run(run: Any, genome: Genome, *, ticks: list[float], certainty: list[float]) -> EvaluationRecord:
    """An :class:`EvaluationRecord` rebuilt from an evaluation run (tags, metrics, genome.yaml)."""
    tags, metrics = run.data.tags, dict(run.data.metrics)
    status = tags.get("ctmevo.status", "ok")
    plain = {k: v for k, v in metrics.items() if "." not in k and k not in ("fitness", "tick_accuracy",
                                                                          "tick_certainty", "train_loss",
                                                                          "behaviour", "attempts")}
    result = EvalResult(genome_hash=genome.hash, status=status, fitness=metrics.get("fitness"), metrics=plain,
                        per_tick_accuracy=ticks, per_tick_certainty=certainty,
                        seed=int(tags.get("ctmevo.seed", "0") or 0))
    parents = tuple(p for p in tags.get(TAG_PARENT_HASHES, "").split(",") if p)
    birth = tags.get("ctmevo.birth", "")
    return EvaluationRecord(
        campaign=tags.get(TAG_CAMPAIGN, ""), birth=int(birth) if birth.isdigit() else 0,
        proposal=Proposal(genome=genome, parents=parents, operator=tags.get(TAG_OPERATOR, "")),
        result=result, finished_at=(run.info.end_time or run.info.start_time or 0) / 1000,
        extra={"descriptors": {k[len("descriptor."):]: v for k, v in metrics.items() if k.startswith("descriptor.")}})


def genome_from_text(text: str, source: str) -> Genome:
    try:
        return from_yaml(text, source=source)
    except (GenomeError, SchemaError) as exc:
        raise ExportError(str(exc)) from None


__all__ = ["LOWER_IS_BETTER", "TAG_CELL", "TAG_EXPORT_CAMPAIGN", "TAG_EXPORT_HASH", "TAG_HASH", "TAG_KIND",
           "TAG_SOURCE_RUN", "ExportError", "Exported", "Located", "best_of", "export", "locate", "metric_of",
           "normalise_cell", "parse_by", "record_from_run", "train_command"]
