"""Search efficiency: which strategy turns the same training compute into the best CTM (issue 13's benchmark).

    .venv/bin/python benchmarks/search_efficiency.py        # the default: about 30 minutes on 2 shared CPU cores

Every arm searches the same task and genome space with the same total compute (``budget.steps``: optimizer
steps trained by all evaluations together, ``--compute``), once per campaign seed (``--seeds``). The default
space is the quickstart's (``--space experiments/quickstart.yaml``: its genome space, descriptors and
evaluation settings) on cumulative parity of length 8 (``--task``): at the quickstart's length 6 most genomes
reach 0.98 and more after 900 steps, which leaves nothing to compare. The arms are the table :data:`ARMS`;
another arm is one more entry:

- ``random``, ``reg_evolution``, ``me_scratch``: every genome trained from scratch at the middle rung's
  steps (300 for the quickstart; ``--flat-steps``), one seed: the search before fidelity rungs.
- ``tpe_sha`` (the anchor, what a user would otherwise pick): Optuna TPE over fidelity rungs (default: the space
  file's, 100, 300, 900 for the quickstart; ``[steps/3, steps, 3*steps]`` for a file without rungs), its
  successive-halving pruner deciding promotions, one seed.
- ``me_rungs``: MAP-Elites with the same rungs (ASHA, eta 3, promotions continue training) and re-evaluation
  of the best with fresh seeds (3 seeds, at most 15 % of the training steps); the reported best is a mean over 3 seeds.
- ``dehb``: DEHB (``benchmarks/dehb_driver.py``, ask/tell) on the same pool, every evaluation from scratch at its
  fidelity (the rungs' step counts), one seed; cached per run (needs the bench extra).
- ``surrogate_rungs``: ``surrogate_elites``, the default strategy (a Gaussian process screens MAP-Elites' children
  and random genomes) with the same rungs and re-evaluation; its settings are spelled out, so a cached run of an
  older default is refused rather than reused. ``surrogate_exploit``: the same without exploring proposals
  (``explore_share: 0``, the default before 2026-12-07).
- ``me_rungs_inherit``: the same plus weight inheritance from the parent (``evaluation.inherit: parent``); run
  only when the campaign config accepts that field, else skipped with a note.

Arms share campaign seeds, so the first random genomes of random search and MAP-Elites are the same genomes
(paired comparison). The genome a run reports as best (:func:`search.records.standings`: ctmevo's one ranking,
each mean read with its noise) at each fraction of its compute in ``--checkpoints`` (default 1/4, 1/2, 3/4,
all) is trained again with ``--reeval-seeds`` fresh seeds (the same for every arm, never used by a search) at
the full budget (the top rung, 900 steps, the same for every arm) with ``ctm.evaluate`` through the same worker
pool: its *re-evaluated fitness* is the mean over those seeds.

Printed per arm: the re-evaluated best at full compute (median [min-max] over seeds) and its median at every
checkpoint; the reported best at the end; the compute to reach the target fitness, median over seeds ("-": not
reached; more than half not reached: no median), measured twice: on the *reported* best-so-far (the journal in
order, every result; but flat arms report 300-step single-seed values and rung arms 900-step ones, so this
favours rung arms), and on the *re-evaluated* best at the checkpoints (coarse: a checkpoint counts as its
nominal budget f * compute, what a campaign given that budget would have reported); and the ratio anchor compute
/ arm compute for each. The default target is the anchor's median re-evaluated best at full compute
(``--target`` overrides it). The issue's goal, "≥ 2× less compute than the anchor to reach the same
re-evaluated fitness", is judged on the re-evaluated measure. Writes ``results.json`` (every number, every run's
curve) and ``best_vs_compute.png`` into ``--out``; the campaigns (ordinary campaign directories without MLflow:
``ctmevo sync DIR`` sends one there) go to ``--work``; running the script again with the same options reuses
finished campaigns and cached re-evaluations, and resumes an unfinished campaign.

Backend (``--backend``), measured here (2 cores shared with other sessions, load 2-6), one random and one TPE
campaign of 3,000 steps each on parity length 6: the embedded Ray cluster with 2 workers of 1 CPU took 34 s and
33 s, the inline backend (one evaluation at a time, torch on 2 threads) 162 s and 151 s; Ray is the default.
Compute: 10,000 steps per run (34 evaluations of 300 steps in a flat arm) keeps the 15 runs and the
re-evaluations near 30 minutes here; the arms need about 60-90 s per run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import efficiency_report as report  # this script's folder (added to sys.path above)

from ctm.result import EvalBudget
from genome import Genome
from search.campaign import Campaign, load_campaign_config, parse_campaign_config
from search.campaign.rungs import repeat_seed
from search.errors import ConfigError
from search.journal import Journal
from search.records import EvaluationRecord, Proposal
from search.views import QuietReporter
from workers import EvalJob, Pool, WorkersConfig, make_pool

DEFAULT_SPACE = Path("experiments/quickstart.yaml")
DEFAULT_TASK = "parity:length=8"  # the quickstart's length 6 saturates: most genomes reach 0.98+ after 900 steps
REEVAL_SEED_BASE = 7_000_001  # fresh seeds: search seeds are sha256-derived, see search.campaign.rungs


@dataclass(frozen=True, kw_only=True)
class Arm:
    """One way to search: a strategy, with or without fidelity rungs, re-evaluation and extra evaluation fields."""

    name: str
    strategy: str
    about: str
    settings: dict[str, Any] = field(default_factory=dict)
    rungs: bool = False  # fidelity rungs (ASHA; a promotion continues the genome's own checkpoint)
    repeats: bool = False  # the best genomes re-evaluated with fresh seeds; best = mean over >= seeds
    evaluation: dict[str, Any] = field(default_factory=dict)  # more evaluation fields (e.g. inherit)
    fidelity: dict[str, Any] = field(default_factory=dict)  # more evaluation.fidelity fields (e.g. cell_share)
    anchor: bool = False
    optional: bool = False  # skipped, with a note, when the campaign config refuses the arm
    driver: str | None = None  # not a ctmevo campaign: "dehb" (benchmarks/dehb_driver.py) drives the same pool


ARMS: tuple[Arm, ...] = (
    Arm(name="random", strategy="random", about="random search, from scratch, flat budget"),
    Arm(name="reg_evolution", strategy="regularized_evolution", settings={"population_size": 10, "sample_size": 3},
        about="regularised evolution (P 10, S 3), from scratch, flat budget"),
    Arm(name="tpe_sha", strategy="optuna_tpe", settings={"pruner": "successive_halving"}, rungs=True, anchor=True,
        about="Optuna TPE over rungs, its successive-halving pruner decides promotions (anchor)"),
    Arm(name="dehb", strategy="random", driver="dehb", rungs=True,
        about="DEHB (ask/tell), every evaluation from scratch at its fidelity (the rungs' step counts)"),
    Arm(name="me_scratch", strategy="map_elites", settings={"initial_samples": 8},
        about="MAP-Elites, from scratch, flat budget (before issue 13)"),
    Arm(name="me_rungs", strategy="map_elites", settings={"initial_samples": 8}, rungs=True, repeats=True,
        about="MAP-Elites with rungs and re-evaluation (fresh seeds)"),
    Arm(name="surrogate_rungs", strategy="surrogate_elites", settings={"initial_samples": 8, "explore_share": 0.3},
        rungs=True, repeats=True, about="surrogate-assisted MAP-Elites (a Gaussian process screens children and "
        "random genomes) with rungs and re-evaluation"),
    Arm(name="surrogate_cells", strategy="surrogate_elites", settings={"initial_samples": 8, "explore_share": 0.3},
        rungs=True, repeats=True, fidelity={"cell_share": 0.25},
        about="surrogate_rungs whose archive cells' elites also go up to the top rung (cell_share 0.25)"),
    Arm(name="surrogate_exploit", strategy="surrogate_elites", settings={"initial_samples": 8, "explore_share": 0.0},
        rungs=True, repeats=True, about="surrogate_rungs without exploring proposals (the default before 2026-12-07)"),
    Arm(name="me_rungs_inherit", strategy="map_elites", settings={"initial_samples": 8}, rungs=True, repeats=True,
        evaluation={"inherit": "parent"}, optional=True,
        about="MAP-Elites with rungs, re-evaluation and weight inheritance from the parent"),
)


def parse_task(text: str) -> dict[str, Any]:
    """``NAME`` or ``NAME:key=value,key=value`` (values read as YAML) → the campaign file's ``task`` section."""
    name, _, rest = text.partition(":")
    params = {}
    for item in filter(None, rest.split(",")):
        key, eq, value = item.partition("=")
        if not eq:
            raise SystemExit(f"--task {text}: allowed is NAME or NAME:key=value,key=value")
        params[key.strip()] = yaml.safe_load(value)
    return {"name": name.strip(), "params": params}


