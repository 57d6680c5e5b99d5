"""What an evaluation looks like in MLflow: tag names, params, metrics, detail files (pure functions, no I/O).

Shared by :mod:`search.tracking.archiver` (which writes runs), :mod:`search.tracking.lineages`,
:mod:`search.tracking.family` and :mod:`search.export` (which read them). Every decision about *what* a run
holds is made here, so every writer produces the same runs.

An evaluation run carries:

- **params**: the genes (``ticks``, ``memory_length``, ...), as strings;
- **metrics** (one timestamp per record, ``finished_at``, so a re-sent record repeats identical rows, which
  MLflow's SQL store de-duplicates): ``fitness``; every scalar of ``EvalResult.metrics`` under its own name
  (``val_accuracy``, ``exit_tick_mean`` (exit tick), ``ece`` (calibration error), ``wall_time_s``,
  ``param_count``, ...); ``descriptor.<name>`` (from ``record.extra["descriptors"]``, a mapping or a
  list); numeric scalars of ``record.extra`` as ``extra.<name>``; the genes of the runs table's columns
  (:data:`SORTED_GENES`) again as ``gene.<name>``, ``birth`` and ``generation`` (so that they sort as numbers in
  the UI); ``rung`` (the highest fidelity rung reached) and ``seeds`` (how many seeds its ``fitness`` is the mean
  of); ``rank_score`` (written by the archiver, :mod:`search.tracking.scores`: sorted descending, the order of
  ``ctmevo status``); ``attempts`` only for a retried evaluation (more than one);
- **tags**: ``TAG_*`` below; ``ctmevo.behaviour`` holds the behaviour vector (JSON list of 16 numbers: the
  validation accuracy at 8 evenly spaced relative ticks, then the certainty at the same ticks, on the behaviour
  probe; novelty search measures distances between them), a tag rather than a metric so that the UI does not
  draw it as a curve over steps;
  ``mlflow.note.content`` holds the run's description (:func:`search.tracking.notes.evaluation_note`): links
  to its parents' and children's runs and the genes changed from each parent;
- **detail** (what is bulky or only read by programs): the genome (genes and schema), the worker, the per-tick
  accuracy and certainty (tick t = 1..T, the paper's internal ticks) and the training loss with its steps are not
  in the run
  but in one JSON-lines file per batch of results, an artifact of the campaign run (:func:`detail_path`, one
  row per result, :func:`detail_row`); the run's ``ctmevo.detail`` tag names the file holding its latest result.
  So the curves stay out of the store's tables, and the artifact store holds a file per batch, not a folder per
  run.

What a run costs the store is mostly rows, not bytes: in MLflow's SQL schema a metric value is a row in two tables
with five indexes (about 430 bytes in sqlite), a param or tag about 170 bytes plus its value. So each metric here is
one a researcher sorts or filters by; the rest is in the detail file.

What a person reads (addresses, the experiment's shared view sorted by ``rank_score``, the run and campaign
descriptions) is made in :mod:`search.tracking.notes`.
"""

from __future__ import annotations

import json
import math
import numbers
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from mlflow.entities import Metric, Param, RunTag

from genome import SCHEMA_VERSION
from search.lineage import generation_of
from search.records import EvaluationRecord

TAG_PARENT_RUN = "mlflow.parentRunId"
TAG_KIND = "ctmevo.kind"  # "campaign", "evaluation", "export" or "training"
TAG_CAMPAIGN = "ctmevo.campaign"
TAG_HASH = "ctmevo.genome_hash"
TAG_PARENT_HASHES = "ctmevo.parent_hashes"  # comma-separated, all parents (two for crossover)
TAG_PARENT_RUN_IDS = "ctmevo.parent_run_ids"  # comma-separated run ids of the parents found in MLflow
TAG_OPERATOR = "ctmevo.operator"
TAG_BIRTH = "ctmevo.birth"
TAG_CELL = "ctmevo.cell"
TAG_STATUS = "ctmevo.status"
TAG_FAILURE = "ctmevo.failure"
TAG_SEED = "ctmevo.seed"
TAG_RUNG = "ctmevo.rung"  # the highest fidelity rung the genome reached (with rungs)
TAG_SEEDS = "ctmevo.seeds"  # how many seeds its fitness is the mean of (with repeats or rungs)
TAG_INHERITED = "ctmevo.inherited"  # "inherited: 0.83 of parameters from <parent hash>" (evaluation.inherit)
TAG_INHERITED_FROM = "ctmevo.inherited_from"  # the parent hash the child's starting weights came from
TAG_RESULT_INDEX = "ctmevo.result_index"  # the journal result this run holds last (re-sent batches skip it)
TAG_SOURCE_RUN = "ctmevo.source_run_id"  # on export and training runs: the evaluation run they came from
TAG_EXPORT_HASH = "ctmevo.export.genome_hash"  # export runs use their own keys, never the evaluation ones
TAG_EXPORT_CAMPAIGN = "ctmevo.export.campaign"
TAG_BEHAVIOUR = "ctmevo.behaviour"  # JSON list: the behaviour vector novelty search compares
TAG_DETAIL = "ctmevo.detail"  # the campaign-run artifact holding the run's genome and curves (detail_path)
TAG_NOTE = "mlflow.note.content"  # a run's (or an experiment's) Markdown description in the UI
TAG_EXPERIMENT_KIND = "mlflow.experimentKind"
SHARED_VIEW_PREFIX = "mlflow.sharedViewState."  # experiment tag read by the UI's ?viewStateShareKey=KEY
GENE_METRIC_PREFIX = "gene."
SORTED_GENES = ("ticks", "memory_length", "d_model")  # as metrics too (the runs table's columns sort them as numbers)
# run metrics that are not EvalResult metrics (readers rebuilding a record skip them, and names with a dot)
RUN_ONLY_METRICS = frozenset({"fitness", "tick_accuracy", "tick_certainty", "train_loss", "behaviour", "attempts",
                              "birth", "generation", "rank_score", "rung", "seeds"})
