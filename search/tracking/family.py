"""The whole campaign as pages a researcher can walk: a family tree and an archive view (self-contained HTML).

:func:`family_tree_html` draws every evaluation of a campaign (from journal records) as a node: one column per
generation (founders left; a child sits right of its parents), coloured by fitness (viridis; failures grey),
an edge from each parent; each node a link to its MLflow run. The page zooms (wheel) and pans (drag), filters
by archive cell, operator and hash prefix, and a click on a node highlights its ancestry and descendants and
shows its details (:mod:`search.tracking.family_page` holds the style and script; no network, no CDN).
:func:`archive_view_html` draws the QD archive: one square per cell, coloured by its elite's fitness, each a
link to the elite's run. :func:`write_family_views` writes both into a folder (the campaign's ``plots/``), for
the campaign to log as artifacts of its campaign run. ``ctmevo lineage --format html`` draws one ancestry with
the same page (:func:`family_page`).
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from genome.io import write_bytes_atomic
from search.lineage import nearer_parent
from search.records import EvaluationRecord, best_record, fmt, inherited_lines, reported_fitness
from search.tracking.family_page import ARCHIVE_SCRIPT, SCRIPT, STYLE
from search.tracking.notes import ARCHIVE_VIEW, FAMILY_TREE, ui_base

__all__ = ["FamilyNode", "archive_view_html", "family_page", "family_tree_html", "fitness_colour", "lineage_page",
           "nodes_from_records", "write_family_views"]

COL, ROW, RADIUS = 150, 26, 8
# viridis at 9 evenly spaced points (matplotlib's colormap data), interpolated linearly between them
_VIRIDIS = ["#440154", "#472d7b", "#3b528b", "#2c728e", "#21918c", "#28ae80", "#5ec962", "#addc30", "#fde725"]


@dataclass(frozen=True)
class FamilyNode:
    """One evaluation on the page: its run (if known), fitness, how it was made, where it landed."""

    genome_hash: str
    run_id: str | None = None
    fitness: float | None = None
    operator: str = ""
    birth: int | None = None
    cell: str | None = None
    status: str = "ok"
    parents: tuple[str, ...] = ()
    changes: str = ""  # genes changed from the nearer parent (search.lineage.nearer_parent), as text
    inherited: str = ""  # "inherited: 0.83 of parameters from <parent hash>" (evaluation.inherit: parent)


def fitness_colour(value: float | None, low: float, high: float) -> str:
    """The viridis colour of ``value`` on [low, high] (grey for a missing value)."""
    if value is None:
        return "#cccccc"
    t = 0.5 if high <= low else min(1.0, max(0.0, (value - low) / (high - low)))
    i = min(int(t * 8), 7)
    f = t * 8 - i
    a, b = (tuple(int(c[j:j + 2], 16) for j in (1, 3, 5)) for c in _VIRIDIS[i:i + 2])
    return "#" + "".join(f"{round(x + (y - x) * f):02x}" for x, y in zip(a, b, strict=True))


def nodes_from_records(records: Sequence[EvaluationRecord], run_ids: Mapping[str, str],
                       cells: Mapping[str, str | None] | None = None) -> list[FamilyNode]:
    """One node per record (birth order), with its run id from ``run_ids`` (genome hash → run id)."""
    by_hash = {r.genome.hash: r for r in records}
    inherited = inherited_lines(records)
    out = []
    for r in sorted(records, key=lambda r: r.birth):
        parents = tuple(r.proposal.parents)
        near = nearer_parent({k: str(v) for k, v in r.genome.to_dict().items()},
                             {p: {k: str(v) for k, v in by_hash[p].genome.to_dict().items()}
                              for p in dict.fromkeys(parents) if p in by_hash})
        diff = near[1] if near else {}
        cell = (cells or {}).get(r.genome.hash)
        out.append(FamilyNode(genome_hash=r.genome.hash, run_id=run_ids.get(r.genome.hash), fitness=reported_fitness(r),
                              operator=r.proposal.operator, birth=r.birth, status=r.result.status, parents=parents,
                              cell=None if cell is None else str(cell),
                              changes=", ".join(f"{g} {a}→{b}" for g, (a, b) in diff.items()),
                              inherited=inherited.get(r.genome.hash, "")))
    return out


def _layout(nodes: Sequence[FamilyNode]) -> tuple[dict[str, tuple[float, float]], dict[str, int]]:
    """Positions: x by generation; inside a column, ordered by the mean height of the parents (fewer crossings)."""
    known = {n.genome_hash: n for n in nodes}
    gen: dict[str, int] = {}
    for n in sorted(nodes, key=lambda n: n.birth or 0):
        shown = [gen[p] for p in n.parents if p in gen]
        gen[n.genome_hash] = 1 + max(shown) if shown else 0
    for n in nodes:  # a parent born after its child (not in birth order): place it anyway
        gen.setdefault(n.genome_hash, 0)
    columns: dict[int, list[str]] = {}
    for n in sorted(nodes, key=lambda n: (gen[n.genome_hash], n.birth or 0)):
        columns.setdefault(gen[n.genome_hash], []).append(n.genome_hash)
    pos: dict[str, tuple[float, float]] = {}
    for g in sorted(columns):
        def key(h: str) -> tuple[float, int]:
            ys = [pos[p][1] for p in known[h].parents if p in pos]
            return (sum(ys) / len(ys) if ys else 0.0, known[h].birth or 0)

        column = sorted(columns[g], key=key)
        for i, h in enumerate(column):
            pos[h] = (g * COL, (i - (len(column) - 1) / 2) * ROW)
    return pos, gen


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _svg_tree(nodes: Sequence[FamilyNode], root: str | None) -> tuple[str, int, str]:
    pos, gen = _layout(nodes)
    scores = [n.fitness for n in nodes if n.fitness is not None and n.status == "ok"]
    low, high = (min(scores), max(scores)) if scores else (0.0, 1.0)
    parts = []
    for n in nodes:
        x, y = pos[n.genome_hash]
        for p in dict.fromkeys(n.parents):
            if p in pos:
                px, py = pos[p]
                mid, a, b = (px + x) / 2, px + RADIUS, x - RADIUS
                parts.append(f'<path class="edge" data-from="{_esc(p)}" data-to="{_esc(n.genome_hash)}" '
                             f'd="M{a:.1f},{py:.1f} C{mid:.1f},{py:.1f} {mid:.1f},{y:.1f} {b:.1f},{y:.1f}"/>')
    for n in nodes:
        x, y = pos[n.genome_hash]
        ok = n.status == "ok"
        colour = fitness_colour(n.fitness, low, high) if ok else "#cccccc"
        tip = (f"{n.genome_hash}  fitness {fmt(n.fitness)}  {n.operator or 'sample'}  birth {n.birth}"
               + (f"  cell {n.cell}" if n.cell else "") + ("" if ok else f"  {n.status}")
               + (f"\nchanged: {n.changes}" if n.changes else "") + (f"\n{n.inherited}" if n.inherited else "")
               + (f"\nrun {n.run_id}" if n.run_id else ""))
        data = {"hash": n.genome_hash, "run": n.run_id or "", "fitness": fmt(n.fitness), "op": n.operator or "sample",
                "birth": "" if n.birth is None else n.birth, "gen": gen[n.genome_hash], "cell": n.cell or "",
                "status": n.status, "parents": ",".join(n.parents), "changes": n.changes}
        attrs = " ".join(f'data-{k}="{_esc(v)}"' for k, v in data.items())
        ring = f'<circle r="{RADIUS + 5}" fill="none" stroke="#d00" stroke-width="2"/>' if n.genome_hash == root else ""
        parts.append(f'<a class="node{"" if ok else " failed"}" href="#" {attrs} '
                     f'transform="translate({x:.1f},{y:.1f})">'
                     f'<title>{_esc(tip)}</title>{ring}<circle r="{RADIUS}" fill="{colour}"/>'
                     f'<text x="{RADIUS + 3}" y="3">{_esc(n.genome_hash[:8])} {_esc(fmt(n.fitness, 3))}</text></a>')
    return "".join(parts), len(nodes), _legend(low, high, " · grey: failed")


def _legend(low: float, high: float, extra: str = "") -> str:
    """The fitness colour scale; with one value (a single node, equal fitness) a single swatch says so."""
    if high <= low:
        return (f'<span class="legend">fitness {fmt(low, 3)} <span class="bar" style="width:14px;background:'
                f'{fitness_colour(low, low, high)}"></span> (one value: no scale){extra}</span>')
    return (f'<span class="legend">fitness {fmt(low, 3)} <span class="bar" style="background:'
            f'linear-gradient(to right,{",".join(_VIRIDIS)})"></span> {fmt(high, 3)}{extra}</span>')


def family_page(nodes: Sequence[FamilyNode], *, title: str, experiment_id: str | None, base: str,
                root: str | None = None, extra_html: str = "") -> str:
    """The interactive page for ``nodes`` (a whole campaign or one ancestry); ``root`` is ringed and selected
    first (default: the fittest node); ``base``: the UI address links start with (see :func:`ui_base`)."""
    svg, count, legend = _svg_tree(nodes, root)
    fittest = max((n for n in nodes if n.fitness is not None and n.status == "ok"), key=lambda n: n.fitness,
                  default=None)
    first = root or (fittest.genome_hash if fittest else "")
    options = {name: sorted({getattr(n, attr) or "" for n in nodes} - {""}) for name, attr in
               (("cell", "cell"), ("op", "operator"))}
    selects = "".join(
        f'<label>{label} <select id="f{name}"><option value="">any</option>'
        + "".join(f'<option value="{_esc(v)}">{_esc(v)}</option>' for v in options[name]) + "</select></label>"
        for name, label in (("cell", "cell"), ("op", "operator")))
    return (f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{_esc(title)}</title><style>{STYLE}</style>"
            f"</head><body><header><h1>{_esc(title)}</h1>{selects}<label>hash <input id='fhash' size='10'></label>"
            "<button id='zin'>+</button><button id='zout'>−</button><button id='fit'>fit</button>"
            f"<button id='best'>best</button><span id='count'></span>{legend}</header><div id='wrap'>"
            f"<svg id='view' data-base='{_esc(base)}' data-experiment='{_esc(experiment_id or '')}' "
            f"data-best='{_esc(first)}' data-count='{count}'><g id='vp'>{svg}</g></svg>"
            "<div id='panel'>Click a node: its details, its run, its ancestry and descendants. Wheel: zoom; drag: "
            f"pan.</div></div>{extra_html}<script>{SCRIPT}</script></body></html>\n")


def lineage_page(graph: Any, base: str | None = None) -> str:
    """The page of one ancestry (a :class:`~search.lineage.LineageGraph`), founders left, the root
    ringed and selected, links to runs under ``base`` (default: :func:`ui_base` of the graph's tracking URI);
    below it, the ancestors' table and the tree as text."""
    nodes = []
    for h, n in reversed(list(graph.nodes.items())):  # founders first
        known = [p for p in dict.fromkeys(n.parents) if p in n.changes]
        diff = min((n.changes[p] for p in known), key=len) if known else {}  # the nearer parent's
        nodes.append(FamilyNode(genome_hash=h, run_id=n.run_id, fitness=n.fitness, operator=n.operator,
                                birth=n.birth, cell=n.cell, status=n.status or ("ok" if n.found else "missing"),
                                parents=n.parents if n.expanded else (),
                                changes=", ".join(f"{g} {a}→{b}" for g, (a, b) in diff.items()),
                                inherited=n.inherited))
    rows = "".join(
        f"<tr><td><code>{_esc(h)}</code></td><td>{fmt(n.fitness)}</td><td>{_esc(n.operator)}</td>"
        f"<td>{'' if n.birth is None else n.birth}</td><td><code>{_esc(n.run_id or '—')}</code></td>"
        f"<td>{_esc('; '.join(graph.details(n)))}</td></tr>" for h, n in graph.nodes.items())
    extra = ("<section style='padding:10px 14px'><h2>Ancestors</h2><p>Tracking URI: <code>"
             f"{_esc(graph.tracking_uri)}</code></p><table><tr><th>genome hash</th><th>fitness</th>"
             "<th>operator</th><th>birth</th><th>run id</th><th>genes changed</th></tr>"
             f"{rows}</table><h2>Tree</h2><pre>{_esc(graph.to_tree_text())}</pre></section>")
    return family_page(nodes, title=f"lineage of {graph.root} ({len(graph.nodes) - 1} ancestors)",
                       experiment_id=graph.experiment_id, root=graph.root, extra_html=extra,
                       base=base or ui_base(graph.tracking_uri))


def family_tree_html(records: Sequence[EvaluationRecord], run_ids: Mapping[str, str], *, tracking_uri: str,
                     experiment_id: str | None, cells: Mapping[str, str | None] | None = None,
                     title: str | None = None, total: int | None = None) -> str:
    """The campaign's family tree as one self-contained page: every genome of ``records``, or beyond
    :data:`FAMILY_TREE_MAX` genomes the :data:`FAMILY_TREE_ROOTS` best and their ancestors (a page of every genome
    of a 100,000-evaluation campaign was 100 MB, rewritten every minute). ``total``: the campaign's number of
    genomes when ``records`` are already that selection (the pictures read it from the campaign index)."""
    campaign = records[0].campaign if records else ""
    best = best_record(records)
    present = len({r.genome.hash for r in records})
    genomes = present if total is None else total
    shown = _best_and_ancestors(records) if present > FAMILY_TREE_MAX else records
    what = (f"{genomes} genomes" if genomes <= FAMILY_TREE_MAX else
            f"the best {FAMILY_TREE_ROOTS} of {genomes} genomes and their ancestors")
    return family_page(nodes_from_records(shown, run_ids, cells), title=title or f"family tree of {campaign} "
                       f"({what})", experiment_id=experiment_id, base=ui_base(tracking_uri),
                       root=best.genome.hash if best else None)


FAMILY_TREE_MAX = 3000  # genomes on one family-tree page; beyond, the best and their ancestors
FAMILY_TREE_ROOTS = 500


def _best_and_ancestors(records: Sequence[EvaluationRecord]) -> list[EvaluationRecord]:
    """The records of the :data:`FAMILY_TREE_ROOTS` best genomes and of their ancestors, breadth-first from the
    best, at most :data:`FAMILY_TREE_MAX` genomes."""
    by_hash = {r.genome.hash: r for r in records}
    ranked = sorted((r for r in by_hash.values() if reported_fitness(r) is not None),
                    key=lambda r: -float(reported_fitness(r) or 0.0))
    queue = [r.genome.hash for r in ranked[:FAMILY_TREE_ROOTS]]
    keep: set[str] = set()
    for h in queue:  # grows as parents are appended: breadth-first
        if len(keep) >= FAMILY_TREE_MAX:
            break
        if h in keep or h not in by_hash:
            continue
        keep.add(h)
        queue.extend(by_hash[h].proposal.parents)
    return [r for r in records if r.genome.hash in keep]


def archive_view_html(rows: Sequence[Mapping[str, Any]], run_ids: Mapping[str, str], *, tracking_uri: str,
                      experiment_id: str | None, descriptors: Sequence[Mapping[str, Any]], kind: str = "grid",
                      title: str = "archive") -> str:
    """The QD archive: a square per cell (a grid over the first two descriptors; a row of numbered cells for
    one descriptor or a CVT archive), coloured by its elite's fitness, each a link to the elite's run.

    ``rows``: the archive's elites (``hash``, ``fitness``, ``cell``, ``descriptors``), as
    ``Strategy.archive_rows()`` gives them; ``descriptors``: their config (``name``, ``bins``, ``range``).
    """
    scores = [float(r["fitness"]) for r in rows]
    low, high = (min(scores), max(scores)) if scores else (0.0, 1.0)
    names = [str(d["name"]) for d in descriptors]
    grid2 = kind == "grid" and len(descriptors) == 2
    size = 58
    if grid2:
        nx, ny = (int(d["bins"]) for d in descriptors)
    else:
        cells = sorted({str(r["cell"]) for r in rows}, key=lambda c: [int(p) for p in c.split("_") if p.isdigit()])
        nx, ny = max(1, min(12, len(cells))), max(1, -(-len(cells) // 12))
    parts = []
    if grid2:
        for i in range(nx):
            for j in range(ny):
                parts.append(f'<rect x="{i * size}" y="{(ny - 1 - j) * size}" width="{size}" height="{size}" '
                             'fill="#f0f0f0" stroke="#fff"/>')
    for row in sorted(rows, key=lambda r: str(r["cell"])):
        cell = str(row["cell"])
        if grid2:
            i, j = (int(p) for p in cell.split("_"))
        else:
            where = cells.index(cell)
            i, j = where % nx, ny - 1 - where // nx
        values = ", ".join(f"{k} {fmt(v)}" for k, v in (row.get("descriptors") or {}).items())
        run = run_ids.get(str(row["hash"]), "")
        tip = f"cell {cell}: {row['hash']}  fitness {fmt(row['fitness'])}  {values}" + (f"\nrun {run}" if run else "")
        parts.append(f'<a class="cell" data-run="{_esc(run)}" data-hash="{_esc(row["hash"])}" data-cell="{_esc(cell)}" '
                     f'href="#"><title>{_esc(tip)}</title><rect x="{i * size}" y="{(ny - 1 - j) * size}" '
                     f'width="{size}" height="{size}" fill="{fitness_colour(float(row["fitness"]), low, high)}"/>'
                     f'<text x="{i * size + 4}" y="{(ny - 1 - j) * size + 14}" style="font-size:11px;fill:#fff;'
                     f'paint-order:stroke;stroke:#0006;stroke-width:2px">{_esc(cell)}<tspan x="{i * size + 4}" '
                     f'dy="14">{_esc(fmt(row["fitness"], 3))}</tspan></text></a>')
    axes = ""
    if grid2:
        (lx, (ax, bx)), (ly, (ay, by)) = ((names[0], descriptors[0]["range"]), (names[1], descriptors[1]["range"]))
        axes = (f'<text class="axis" x="{nx * size / 2}" y="{ny * size + 30}" text-anchor="middle">{_esc(lx)} '
                f'({fmt(ax)} … {fmt(bx)}, {nx} bins) →</text><text class="axis" transform="translate(-12,'
                f'{ny * size / 2}) rotate(-90)" text-anchor="middle">{_esc(ly)} ({fmt(ay)} … {fmt(by)}, {ny} bins) →'
                "</text>")
    width, height = nx * size + 60, ny * size + 60
    table = "".join(
        f'<tr><td>{_esc(r["cell"])}</td><td><a data-run="{_esc(run_ids.get(str(r["hash"]), ""))}" href="#">'
        f'<code>{_esc(r["hash"])}</code></a></td><td>{fmt(r["fitness"])}</td><td>'
        f'{_esc(", ".join(f"{k} {fmt(v)}" for k, v in (r.get("descriptors") or {}).items()))}</td></tr>'
        for r in sorted(rows, key=lambda r: -float(r["fitness"])))
    return (f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{_esc(title)}</title><style>{STYLE}</style>"
            f"</head><body><header><h1>{_esc(title)}</h1><span>{len(rows)} elites; click a cell for its elite's "
            f"run</span>{_legend(low, high)}</header>"
            f"<svg id='archive' data-base='{_esc(ui_base(tracking_uri))}' "
            f"data-experiment='{_esc(experiment_id or '')}' width='{width + 20}' height='{height}' "
            f"viewBox='-30 -10 {width + 20} {height}'>{''.join(parts)}{axes}</svg>"
            "<table><tr><th>cell</th><th>elite (link to its run)</th><th>fitness</th><th>descriptors</th></tr>"
            f"{table}</table><script>{ARCHIVE_SCRIPT}</script></body></html>\n")


def write_family_views(directory: str | Path, *, records: Sequence[EvaluationRecord], run_ids: Mapping[str, str],
                       tracking_uri: str, experiment_id: str | None, cells: Mapping[str, str | None] | None = None,
                       archive_rows: Sequence[Mapping[str, Any]] = (), descriptors: Sequence[Mapping[str, Any]] = (),
                       archive_kind: str = "grid", total: int | None = None) -> list[Path]:
    """Write ``family_tree.html`` (and, with an archive, ``archive_view.html``) into ``directory`` atomically;
    returns the paths written, for the campaign to log as artifacts of its campaign run."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    out = directory / FAMILY_TREE
    write_bytes_atomic(out, family_tree_html(records, run_ids, tracking_uri=tracking_uri, experiment_id=experiment_id,
                                             cells=cells, total=total).encode())
    made = [out]
    if archive_rows and descriptors:
        view = directory / ARCHIVE_VIEW
        campaign = records[0].campaign if records else ""
        write_bytes_atomic(view, archive_view_html(archive_rows, run_ids, tracking_uri=tracking_uri,
                                                   experiment_id=experiment_id, descriptors=descriptors,
                                                   kind=archive_kind, title=f"archive of {campaign}").encode())
        made.append(view)
    return made
