"""Weight inheritance measured honestly: does a child trained from its parent's weights rank like it would from scratch?

    .venv/bin/python benchmarks/inheritance_rank.py            # parity 10, 10 parents x 4 children, ~10 min on 2 cores

Real training, no surrogate. ``--parents`` random genomes of the quickstart's space (``--space``) are trained
``--parent-steps`` steps on the task (``--task``, default cumulative parity of length 10, as in
``search_efficiency.py``); each gets ``--children`` mutations (``genome.mutate``, MAP-Elites' genetic operator with
its default sigma). Every child is trained ``--steps`` steps twice over:

- **inherited**: from its parent's weights mapped onto its genes (``ctm.inherit``, what ``evaluation.inherit:
  parent`` does in a campaign), one seed;
- **from scratch**: from its own initialisation, ``--scratch-seeds`` seeds (the first is the inherited run's seed).

Printed and written to ``--out`` (``inheritance.json``): Kendall τ between the children's inherited fitness and
their mean from-scratch fitness (the issue's measure: does the ranking a search with inheritance sees carry over to
the architecture a researcher re-trains?), against the noise ceiling τ between two from-scratch seeds of the same
children (and like against like: the inherited run and from-scratch seed 0, each against seed 1); the mean
inflation (inherited minus from-scratch fitness); how often the best child by inherited fitness
is the best, or in the top quarter, from scratch; and the compute of each side, the parents' training counted
on the inherited side (a lineage's training is what makes its children's head start). Every evaluation is cached in
``--work`` (a file per setting): a stopped run continues where it was.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ctm.result import EvalBudget, ParentWeights, TaskSpec  # noqa: E402
from genome import Genome, mutate  # noqa: E402
from search.campaign.config import load_campaign_config  # noqa: E402
from workers import EvalJob, WorkersConfig, make_pool  # noqa: E402


def kendall(a: list[float], b: list[float]) -> float:
    from scipy.stats import kendalltau
    return float(kendalltau(a, b)[0])


def run_jobs(pool: Any, jobs: list[EvalJob], cache: dict[str, Any], path: Path, keep_state: bool = False) -> None:
    """Run the jobs not in ``cache`` (job id → fitness and, for parents, the state as base64), saving after each."""
    todo = [j for j in jobs if j.job_id not in cache]
    if todo:
        print(f"{len(todo)} evaluations to run ({len(jobs) - len(todo)} cached) ...", flush=True)
    began, done = time.monotonic(), 0
    while todo or pool.in_flight:
        while todo and pool.free_slots > 0:
            pool.submit(todo.pop(0))
        for result in pool.poll(timeout=1.0):
            entry: dict[str, Any] = {"fitness": result.fitness if result.ok else None, "status": result.status,
                                     "steps": result.metrics.get("train_steps", 0.0),
                                     "inherited_fraction": result.metrics.get("inherited_fraction")}
            if keep_state and result.ok and result.checkpoint:
                entry["state"] = base64.b64encode(result.checkpoint).decode()
            cache[result.job_id] = entry
            path.write_text(json.dumps(cache))
            done += 1
            if done % 10 == 0 or not (todo or pool.in_flight):
                print(f"  {done} done, {time.monotonic() - began:.0f} s", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--space", type=Path, default=ROOT / "experiments" / "quickstart.yaml")
    p.add_argument("--task-length", type=int, default=10, help="parity length")
    p.add_argument("--parents", type=int, default=10)
    p.add_argument("--children", type=int, default=4, help="mutations of each parent")
    p.add_argument("--parent-steps", type=int, default=300)
    p.add_argument("--steps", type=int, default=300, help="training steps of every child, both sides")
    p.add_argument("--scratch-seeds", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "work" / "inheritance")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "inheritance")
    args = p.parse_args()
    if args.scratch_seeds < 2:
        raise SystemExit(f"--scratch-seeds {args.scratch_seeds}: allowed is 2 or more (the noise ceiling needs two)")

    config = load_campaign_config(args.space)
    space = config.space()
    task = TaskSpec(name="parity", params={"length": args.task_length})
    val = config.evaluation.val_samples
    rng = np.random.default_rng(args.seed)
    parents = [space.sample(rng) for _ in range(args.parents)]
    children: list[tuple[int, Genome]] = []
    for i, parent in enumerate(parents):
        made: set[str] = {parent.hash}
        while sum(k == i for k, _ in children) < args.children:
            child = mutate(parent, space, rng, rate=None, sigma=0.12)
            if child.hash not in made:
                made.add(child.hash)
                children.append((i, child))

    args.work.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    cache_path = args.work / (f"evaluations-parity{args.task_length}-seed{args.seed}-{args.parents}x{args.children}-"
                              f"{args.parent_steps}-{args.steps}.json")  # one file per setting: job ids repeat
    cache: dict[str, Any] = json.loads(cache_path.read_text()) if cache_path.exists() else {}
    pool = make_pool(WorkersConfig.from_dict({"backend": "ray", "num_cpus": args.workers, "cpus_per_eval": 1,
                                              "timeout_s": 1800}))
    began = time.monotonic()
    try:
        run_jobs(pool, [EvalJob(genome=g, task=task, budget=EvalBudget(steps=args.parent_steps, val_samples=val),
                                seed=args.seed + 1000 + i, job_id=f"parent-{i}-{g.hash}", want_checkpoint=True)
                        for i, g in enumerate(parents)], cache, cache_path, keep_state=True)
        states = {i: base64.b64decode(cache[f"parent-{i}-{g.hash}"]["state"]) for i, g in enumerate(parents)
                  if "state" in cache[f"parent-{i}-{g.hash}"]}
        budget = EvalBudget(steps=args.steps, val_samples=val)
        jobs = []
        for n, (i, child) in enumerate(children):
            seed = args.seed + 2000 + n
            if i in states:
                jobs.append(EvalJob(genome=child, task=task, budget=budget, seed=seed, job_id=f"inherit-{n}",
                                    parent=ParentWeights(genome=parents[i], state=states[i])))
            jobs += [EvalJob(genome=child, task=task, budget=budget, seed=seed + 100_000 * k,
                             job_id=f"scratch-{n}-{k}") for k in range(args.scratch_seeds)]
        run_jobs(pool, jobs, cache, cache_path)
    finally:
        pool.shutdown()

    rows = []
    for n, (i, child) in enumerate(children):
        inherited = cache.get(f"inherit-{n}", {}).get("fitness")
        scratch = [cache[f"scratch-{n}-{k}"]["fitness"] for k in range(args.scratch_seeds)]
        if inherited is None or any(s is None for s in scratch):
            continue
        rows.append({"parent": i, "genome": child.hash, "inherited": inherited, "scratch": scratch,
                     "scratch_mean": float(np.mean(scratch)),
                     "inherited_fraction": cache[f"inherit-{n}"]["inherited_fraction"]})
    inh = [r["inherited"] for r in rows]
    mean = [r["scratch_mean"] for r in rows]
    tau = kendall(inh, mean)
    ceiling = kendall([r["scratch"][0] for r in rows], [r["scratch"][1] for r in rows])
    # like against like: one inherited run and one from-scratch run (seed 0, the same data order) each against
    # from-scratch seed 1
    one_seed = kendall(inh, [r["scratch"][1] for r in rows])
    order = np.argsort(mean)[::-1]
    rank_of = {int(j): k for k, j in enumerate(order)}
    best_inh = int(np.argmax(inh))
    top_quarter = max(1, len(rows) // 4)
    parent_compute = args.parents * args.parent_steps
    result = {
        "command": " ".join(sys.argv), "task": task.to_dict(), "parents": args.parents, "children": len(rows),
        "parent_steps": args.parent_steps, "steps": args.steps, "scratch_seeds": args.scratch_seeds,
        "kendall_tau_inherited_vs_scratch_mean": tau, "kendall_tau_scratch_seed0_vs_seed1": ceiling,
        "kendall_tau_inherited_vs_scratch_seed1": one_seed,
        "inflation_mean": float(np.mean(np.array(inh) - np.array(mean))),
        "inherited_mean": float(np.mean(inh)), "scratch_mean": float(np.mean(mean)),
        "inherited_fraction_mean": float(np.mean([r["inherited_fraction"] or 0.0 for r in rows])),
        "best_by_inherited_rank_from_scratch": rank_of[best_inh] + 1,
        "best_by_inherited_in_top_quarter": rank_of[best_inh] < top_quarter,
        "compute_inherited_side": parent_compute + len(rows) * args.steps,
        "compute_scratch_one_seed": len(rows) * args.steps,
        "rows": rows, "wall_s": time.monotonic() - began,
    }
    (args.out / "inheritance.json").write_text(json.dumps(result, indent=1) + "\n")
    print(f"\n{len(rows)} children of {args.parents} parents ({args.parent_steps} steps), parity {args.task_length}, "
          f"{args.steps} steps each side")
    print(f"Kendall tau, inherited vs from-scratch mean of {args.scratch_seeds} seeds: {tau:.3f}")
    print(f"like against like: inherited vs from-scratch seed 1 {one_seed:.3f}; from-scratch seed 0 vs seed 1 "
          f"{ceiling:.3f} (the noise ceiling)")
    print(f"mean fitness: inherited {result['inherited_mean']:.3f}, from scratch {result['scratch_mean']:.3f} "
          f"(inflation {result['inflation_mean']:+.3f}); parameters inherited {result['inherited_fraction_mean']:.2f}")
    print(f"the best child by inherited fitness ranks {rank_of[best_inh] + 1} of {len(rows)} from scratch")
    print(f"compute: inherited side {result['compute_inherited_side']:,} steps (parents included), one from-scratch "
          f"seed {result['compute_scratch_one_seed']:,}")
    print(f"wrote {args.out / 'inheritance.json'}")


if __name__ == "__main__":
    main()