MAX_TAG_CHARS = 5000
MAX_NOTE_CHARS = 8000  # MLflow's limit on a run tag's value
MAX_PARAM_CHARS = 500
BATCH_METRICS, BATCH_PARAMS_TAGS, BATCH_ENTITIES = 1000, 100, 1000  # MLflow's log_batch limits


def metric_key(name: str) -> str:
    """``name`` made acceptable to MLflow (letters, digits, ``_ - .``; anything else becomes ``_``)."""
    key = re.sub(r"[^\w.\-]", "_", str(name)).strip(".") or "_"
    return re.sub(r"\.{2,}", ".", key)[:250]


def as_number(value: Any) -> float | None:
    """``value`` as a finite float, or ``None`` for anything else (bools, strings, NaN, infinities)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def generations(records: Iterable[EvaluationRecord]) -> dict[str, int]:
    """Every record's generation (founders 0), in one pass in birth order (parents are born before children)."""
    out: dict[str, int] = {}
    for r in sorted(records, key=lambda r: r.birth):
        parents = r.proposal.parents
        out[r.genome.hash] = generation_of([out.get(p) for p in parents]) if parents else 0
    return out


def evaluation_metrics(record: EvaluationRecord, *, generation: int | None = None) -> list[Metric]:
    """Every metric of one evaluation run (see the module docstring for names and steps)."""
    ts = int(record.finished_at * 1000)
    result = record.result
    out: list[Metric] = []

    def add(key: str, value: Any, step: int = 0) -> None:
        number = as_number(value)
        if number is not None:
            out.append(Metric(metric_key(key), number, ts, step))

    # With fidelity rungs or repeated seeds, a genome's run gets one point per measurement at step = the training
    # steps it had: ``fitness`` is its mean over the seeds of its highest rung (what the campaign ranks by),
    # ``fitness_seed`` this one seed's value.
    standing = "fitness_mean" in record.extra
    step = int(as_number(result.metrics.get("train_steps")) or 0) if standing else 0
    if standing:
        add("fitness", record.extra.get("fitness_mean"), step)
        add("fitness_seed", result.fitness, step)
    else:
        add("fitness", result.fitness)
    for name, value in sorted(result.metrics.items()):
        add(name, value, step)
    descriptors = record.extra.get("descriptors")
    if isinstance(descriptors, Mapping):
        for name, value in descriptors.items():
            add(f"descriptor.{name}", value)
    elif isinstance(descriptors, Sequence) and not isinstance(descriptors, str):
        for i, value in enumerate(descriptors):
            add(f"descriptor.{i}", value)
    for name, value in sorted(record.extra.items()):
        if name not in ("descriptors", "fitness_mean"):
            add(f"extra.{name}", value, step)
    for name in SORTED_GENES:
        add(f"{GENE_METRIC_PREFIX}{name}", getattr(record.genome, name, None))
    add("birth", record.birth)
    add("rung", record.extra.get("top_rung", record.rung))
    add("seeds", record.extra.get("seeds", 1))
    if generation is not None:
        add("generation", generation)
    if result.attempts > 1:
        add("attempts", result.attempts)
    return out


def loss_steps(record: EvaluationRecord) -> list[int]:
    """The optimizer step of each value of ``result.train_loss`` (losses are recorded every few steps)."""
    n = len(record.result.train_loss)
    steps = as_number(record.result.metrics.get("train_steps"))
    stride = steps / n if steps and n and steps > n else 1.0
    return [round((i + 1) * stride) for i in range(n)]


DETAIL_FOLDER = "detail"


