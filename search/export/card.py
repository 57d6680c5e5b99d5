"""MODEL_CARD.md of an exported bundle: task, fitness and descriptors, adaptive compute, size and compute,
the lineage founder → … → this, the MLflow links, and how to load and train the model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from search.export.located import Located
from search.lineage import lineage_from_records
from search.records import EvaluationRecord, fmt
from search.tracking.client import run_link
from search.tracking.lineages import lineage

MAX_TICK_ROWS = 16


def chain_lines(records: list[EvaluationRecord], target: EvaluationRecord) -> list[str]:
    """Lines founder → … → ``target`` along the first parent, each with the genes changed from its parent."""
    chain = lineage_from_records(records, target.genome.hash).chain()
    missing = chain[0].parents[0] if chain[0].parents else None  # the oldest ancestor the journal lacks
    lines = [f"- (ancestor {missing} is not in the journal)"] if missing else []
    for i, node in enumerate(chain):
        how = node.operator or "sample"
        if node.parents:
            how += " of " + " × ".join(f"`{p[:8]}`" for p in node.parents)
        role = " — founder" if i == 0 and not node.parents else (" — this" if i == len(chain) - 1 else "")
        changes = ""
        if i > 0:
            diff = node.changes.get(chain[i - 1].genome_hash, {})
            changes = "; changed: " + ", ".join(f"{g} {a}→{b}" for g, (a, b) in diff.items()) if diff else ""
        lines.append(f"{i + 1}. `{node.genome_hash}`{role} ({how}, birth {node.birth}, fitness "
                     f"{fmt(node.fitness)}){changes}")
    summary = " → ".join(f"`{n.genome_hash[:8]}`" for n in chain)
    return [f"{'… → ' if missing else ''}{summary} (this)", "", *lines]


def _mlflow_lineage(found: Located) -> list[str]:
    if not (found.tracking_uri and found.run_id):
        return []
    try:
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
        rows.append(f"| {t + 1} | {fmt(accuracy[t])} | {fmt(c)} |")
    return rows


def model_card(found: Located, manifest: dict[str, Any], *, out: Path, train: str, export_run_id: str | None,
               model_uri: str | None) -> str:
    """The Markdown model card of the bundle in ``out``."""
    r, g = found.record, found.genome
    res = r.result
    task = found.task
    params = ", ".join(f"{k}={v}" for k, v in task.params.items())
    model, cost = manifest["model"], manifest.get("cost") or {}
    shape = model["task"]
    lines = [f"# CTM `{g.hash}` for {task.name}({params})", "",
             f"A Continuous Thought Machine found by ctmevo campaign `{r.campaign}`: T = {g.ticks} ticks, "
             f"D = {g.d_model} neurons, memory M = {g.memory_length}, {fmt(cost.get('parameters'))} parameters; "
             f"search fitness {found.fitness_text()}.", "",
             "## Task", "",
             f"- `{task.name}` with params `{task.params}`; input: {shape['backbone']['kind']} backbone, "
             f"{model['n_tokens']} tokens of width D_in = {model['d_input']}; output: " + (
                 f"{shape['out_positions']} position(s) × {shape['out_classes']} classes per tick."
                 if shape.get("steps", 1) == 1 else
                 f"{shape['steps']} observation steps of {g.ticks} tick{'s' if g.ticks != 1 else ''} each, one of "
                 f"{shape['out_classes']} classes per step (the CTM acts: its fitness is closed_loop_success)."), "",
             "## Fitness and descriptors", "", "| metric | value |", "|---|---:|",
             f"| fitness | {fmt(res.fitness)} |"]
    if found.seeds > 1:
        lines.append(f"| fitness, mean of {found.seeds} seeds at rung {r.rung} | {fmt(found.mean_fitness)} |")
    lines += [f"| {k} | {fmt(v)} |" for k, v in sorted(res.metrics.items())]
    descriptors = r.extra.get("descriptors") or {}
    if isinstance(descriptors, dict) and descriptors:
        lines += [f"| descriptor `{k}` | {fmt(v)} |" for k, v in sorted(descriptors.items())]
    if found.cell:
        lines.append(f"| archive cell | {found.cell} |")
    lines += ["", "## Adaptive compute", ""]
    exit_tick, exit_acc = res.metrics.get("exit_tick_mean"), res.metrics.get("exit_accuracy")
    if exit_tick is not None:
        lines.append(f"Stopping each input at its first tick with certainty ≥ {found.exit_threshold:g}: mean exit "
                     f"tick {fmt(exit_tick)} of {g.ticks} ({100 * exit_tick / g.ticks:.0f}% of the ticks), accuracy "
                     f"at exit {fmt(exit_acc)} (at the most certain tick: {fmt(res.metrics.get('val_accuracy'))}); "
                     f"expected calibration error {fmt(res.metrics.get('ece'))}.")
    lines += ["", *_tick_rows(res.per_tick_accuracy, res.per_tick_certainty), "",
              "## Architecture, size and compute", "", "| gene | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in g.to_dict().items()]
    lines += ["", f"- parameters: {fmt(cost.get('parameters'))} ("
              + ", ".join(f"{k} {fmt(v)}" for k, v in (cost.get("parameters_by_part") or {}).items()) + ")",
              f"- multiply-accumulates per forward (one sample): {fmt(cost.get('macs_per_forward'))}; per tick "
              f"{fmt(cost.get('macs_per_tick'))}",
              f"- synapse widths {model['synapse_widths']}; synchronisation sizes out {model['sync_out_size']}, "
              f"action {model['sync_action_size']} ({model['sync_select']})",
              "- every layer size: `model.yaml`", "", "## Lineage", ""]
    lineage = chain_lines(found.records, r) if found.records else _mlflow_lineage(found)
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
                  f"`mlflow.pytorch.load_model(\"{model_uri}\")` (the `ctm` and `genome` packages must be importable; "
                  "MLflow's pytorch flavour stores a pickled module, so load only models you trust: "
                  "`load_bundle` below reads the safetensors weights instead). The export run is in the "
                  "experiment `ctmevo-exports`, apart from the campaign's evaluations"]
    weights = manifest.get("weights")
    lines += ["", "## Weights", "",
              f"- `weights.safetensors` (sha256 `{weights['sha256']}`): the weights trained during the search "
              f"({fmt(res.metrics.get('train_steps'))} steps)" if weights else
              "- none: the campaign kept no checkpoint of this evaluation; train it (below)",
              "", "## Use it", "", "```python", "from ctm.bundle import load_bundle", "",
              f"model, genome, task = load_bundle(\"{out}\")",
              "x, y = task.batch(\"val\", 0, 8, seed=0)",
              "predictions, certainties = model(x)   # [B, out, T], [B, 2, T]", "```", "",
              "## Train it", "", "```bash", train, "```", ""]
    return "\n".join(line for line in lines if line is not None) + "\n"
