"""What an evaluation looks like in MLflow: tag names, params, metrics, the run note (pure functions, no I/O).

Shared by :mod:`search.tracking.archiver` (which writes runs), :mod:`search.tracking.lineages`,
:mod:`search.tracking.family` and :mod:`search.export` (which read them). Every decision about *what* a run
holds is made here, so every writer produces the same runs.

An evaluation run carries:

- **params**: the genes (``ticks``, ``memory_length``, ...), as strings;
- **metrics** (one timestamp per record, ``finished_at``, so a re-sent record repeats identical rows, which
  MLflow's SQL store de-duplicates): ``fitness``; every scalar of ``EvalResult.metrics`` under its own name
  (``val_accuracy``, ``exit_tick_mean`` (exit tick), ``ece`` (calibration error), ``wall_time_s``,
  ``param_count``, ...); ``descriptor.<name>`` (from ``record.extra["descriptors"]``, a mapping or a
  list); numeric scalars of ``record.extra`` as ``extra.<name>``; the numeric genes again as ``gene.<name>``,
  ``birth`` and ``generation`` (so that they sort as numbers in the UI); ``rung`` (the highest fidelity rung
  reached) and ``seeds`` (how many seeds its ``fitness`` is the mean of); ``rank_score`` (written by the
  archiver, :mod:`search.tracking.scores`: sorted descending, the order of ``ctmevo status``); ``attempts``;
- **tags**: ``TAG_*`` below; ``ctmevo.behaviour`` holds the behaviour vector (JSON list of 16 numbers: the
  validation accuracy at 8 evenly spaced relative ticks, then the certainty at the same ticks, on the behaviour
  probe; novelty search measures distances between them), a tag rather than a metric so that the UI does not
  draw it as a curve over steps;
  ``mlflow.note.content`` holds the run's description (:func:`evaluation_note`): links to its parents' and
  children's runs and the genes changed from each parent;
- **detail** (what is bulky or only read by programs): the genome (genes and schema), the per-tick accuracy and
  certainty (tick t = 1..T, the paper's internal ticks) and the training loss with its steps are not in the run
  but in one JSON-lines file per batch of results, an artifact of the campaign run (:func:`detail_path`, one
  row per result, :func:`detail_row`); the run's ``ctmevo.detail`` tag names the file holding its latest result.
  So a run stays a few rows in the store, and the artifact store holds a file per batch, not a folder per run.

The experiment gets :func:`experiment_tags` (opens on its training runs, a shared view of the evaluations
sorted by ``rank_score`` (the order of ``ctmevo status``) with useful columns); :func:`experiment_url` is the
address to print.
"""

from __future__ import annotations

import json
import math
import numbers
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mlflow.entities import Metric, Param, RunTag

from genome import SCHEMA_VERSION
from search.lineage import gene_changes, nearer_parent
from search.records import EvaluationRecord, fmt

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


def generation_of(parent_generations: Iterable[int | None]) -> int:
    """0 for a founder, else 1 + the largest known parent generation (a parent not found counts as 0)."""
    known = [0 if g is None else int(g) for g in parent_generations]
    return 1 + max(known) if known else 0


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
    for name, value in record.genome.to_dict().items():
        add(f"{GENE_METRIC_PREFIX}{name}", value)
    add("birth", record.birth)
    add("rung", record.extra.get("top_rung", record.rung))
    add("seeds", record.extra.get("seeds", 1))
    if generation is not None:
        add("generation", generation)
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
            "genes": record.genome.to_dict(), "schema": SCHEMA_VERSION,
            "tick_accuracy": [as_number(v) for v in r.per_tick_accuracy],
            "tick_certainty": [as_number(v) for v in r.per_tick_certainty],
            "train_loss": [as_number(v) for v in r.train_loss], "train_loss_steps": loss_steps(record)}


def detail_text(items: Iterable[tuple[int, EvaluationRecord]]) -> str:
    return "".join(json.dumps(detail_row(i, r), separators=(",", ":")) + "\n" for i, r in items)