def detail_path(first: int, last: int) -> str:
    """The campaign-run artifact holding the detail of journal results ``first``..``last``."""
    return f"{DETAIL_FOLDER}/results-{first:09d}-{last:09d}.jsonl"


def detail_row(index: int, record: EvaluationRecord) -> dict[str, Any]:
    """One result's detail: its genome, per-tick accuracy and certainty, and loss curve (steps, values)."""
    r = record.result
    return {"index": index, "genome_hash": record.genome.hash, "rung": record.rung, "repeat": record.repeat,
            "genes": record.genome.to_dict(), "schema": SCHEMA_VERSION, "worker": r.worker, "attempts": r.attempts,
            "tick_accuracy": [as_number(v) for v in r.per_tick_accuracy],
            "tick_certainty": [as_number(v) for v in r.per_tick_certainty],
            "train_loss": [as_number(v) for v in r.train_loss], "train_loss_steps": loss_steps(record)}


def detail_text(items: Iterable[tuple[int, EvaluationRecord]]) -> str:
    return "".join(json.dumps(detail_row(i, r), separators=(",", ":")) + "\n" for i, r in items)


def evaluation_payload(record: EvaluationRecord, *, campaign: str, cell: str | None, campaign_run_id: str | None,
                       parent_run_ids: Sequence[str], generation: int | None = None, note: str | None = None,
                       ) -> tuple[list[RunTag], list[Param], list[Metric]]:
    """The tags, params (genes) and metrics of the run archiving ``record`` in ``campaign``.

    ``generation``: see :func:`generation_of`; ``note``: the run's description
    (:func:`search.tracking.notes.evaluation_note`).
    """
    result = record.result
    tags = {
        TAG_KIND: "evaluation",
        TAG_CAMPAIGN: campaign,
        TAG_HASH: record.genome.hash,
        TAG_PARENT_HASHES: ",".join(record.proposal.parents),
        TAG_PARENT_RUN_IDS: ",".join(parent_run_ids),
        TAG_OPERATOR: record.proposal.operator,
        TAG_BIRTH: str(record.birth),
        TAG_STATUS: result.status,
        TAG_SEED: str(result.seed),
    }
    if campaign_run_id:
        tags[TAG_PARENT_RUN] = campaign_run_id
    if cell is not None:
        tags[TAG_CELL] = str(cell)
    if record.rung or record.repeat or "seeds" in record.extra:
        tags[TAG_RUNG] = str(record.extra.get("top_rung", record.rung))
        tags[TAG_SEEDS] = str(record.extra.get("seeds", 1))
    if record.extra.get("inherited_from"):
        tags[TAG_INHERITED_FROM] = str(record.extra["inherited_from"])
        tags[TAG_INHERITED] = str(record.extra.get("inherited", ""))[:MAX_TAG_CHARS]
    if result.failure is not None:
        tags[TAG_FAILURE] = f"{result.failure.kind}: {result.failure.message}"[:MAX_TAG_CHARS]
    behaviour = [x for v in result.behaviour if (x := as_number(v)) is not None]
    if behaviour:
        tags[TAG_BEHAVIOUR] = json.dumps([float(f"{v:.6g}") for v in behaviour])[:MAX_TAG_CHARS]
    if note:
        tags[TAG_NOTE] = note[:MAX_NOTE_CHARS]
    params = [Param(name, str(value)[:MAX_PARAM_CHARS]) for name, value in record.genome.to_dict().items()]
    return [RunTag(k, v) for k, v in tags.items()], params, evaluation_metrics(record, generation=generation)


def batches(metrics: Sequence[Metric] = (), params: Sequence[Param] = (), tags: Sequence[RunTag] = (),
            ) -> Iterator[tuple[list[Metric], list[Param], list[RunTag]]]:
    """Split one run's values into as few ``log_batch`` calls as MLflow's limits allow (at least one)."""
    i = j = k = 0
    while True:
        p, t = list(params[i:i + BATCH_PARAMS_TAGS]), list(tags[j:j + BATCH_PARAMS_TAGS])
        m = list(metrics[k:k + min(BATCH_METRICS, BATCH_ENTITIES - len(p) - len(t))])
        yield m, p, t
        i, j, k = i + len(p), j + len(t), k + len(m)
        if i >= len(params) and j >= len(tags) and k >= len(metrics):
            return


def flatten_config(config: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """``{"a": {"b": 1}}`` → ``{"a.b": "1"}``: config params for the campaign run (values truncated)."""
    flat: dict[str, str] = {}
    for key, value in config.items():
        name = metric_key(f"{prefix}{key}")
        if isinstance(value, Mapping) and value:
            flat.update(flatten_config(value, f"{name}."))
        else:
            flat[name] = str(value)[:MAX_PARAM_CHARS]
    return flat
