"""The ancestry of an evaluated genome as a graph: nodes, edges, walks and renderers, with no MLflow.

A :class:`LineageGraph` is a DAG (crossover children have two parents, so a genome reached along two lines is one
node) from a root back to its founders. :func:`lineage_from_records` builds one from a campaign's journal records;
:func:`search.tracking.lineages.lineage` builds the same from MLflow runs (the reading stays with the tracking
code); both use one walk (:func:`walk`), level by level. Each node carries its run id (when known), fitness,
operator and the genes that differ from each parent. Renderers: :meth:`LineageGraph.to_tree_text`,
:meth:`~LineageGraph.to_dot`, :meth:`~LineageGraph.to_png` and :meth:`~LineageGraph.chain` (founder → … → root
along first parents, for model cards); the interactive HTML page is :func:`search.tracking.family.lineage_page`
(it links to runs).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from genome import GENE_BY_NAME, GENE_NAMES, Genome
from search.records import EvaluationRecord, fmt, inherited_lines, reported_fitness

__all__ = ["AmbiguousHashError", "GeneText", "LineageError", "LineageGraph", "LineageNode", "gene_changes",
           "generation_of", "lineage_from_records", "walk"]

MAX_CANDIDATES = 20


def generation_of(parent_generations: Iterable[int | None]) -> int:
    """0 for a founder, else 1 + the largest known parent generation (a parent not found counts as 0)."""
    known = [0 if g is None else int(g) for g in parent_generations]
    return 1 + max(known) if known else 0


class GeneText(Mapping[str, str]):
    """A genome's genes as text (gene → ``str(value)``), made when read: a campaign's run notes keep a node per
    genome, and a string copy of every gene cost ~2.8 KB each; this keeps the genome they already hold."""

    __slots__ = ("genome",)

    def __init__(self, genome: Genome) -> None:
        self.genome = genome

    def __getitem__(self, name: str) -> str:
        if name not in GENE_BY_NAME:
            raise KeyError(name)
        return str(getattr(self.genome, name))

    def __iter__(self) -> Iterator[str]:
        return iter(GENE_NAMES)

    def __len__(self) -> int:
        return len(GENE_NAMES)


def gene_changes(before: Mapping[str, str], after: Mapping[str, str]) -> dict[str, tuple[str, str]]:
    """Genes whose value differs, as ``{gene: (before, after)}`` (``-`` for a gene one side lacks)."""
    if isinstance(before, GeneText) and isinstance(after, GeneText):  # compare values; text only for the changes
        a, b = before.genome, after.genome
        return {g: (str(getattr(a, g)), str(getattr(b, g))) for g in GENE_NAMES
                if str(getattr(a, g)) != str(getattr(b, g))} if a != b else {}
    return {g: (before.get(g, "-"), v) for g, v in after.items() if before.get(g) != v}


def nearer_parent(genes: Mapping[str, str], parents: Mapping[str, Mapping[str, str]],
                  ) -> tuple[str, dict[str, tuple[str, str]]] | None:
    """The parent ``genes`` differ least from (the first such in ``parents``' order) and those differences: a
    crossover child's change is read against the parent it is nearer to, not against one that gave it half its
    genes."""
    diffs = [(h, gene_changes(p, genes)) for h, p in parents.items()]
    return min(diffs, key=lambda hd: len(hd[1])) if diffs else None


class LineageError(LookupError):
    """The run or genome hash asked for cannot be found (or is not an evaluation run)."""


class AmbiguousHashError(LineageError):
    """A genome-hash prefix matches several genomes; ``candidates`` lists them."""

    def __init__(self, prefix: str, candidates: list[dict[str, Any]]) -> None:
        self.prefix, self.candidates = prefix, candidates
        rows = "\n".join(f"  {c['genome_hash']}  campaign {c['campaign']}  run {c['run_id']}  "
                         f"fitness {fmt(c['fitness'])}" for c in candidates)
        more = " (first 20)" if len(candidates) >= MAX_CANDIDATES else ""
        super().__init__(f"genome hash prefix {prefix!r} is ambiguous; it matches{more}:\n{rows}\n"
                         "give more digits, or the run id")


@dataclass(frozen=True)
class LineageNode:
    """One ancestor. ``changes[parent_hash]`` maps each gene that differs to (parent value, own value)."""

    genome_hash: str
    run_id: str | None = None  # None: not (yet) in MLflow, or a graph read from the journal
    campaign: str = ""
    fitness: float | None = None
    operator: str = ""
    birth: int | None = None
    status: str = ""
    parents: tuple[str, ...] = ()
    genes: dict[str, str] = field(default_factory=dict)
    changes: dict[str, dict[str, tuple[str, str]]] = field(default_factory=dict)
    expanded: bool = True  # False: its parents lie beyond the requested depth
    parent_run_ids: tuple[str, ...] = ()  # the parents' MLflow runs as the child recorded them
    found: bool = True  # False: a parent named by a child but not in the source (e.g. a record not yet sent)
    cell: str | None = None
    inherited: str = ""  # "inherited: 0.83 of parameters from <parent hash>" (evaluation.inherit: parent)


@dataclass
class LineageGraph:
    """The ancestry DAG of ``root``; ``nodes`` in breadth-first order from the root (root first)."""

    root: str
    nodes: dict[str, LineageNode]
    tracking_uri: str = ""
    depth: int | None = None
    experiment_id: str = ""

    @property
    def edges(self) -> list[tuple[str, str]]:
        """``(parent, child)`` pairs between shown nodes."""
        return [(p, h) for h, n in self.nodes.items() for p in dict.fromkeys(n.parents) if p in self.nodes]

    def generations(self) -> dict[str, int]:
        """0 for a node without shown parents, else 1 + the largest generation among its shown parents."""
        gen: dict[str, int] = {}
        for start in reversed(list(self.nodes)):  # iterative DFS: lineages can be thousands deep
            stack = [start]
            while stack:
                h = stack[-1]
                todo = [p for p in self.nodes[h].parents if p in self.nodes and p not in gen and p not in stack]
                if todo:
                    stack.extend(todo)
                    continue
                stack.pop()
                gen[h] = 1 + max((gen.get(p, 0) for p in self.nodes[h].parents if p in self.nodes), default=-1)
        return gen

    # -- text ------------------------------------------------------------------------------------------------
    def _label(self, node: LineageNode) -> str:
        if not node.found:
            if not self.tracking_uri:
                return f"{node.genome_hash}  (not in the journal)"
            return f"{node.genome_hash}  (no run in MLflow: not yet sent (see ctmevo status), or deleted)"
        parts = [node.genome_hash, f"fitness {fmt(node.fitness)}", node.operator or "?"]
        if node.birth is not None:
            parts.append(f"birth {node.birth}")
        if node.status and node.status != "ok":
            parts.append(f"status {node.status}")
        if node.run_id:
            parts.append(f"run {node.run_id}")
        if not node.parents:
            parts.append("[founder]")
        return "  ".join(parts)

    def details(self, node: LineageNode) -> list[str]:
        lines = []
        known = [p for p in dict.fromkeys(node.parents) if p in node.changes]
        near = min(known, key=lambda p: len(node.changes[p])) if known else None
        both = " (both parents)" if len(node.parents) > 1 and len(set(node.parents)) == 1 else ""
        for parent in sorted(known, key=lambda p: p != near):  # the nearer parent first
            diff = node.changes[parent]
            if parent == near:
                text = ", ".join(f"{g} {a}→{b}" for g, (a, b) in diff.items()) or "none"
                lines.append(f"changed from {parent[:8]}{both}{' (the nearer parent)' if len(known) > 1 else ''}: "
                             f"{text}")
            else:
                lines.append(f"differs from {parent[:8]} (the other parent) in {len(diff)} gene(s)")
        if node.inherited:
            lines.append(node.inherited)
        if not node.expanded and node.parents:
            lines.append(f"… parents beyond depth {self.depth}: {', '.join(p[:8] for p in node.parents)}")
        return lines

    def to_tree_text(self) -> str:
        """An indented tree, root first, parents below; a node reached again is referenced, not repeated."""
        root = self.nodes[self.root]
        lines = [f"lineage of {self.root} (campaign {root.campaign}): {len(self.nodes) - 1} ancestor(s)"]
        shown: set[str] = set()
        stack: list[tuple[str, str, bool, bool]] = [(self.root, "", True, True)]
        while stack:
            h, prefix, last, is_root = stack.pop()
            node = self.nodes[h]
            branch = "" if is_root else ("└── " if last else "├── ")
            inner = prefix + ("" if is_root else ("    " if last else "│   "))
            if h in shown:
                lines.append(f"{prefix}{branch}{h}  (shown above)")
                continue
            shown.add(h)
            lines.append(prefix + branch + self._label(node))
            kids = [p for p in dict.fromkeys(node.parents) if p in self.nodes]
            lines.extend(inner + ("│   " if kids else "    ") + d for d in self.details(node))
            stack.extend((k, inner, i == len(kids) - 1, False) for i, k in reversed(list(enumerate(kids))))
        return "\n".join(line.rstrip() for line in lines)

    def to_dot(self) -> str:
        """Graphviz source: parent → child edges labelled with the genes that changed."""
        out = ["digraph lineage {", '  rankdir=TB; node [shape=box, style=rounded, fontname="Helvetica"];']
        for h, n in self.nodes.items():
            label = f"{h}\\nfitness {fmt(n.fitness)}\\n{n.operator or '?'}" + (
                f"\\nrun {n.run_id[:12]}" if n.run_id else "\\n(no run)")
            style = ", penwidth=2.5" if h == self.root else (", style=dashed" if not n.found else "")
            out.append(f'  "{h}" [label="{_dot_escape(label)}"{style}];')
        for parent, child in self.edges:
            diff = self.nodes[child].changes.get(parent, {})
            text = ", ".join(f"{g} {a}→{b}" for g, (a, b) in list(diff.items())[:3])
            text += f" +{len(diff) - 3}" if len(diff) > 3 else ""
            out.append(f'  "{parent}" -> "{child}" [label="{_dot_escape(text)}", fontsize=9];')
        out.append("}")
        return "\n".join(out) + "\n"

    def chain(self) -> list[LineageNode]:
        """Founder → … → root along first parents (stops at a parent not in the graph or a repeat)."""
        out, seen = [self.nodes[self.root]], {self.root}
        while out[-1].parents and out[-1].parents[0] in self.nodes and out[-1].parents[0] not in seen:
            seen.add(out[-1].parents[0])
            out.append(self.nodes[out[-1].parents[0]])
        return out[::-1]

    # -- pictures --------------------------------------------------------------------------------------------
    def _figure(self) -> Any:
        from matplotlib.figure import Figure

        gen = self.generations()
        columns: dict[int, list[str]] = {}
        for h in sorted(self.nodes, key=lambda h: (gen[h], self.nodes[h].birth or 0, h)):
            columns.setdefault(gen[h], []).append(h)
        y: dict[str, float] = {}
        for g in sorted(columns):  # order each generation by its parents' mean position (fewer crossings)
            column = sorted(columns[g], key=lambda h: _mean([y[p] for p in self.nodes[h].parents if p in y]))
            for i, h in enumerate(column):
                y[h] = i - (len(column) - 1) / 2
        tallest = max(len(c) for c in columns.values())
        fig = Figure(figsize=(max(5.0, 2.6 * len(columns)), max(3.0, 1.3 * tallest)))
        ax = fig.add_subplot()
        for parent, child in self.edges:
            bend = 0.1 if gen[child] - gen[parent] > 1 else 0.0  # long edges arc past the columns between
            ax.annotate("", xy=(gen[child], y[child]), xytext=(gen[parent], y[parent]),
                        arrowprops={"arrowstyle": "-|>", "color": "0.45", "shrinkA": 34, "shrinkB": 34,
                                    "connectionstyle": f"arc3,rad={bend}"})
        for h, n in self.nodes.items():
            face = "#ffe9a8" if h == self.root else ("#eeeeee" if not n.found else "#d6e8fa")
            ax.text(gen[h], y[h], f"{h[:10]}\nfitness {fmt(n.fitness)}\n{n.operator or '?'}", ha="center",
                    va="center", fontsize=8, family="monospace",
                    bbox={"boxstyle": "round", "facecolor": face, "edgecolor": "0.3",
                          "linestyle": "-" if n.found else "--"})
        ax.set_xlim(-0.6, max(columns) + 0.6)
        ax.set_ylim(-(tallest + 1.5) / 2, (tallest + 1.5) / 2)
        ax.set_xticks(sorted(columns), [f"gen {g}" for g in sorted(columns)])
        ax.set_yticks([])
        for side in ("top", "right", "left"):
            ax.spines[side].set_visible(False)
        ax.set_title(f"lineage of {self.root} (founders left, parent → child)", fontsize=10)
        fig.tight_layout()
        return fig

    def to_png(self, path: str | Path) -> Path:
        """Draw the DAG with matplotlib: one column per generation, arrows parent → child."""
        path = Path(path)
        self._figure().savefig(path, format="png", dpi=120)
        return path


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def _dot_escape(text: str) -> str:
    return text.replace('"', '\\"')


# -- building ------------------------------------------------------------------------------------------------
Fetch = Callable[[list[str], list[LineageNode]], dict[str, "LineageNode | None"]]


def walk(start: LineageNode, fetch: Fetch, depth: int | None, tracking_uri: str = "") -> LineageGraph:
    """Breadth-first from ``start`` to the founders (or ``depth`` generations): ``fetch(hashes, children)``
    returns the nodes of the parents ``hashes`` (``None`` for one it cannot find), without ``changes``."""
    if depth is not None and depth < 0:
        raise ValueError(f"depth = {depth}: allowed is None (to the founders) or an integer >= 0")
    known: dict[str, LineageNode | None] = {start.genome_hash: start}
    levels = [[start.genome_hash]]
    limit = float("inf") if depth is None else depth
    while levels[-1] and len(levels) - 1 < limit + 1:  # one level past the depth: its genes give the changes
        children = [n for h in levels[-1] if (n := known[h]) is not None]
        wanted = list(dict.fromkeys(p for c in children for p in c.parents if p not in known))
        known.update(fetch(wanted, children))
        levels.append(wanted)
    shown = levels if depth is None else levels[: depth + 1]
    nodes = {h: _finished(h, known, expanded=depth is None or i < depth) for i, level in enumerate(shown)
             for h in level}
    return LineageGraph(root=start.genome_hash, nodes=nodes, tracking_uri=tracking_uri, depth=depth)


def _finished(h: str, known: dict[str, LineageNode | None], *, expanded: bool) -> LineageNode:
    node = known.get(h)
    if node is None:
        return LineageNode(genome_hash=h, expanded=False, found=False)
    changes = {}
    for p in dict.fromkeys(node.parents):
        parent = known.get(p)
        if parent is not None:
            changes[p] = gene_changes(parent.genes, node.genes)
    return replace(node, changes=changes, expanded=expanded)


def lineage_from_records(records: Sequence[EvaluationRecord], key: str, depth: int | None = None) -> LineageGraph:
    """The ancestry of the journal record whose genome hash is ``key`` (or starts with it), from records alone."""
    by_hash = {r.genome.hash: r for r in records}
    inherited = inherited_lines(records)
    hits = [h for h in by_hash if h.startswith(key.strip().lower())] if key else []
    if len(hits) != 1:
        what = "is ambiguous: it matches " + ", ".join(sorted(hits)[:10]) if hits else "matches no evaluation"
        raise LineageError(f"genome hash {key!r} {what} ({len(records)} evaluations in the journal)")

    def node(r: EvaluationRecord) -> LineageNode:
        return LineageNode(genome_hash=r.genome.hash, campaign=r.campaign, fitness=reported_fitness(r),
                           operator=r.proposal.operator, birth=r.birth, status=r.result.status,
                           parents=tuple(r.proposal.parents), genes={k: str(v) for k, v in r.genome.to_dict().items()},
                           inherited=inherited.get(r.genome.hash, ""))

    def fetch(hashes: list[str], children: list[LineageNode]) -> dict[str, LineageNode | None]:
        return {h: node(by_hash[h]) if h in by_hash else None for h in hashes}

    return walk(node(by_hash[hits[0]]), fetch, depth)