def evaluation_payload(record: EvaluationRecord, *, campaign: str, cell: str | None, campaign_run_id: str | None,
                       parent_run_ids: Sequence[str], generation: int | None = None, note: str | None = None,
                       ) -> tuple[list[RunTag], list[Param], list[Metric]]:
    """The tags, params (genes) and metrics of the run archiving ``record`` in ``campaign``.

    ``generation``: see :func:`generation_of`; ``note``: the run's description (:func:`evaluation_note`).
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
    if result.worker:
        tags[TAG_WORKER] = result.worker
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


# -- links and the run note ----------------------------------------------------------------------------------
WORKFLOW_QUERY = "workflowType=machine_learning"  # MLflow 3's UI otherwise opens experiments on its GenAI pages
CHILDREN_SHOWN = 30  # children listed in a note (the best by fitness); the rest are one filter away
FAMILY_TREE, ARCHIVE_VIEW = "family_tree.html", "archive_view.html"  # campaign-run artifacts (search.tracking.family)


def run_url(experiment_id: str, run_id: str, base: str = "") -> str:
    """The UI address of a run: relative (``#/experiments/…``, for notes inside the UI) or under ``base``."""
    return f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}?{WORKFLOW_QUERY}" if base else \
        f"#/experiments/{experiment_id}/runs/{run_id}?{WORKFLOW_QUERY}"


def artifact_url(experiment_id: str, run_id: str, path: str, base: str = "") -> str:
    """The UI page showing artifact ``path`` of a run (e.g. the campaign run's ``family_tree.html``)."""
    return f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}/artifacts/{path}?{WORKFLOW_QUERY}"


def view_key(campaign: str) -> str:
    """The shared-view key of a campaign's evaluation list (``?viewStateShareKey=``; letters, digits, ``-_.``)."""
    return "ctmevo-" + re.sub(r"[^A-Za-z0-9_.\-]", "_", campaign)


def experiment_url(base: str, experiment_id: str, campaign: str | None = None) -> str:
    """The run list of an experiment, on its training runs; with ``campaign``, its evaluations best first."""
    share = f"viewStateShareKey={view_key(campaign)}&" if campaign else ""
    return f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs?{share}{WORKFLOW_QUERY}"


def ui_base(tracking_uri: str, default: str = "http://127.0.0.1:5000") -> str:
    """Where the UI of ``tracking_uri`` is served: the server itself, or (a local store) ``mlflow ui``'s default."""
    return tracking_uri.rstrip("/") if tracking_uri.startswith(("http://", "https://")) else default


EVALUATION_COLUMNS = ("metrics.`rank_score`", "metrics.`fitness`", "metrics.`seeds`", "metrics.`rung`",
                      "metrics.`train_steps`", "metrics.`val_accuracy`", "metrics.`generation`", "metrics.`birth`",
                      "tags.`ctmevo.operator`", "tags.`ctmevo.cell`", "metrics.`gene.ticks`",
                      "metrics.`gene.memory_length`", "metrics.`gene.d_model`", "metrics.`exit_tick_mean`",
                      "metrics.`param_count`", "tags.`ctmevo.status`")


CHART_SECTION = "ctmevo"


def chart_view(metric_keys: Iterable[str], genes: Sequence[str]) -> dict[str, Any]:
    """The chart tab of the evaluations' shared view: a few charts that answer questions (the best runs' fitness,
    fitness over births and against model size, genes → fitness in parallel coordinates) instead of one bar chart
    per logged metric. MLflow adds a chart for every metric key that has none, so each of ``metric_keys`` gets a
    deleted one; its own sections (model and system metrics) start collapsed."""
    def card(uuid: str, kind: str, **fields: Any) -> dict[str, Any]:
        return {"uuid": uuid, "type": kind, "metricSectionId": CHART_SECTION, "deleted": False, "isGenerated": False,
                **fields}

    shown = [
        card("ctmevo-best", "BAR", metricKey="fitness", runsCountToCompare=10),
        card("ctmevo-births", "SCATTER", xaxis={"key": "birth", "type": "METRIC"},
             yaxis={"key": "fitness", "type": "METRIC"}, runsCountToCompare=500),
        card("ctmevo-size", "SCATTER", xaxis={"key": "param_count", "type": "METRIC"},
             yaxis={"key": "fitness", "type": "METRIC"}, runsCountToCompare=500),
        card("ctmevo-genes", "PARALLEL", selectedParams=list(genes), selectedMetrics=["fitness"], showAllRuns=False,
             runsCountToCompare=100),
    ]
    hidden = [{"uuid": f"ctmevo-hide-{key}", "type": "BAR", "metricKey": key, "metricSectionId": "ctmevo-model",
               "deleted": True, "isGenerated": True} for key in sorted(set(metric_keys))]
    sections = [{"uuid": CHART_SECTION, "name": "ctmevo: what to look at", "display": True, "isReordered": True,
                 "deleted": False, "isGenerated": False},
                {"uuid": "ctmevo-model", "name": "Model metrics", "display": False, "isReordered": False,
                 "deleted": False, "isGenerated": True},
                {"uuid": "ctmevo-system", "name": "System metrics", "display": False, "isReordered": False,
                 "deleted": False, "isGenerated": True}]
    return {"compareRunCharts": shown + hidden, "compareRunSections": sections, "isAccordionReordered": True,
            "hideEmptyCharts": True}


