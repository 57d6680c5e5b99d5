"""Analysis pages of a campaign: the questions a researcher would otherwise answer by hand in a notebook.

Four interactive pages (plotly; self-contained HTML but for plotly.js itself) and their PNG twins (matplotlib,
for MLflow's image preview and for reading without a browser), written to ``plots/analysis/`` and uploaded
as artifacts of the campaign run (``analysis/``):

- ``progress``: the best genome so far (by the one ranking, :func:`search.records.rank`) against the compute
  spent: training steps (every result's own steps, a promotion's continued ones only) and wall-clock time;
- ``genes``: fitness against each gene, colour = highest rung, size = seeds;
- ``elites``: the archive's elites in parallel coordinates (numeric genes and fitness);
- ``qd``: QD metrics (QD-score, coverage, best fitness, archive size) over evaluations.

plotly.js is not embedded (4.8 MB a page): a page loads ``plotly.min.mjs`` from the shared assets run of its
MLflow store (:mod:`search.tracking.assets`) at the address that serves the page (MLflow's artifact viewer
shows it in a ``blob:`` frame, whose address names the server), or, opened as a file, from the copy in the
campaign's ``plots/`` folder.
"""

from __future__ import annotations

import html
import math
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from genome.io import write_bytes_atomic
from search.records import EvaluationRecord, reported_fitness
from search.tracking.assets import PLOTLY_FILE, plotly_source
from search.tracking.scores import ScoreBoard

__all__ = ["BestSoFar", "genes_sample", "write_analysis"]

T = TypeVar("T")


class BestSoFar:
    """The best genome so far (by :func:`search.records.rank`) against compute, built as results arrive.

    A point is kept after every one of the first 100 results, then each time the count grows by 5 % (so a
    million results keep about 330 points, and each costs one ranking of the genomes seen until then); a point,
    once made, never changes (later results cannot change the past best), so nothing is recomputed.
    """

    def __init__(self, *, flat: bool = False) -> None:
        self.curve: list[dict[str, Any]] = []
        self._board = ScoreBoard(flat=flat)  # each genome's highest rung and seeds there (flat: only the best)
        self._count, self._steps, self._start, self._last = 0, 0.0, float("inf"), 0.0
        self._next = 1

    def add(self, record: EvaluationRecord) -> None:
        self._count += 1
        self._steps += record.cost
        wall = float(record.result.metrics.get("wall_time_s") or 0.0)
        self._start = min(self._start, record.finished_at - wall)
        self._last = record.finished_at
        self._board.add(record, pending=False)
        if self._count >= self._next:
            self._mark()
            self._next = self._count + 1 if self._count < 100 else math.ceil(self._count * 1.05)

    def _mark(self) -> None:
        self._board.rescore()
        best = self._board.best()
        if best is None:
            return
        genome, rung, values, _, _ = best
        point = {"evaluations": self._count, "steps": self._steps, "wall_s": self._last - self._start,
                 "fitness": sum(values) / len(values), "seeds": len(values), "rung": rung, "genome": genome}
        if self.curve and self.curve[-1]["evaluations"] == self._count:
            self.curve[-1] = point
        else:
            self.curve.append(point)

    def points(self) -> list[dict[str, Any]]:
        """The curve, ending at the latest result."""
        if self._count and (not self.curve or self.curve[-1]["evaluations"] != self._count):
            self._mark()
        return list(self.curve)


_LOADER = r"""
(function(){
const run=document.body.dataset.assetRun, status=document.getElementById('status');
let origin=null;
if(location.protocol==='blob:')origin=new URL(location.href.slice(5)).origin;
else if(location.protocol.startsWith('http'))origin=location.origin;
const src=(origin&&run)?origin+'/get-artifact?path=__FILE__&run_uuid='+encodeURIComponent(run):'../__FILE__';
const s=document.createElement('script'); s.src=src;
s.onload=()=>{const figs=JSON.parse(document.getElementById('figures').textContent);
  figs.forEach((f,i)=>Plotly.newPlot('fig'+i,f.data,f.layout,{responsive:true,displaylogo:false}));
  status.textContent=''; document.body.dataset.drawn=figs.length;};
s.onerror=()=>{status.textContent='plotly.js could not be loaded from '+src
  +' (open the page in the MLflow UI, or keep it beside the campaign folder\'s plots/'+'__FILE__'+')';};
document.head.appendChild(s);
})();
""".replace("__FILE__", PLOTLY_FILE)


