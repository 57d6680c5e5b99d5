"""MODEL_CARD.md of a bundle written by ``ctmevo train``: what was trained, how well, from where, how to use it."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from search.export.card import MAX_TICK_ROWS
from search.records import fmt
from search.tracking.notes import run_url, ui_base

__all__ = ["trained_card"]


def _ticks(accuracy: list[float], certainty: list[float]) -> list[str]:
    if not accuracy:
        return []
    step = max(1, -(-len(accuracy) // MAX_TICK_ROWS))
    rows = ["| tick | accuracy | certainty |", "|---:|---:|---:|"]
    for t in sorted({*range(0, len(accuracy), step), len(accuracy) - 1}):
        rows.append(f"| {t + 1} | {fmt(accuracy[t])} | {fmt(certainty[t] if t < len(certainty) else None)} |")
    return rows


def trained_card(*, bundle: Path, genome: Any, task: Mapping[str, Any], config: Mapping[str, Any], steps: int,
                 final: Mapping[str, Any], manifest: Mapping[str, Any], source: Mapping[str, Any],
                 run_id: str | None, tracking_uri: str | None, experiment_id: str | None) -> str:
    """The Markdown card of a trained bundle: task and architecture, final validation figures per tick, training
    settings, the evaluation it came from (its MLflow run), the training's MLflow run, and how to load it."""
    cost = manifest.get("cost") or {}
    params = ", ".join(f"{k}={v}" for k, v in (task.get("params") or {}).items())
    lines = [f"# CTM `{genome.hash}` trained on {task['name']}({params})", "",
             f"T = {genome.ticks} ticks, D = {genome.d_model} neurons, memory M = {genome.memory_length}, "
             f"{fmt(cost.get('parameters'))} parameters; trained for {fmt(steps)} steps with `ctmevo train`.", "",
             "## Final validation", "", "| metric | value |", "|---|---:|"]
    lines += [f"| {k} | {fmt(v)} |" for k, v in final.items() if isinstance(v, (int, float)) and k != "step"]
    lines += ["", *_ticks(list(final.get("per_tick_accuracy") or []), list(final.get("per_tick_certainty") or [])),
              "", "## Training settings", "", "| setting | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in config.items()]
    lines += ["", "## Architecture", "", "| gene | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in genome.to_dict().items()]
    lines += ["", "## Where it came from", ""]
    if source.get("bundle"):
        lines.append(f"- bundle trained from: `{source['bundle']}`")
    if source.get("campaign"):
        lines.append(f"- search campaign: `{source['campaign']}`")
    if source.get("run_id"):
        where = source.get("tracking_uri") or "?"
        link = (run_url(str(source["experiment_id"]), str(source["run_id"]), ui_base(str(where)))
                if source.get("experiment_id") else "")
        lines.append(f"- source evaluation run: `{source['run_id']}` at `{where}`" + (f" ({link})" if link else ""))
    if source.get("genome_file"):
        lines.append(f"- genome file: `{source['genome_file']}`")
    lines += ["", "## MLflow", ""]
    if run_id and tracking_uri:
        link = run_url(str(experiment_id), run_id, ui_base(tracking_uri)) if experiment_id else ""
        lines.append(f"- training run: `{run_id}` at `{tracking_uri}`" + (f" ({link})" if link else "")
                     + "; its metrics: train_loss, lr, val_accuracy, exit_tick_mean, ece over steps")
    else:
        lines.append("- not logged to MLflow")
    lines += ["", "## Use it", "", "```python", "from ctm.bundle import load_bundle", "",
              f"model, genome, task = load_bundle(\"{bundle}\")", "x, y = task.batch(\"val\", 0, 8, seed=0)",
              "predictions, certainties = model(x)   # [B, out, T], [B, 2, T]", "```", ""]
    return "\n".join(lines)