def experiment_tags(*, campaign: str, experiment_id: str, campaign_run_id: str | None,
                    metric_keys: Iterable[str] = (), genes: Sequence[str] = ()) -> dict[str, str]:
    """Experiment tags: a model-training experiment, and a shared view of ``campaign``'s evaluations (filtered
    to them, sorted by ``rank_score`` (best first, as ``ctmevo status``), :data:`EVALUATION_COLUMNS` shown) that
    :func:`experiment_url` opens."""
    view = {"searchFilter": f"tags.`{TAG_CAMPAIGN}` = '{campaign}' and tags.`{TAG_KIND}` = 'evaluation'",
            "orderByKey": "metrics.`rank_score`", "orderByAsc": False, "selectedColumns": list(EVALUATION_COLUMNS),
            "columnOrder": list(EVALUATION_COLUMNS), **chart_view(metric_keys, genes)}
    lines = ["A ctmevo architecture search: one run per campaign, one nested run per evaluated genome. Each "
             "evaluation run's description links its parents' and children's runs.", "",
             f"- [evaluations of `{campaign}`, best first]({experiment_url('', experiment_id, campaign)})"]
    if campaign_run_id:
        tree, archive = (artifact_url(experiment_id, campaign_run_id, f) for f in (FAMILY_TREE, ARCHIVE_VIEW))
        lines.append(f"- [campaign run `{campaign}`]({run_url(experiment_id, campaign_run_id)}): config, QD "
                     f"metrics, pictures; its [family tree]({tree}) and [archive]({archive})")
    return {TAG_EXPERIMENT_KIND: "custom_model_development", SHARED_VIEW_PREFIX + view_key(campaign): json.dumps(view),
            TAG_NOTE: "\n".join(lines)}


@dataclass(frozen=True)
class Relative:
    """One evaluation as a run note shows it (itself, a parent or a child): built from a journal record
    (:meth:`of_record`) or from its MLflow run (:meth:`of_run`), so that any writer can make the notes."""

    genome_hash: str
    run_id: str | None = None
    fitness: float | None = None
    operator: str = ""
    birth: int | None = None
    generation: int | None = None
    cell: str | None = None
    status: str = "ok"
    parents: tuple[str, ...] = ()
    genes: Mapping[str, str] = field(default_factory=dict)
    inherited: str = ""  # "inherited: 0.83 of parameters from <parent hash>", or "" (trained from its own init)

    @classmethod
    def of_record(cls, record: EvaluationRecord, *, run_id: str | None = None, generation: int | None = None,
                  cell: str | None = None) -> Relative:
        return cls(genome_hash=record.genome.hash, run_id=run_id, fitness=record.result.fitness,
                   operator=record.proposal.operator, birth=record.birth, generation=generation, cell=cell,
                   status=record.result.status, parents=tuple(record.proposal.parents),
                   genes={k: str(v) for k, v in record.genome.to_dict().items()},
                   inherited=str(record.extra.get("inherited", "")))

    @classmethod
    def of_run(cls, run: Any) -> Relative:
        tags, metrics = run.data.tags, run.data.metrics
        birth, generation = tags.get(TAG_BIRTH, ""), metrics.get("generation")
        return cls(genome_hash=tags.get(TAG_HASH, ""), run_id=run.info.run_id, fitness=metrics.get("fitness"),
                   operator=tags.get(TAG_OPERATOR, ""), birth=int(birth) if birth.isdigit() else None,
                   generation=None if generation is None else int(generation), cell=tags.get(TAG_CELL),
                   status=tags.get(TAG_STATUS, "ok"), genes=dict(run.data.params),
                   parents=tuple(p for p in tags.get(TAG_PARENT_HASHES, "").split(",") if p),
                   inherited=tags.get(TAG_INHERITED, ""))


