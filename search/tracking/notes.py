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
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

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
    generation_of,
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
    ``keep`` latest nodes and no children lists: a node it let go is read back from the lookup, and so are a
    parent's children (their count and the best :data:`CHILDREN_SHOWN`): its memory is bounded.
    """

    def __init__(self, *, lookup: FamilyLookup | None = None, keep: int = 20_000) -> None:
        self.nodes: dict[str, Relative] = {}  # with a lookup: the latest, oldest first
        self.children: dict[str, list[str]] = {}  # without a lookup
        self.lookup, self.keep, self._remembered = lookup, keep, 0

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
            return
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

    def note(self, genome_hash: str, *, experiment_id: str, campaign_run_id: str | None) -> str:
        """The description of ``genome_hash``'s run (:func:`evaluation_note`)."""
        me = self.node(genome_hash)
        assert me is not None, f"a note of {genome_hash}, which was never remembered"
        parents = self.relatives(me.parents)
        if self.lookup is None:
            children = [self.nodes[c] for c in self.children.get(genome_hash, [])]
            count = None
        else:
            count, best = self.lookup.children(genome_hash, CHILDREN_SHOWN)
            found = self.relatives(best)
            children = [found[c] for c in best if c in found]
        return evaluation_note(me, experiment_id=experiment_id, campaign_run_id=campaign_run_id,
                               parents={p: parents.get(p) for p in me.parents}, children=children,
                               children_count=count)


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
