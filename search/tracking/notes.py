"""What a person reads in MLflow's UI: addresses, the runs table's shared view and chart view, and the
descriptions of evaluation runs and of the campaign run (pure functions, no I/O).

Every text ctmevo shows in the UI is made here from plain data (:class:`Relative` nodes, counts, the best
standing), so that any writer (the archiver, ``ctmevo sync``) makes the same notes. What a run *holds* (tags,
params, metrics, detail files) is :mod:`search.tracking.payload`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from search.lineage import GeneText, gene_changes, nearer_parent
from search.records import EvaluationRecord, fmt
from search.tracking.payload import (
    GENE_METRIC_PREFIX,
    MAX_NOTE_CHARS,
    SHARED_VIEW_PREFIX,
    SORTED_GENES,
    TAG_BIRTH,
    TAG_CAMPAIGN,
    TAG_CELL,
    TAG_EXPERIMENT_KIND,
    TAG_HASH,
    TAG_INHERITED,
    TAG_KIND,
    TAG_NOTE,
    TAG_OPERATOR,
    TAG_PARENT_HASHES,
    TAG_STATUS,
)

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
                      "tags.`ctmevo.operator`", "tags.`ctmevo.cell`",
                      *(f"metrics.`{GENE_METRIC_PREFIX}{g}`" for g in SORTED_GENES), "metrics.`exit_tick_mean`",
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
                   genes=GeneText(record.genome), inherited=str(record.extra.get("inherited", "")))

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
                    children: Sequence[Relative], campaign_run_id: str | None = None,
                    children_count: int | None = None) -> str:
    """The Markdown description of ``me``'s run: what it is, links to its parents' runs with the genes changed
    from each, links to its children's runs (the :data:`CHILDREN_SHOWN` best; the filter that lists all),
    within :data:`MAX_NOTE_CHARS`. ``parents`` maps each of ``me.parents`` to its node (None: not in MLflow).
    ``children_count``: how many children it has when ``children`` are only the best of them."""
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
    total = len(children) if children_count is None else children_count
    lines = [*head, "", f"**Children** ({total}{'+' if total > CHILDREN_SHOWN else ''})"
             if total else "**Children**: none yet.", ""]
    ranked = sorted(children, key=lambda c: (c.fitness is None, -(c.fitness or 0.0), c.birth or 0))
    budget = MAX_NOTE_CHARS - len("\n".join(lines + tail)) - 200
    for i, child in enumerate(ranked[:CHILDREN_SHOWN]):
        line = (f"- {_link(experiment_id, child)} {child.operator or '?'}, fitness {fmt(child.fitness)}: changed "
                f"{_changes_text(me.genes, child.genes)}")
        if len(line) + 1 > budget:
            lines.append(f"- … {total - i} more: {all_children}")
            break
        budget -= len(line) + 1
        lines.append(line)
    else:
        if total > CHILDREN_SHOWN:
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

    def after(self, record: EvaluationRecord, *, runs: int) -> CampaignCounts:
        """These counts with one more journal result (``runs``: the evaluation runs now)."""
        return CampaignCounts(results=self.results + 1, runs=runs,
                              promotions=self.promotions + (record.rung > 0 and record.repeat == 0),
                              repeats=self.repeats + (record.repeat > 0),
                              failures=self.failures + (not record.result.ok))


@dataclass(frozen=True)
class BestStanding:
    """The best genome by the one ranking (:func:`search.records.rank`) and how it was measured."""

    node: Relative
    rung: int
    seeds: int
    mean: float
    steps: float | None

    @classmethod
    def of(cls, node: Relative, rung: int, values: Sequence[float], steps: float | None) -> BestStanding:
        return cls(node=node, rung=rung, seeds=len(values), mean=sum(values) / len(values), steps=steps)


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
