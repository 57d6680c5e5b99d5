"""Open-ended search against direct search on the hardest task the open-ended campaign solved (issue 24).

    .venv/bin/python benchmarks/open_ended.py --steps 40000 --seeds 3 --also 12   # about 55 minutes on 2 cores

1. The open-ended example (``--config``, default ``experiments/open_ended_parity.yaml``) runs once per seed with a
   budget of ``--steps`` training steps (everything: task campaigns, screens, transfers), without MLflow.
2. The target is the hardest task the median open-ended seed solved (per seed: the solved task with the largest
   value of the first difficulty axis, then of the next, in the order of ``--hardest-by``, by default the file's;
   the lower median over seeds).
3. Direct search: the same file without ``open_ended:`` (the same strategy, space, rungs and workers) on the
   target task from scratch, once per seed, with the training steps its open-ended seed spent. ``--also``
   adds targets compared the same way (e.g. a harder task the open-ended seeds reached but did not solve): values
   of the first ``--hardest-by`` axis, the other axes as in the main target.
4. Both sides' best trained models on the target task (the best genome of the target's campaign, its weights at
   the highest rung it reached) are measured on ``--fresh-samples`` validation samples drawn with a seed no
   search used (``ctm.evaluation.measure_state``). An open-ended seed that never admitted the target task has no
   model for it: it counts as not solving it.

Printed: per seed, both sides' fresh accuracy and whether it is at or above the solve threshold; the median
seed's verdict (the target: open-ended solves, direct does not); ANNECS against compute per open-ended seed and
whether it still rose in the last third of the compute; the transfers (screens that seeded a task, transfers
between tasks) on the lineage of each open-ended best model. Writes ``results.json`` and ``annecs.png`` to
``--out``. Every run is a directory under ``--work``: running the script again with the same options reuses
finished runs, resumes unfinished ones, and reuses cached measurements.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ctm.evaluation import measure_state  # noqa: E402
from ctm.result import TaskSpec  # noqa: E402
from search.campaign.config import parse_campaign_config  # noqa: E402
from search.campaign.loop import Campaign  # noqa: E402
from search.journal import Journal  # noqa: E402
from search.open_ended.driver import OpenEnded, is_open_ended  # noqa: E402
from search.paths import CampaignPaths  # noqa: E402
from search.views import QuietReporter  # noqa: E402
from workers import WorkersConfig, make_pool  # noqa: E402

FRESH_SEED = 424_242  # validation data no search saw (the fitness uses ctm.evaluation.VALIDATION_SEED)


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def open_ended_run(base: dict[str, Any], seed: int, steps: int, work: Path, pool: Any) -> OpenEnded:
    directory = work / f"oe-s{seed}"
    if is_open_ended(directory):
        oe = OpenEnded.open(directory)
    else:
        data = {**base, "name": f"{base['name']}-s{seed}", "seed": seed, "budget": {"steps": steps},
                "output_dir": str(directory)}
        oe = OpenEnded.create(parse_campaign_config(data, source="open-ended benchmark"), directory)
    if not oe.finished() and oe.state.ended is None:
        say(f"open-ended seed {seed}: running ({oe.state.spent:,.0f} of {steps:,} steps done)")
        oe.run(pool=pool, quiet=True, say=lambda line: say(f"  oe-s{seed} {line}"))
    return oe


def direct_run(base: dict[str, Any], params: dict[str, Any], seed: int, steps: int, work: Path, pool: Any,
               tag: str) -> Campaign:
    directory = work / f"direct-{tag}-s{seed}"
    data = {k: v for k, v in base.items() if k != "open_ended"}
    data.update(name=f"{base['name']}-direct-{tag}-s{seed}", seed=seed, budget={"steps": steps},
                output_dir=str(directory), task={**base["task"], "params": {**base["task"]["params"], **params}})
    config = parse_campaign_config(data, source="direct benchmark")
    campaign = (Campaign.open(directory) if CampaignPaths(directory).meta.exists()
                else Campaign.create(config, directory))
    if not campaign.finished():
        say(f"direct seed {seed} on {tag}: running ({campaign.ledger.spent:,.0f} of {steps:,} steps done)")
        campaign.run(pool=pool, reporter=QuietReporter())
    return campaign


def best_model(campaign: Campaign) -> tuple[Any, bytes] | None:
    """The campaign's best genome (ctmevo's one ranking) and its trained weights, if on disk."""
    best = campaign.rungs.best()
    if best is None:
        return None
    record = campaign.strategy.record(best[0])
    try:
        return record.proposal.genome, campaign.paths.checkpoint(best[0]).read_bytes()
    except (OSError, AttributeError):
        return None


def crossings(root: Path, task: str, genome: str, seen: set[tuple[str, str]] | None = None) -> dict[str, int]:
    """Screens and transfers on the lineage of ``genome`` in task ``task``: its ancestors within the task (parents)
    and, where one came from another task, that task's lineage in turn."""
    seen = set() if seen is None else seen
    firsts: dict[str, dict[str, Any]] = {}
    for event in Journal(root / "tasks" / task / "journal.jsonl").read():
        if event["event"] == "result":
            firsts.setdefault(event["record"]["result"]["genome_hash"], event["record"])
    counts = {"screen": 0, "transfer": 0}
    stack = [genome]
    while stack:
        h = stack.pop()
        if (task, h) in seen or h not in firsts:
            continue
        seen.add((task, h))
        record = firsts[h]
        moved = record["extra"].get("transferred_from")
        if moved:
            counts[moved.get("kind", "transfer")] += 1
            for kind, n in crossings(root, moved["task"], moved["genome"], seen).items():
                counts[kind] += n
        else:
            stack.extend(record["proposal"]["parents"])
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=ROOT / "experiments" / "open_ended_parity.yaml")
    parser.add_argument("--steps", type=int, default=12_000, help="training steps per run, each side")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--also", type=int, nargs="*", default=[], metavar="VALUE",
                        help="more targets: values of the first difficulty axis compared the same way (e.g. a "
                             "harder task every open-ended seed reached without solving it)")
    parser.add_argument("--hardest-by", nargs="+", default=None, metavar="AXIS",
                        help="difficulty axes in order of importance (default: the file's order); e.g. "
                             "route_length size for the partially observed mazes, where the route is what is hard")
    parser.add_argument("--fresh-samples", type=int, default=2048)
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "work" / "open_ended")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "open_ended")
    args = parser.parse_args()
    base = yaml.safe_load(args.config.read_text())
    axes = list(args.hardest_by or base["open_ended"]["axes"])
    if len(set(axes)) != len(axes) or set(axes) != set(base["open_ended"]["axes"]):
        raise SystemExit(f"--hardest-by {' '.join(axes)}: allowed is an order of the file's axes "
                         f"{list(base['open_ended']['axes'])} (each once)")
    axis = axes[0]

    def rank(params: dict[str, Any]) -> tuple[int, ...]:  # harder first by the first axis, then the next
        return tuple(params[a] for a in axes)
    threshold = float(base["open_ended"].get("solved", 0.95))
    args.work.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    cache_file = args.out / "measured.json"
    cache = json.loads(cache_file.read_text()) if cache_file.exists() else {}
    seeds = list(range(args.seeds))
    pool = make_pool(WorkersConfig.from_dict(base["workers"]))
    try:
        runs = {seed: open_ended_run(base, seed, args.steps, args.work, pool) for seed in seeds}
        hardest = {seed: max(({a: t.params[a] for a in axes} for t in oe.state.tasks.values() if t.solved),
                             key=rank, default=None)
                   for seed, oe in runs.items()}
        if all(v is None for v in hardest.values()):
            say("no open-ended seed solved any task: nothing to compare")
            return 1
        ranked = sorted(seeds, key=lambda s: () if hardest[s] is None else rank(hardest[s]))
        main_target = hardest[ranked[(len(ranked) - 1) // 2]]  # the lower median seed's hardest solved task
        targets = [main_target, *({**main_target, axis: value} for value in args.also)]
        # each direct run gets the compute its open-ended seed spent (the last round may run past --steps)
        direct = {(tag_of(target), seed): direct_run(base, target, seed, int(runs[seed].state.spent), args.work,
                                                     pool, tag_of(target))
                  for target in targets for seed in seeds}
    finally:
        pool.shutdown()

    def fresh(key: str, spec: TaskSpec, model: tuple[Any, bytes] | None) -> float | None:
        if model is None:
            return None
        if key not in cache:
            cache[key] = measure_state(model[0], spec, model[1], samples=args.fresh_samples, seed=FRESH_SEED)
            cache_file.write_text(json.dumps(cache, indent=1))
        return cache[key]

    results = []
    for n, target in enumerate(targets):
        spec = TaskSpec(name=base["task"]["name"], params={**base["task"]["params"], **target})
        tag = tag_of(target)
        rows = []
        for seed in seeds:
            oe = runs[seed]
            task = next((t for t in oe.state.tasks.values() if all(t.params.get(a) == v for a, v in target.items())),
                        None)
            oe_model = best_model(oe.campaign(task)) if task is not None else None
            d_model = best_model(direct[(tag, seed)])
            oe_key = f"oe-s{seed}/{task.id if task else '-'}/{oe_model[0].hash if oe_model else '-'}"
            rows.append({"seed": seed, "oe_task": task.id if task else None,
                         "oe_genome": oe_model[0].hash if oe_model else None,
                         "oe_fresh": fresh(oe_key, spec, oe_model),
                         "direct_genome": d_model[0].hash if d_model else None,
                         "direct_fresh": fresh(f"direct-{tag}-s{seed}/{d_model[0].hash if d_model else '-'}", spec,
                                               d_model),
                         "lineage": crossings(oe.root, task.id, oe_model[0].hash) if task and oe_model else {},
                         "direct_steps": direct[(tag, seed)].ledger.spent})
        median = {side: statistics.median_low([r[side] if r[side] is not None else 0.0 for r in rows])
                  for side in ("oe_fresh", "direct_fresh")}
        met = median["oe_fresh"] >= threshold > median["direct_fresh"]
        what = ("the hardest task solved by the median open-ended seed (per seed: "
                f"{[hardest[s] for s in seeds]})" if n == 0 else "an extra target (--also)")
        print(f"\ntarget {spec.name} {spec.params}: {what}; fresh validation: {args.fresh_samples} samples; solved: "
              f">= {threshold}")
        print(f"{'seed':>4}  {'open-ended (fresh)':>24}  {'direct (fresh)':>24}  direct steps  lineage crossings")
        for r in rows:
            print(f"{r['seed']:>4}  {_solved(r['oe_fresh'], threshold):>24}  "
                  f"{_solved(r['direct_fresh'], threshold):>24}  {r['direct_steps']:>12,.0f}  {r['lineage']}")
        print(f"median seed: open-ended {median['oe_fresh']:.3f}, direct {median['direct_fresh']:.3f}"
              + (f": target (open-ended solves, direct does not) {'MET' if met else 'MISSED'}" if n == 0 else ""))
        results.append({"target": target, "rows": rows, "median": median, "met": met if n == 0 else None})

    print()
    runs_out = []
    for seed in seeds:
        history = [(h.get("train_steps_spent", 0.0), h.get("annecs", 0.0)) for h in runs[seed].state.history]
        last_third = [a for st, a in history if st >= 2 / 3 * args.steps]
        before = [a for st, a in history if st < 2 / 3 * args.steps]
        rising = bool(last_third) and max(last_third) > (max(before) if before else 0.0)
        print(f"seed {seed}: ANNECS {history[-1][1] if history else 0:g}, still rising in the last third of the "
              f"compute: {'yes' if rising else 'no'}; by compute: "
              + " ".join(f"{st / 1000:.1f}k:{a:g}" for st, a in history))
        runs_out.append({"seed": seed, "hardest_solved": hardest[seed], "annecs_by_compute": history,
                         "annecs_rising_last_third": rising, "steps": runs[seed].state.spent,
                         "tasks": {t.id: {"params": t.params, "best": t.best, "solved_round": t.solved_round}
                                   for t in runs[seed].state.tasks.values()}})
    (args.out / "results.json").write_text(json.dumps({"steps": args.steps, "targets": results, "runs": runs_out},
                                                      indent=1))
    _plot(runs_out, args.out / "annecs.png")
    return 0


def tag_of(target: dict[str, Any]) -> str:
    """``length10`` or ``size9-route_length12``: the work directory's name for a target task."""
    return "-".join(f"{a}{v}" for a, v in target.items())


def _solved(x: float | None, threshold: float) -> str:
    return "- (no such task)" if x is None else f"{x:.3f} {'solved' if x >= threshold else 'not solved'}"


def _plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for r in rows:
        steps, annecs = zip(*r["annecs_by_compute"], strict=True) if r["annecs_by_compute"] else ((), ())
        ax.step(steps, annecs, where="post", label=f"seed {r['seed']}")
    ax.set_xlabel("training steps (all tasks, screens and transfers)")
    ax.set_ylabel("ANNECS")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