def _changes_text(before: Mapping[str, str], after: Mapping[str, str]) -> str:
    diff = gene_changes(before, after)
    return ", ".join(f"{g} {a}→{b}" for g, (a, b) in diff.items()) if diff else "no gene changed"


def _parents_title(parents: Sequence[str]) -> str:
    """``**Parents** (2)``; one genome twice (a crossover of a genome with itself) is one parent, "(both)"."""
    if not parents:
        return "**Founder**: no parents."
    distinct = len(set(parents))
    return f"**Parents** ({distinct}{', both' if len(parents) > distinct else ''})"


def _link(experiment_id: str, node: Relative) -> str:
    short = f"`{node.genome_hash[:12]}`"
    return f"[{short}]({run_url(experiment_id, node.run_id)})" if node.run_id else f"{short} (no run yet)"


def evaluation_note(me: Relative, *, experiment_id: str, parents: Mapping[str, Relative | None],
                    children: Sequence[Relative], campaign_run_id: str | None = None) -> str:
    """The Markdown description of ``me``'s run: what it is, links to its parents' runs with the genes changed
    from each, links to its children's runs (the :data:`CHILDREN_SHOWN` best; the filter that lists all),
    within :data:`MAX_NOTE_CHARS`. ``parents`` maps each of ``me.parents`` to its node (None: not in MLflow)."""
    head = [f"**Genome `{me.genome_hash}`** · fitness **{fmt(me.fitness)}** · {me.operator or 'sample'}"
            + (f" · birth {me.birth}" if me.birth is not None else "")
            + (f" · generation {me.generation}" if me.generation is not None else "")
            + (f" · cell `{me.cell}`" if me.cell else "") + (f" · status **{me.status}**" if me.status != "ok" else ""),
            *([f"Started from a parent's trained weights: {me.inherited}."] if me.inherited else []),
            "", _parents_title(me.parents), ""]
    distinct = list(dict.fromkeys(me.parents))
    found = {h: node for h in distinct if (node := parents.get(h)) is not None}
    near = nearer_parent(me.genes, {h: node.genes for h, node in found.items()})
    for h in distinct:
        parent = parents.get(h)
        if parent is None:
            head.append(f"- `{h[:12]}`: no run in MLflow (not yet sent)")
        elif near is not None and h == near[0]:
            head.append(f"- {_link(experiment_id, parent)} fitness {fmt(parent.fitness)}"
                        f"{' (the nearer parent)' if len(found) > 1 else ''}: changed "
                        f"{_changes_text(parent.genes, me.genes)}")
        else:
            head.append(f"- {_link(experiment_id, parent)} fitness {fmt(parent.fitness)}: the other parent, "
                        f"{len(gene_changes(parent.genes, me.genes))} gene(s) differ")
    tail = [""]
    if campaign_run_id:
        tail.append(f"[Campaign run]({run_url(experiment_id, campaign_run_id)}) · [family tree]"
                    f"({artifact_url(experiment_id, campaign_run_id, FAMILY_TREE)}) · [archive]"
                    f"({artifact_url(experiment_id, campaign_run_id, ARCHIVE_VIEW)})")
    all_children = f"filter `tags.{TAG_PARENT_HASHES} LIKE '%{me.genome_hash}%'`"
    lines = [*head, "", f"**Children** ({len(children)}{'+' if len(children) > CHILDREN_SHOWN else ''})"
             if children else "**Children**: none yet.", ""]
    ranked = sorted(children, key=lambda c: (c.fitness is None, -(c.fitness or 0.0), c.birth or 0))
    budget = MAX_NOTE_CHARS - len("\n".join(lines + tail)) - 200
    for i, child in enumerate(ranked[:CHILDREN_SHOWN]):
        line = (f"- {_link(experiment_id, child)} {child.operator or '?'}, fitness {fmt(child.fitness)}: changed "
                f"{_changes_text(me.genes, child.genes)}")
        if len(line) + 1 > budget:
            lines.append(f"- … {len(ranked) - i} more: {all_children}")
            break
        budget -= len(line) + 1
        lines.append(line)
    else:
        if len(ranked) > CHILDREN_SHOWN:
            lines.append(f"- … more: {all_children}")
    return "\n".join(lines + tail)[:MAX_NOTE_CHARS]


