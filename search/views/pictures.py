"""Pictures and tables of a search: archive heatmaps and metrics over evaluations (PNG), the archive table (CSV).

Figures are drawn with matplotlib's object API on the Agg canvas (``Figure`` + ``FigureCanvasAgg``), so no
global backend or pyplot state is touched and plotting works on headless machines and in worker threads.
Heatmaps use pyribs' ``ribs.visualize`` (``grid_archive_heatmap``, ``cvt_archive_heatmap``) on a pyribs copy of
our :class:`~search.archive.QDArchive` made for the drawing only (pyribs is imported here, inside the drawing
functions, which run off the campaign loop's thread):

- a 2-D grid archive is drawn as it is (x = first descriptor, y = second, colour = the elite's fitness);
- a 2-D CVT archive is drawn as its Voronoi cells over the normalised descriptors;
- any other archive (one, or three and more descriptors) is projected onto the two chosen descriptors
  ``x`` and ``y``: each cell of their grid shows the best fitness among the elites that fall in it.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from genome.io import write_bytes_atomic
from search.archive import QDArchive
from search.descriptors import Descriptor

DEFAULT_METRICS = ("qd_score", "coverage", "best_fitness", "archive_size", "novelty_archive_size",
                   "novelty_threshold", "failures")


def save_figure(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp, dpi=120, bbox_inches="tight")
    tmp.replace(path)  # readers never see a half-written image
    return path


def _archive_of(source: Any) -> QDArchive:
    qd = source if isinstance(source, QDArchive) else getattr(source, "qd", None)
    if qd is None:
        raise ValueError("nothing to draw: this strategy keeps no QD archive (list descriptors in the "
                         "campaign's `descriptors` section)")
    return qd


def _pick(qd: QDArchive, name: str | None, default: int) -> int:
    names = [d.name for d in qd.descriptors]
    if name is None:
        return min(default, len(names) - 1)
    if name not in names:
        raise ValueError(f"heatmap axis {name!r}: allowed is one of the archive's descriptors {names}")
    return names.index(name)


def _pyribs_copy(qd: QDArchive) -> Any:
    """A pyribs GridArchive / CVTArchive holding the same elites in the same cells (for drawing only)."""
    from ribs.archives import CVTArchive, GridArchive  # here: pyribs takes seconds to import

    data = qd.data()
    if qd.kind == "grid":
        ribs_archive: Any = GridArchive(solution_dim=1, dims=[d.bins for d in qd.descriptors],
                                        ranges=[d.range for d in qd.descriptors], qd_score_offset=qd.qd_offset)
        lows, highs = zip(*(d.range for d in qd.descriptors), strict=True)
        measures = np.clip(data["measures"], lows, highs)  # the same border cells, whatever pyribs' int cast does
    else:
        ribs_archive = CVTArchive(solution_dim=1, centroids=qd.centroids, ranges=[(0.0, 1.0)] * len(qd.descriptors),
                                  qd_score_offset=qd.qd_offset)
        measures = data["measures"]
    if len(measures):
        ribs_archive.add(np.zeros((len(measures), 1)), data["fitness"], measures)
    return ribs_archive


def _projected(qd: QDArchive, ix: int, iy: int) -> tuple[Any, Descriptor, Descriptor | None]:
    """A pyribs grid over descriptors ix (and iy) holding, per cell, the best elite that falls in it."""
    from ribs.archives import GridArchive  # here: pyribs takes seconds to import

    dx = qd.descriptors[ix]
    dy = qd.descriptors[iy] if iy != ix else None
    dims = [dx.bins] + ([dy.bins] if dy else [])
    ranges = [dx.range] + ([dy.range] if dy else [])
    grid = GridArchive(solution_dim=1, dims=dims, ranges=ranges, qd_score_offset=qd.qd_offset)
    for row in qd.rows():
        values = [row["descriptors"][dx.name]] + ([row["descriptors"][dy.name]] if dy else [])
        grid.add_single(np.zeros(1), row["fitness"], np.asarray(values))
    return grid, dx, dy


def archive_heatmap(source: Any, path: str | Path, *, x: str | None = None, y: str | None = None,
                    title: str | None = None, vmin: float | None = None, vmax: float | None = None,
                    cmap: str = "viridis") -> Path:
    """Draw the QD archive of ``source`` (a Strategy or a QDArchive) as a heatmap, colour = fitness.

    ``x`` and ``y`` name the descriptors on the axes (default: the first two). Returns the PNG path.
    """
    from ribs.visualize import cvt_archive_heatmap, grid_archive_heatmap  # here: pyribs takes seconds to import

    qd = _archive_of(source)
    ix, iy = _pick(qd, x, 0), _pick(qd, y, 1)
    flat = ix == iy  # one descriptor: a strip of cells
    fig = Figure(figsize=(7.0, 2.4) if flat else (6.4, 5.2))
    ax = fig.add_subplot()
    common: dict[str, Any] = {"ax": ax, "cmap": cmap, "vmin": vmin, "vmax": vmax,
                              "cbar_kwargs": {"label": "fitness (best in cell)"}}
    if flat:
        common["aspect"] = "auto"
    two = len(qd.descriptors) == 2 and ix != iy
    if qd.kind == "cvt" and two:
        cvt_archive_heatmap(_pyribs_copy(qd), transpose_measures=ix == 1, **common)  # type: ignore[arg-type]
        dx, dy = qd.descriptors[ix], qd.descriptors[iy]
        ax.set_xlabel(f"{dx.label}  (normalised: 0 = {dx.low:g}, 1 = {dx.high:g})")
        ax.set_ylabel(f"{dy.label}  (normalised: 0 = {dy.low:g}, 1 = {dy.high:g})")
    else:
        if qd.kind == "grid" and two:
            grid, dx, dy = _pyribs_copy(qd), qd.descriptors[ix], qd.descriptors[iy]  # type: ignore[assignment]
            transpose = ix == 1
        else:
            grid, dx, dy = _projected(qd, ix, iy)  # type: ignore[assignment]
            transpose = False
        grid_archive_heatmap(grid, transpose_measures=transpose, **common)  # type: ignore[arg-type]
        ax.set_xlabel(dx.label)
        if dy is not None:
            ax.set_ylabel(dy.label)
    if title is None:
        stats = qd.stats()
        who = getattr(source, "NAME", "archive")
        title = (f"{who}: {int(stats['archive_size'])} elites in {qd.cells} cells "
                 f"(coverage {stats['coverage']:.0%}), QD-score {stats['qd_score']:.4g}")
    ax.set_title(title, fontsize=10)
    return save_figure(fig, path)


def metrics_over_evaluations(history: Sequence[Mapping[str, float]], path: str | Path, *,
                 keys: Sequence[str] | None = None, title: str | None = None) -> Path:
    """Plot metrics over evaluations, one panel per metric present in ``history``.

    ``history`` is one ``strategy.metrics()`` dict per tell; the x axis is its ``evaluations`` entry (or
    the position in the list). Without ``keys``, the metrics of ``DEFAULT_METRICS`` that are not zero
    throughout are drawn (e.g. no novelty panels for MAP-Elites).
    """
    if keys is None:
        keys = [k for k in DEFAULT_METRICS if any(h.get(k, 0.0) != 0.0 for h in history)] or ["evaluations"]
    present = [k for k in keys if any(k in h for h in history)]
    if not history or not present:
        raise ValueError(f"nothing to plot: history has {len(history)} entries and none of the metrics {list(keys)}")
    xs = [h.get("evaluations", i + 1) for i, h in enumerate(history)]
    cols = 2 if len(present) > 1 else 1
    rows = (len(present) + cols - 1) // cols
    fig = Figure(figsize=(5.0 * cols, 2.6 * rows))
    for i, key in enumerate(present):
        ax = fig.add_subplot(rows, cols, i + 1)
        pts = [(x, h[key]) for x, h in zip(xs, history, strict=True) if key in h]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], lw=1.5)
        ax.set_title(key, fontsize=10)
        ax.set_xlabel("evaluations")
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)


def compare_plot(histories: Mapping[str, Sequence[Mapping[str, float]]], path: str | Path, *,
                 key: str = "qd_score", title: str | None = None) -> Path:
    """One metric over evaluations for several runs (e.g. strategies), one line each."""
    fig = Figure(figsize=(6.4, 4.0))
    ax = fig.add_subplot()
    drawn = 0
    for label, history in histories.items():
        pts = [(h.get("evaluations", i + 1), h[key]) for i, h in enumerate(history) if key in h]
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], label=label, lw=1.5)
            drawn += 1
    if not drawn:
        raise ValueError(f"nothing to plot: no history has the metric {key!r}")
    ax.set_xlabel("evaluations")
    ax.set_ylabel(key)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title or f"{key} over evaluations", fontsize=10)
    return save_figure(fig, path)


def write_archive_csv(rows: list[dict[str, Any]], path: Path) -> None:
    """The archive table (one row per elite: hash, cell, fitness, genes.*, descriptors.*), written atomically."""
    flat = [_flatten(r) for r in rows]
    columns = sorted({k for r in flat for k in r}, key=lambda k: (k not in ("hash", "cell", "fitness"), k))
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=columns)
    writer.writeheader()
    writer.writerows(flat)
    write_bytes_atomic(path, text.getvalue().encode())


def _flatten(row: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in row.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out