def page(title: str, intro: str, figures: Sequence[Any], *, asset_run: str | None) -> str:
    """An HTML page drawing plotly ``figures`` (plotly.js loaded as the module docstring says)."""
    import plotly.io as pio

    data = "[" + ",".join(pio.to_json(f, validate=False) for f in figures) + "]"
    data = data.replace("</", "<\\/")  # no "</script>" inside the JSON block
    divs = "".join(f"<div id='fig{i}' class='fig'></div>" for i in range(len(figures)))
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title><style>"
            "body{font-family:system-ui,sans-serif;margin:12px;color:#222}h1{font-size:18px}p{font-size:13px;"
            "max-width:900px}.fig{width:100%;min-height:420px}</style></head>"
            f"<body data-asset-run='{html.escape(asset_run or '')}'><h1>{html.escape(title)}</h1>"
            f"<p>{html.escape(intro)}</p><p id='status'>loading plotly.js…</p>{divs}"
            f"<script type='application/json' id='figures'>{data}</script>"
            f"<script>{_LOADER}</script></body></html>")


GENES_SHOWN = 3000  # genomes drawn on the genes page: the 1,000 best, then an even spread of the others
PNG_SHOWN = 1000  # and on its PNG twin (the best first)


def _shown(records: Sequence[EvaluationRecord]) -> list[EvaluationRecord]:
    """The successful genomes the genes page draws (all of them up to :data:`GENES_SHOWN`)."""
    return genes_sample(sorted((r for r in records if r.result.ok and reported_fitness(r) is not None),
                               key=lambda r: -float(reported_fitness(r) or 0.0)))


def genes_sample(ranked: Sequence[T]) -> list[T]:
    """Of genomes ranked best first, those the genes page draws: all up to :data:`GENES_SHOWN`, else the 1,000
    best and an even spread of the others."""
    if len(ranked) <= GENES_SHOWN:
        return list(ranked)
    rest = ranked[1000:]
    step = len(rest) / (GENES_SHOWN - 1000)
    return [*ranked[:1000], *(rest[int(i * step)] for i in range(GENES_SHOWN - 1000))]


def _numeric(values: Sequence[Any]) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def _progress_figures(curve: list[dict[str, Any]]) -> list[Any]:
    import plotly.graph_objects as go

    figs = []
    for x, label in (("steps", "training steps spent"), ("wall_s", "wall-clock seconds")):
        fig = go.Figure()
        fig.add_scatter(x=[c[x] for c in curve], y=[c["fitness"] for c in curve], mode="lines+markers",
                        line_shape="hv", name="best so far",
                        text=[f"{c['genome'][:12]} · {c['seeds']} seed(s) · rung {c['rung']}" for c in curve])
        fig.update_layout(title=f"best genome so far against {label}", xaxis_title=label, yaxis_title="fitness",
                          height=420, margin={"t": 50})
        figs.append(fig)
    return figs


def _genes_figure(records: Sequence[EvaluationRecord]) -> dict[str, Any]:
    """One scatter per gene, as a plain plotly figure dict (graph objects validate every point: seconds)."""
    from plotly.subplots import make_subplots

    ok = _shown(records)
    genes_of = [r.genome.to_dict() for r in ok]
    genes = list(genes_of[0]) if ok else []
    cols = 3
    rows = max(1, (len(genes) + cols - 1) // cols)
    layout = make_subplots(rows=rows, cols=cols, subplot_titles=genes, vertical_spacing=0.5 / rows).to_dict()["layout"]
    layout.update(height=260 * rows, title={"text": "fitness (mean over seeds) against each gene"}, margin={"t": 70})
    fitness = [reported_fitness(r) for r in ok]
    rung = [int(r.extra.get("top_rung", r.rung)) for r in ok]
    marker = {"color": rung, "colorscale": "Viridis", "size": [6 + 3 * int(r.extra.get("seeds", 1)) for r in ok],
              "cmin": 0, "cmax": max([1, *rung]), "colorbar": {"title": {"text": "rung"}}}
    text = [r.genome.hash[:12] for r in ok]
    data = []
    for i, gene in enumerate(genes):
        xs = [g[gene] for g in genes_of]
        axis = "" if i == 0 else str(i + 1)
        data.append({"type": "scatter", "mode": "markers", "x": xs if _numeric(xs) else [str(x) for x in xs],
                     "y": fitness, "text": text, "showlegend": False, "xaxis": f"x{axis}", "yaxis": f"y{axis}",
                     "marker": {**marker, "showscale": i == 0}})
    return {"data": data, "layout": layout}


def _elites_figure(rows: Sequence[Mapping[str, Any]]) -> Any:
    import plotly.graph_objects as go

    genes = [g for g in (rows[0]["genes"] if rows else {}) if _numeric([r["genes"][g] for r in rows])]
    genes = [g for g in genes if len({r["genes"][g] for r in rows}) > 1] or genes
    dims = [{"label": g, "values": [r["genes"][g] for r in rows]} for g in genes]
    dims.append({"label": "fitness", "values": [r["fitness"] for r in rows]})
    fitness = [r["fitness"] for r in rows]
    fig = go.Figure(go.Parcoords(dimensions=dims, line={"color": fitness, "colorscale": "Viridis",
                                                        "showscale": True}))
    fig.update_layout(title=f"the archive's {len(rows)} elites (drag along an axis to filter)", height=480)
    return fig


def _qd_figure(history: Sequence[Mapping[str, Any]]) -> Any:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    keys = [k for k in ("qd_score", "coverage", "best_fitness", "archive_size")
            if any(h.get(k) not in (None, 0, 0.0) for h in history)] or ["evaluations"]
    fig = make_subplots(rows=len(keys), cols=1, subplot_titles=keys, shared_xaxes=True)
    for i, key in enumerate(keys):
        pts = [(h.get("evaluations", j + 1), h[key]) for j, h in enumerate(history) if key in h]
        fig.add_trace(go.Scatter(x=[p[0] for p in pts], y=[p[1] for p in pts], mode="lines", showlegend=False),
                      row=i + 1, col=1)
    fig.update_layout(height=220 * len(keys), title="QD metrics over evaluations", margin={"t": 70})
    fig.update_xaxes(title_text="evaluations", row=len(keys), col=1)
    return fig


def _progress_png(curve: list[dict[str, Any]], path: Path) -> Path:
    from matplotlib.figure import Figure

    from search.views.pictures import save_figure

    fig = Figure(figsize=(10, 3.4))
    for i, (x, label) in enumerate((("steps", "training steps spent"), ("wall_s", "wall-clock seconds"))):
        ax = fig.add_subplot(1, 2, i + 1)
        ax.step([c[x] for c in curve], [c["fitness"] for c in curve], where="post")
        ax.set_xlabel(label)
        ax.set_ylabel("best fitness so far")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, path)