@dataclass(frozen=True)
class CampaignCounts:
    """How a campaign's journal results became evaluation runs (one run per genome)."""

    results: int = 0  # journal results written to MLflow
    runs: int = 0  # evaluation runs (genomes)
    promotions: int = 0  # results at a higher fidelity rung of a genome already evaluated
    repeats: int = 0  # results of another seed of a genome at the same rung
    failures: int = 0


@dataclass(frozen=True)
class BestStanding:
    """The best genome by the one ranking (:func:`search.records.rank`) and how it was measured."""

    node: Relative
    rung: int
    seeds: int
    mean: float
    steps: float | None
    score: float


ANALYSIS_PAGES = (("progress.html", "best so far against compute (training steps, wall time)"),
                  ("genes.html", "fitness against each gene (colour: rung, size: seeds)"),
                  ("elites.html", "the archive's elites in parallel coordinates"),
                  ("qd.html", "QD metrics over evaluations"))  # campaign-run artifacts under analysis/


def campaign_note(*, campaign: str, experiment_id: str, campaign_run_id: str, best: BestStanding | None,
                  counts: CampaignCounts, analysis: bool = True) -> str:
    """The Markdown description of the campaign run: the best genome and how it was measured (rung, steps, seeds;
    whether it is a founder), how journal results map to runs, links to the evaluations, family tree, archive and
    analysis pages."""
    lines = [f"**ctmevo campaign `{campaign}`**", ""]
    if best is None:
        lines.append("No successful evaluation yet.")
    else:
        n = best.node
        measured = (f"mean of **{best.seeds} seeds**" if best.seeds > 1 else "one seed") + (
            f" at rung **{best.rung}**" if best.rung else "") + (
            f" ({fmt(best.steps)} training steps)" if best.steps else "")
        origin = ("a **founder** (from the initial random sample; no parents)" if not n.parents else
                  f"made by {n.operator} from {len(set(n.parents))} parent(s), generation {n.generation}")
        lines += [f"**Best genome**: {_link(experiment_id, n)} fitness **{fmt(best.mean)}**, {measured}; {origin}.",
                  "",
                  "Best means first by the one ranking of `ctmevo status` and `ctmevo export --best`: the highest "
                  "fidelity rung reached, then the mean fitness over the genome's seeds there read with their noise "
                  "(a lucky single seed counts for less than a mean of several), then the earlier birth. The "
                  "runs table sorts by the `rank_score` metric, which encodes that order."]
    lines += ["", f"**Evaluations and runs**: {counts.results:,} evaluations (journal results) are "
              f"{counts.runs:,} runs, one per genome: " + ", ".join(
                  [f"{counts.promotions:,} promotion(s) to a higher rung" if counts.promotions else "no promotions",
                   f"{counts.repeats:,} repeat(s) with another seed" if counts.repeats else "no repeats"])
              + " went into the genome's existing run (its `fitness` is then the mean over the seeds of its highest "
              "rung; `rung`, `seeds` and `train_steps` say which)"
              + (f"; {counts.failures:,} failed." if counts.failures else "."), "",
              f"- [evaluations, best first]({experiment_url('', experiment_id, campaign)})",
              f"- [family tree]({artifact_url(experiment_id, campaign_run_id, FAMILY_TREE)}) · "
              f"[archive]({artifact_url(experiment_id, campaign_run_id, ARCHIVE_VIEW)})"]
    if analysis:
        lines += [f"- [{what}]({artifact_url(experiment_id, campaign_run_id, 'analysis/' + page)})"
                  for page, what in ANALYSIS_PAGES]
    return "\n".join(lines)[:MAX_NOTE_CHARS]