def default_rungs(evaluation: Any) -> list[int]:
    """The space file's fidelity rungs; without them ``[s/3, s, 3s]`` around its ``evaluation.steps`` (s, else 300)."""
    if evaluation.fidelity is not None and evaluation.steps:
        return evaluation.rungs()
    steps = evaluation.steps or 300
    return [max(1, steps // 3), steps, steps * 3]


def arm_config(base: dict[str, Any], arm: Arm, *, seed: int, compute: int, rungs: list[int], flat_steps: int,
               eta: float, seeds: int, share: float, workers: dict[str, Any], directory: Path) -> Any:
    """The campaign config of one arm and seed (validated: a refused field raises ConfigError)."""
    data = json.loads(json.dumps(base))
    evaluation = {k: v for k, v in data.get("evaluation", {}).items() if k not in ("fidelity", "repeats")}
    evaluation["steps"] = rungs[0] if arm.rungs else flat_steps
    if arm.rungs:
        evaluation["fidelity"] = {"rungs": rungs, "eta": eta, **arm.fidelity}
    if arm.repeats:
        evaluation["repeats"] = {"seeds": seeds, "share": share}
    evaluation.update(arm.evaluation)
    data.update(name=f"{base['name']}-{arm.name}-s{seed}", seed=seed, output_dir=str(directory),
                strategy={"name": arm.strategy, "settings": dict(arm.settings)}, evaluation=evaluation,
                budget={"steps": compute}, workers=workers, tracking={"checkpoints": "none"}, snapshot_every=25)
    return parse_campaign_config(data, source=f"arm {arm.name}")


def run_campaign(config: Any, directory: Path, pool: Pool) -> dict[str, Any]:
    """Run (or resume, or reuse when finished) one campaign; its records and wall time."""
    side = directory / "bench_run.json"
    if (directory / "campaign.json").exists():
        campaign = Campaign.open(directory)
        if campaign.config.model_dump() != config.model_dump():
            raise SystemExit(f"{directory} holds a campaign with other settings: pass --fresh, or another --work")
    else:
        campaign = Campaign.create(config, directory)
    wall = json.loads(side.read_text())["wall_s"] if side.exists() else 0.0
    if not campaign.finished():
        began = time.monotonic()
        campaign.run(pool=pool, reporter=QuietReporter())
        for job_id in pool.in_flight:  # the budget is spent: what is still training is not counted, stop it
            pool.cancel(job_id)
        wall += time.monotonic() - began
        side.write_text(json.dumps({"wall_s": wall}))
    with Journal(campaign.paths.journal) as journal:
        records = journal.records()
    return {"records": records, "wall_s": wall}


def run_dehb_arm(config: Any, directory: Path, pool: Pool, *, rungs: list[int], compute: int) -> dict[str, Any]:
    """DEHB on the campaign's task, space and compute (:mod:`dehb_driver`), its evaluations as records (rung = the
    fidelity's index in ``rungs``); cached per run (a stopped run starts over: DEHB's state is not journaled)."""
    from dehb_driver import dehb_run

    done, side = directory / "dehb_records.jsonl", directory / "bench_run.json"
    if done.exists() and side.exists():
        with Journal(done) as journal:
            return {"records": journal.records(), "wall_s": json.loads(side.read_text())["wall_s"]}
    directory.mkdir(parents=True, exist_ok=True)
    began, records = time.monotonic(), []
    for n, (genome, steps, result) in enumerate(dehb_run(
            pool, space=config.space(), task=config.task.spec(), rungs=rungs, budget_steps=compute,
            seed=config.seed, eval_seed=lambda g, k: repeat_seed(config.seed, g.hash, k))):
        records.append(EvaluationRecord(campaign=config.name, birth=n, proposal=Proposal(genome=genome,
                                        operator="dehb"), result=result, finished_at=time.time(),
                                        rung=rungs.index(steps) if steps in rungs else 0))
    with Journal(done) as journal:
        journal.extend([{"event": "result", "record": r.to_dict()} for r in records])
    side.write_text(json.dumps({"wall_s": time.monotonic() - began}))
    return {"records": records, "wall_s": time.monotonic() - began}


def reevaluate(pool: Pool, wanted: dict[str, Genome], *, task: Any, budget: EvalBudget, seeds: list[int],
               cache: Path) -> dict[str, list[float | None]]:
    """Fitness of every wanted genome (hash → genome) at ``budget`` for each seed (None: failed), cached."""
    done: dict[str, float | None] = json.loads(cache.read_text()) if cache.exists() else {}
    key = lambda h, s: f"{task.name}:{json.dumps(task.params, sort_keys=True)}|{budget.steps}|{h}|{s}"  # noqa: E731
    todo = [EvalJob(job_id=f"{h}:{s}", genome=g, task=task, budget=budget, seed=s)
            for h, g in wanted.items() for s in seeds if key(h, s) not in done]
    if todo:
        print(f"re-evaluating {len(todo)} (genome, seed) pairs at {budget.steps} steps ...", flush=True)
    while todo or pool.in_flight:
        while todo and pool.free_slots > 0:
            pool.submit(todo.pop(0))
        for result in pool.poll(timeout=1.0):
            h, s = result.job_id.split(":")
            done[key(h, int(s))] = result.fitness if result.ok else None
            cache.write_text(json.dumps(done, indent=0))
    return {h: [done[key(h, s)] for s in seeds] for h in wanted}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--space", type=Path, default=DEFAULT_SPACE,
                   help="campaign file whose task, genome_space, descriptors and evaluation settings are used")
    p.add_argument("--task", type=parse_task, default=None, help="NAME or NAME:key=value,... (default: the space "
                   f"file's task; with the default --space: {DEFAULT_TASK})")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="campaign seeds (runs per arm)")
    p.add_argument("--compute", type=int, default=10_000, help="budget.steps of every run (total training steps)")
    p.add_argument("--arms", nargs="+", default=None, help=f"arms to run (default all): {[a.name for a in ARMS]}")
    p.add_argument("--rungs", type=int, nargs="+", default=None, help="fidelity rungs (default: the space file's "
                   "rungs, else steps/3, steps, 3*steps with steps = its evaluation.steps)")
    p.add_argument("--flat-steps", type=int, default=None, help="training steps of one evaluation in arms without "
                   "rungs (default: the middle rung)")
    p.add_argument("--eta", type=float, default=3.0)
    p.add_argument("--repeat-seeds", type=int, default=3, help="seeds of the best genomes in arms with repeats")
    p.add_argument("--share", type=float, default=0.15, help="share of the training steps used for repeats")
    p.add_argument("--reeval-seeds", type=int, default=3, help="fresh seeds of the re-evaluation")
    p.add_argument("--checkpoints", type=float, nargs="+", default=[0.25, 0.5, 0.75, 1.0],
                   help="fractions of the compute at which the reported best is re-evaluated")
    p.add_argument("--target", type=float, default=None, help="target fitness (default: the anchor's median "
                   "re-evaluated best at full compute)")
    p.add_argument("--backend", choices=("ray", "inline"), default="ray")
    p.add_argument("--workers", type=int, default=2, help="evaluations at once (Ray workers of 1 CPU)")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/search_efficiency"))
    p.add_argument("--work", type=Path, default=Path("campaigns/search_efficiency"), help="campaign directories")
    p.add_argument("--fresh", action="store_true", help="delete the campaigns and re-evaluations of earlier runs")
    args = p.parse_args()
    began = time.monotonic()

    space_config = load_campaign_config(args.space)
    base = space_config.model_dump(mode="json")
    if args.task is None and args.space == DEFAULT_SPACE:
        args.task = parse_task(DEFAULT_TASK)
    if args.task:
        base["task"] = args.task
    rungs = args.rungs or default_rungs(space_config.evaluation)
    steps = args.flat_steps or rungs[len(rungs) // 2]
    top = rungs[-1]
    fractions = sorted({min(1.0, max(0.0, f)) for f in args.checkpoints} | {1.0})
    if args.fresh and args.work.exists():
        shutil.rmtree(args.work)
    args.out.mkdir(parents=True, exist_ok=True)
    args.work.mkdir(parents=True, exist_ok=True)
    workers = ({"backend": "inline"} if args.backend == "inline" else
               {"backend": "ray", "num_cpus": args.workers, "cpus_per_eval": 1, "timeout_s": 1800})
    arms = [a for a in ARMS if args.arms is None or a.name in args.arms]
    unknown = set(args.arms or []) - {a.name for a in ARMS}
    if unknown:
        raise SystemExit(f"--arms {sorted(unknown)}: allowed are {[a.name for a in ARMS]}")
    if not any(a.anchor for a in arms):
        raise SystemExit("--arms: include the anchor arm (" + ", ".join(a.name for a in ARMS if a.anchor) + ")")

    notes: list[str] = []
    configs: dict[tuple[str, int], Any] = {}
    for arm in list(arms):
        try:
            for seed in args.seeds:
                configs[arm.name, seed] = arm_config(
                    base, arm, seed=seed, compute=args.compute, rungs=rungs, flat_steps=steps, eta=args.eta,
                    seeds=args.repeat_seeds, share=args.share, workers=workers,
                    directory=args.work / arm.name / f"seed-{seed}")
        except ConfigError as exc:
            if not arm.optional:
                raise
            arms.remove(arm)
            first = str(exc).splitlines()[-1].strip()
            notes.append(f"arm {arm.name} skipped: the campaign config refuses it ({first})")
            print(notes[-1], flush=True)

    pool = make_pool(WorkersConfig.from_dict(workers))
    runs: dict[str, list[dict[str, Any]]] = {a.name: [] for a in arms}
    try:
        for seed in args.seeds:  # seeds outermost: an early stop still leaves every arm with some runs
            for arm in arms:
                where = args.work / arm.name / f"seed-{seed}"
                out = (run_dehb_arm(configs[arm.name, seed], where, pool, rungs=rungs, compute=args.compute)
                       if arm.driver == "dehb" else run_campaign(configs[arm.name, seed], where, pool))
                curve, genomes = report.reported_curve(out["records"])
                records = out["records"]
                run = {"seed": seed, "wall_s": out["wall_s"], "evaluations": len(records),
                       "genomes_evaluated": len({r.genome.hash for r in records}),
                       "repeat_compute": sum(r.cost for r in records if r.repeat),
                       "failures": sum(not r.result.ok for r in out["records"]),
                       "compute": curve[-1]["compute"] if curve else 0.0, "curve": curve, "genomes": genomes}
                runs[arm.name].append(run)
                last = curve[-1] if curve else {}
                print(f"{arm.name:18s} seed {seed}: {run['evaluations']:3d} evaluations, {run['compute']:8,.0f} "
                      f"steps, {run['wall_s']:6.0f} s; reported best {last.get('value', float('nan')):.4f} "
                      f"(rung {last.get('rung')}, {last.get('seeds')} seeds)", flush=True)
        task = configs[arms[0].name, args.seeds[0]].task.spec()
        budget = replace(space_config.evaluation.budget(), steps=top, seconds=None)
        reeval_seeds = [REEVAL_SEED_BASE + k for k in range(args.reeval_seeds)]
        wanted: dict[str, Genome] = {}
        for arm_runs in runs.values():
            for run in arm_runs:
                run["at"] = {}
                for f in fractions:
                    point = next((c for c in run["curve"] if c["compute"] >= f * args.compute), run["curve"][-1])
                    run["at"][f] = point
                    wanted[point["hash"]] = Genome.from_dict(run["genomes"][point["hash"]])
        reeval_began = time.monotonic()
        fitness = reevaluate(pool, wanted, task=task, budget=budget, seeds=reeval_seeds,
                             cache=args.work / "reevaluations.json")
        reeval_wall = time.monotonic() - reeval_began
    finally:
        pool.shutdown()

    for arm_runs in runs.values():
        for run in arm_runs:
            run["reevaluated"] = {}
            for f, point in run.pop("at").items():
                values = [v for v in fitness[point["hash"]] if v is not None]
                run["reevaluated"][str(f)] = {"budget": f * args.compute, "compute": point["compute"],
                                              "hash": point["hash"],
                                              "reported": point["value"],
                                              "rung": point["rung"], "seeds": point["seeds"],
                                              "fitness": fitness[point["hash"]],
                                              "mean": sum(values) / len(values) if values else None}
    anchor = next(a for a in arms if a.anchor)
    anchor_full = [r["reevaluated"]["1.0"]["mean"] for r in runs[anchor.name]]
    target = args.target if args.target is not None else report.spread(anchor_full)["median"]
    if target is None:
        raise SystemExit(f"no re-evaluated fitness of the anchor ({anchor.name}): every re-evaluation failed")
    summaries = {a.name: report.summarise_arm(a, runs[a.name], target=target, fractions=fractions) for a in arms}
    verdict = report.judge(summaries, anchor=anchor.name, target=target, target_source="--target" if args.target
                    is not None else f"median re-evaluated best of the anchor ({anchor.name}) at full compute")
    controls = [a.name for a in arms if a.strategy == "random" and a.name in verdict["met_by"]]
    if controls:
        notes.append(f"{', '.join(controls)} (no selection beyond sampling) meets the target too: the anchor's "
                     "re-evaluated best is no better than early random genomes here, so meeting the target is no "
                     "evidence for any arm's method")
    wall = time.monotonic() - began
    campaigns_wall = sum(run["wall_s"] for arm_runs in runs.values() for run in arm_runs)
    result = {"command": " ".join(sys.argv), "space": str(args.space), "task": task.to_dict(), "compute": args.compute,
              "seeds": args.seeds, "rungs": rungs, "flat_steps": steps, "eta": args.eta, "backend": args.backend,
              "workers": args.workers, "reeval": {"seeds": reeval_seeds, "steps": top, "fractions": fractions,
                                                  "wall_s": reeval_wall, "genomes": len(wanted)},
              "arms": {a.name: {"about": a.about, "strategy": a.strategy, "settings": a.settings, "rungs": a.rungs,
                                "repeats": a.repeats, "evaluation": a.evaluation, "fidelity": a.fidelity,
                                "anchor": a.anchor,
                                "summary": summaries[a.name], "runs": runs[a.name]} for a in arms},
              "verdict": verdict, "notes": notes, "campaigns_wall_s": campaigns_wall, "wall_s": wall}
    for a in result["arms"].values():
        for run in a["runs"]:
            run.pop("genomes")
    (args.out / "results.json").write_text(json.dumps(report.finite(result), indent=1, allow_nan=False) + "\n")
    picture = report.plot_curves({a.name: runs[a.name] for a in arms}, args.out / "best_vs_compute.png",
                          compute=args.compute, target=target, summaries=summaries,
                          title=f"{task.name} {task.params}: reported best against training steps "
                                f"({len(args.seeds)} seeds per arm)")
    print()
    for line in report.table_lines(summaries, verdict, anchor=anchor.name, fractions=fractions, notes=notes):
        print(line)
    print(f"\nwall time: campaigns {campaigns_wall:.0f} s (sum of the runs, reused ones as first measured); "
          f"re-evaluation of {len(wanted)} genomes x {len(reeval_seeds)} seeds at {top} steps {reeval_wall:.0f} s "
          f"(cached pairs not counted); this invocation {wall:.0f} s")
    print(f"wrote {args.out / 'results.json'} and {picture}")


if __name__ == "__main__":
    main()