def _genes_png(records: Sequence[EvaluationRecord], path: Path) -> Path:
    from matplotlib.figure import Figure

    from search.views.pictures import save_figure

    ok = _shown(records)[:PNG_SHOWN]
    genes_of = [r.genome.to_dict() for r in ok]
    genes = [g for g in (genes_of[0] if ok else {}) if _numeric([d[g] for d in genes_of])]
    cols, rows = 4, max(1, (len(genes) + 3) // 4)
    fig = Figure(figsize=(12, 2.6 * rows))
    for i, gene in enumerate(genes):
        ax = fig.add_subplot(rows, cols, i + 1)
        ax.scatter([d[gene] for d in genes_of], [reported_fitness(r) for r in ok],
                   c=[int(r.extra.get("top_rung", r.rung)) for r in ok],
                   s=[8 + 8 * int(r.extra.get("seeds", 1)) for r in ok], cmap="viridis", alpha=0.8)
        ax.set_title(gene, fontsize=9)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, path)


def write_analysis(folder: Path, *, progress: BestSoFar, records: Sequence[EvaluationRecord],
                   elites: Sequence[Mapping[str, Any]], history: Sequence[Mapping[str, Any]],
                   asset_run: str | None) -> list[Path]:
    """Write the analysis pages (and PNGs) into ``folder`` (``plots/analysis``) and plotly.js beside it, once;
    returns the files written. ``elites``: archive rows with ``genes`` and ``fitness``; ``history``: campaign
    metric points (``evaluations``, ``qd_score``, ...)."""
    folder.mkdir(parents=True, exist_ok=True)
    local = folder.parent / PLOTLY_FILE
    source = plotly_source()
    if not local.exists() or local.stat().st_size != source.stat().st_size:
        shutil.copyfile(source, local)
    curve = progress.points()
    pages = {
        "progress.html": ("Best so far against compute", "The best genome by the one ranking of ctmevo status "
                          "(highest rung, then the mean over its seeds read with their noise), after each share of the "
                          "campaign's results; hover for the genome.",
                          _progress_figures(curve) if curve else []),
        "genes.html": ("Fitness against each gene", "Every genome's fitness (the mean over the seeds of its highest "
                       f"rung; beyond {GENES_SHOWN:,} genomes, the 1,000 best and an even spread of the others); "
                       "colour: that rung, size: its seeds. Hover for the genome hash.",
                       [_genes_figure(records)] if records else []),
        "elites.html": ("The archive's elites", "One line per elite of the QD archive, through its genes and its "
                        "fitness.", [_elites_figure(elites)] if elites else []),
        "qd.html": ("QD metrics", "QD-score, coverage, best fitness and archive size as the campaign went on.",
                    [_qd_figure(history)] if history else []),
    }
    made = []
    for name, (title, intro, figures) in pages.items():
        path = folder / name
        text = page(title, intro if figures else intro + " (nothing to show yet)", figures, asset_run=asset_run)
        write_bytes_atomic(path, text.encode("utf-8"))
        made.append(path)
    if curve:
        made.append(_progress_png(curve, folder / "progress.png"))
    if records:
        made.append(_genes_png(records, folder / "genes.png"))
    return made
