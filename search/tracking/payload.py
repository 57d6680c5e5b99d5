"""What an evaluation looks like in MLflow: tag names, params, metrics (pure functions, no I/O).

Shared by :mod:`search.tracking.archiver` (which writes runs), :mod:`search.tracking.lineages` and
:mod:`search.export` (which read them).

An evaluation run carries:

- **params**: the genes (``ticks``, ``memory_length``, ...), as strings;
- **metrics** (one timestamp per record, ``finished_at``, so a re-sent record repeats identical rows, which
  MLflow's SQL store de-duplicates): ``fitness``; every scalar of ``EvalResult.metrics`` under its own name
  (``val_accuracy``, ``exit_tick_mean`` (exit tick), ``ece`` (calibration error), ``wall_time_s``,
  ``param_count``, ...); ``descriptor.<name>`` (from ``record.extra["descriptors"]``, a mapping or a
  list); numeric scalars of ``record.extra`` as ``extra.<name>``; ``tick_accuracy`` and ``tick_certainty``
  with step = tick t (1..T, the paper's internal ticks); ``train_loss`` with step = optimizer step;
  ``behaviour`` with step = index; ``attempts``;
- **tags**: ``TAG_*`` below.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from mlflow.entities import Metric, Param, RunTag

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
TAG_WORKER = "ctmevo.worker"
TAG_RESULT_INDEX = "ctmevo.result_index"  # the journal result this run holds last (re-sent batches skip it)
TAG_SOURCE_RUN = "ctmevo.source_run_id"  # on export and training runs: the evaluation run they came from
TAG_EXPORT_HASH = "ctmevo.export.genome_hash"  # export runs use their own keys, never the evaluation ones
TAG_EXPORT_CAMPAIGN = "ctmevo.export.campaign"
MAX_TAG_CHARS = 5000
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


def evaluation_metrics(record: EvaluationRecord) -> list[Metric]:
    """Every metric of one evaluation run (see the module docstring for names and steps)."""
    ts = int(record.finished_at * 1000)
    result = record.result
    out: list[Metric] = []

    def add(key: str, value: Any, step: int = 0) -> None:
        number = as_number(value)
        if number is not None:
            out.append(Metric(metric_key(key), number, ts, step))

    add("fitness", result.fitness)
    for name, value in sorted(result.metrics.items()):
        add(name, value)
    descriptors = record.extra.get("descriptors")
    if isinstance(descriptors, Mapping):
        for name, value in descriptors.items():
            add(f"descriptor.{name}", value)
    elif isinstance(descriptors, Sequence) and not isinstance(descriptors, str):
        for i, value in enumerate(descriptors):
            add(f"descriptor.{i}", value)
    for name, value in sorted(record.extra.items()):
        if name != "descriptors":
            add(f"extra.{name}", value)
    for tick, value in enumerate(result.per_tick_accuracy, start=1):
        add("tick_accuracy", value, tick)
    for tick, value in enumerate(result.per_tick_certainty, start=1):
        add("tick_certainty", value, tick)
    n = len(result.train_loss)
    steps = as_number(result.metrics.get("train_steps"))
    stride = steps / n if steps and n and steps > n else 1.0  # losses recorded every few steps
    for i, value in enumerate(result.train_loss):
        add("train_loss", value, round((i + 1) * stride))
    for i, value in enumerate(result.behaviour):
        add("behaviour", value, i)
    add("attempts", result.attempts)
    return out


def evaluation_payload(record: EvaluationRecord, *, campaign: str, cell: str | None, campaign_run_id: str | None,
                       parent_run_ids: Sequence[str]) -> tuple[list[RunTag], list[Param], list[Metric]]:
    """The tags, params (genes) and metrics of the run archiving ``record`` in ``campaign``."""
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
    if result.worker:
        tags[TAG_WORKER] = result.worker
    if result.failure is not None:
        tags[TAG_FAILURE] = f"{result.failure.kind}: {result.failure.message}"[:MAX_TAG_CHARS]
    params = [Param(name, str(value)[:MAX_PARAM_CHARS]) for name, value in record.genome.to_dict().items()]
    return [RunTag(k, v) for k, v in tags.items()], params, evaluation_metrics(record)


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
