"""MODEL_CARD.md of an exported bundle: task, fitness and descriptors, adaptive compute, size and compute,
the lineage founder → … → this, the MLflow links, and how to load and train the model."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from search.records import EvaluationRecord

if TYPE_CHECKING:
    from search.export import Located

MAX_TICK_ROWS = 16


def _fmt(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value) if value is not None else "—"
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 1e4 and value.is_integer() else f"{value:.4g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def journal_lineage(records: list[EvaluationRecord], target: EvaluationRecord) -> list[str]:
    """Lines founder → … → ``target`` along the first parent, each with the genes changed from its parent."""
    by_hash = {r.genome.hash: r for r in records}
    chain, seen = [target], {target.genome.hash}
    missing = None
    while chain[-1].proposal.parents:
        parent = chain[-1].proposal.parents[0]
        if parent in seen or parent not in by_hash:
            missing = None if parent in seen else parent
            break
        chain.append(by_hash[parent])
        seen.add(parent)
    chain.reverse()
    lines = []
    if missing:
        lines.append(f"- (ancestor {missing} is not in the journal)")
    for i, r in enumerate(chain):
        how = r.proposal.operator or "sample"
        if r.proposal.parents:
            how += " of " + " × ".join(f"`{p[:8]}`" for p in r.proposal.parents)
        role = " — founder" if i == 0 and not r.proposal.parents else (" — this" if r is target else "")
        changes = ""
        if i > 0:
            diff = chain[i - 1].genome.diff(r.genome)
            changes = "; changed: " + ", ".join(f"{g} {a}→{b}" for g, (a, b) in diff.items()) if diff else ""
        lines.append(f"{i + 1}. `{r.genome.hash}`{role} ({how}, birth {r.birth}, fitness "
                     f"{_fmt(r.result.fitness)}){changes}")
    summary = " → ".join(f"`{r.genome.hash[:8]}`" for r in chain)
    return [f"{'… → ' if missing else ''}{summary} (this)", "", *lines]


def _mlflow_lineage(found: Located) -> list[str]:
    if not (found.tracking_uri and found.run_id):
        return []
    try:
        from search.lineage import lineage

        return ["```", lineage(found.tracking_uri, found.run_id).to_tree_text().rstrip(), "```"]
    except Exception as exc:  # a partial archive must not stop an export
        return [f"(lineage not available from MLflow: {exc})"]


def _tick_rows(accuracy: list[float], certainty: list[float]) -> list[str]:
    ticks = len(accuracy)
    if not ticks:
        return []
    step = max(1, -(-ticks // MAX_TICK_ROWS))
    shown = sorted({*range(0, ticks, step), ticks - 1})
    rows = ["| tick | accuracy | certainty |", "|---:|---:|---:|"]
    for t in shown:
        c = certainty[t] if t < len(certainty) else None
        rows.append(f"| {t + 1} | {_fmt(accuracy[t])} | {_fmt(c)} |")
    return rows


def model_card(found: Located, manifest: dict[str, Any], *, out: Path, train: str, export_run_id: str | None,
               model_uri: str | None) -> str:
    """The Markdown model card of the bundle in ``out``."""
    from search.export_mlflow import run_link

    r, g = found.record, found.genome
    res = r.result
    task = found.task
    params = ", ".join(f"{k}={v}" for k, v in task.params.items())
    model, cost = manifest["model"], manifest.get("cost") or {}
    shape = model["task"]
    lines = [f"# CTM `{g.hash}` for {task.name}({params})", "",
             f"A Continuous Thought Machine found by ctmevo campaign `{r.campaign}`: T = {g.ticks} ticks, "
             f"D = {g.d_model} neurons, memory M = {g.memory_length}, {_fmt(cost.get('parameters'))} parameters; "
             f"search fitness {_fmt(res.fitness)}.", "",
             "## Task", "",
             f"- `{task.name}` with params `{task.params}`; input: {shape['backbone']['kind']} backbone, "
             f"{model['n_tokens']} tokens of width D_in = {model['d_input']}; output: {shape['out_positions']} "
             f"position(s) × {shape['out_classes']} classes per tick.", "",
             "## Fitness and descriptors", "", "| metric | value |", "|---|---:|",
             f"| fitness | {_fmt(res.fitness)} |"]
    lines += [f"| {k} | {_fmt(v)} |" for k, v in sorted(res.metrics.items())]
    descriptors = r.extra.get("descriptors") or {}
    if isinstance(descriptors, dict) and descriptors:
        lines += [f"| descriptor `{k}` | {_fmt(v)} |" for k, v in sorted(descriptors.items())]
    if found.cell:
        lines.append(f"| archive cell | {found.cell} |")
    lines += ["", "## Adaptive compute", ""]
    exit_tick, exit_acc = res.metrics.get("exit_tick_mean"), res.metrics.get("exit_accuracy")
    if exit_tick is not None:
        lines.append(f"Stopping each input at its first tick with certainty ≥ {found.exit_threshold:g}: mean exit "
                     f"tick {_fmt(exit_tick)} of {g.ticks} ({100 * exit_tick / g.ticks:.0f}% of the ticks), accuracy "
                     f"at exit {_fmt(exit_acc)} (at the most certain tick: {_fmt(res.metrics.get('val_accuracy'))}); "
                     f"expected calibration error {_fmt(res.metrics.get('ece'))}.")
    lines += ["", *_tick_rows(res.per_tick_accuracy, res.per_tick_certainty), "",
              "## Architecture, size and compute", "", "| gene | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in g.to_dict().items()]
    lines += ["", f"- parameters: {_fmt(cost.get('parameters'))} ("
              + ", ".join(f"{k} {_fmt(v)}" for k, v in (cost.get("parameters_by_part") or {}).items()) + ")",
              f"- multiply-accumulates per forward (one sample): {_fmt(cost.get('macs_per_forward'))}; per tick "
              f"{_fmt(cost.get('macs_per_tick'))}",
              f"- synapse widths {model['synapse_widths']}; synchronisation sizes out {model['sync_out_size']}, "
              f"action {model['sync_action_size']} ({model['sync_select']})",
              "- every layer size: `model.yaml`", "", "## Lineage", ""]
    lineage = journal_lineage(found.records, r) if found.records else _mlflow_lineage(found)
    lines += lineage or ["(no lineage recorded: a founder, or neither journal nor MLflow run available)"]
    lines += ["", "## MLflow", ""]
    if found.run_id:
        link = run_link(found.tracking_uri, found.experiment_id, found.run_id)
        lines += [f"- tracking URI: `{found.tracking_uri}`", f"- evaluation run: `{found.run_id}` (experiment "
                  f"{found.experiment_id})" + (f": {link}" if link else ""),
                  f"- browse: `mlflow ui --backend-store-uri {found.tracking_uri} --host 127.0.0.1`"
                  if str(found.tracking_uri).startswith("sqlite") else ""]
    else:
        lines.append("- the evaluation run was not found in MLflow (export made from the journal)")
    if model_uri:
        lines += [f"- logged model: `{model_uri}` (export run `{export_run_id}`); load it with "
                  f"`mlflow.set_tracking_uri(\"{found.tracking_uri}\")` then "
                  f"`mlflow.pytorch.load_model(\"{model_uri}\")` (the `ctm` and `genome` packages must be importable)"]
    weights = manifest.get("weights")
    lines += ["", "## Weights", "",
              f"- `weights.safetensors` (sha256 `{weights['sha256']}`): the weights trained during the search "
              f"({_fmt(res.metrics.get('train_steps'))} steps)" if weights else
              "- none: the campaign kept no checkpoint of this evaluation; train it (below)",
              "", "## Use it", "", "```python", "from ctm.bundle import load_bundle", "",
              f"model, genome, task = load_bundle(\"{out}\")",
              "x, y = task.batch(\"val\", 0, 8, seed=0)",
              "predictions, certainties = model(x)   # [B, out, T], [B, 2, T]", "```", "",
              "## Train it", "", "```bash", train, "```", ""]
    return "\n".join(line for line in lines if line is not None) + "\n"
