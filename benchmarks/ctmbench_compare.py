"""Search strategies compared on CTM-Bench: every arm on both tasks, many seeds, in simulated time.

    python benchmarks/ctmbench_compare.py                 # short: 5 seeds per (arm, task), a few minutes per arm
    python benchmarks/ctmbench_compare.py --full          # 30 seeds; resumes from the cache after any stop
    python benchmarks/ctmbench_compare.py --arms random dehb map_elites --seeds 3 --workers 2
    python benchmarks/ctmbench_compare.py --small --full  # the real-training regime: 10,000 steps, 2 workers

Each campaign gets ``--budget`` training steps (default 180,000: 200 top-step evaluations' worth) on 64 simulated
workers whose training is replayed by CTM-Bench's boosting surrogate (``ctm.bench.replay:surrogate``).
**Quality** of a run at a point is the noise-free mean accuracy at 900 steps, as the judging surrogate predicts
it, of the genome the run reports as best then (the bench's "re-trained from scratch"): the same rule for every
arm, the genome measured at the most steps with the best mean over its seeds there, each mean read with its
noise: ``search.records.rank``, the ranking ctmevo's own status and export use (empirical Bayes over the run's
own measurements at that step count, once some genome there has two seeds). With one seed per genome that is
the best mean; an arm that spends compute on repeated seeds can tell a lucky seed from a good genome, and is
credited for it. Judged twice: by the boosting surrogate (``judge: boosting``) and by the extra-trees surrogate
(``judge: forest``, another model class fitted on the same data). Regret is against the best judged mean
over all measured genomes.

Per task and arm: final quality median [q1, q3]; compute (training steps) to reach the best anchor's median final
quality as a ratio to the best anchor's own, read two ways with a bootstrap 95% interval over seeds
(``benchmarks/ctmbench_stats.py`` says why the first is degenerate against the anchor's own median): the medians
over runs of each run's compute to reach it (null where the median run never reaches it), and the compute from
which on the arm's median anytime curve stays at or above it over the same for the anchor's; a Wilcoxon signed-
rank test of the final quality against the best anchor (paired by seed); QD-score and coverage of every arm's top-
step genomes placed in one ticks × memory-length archive. Anchors are the methods a researcher would otherwise
pick: random search, regularised evolution, Optuna TPE with successive halving / Hyperband, DEHB (ask/tell, from
scratch at 100/300/900 steps) and top-K after the first rung.

Every (arm, task, seed) is cached as a small JSON trace under ``benchmarks/results/ctmbench/cache/``; the summary
goes to ``benchmarks/results/ctmbench/results.json`` (``--full``) or ``results-short.json``, plots beside it;
a run of some arms or tasks only writes ``results-…-subset.json`` (the whole comparison is never overwritten by a
part of it). ``--versus ARM`` compares with that arm instead of the best anchor (paired by seed), e.g. a change of
the default against the version before.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import zlib
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ctmbench_arms import ANCHORS, ARMS, WORKERS, arm_version, run_arm
from ctmbench_stats import curves, median_curve_ratio, per_run_ratio, steps_to

OUT = Path(__file__).resolve().parent / "results" / "ctmbench"
TASK_KEYS = ("parity10", "sort6")
JUDGES = ("boosting", "forest")
POINTS = 100  # anytime curves are kept at this many compute fractions
RULE = "rank1"  # the reported-best rule (search.records.rank); cached runs of another rule are not mixed in
DESCRIPTORS = (("ticks", 8, (1, 25)), ("memory_length", 6, (1, 13)))


def _judge_mean(task: str, kind: str, genes: dict[str, Any], memo: dict[str, float]) -> float:
    from ctm.bench.replay import surrogate_for
    from genome.genome import Genome
    g = Genome.from_dict(genes)
    if g.hash not in memo:
        memo[g.hash] = float(surrogate_for(task, kind).predict(g)["val_accuracy"][-1])
    return memo[g.hash]


def trace(task: str, arm: str, seed: int, budget: int, workers: int = WORKERS) -> dict[str, Any]:
    """Run one (arm, task, seed) and reduce it to its anytime quality under both judges, plus QD numbers."""
    began = time.perf_counter()
    events = run_arm(task, arm, seed, budget, workers)
    wall = time.perf_counter() - began
    memo: dict[str, dict[str, float]] = {k: {} for k in JUDGES}
    stats: dict[str, dict[int, list[float]]] = {}  # genome -> steps -> fitnesses
    genes_of: dict[str, dict[str, Any]] = {}
    spent, incumbent, highest = 0.0, None, 0
    at: dict[int, set[str]] = {}  # steps → genomes measured there
    points: list[tuple[float, float, str]] = []
    from genome.genome import Genome
    from search.records import rank
    order: dict[str, int] = {}  # genome → first seen (ties go to the earlier, as in the campaign)
    for genes, steps, fitness, _, trained, finish in sorted(events, key=lambda e: e[5]):
        h = Genome.from_dict(genes).hash
        genes_of[h] = genes
        order.setdefault(h, len(order))
        stats.setdefault(h, {}).setdefault(steps, []).append(fitness)
        at.setdefault(steps, set()).add(h)
        spent += trained
        highest = max(highest, steps)
        if steps == highest:  # the report can only change with a measurement at the most steps
            names = sorted(at[highest], key=lambda g: order[g])
            best = rank([(highest, stats[g][highest], order[g]) for g in names])[0][0]
            incumbent = names[best]
        assert incumbent is not None
        points.append((spent, finish, incumbent))
    qualities = {k: [_judge_mean(task, k, genes_of[p[2]], memo[k]) for p in points] for k in JUDGES}
    fractions = np.linspace(0, 1, POINTS + 1)[1:] * budget
    steps_arr = np.array([p[0] for p in points])
    highest = max(max(s) for s in stats.values())
    top = [genes_of[h] for h, s in stats.items() if max(s) == highest]  # the genomes measured at the most steps
    out: dict[str, Any] = {"task": task, "arm": arm, "seed": seed, "budget": budget, "evaluations": len(events),
                           "wall_s": wall, "final_steps": float(steps_arr[-1]), "final_sim_s": points[-1][1],
                           "compute": fractions.tolist(), "best_genome": genes_of[points[-1][2]]}
    for k in JUDGES:
        q = np.array(qualities[k])
        idx = np.searchsorted(steps_arr, fractions, side="right") - 1
        out[f"quality_{k}"] = [float(q[i]) if i >= 0 else None for i in idx]
        out[f"quality_time_{k}"] = [[float(p[1]), float(v)] for p, v in zip(points[:: max(len(points) // 200, 1)],
                                                                           q[:: max(len(points) // 200, 1)],
                                                                           strict=False)]
        out[f"qd_{k}"] = _qd(task, k, top, memo[k])
    return out


def cell_of(genes: dict[str, Any]) -> tuple[int, ...]:
    """The comparison archive's cell of a genome (:data:`DESCRIPTORS`: ticks × memory length bins)."""
    return tuple(min(int((genes[n] - lo) / (hi - lo) * bins), bins - 1) for n, bins, (lo, hi) in DESCRIPTORS)


def _qd(task: str, kind: str, genomes: list[dict[str, Any]], memo: dict[str, float]) -> dict[str, float]:
    cells: dict[tuple[int, ...], float] = {}
    for genes in genomes:
        cell = cell_of(genes)
        cells[cell] = max(cells.get(cell, 0.0), _judge_mean(task, kind, genes, memo))
    total = int(np.prod([b for _, b, _ in DESCRIPTORS]))
    return {"qd_score": float(sum(cells.values())), "coverage": len(cells) / total}


def data_version(task: str) -> str:
    """A short fingerprint of the task's packed data: a cached run of older data is never mixed in."""
    import hashlib

    from ctm.bench.build import DATA_DIR
    return hashlib.sha256((DATA_DIR / f"{task}.jsonl.gz").read_bytes()).hexdigest()[:8]


def _cache_path(task: str, arm: str, seed: int, budget: int, workers: int = WORKERS) -> Path:
    version = arm_version(arm)
    pool = "" if workers == WORKERS else f"-w{workers}"
    return OUT / "cache" / (f"{task}-{data_version(task)}-{RULE}-{arm}{'-' + version if version else ''}-b{budget}"
                            f"{pool}-s{seed}.json")


def _run_one(task: str, arm: str, seed: int, budget: int, workers: int = WORKERS) -> str:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    path = _cache_path(task, arm, seed, budget, workers)
    result = trace(task, arm, seed, budget, workers)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, separators=(",", ":")))
    os.replace(tmp, path)
    return f"{task} {arm} seed {seed}: {result['evaluations']} evaluations in {result['wall_s']:.1f} s, final " \
           f"quality {result['quality_boosting'][-1]:.3f}"


def _best_measured(task: str, kind: str) -> float:
    from ctm.bench.replay import curves_for, surrogate_for
    model = surrogate_for(task, kind)
    return float(max(model.predict(g)["val_accuracy"][-1] for g in curves_for(task).genomes))


def summarise(traces: dict[tuple[str, str], list[dict[str, Any]]], arms: list[str], judge: str,
              versus: str | None = None) -> dict[str, Any]:
    """Per task: every arm's figures; compute ratios and paired p-values against ``versus`` (default: the best
    anchor among ``arms``; with neither, none). Each ratio's bootstrap draws come from a generator of its own
    (task, judge, arm, reference), so an arm's interval does not depend on which other arms were run."""
    from scipy.stats import wilcoxon
    out: dict[str, Any] = {}
    for task in sorted({t for t, _ in traces}):
        finals = {a: np.array([t[f"quality_{judge}"][-1] for t in traces[(task, a)]]) for a in arms
                  if traces.get((task, a))}
        anchors = [a for a in ANCHORS if a in finals]
        best_anchor = max(anchors, key=lambda a: np.median(finals[a])) if anchors else None
        reference = versus if versus in finals else best_anchor
        target = float(np.median(finals[reference])) if reference else None
        best_regret = _best_measured(task, judge)
        qd = {a: {t["seed"]: t[f"qd_{judge}"]["qd_score"] for t in traces[(task, a)]} for a in finals}
        qd_anchor = max(anchors, key=lambda a: np.median(list(qd[a].values()))) if anchors else None
        entry: dict[str, Any] = {"best_anchor": best_anchor, "reference": reference, "target": target,
                                 "best_measured": best_regret, "qd_anchor": qd_anchor, "arms": {}}
        for a, f in finals.items():
            runs = traces[(task, a)]
            row: dict[str, Any] = {"seeds": len(f), "final": {"median": float(np.median(f)),
                                                              "q1": float(np.percentile(f, 25)),
                                                              "q3": float(np.percentile(f, 75))},
                                   "regret_median": float(best_regret - np.median(f)),
                                   "evaluations_median": float(np.median([t["evaluations"] for t in runs])),
                                   "evaluations_per_s_median": float(np.median([t["evaluations"] / t["wall_s"]
                                                                                 for t in runs])),
                                   "sim_hours_median": float(np.median([t["final_sim_s"] for t in runs]) / 3600),
                                   "qd_score_median": float(np.median([t[f"qd_{judge}"]["qd_score"] for t in runs])),
                                   "coverage_median": float(np.median([t[f"qd_{judge}"]["coverage"] for t in runs]))}
            if reference is not None:
                mine = np.array([steps_to(t, target, judge) for t in runs])
                theirs = np.array([steps_to(t, target, judge) for t in traces[(task, reference)]])
                key = f"{task}/{judge}/{a}/{reference}".encode()
                row["compute_ratio"] = per_run_ratio(mine, theirs, np.random.default_rng(zlib.crc32(key)))
                (q_mine, compute), (q_theirs, _) = curves(runs, judge), curves(traces[(task, reference)], judge)
                row["compute_ratio_curve"] = median_curve_ratio(q_mine, q_theirs, compute,
                                                                np.random.default_rng(zlib.crc32(key + b"/curve")))
                seeds = {t["seed"]: t for t in runs}
                pairs = [(seeds[t["seed"]][f"quality_{judge}"][-1], t[f"quality_{judge}"][-1])
                         for t in traces[(task, reference)] if t["seed"] in seeds]
                diff = np.array([x - y for x, y in pairs])
                row["p_value"] = (float(wilcoxon(diff).pvalue) if a != reference and len(diff) > 1 and np.any(diff != 0)
                                  else None)
            if qd_anchor is not None and a != qd_anchor:  # QD-score paired by seed with the anchor's best
                diff = np.array([v - qd[qd_anchor][seed] for seed, v in qd[a].items() if seed in qd[qd_anchor]])
                row["qd_vs_anchor"] = {"wins": int(np.sum(diff > 0)), "pairs": len(diff), "p_value": float(
                    wilcoxon(diff).pvalue) if len(diff) > 1 and np.any(diff != 0) else None}
            entry["arms"][a] = row
        out[task] = entry
    return out


def plot(traces: dict[tuple[str, str], list[dict[str, Any]]], summary: dict[str, Any], path: Path,
         workers: int = WORKERS) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    tasks = sorted({t for t, _ in traces})
    fig, axes = plt.subplots(2, len(tasks), figsize=(6 * len(tasks), 8), squeeze=False)
    for j, task in enumerate(tasks):
        best = summary[task]["best_measured"]
        axis_names = (("compute", "training steps"), ("time", f"simulated hours ({workers} workers)"))
        for i, (key, xlabel) in enumerate(axis_names):
            ax = axes[i][j]
            for a in sorted({a for t, a in traces if t == task}):
                runs = traces[(task, a)]
                style = "-" if a not in ANCHORS else "--"
                if key == "compute":
                    q = np.array([[best - (v if v is not None else 0.5) for v in t["quality_boosting"]] for t in runs])
                    ax.plot(runs[0]["compute"], np.median(q, 0), style, label=a)
                else:
                    grid = np.linspace(0, max(t["final_sim_s"] for t in runs), 100)
                    q = np.array([np.interp(grid, *np.array(t["quality_time_boosting"]).T, left=0.5) for t in runs])
                    ax.plot(grid / 3600, best - np.median(q, 0), style, label=a)
            ax.set_yscale("log")
            ax.set_xlabel(xlabel)
            ax.set_ylabel("regret (median over seeds)")
            ax.set_title(f"{task}")
        axes[0][j].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _interval(c: dict[str, Any]) -> str:
    if not c:
        return "–"
    if c.get("median") is None:
        return "not reached"
    return f"{c['median']:.2f} [{c['ci_low'] or 0:.2f}, " + (f"{c['ci_high']:.2f}]" if c.get("ci_high") is not None
                                                            else "∞]")


def markdown(result: dict[str, Any], judge: str = "boosting") -> str:
    """The comparison table of one judge as markdown (for the README)."""
    out = []
    for task, entry in result["judges"][judge].items():
        ref = entry["reference"]
        who = "best anchor" if ref == entry["best_anchor"] else "reference"
        against = f"{who} `{ref}`, its median {entry['target']:.3f}" if ref else "no anchor or reference"
        out += [f"**{task}** (judge: {judge} surrogate; {against}; best measured genome "
                f"{entry['best_measured']:.3f}; {result['seeds']} seeds)", "",
                f"| arm | final quality median [q1, q3] | compute to the {who}'s median, ratio [95% CI]: per run | "
                f"median curves | "
                f"Wilcoxon p vs {who} | QD-score | coverage | QD-score paired with the anchors' best"
                + (f" (`{entry['qd_anchor']}`)" if entry.get("qd_anchor") else " (no anchor here)")
                + ": wins, p |", "|---|---|---|---|---|---|---|---|"]
        for a, row in sorted(entry["arms"].items(), key=lambda kv: -kv[1]["final"]["median"]):
            f = row["final"]
            ratio = f"{_interval(row.get('compute_ratio', {}))} | {_interval(row.get('compute_ratio_curve', {}))}"
            p = "–" if row.get("p_value") is None else f"{row['p_value']:.3g}"
            name = f"{a} (anchor)" if a in ANCHORS else a
            q = row.get("qd_vs_anchor")
            vs = "–" if q is None else f"{q['wins']} of {q['pairs']}, " + (
                "–" if q["p_value"] is None else f"{q['p_value']:.2g}")
            out.append(f"| {name} | {f['median']:.3f} [{f['q1']:.3f}, {f['q3']:.3f}] | {ratio} | {p} | "
                       f"{row['qd_score_median']:.2f} | {row['coverage_median']:.2f} | {vs} |")
        out.append("")
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="30 seeds (default: 5)")
    parser.add_argument("--seeds", type=int, default=None)
    parser.add_argument("--arms", nargs="*", default=list(ARMS), help=f"of {list(ARMS)}")
    parser.add_argument("--tasks", nargs="*", default=list(TASK_KEYS))
    parser.add_argument("--budget", type=int, default=None, help="training steps per campaign (default 180,000; "
                        "--small: 10,000)")
    parser.add_argument("--sim-workers", type=int, default=None, help=f"simulated workers per campaign (default "
                        f"{WORKERS}; --small: 2)")
    parser.add_argument("--small", action="store_true", help="the real-training comparison's regime: 10,000 "
                        "steps on 2 simulated workers, 8 initial samples (results-small*.json)")
    parser.add_argument("--workers", type=int, default=2, help="processes running campaigns")
    parser.add_argument("--versus", default=None, help="the arm that ratios and p-values compare with (default: the "
                        "best anchor run); e.g. --arms surrogate_elites surrogate_exploit --versus surrogate_exploit")
    args = parser.parse_args()
    args.budget = args.budget or (10_000 if args.small else 180_000)
    args.sim_workers = args.sim_workers or (2 if args.small else WORKERS)
    if args.budget < 1000 or args.sim_workers < 1:
        print(f"ctmbench_compare: --budget {args.budget} / --sim-workers {args.sim_workers}: allowed are at least "
              "1000 steps and 1 worker", file=sys.stderr)
        return 2
    if args.versus is not None and args.versus not in args.arms:
        print(f"ctmbench_compare: --versus {args.versus!r}: allowed is one of the arms run, {args.arms}",
              file=sys.stderr)
        return 2
    bad = [a for a in args.arms if a not in ARMS] + [t for t in args.tasks if t not in TASK_KEYS]
    if bad:
        print(f"ctmbench_compare: {bad[0]!r}: allowed arms {list(ARMS)}, tasks {list(TASK_KEYS)}", file=sys.stderr)
        return 2
    os.environ["OMP_NUM_THREADS"] = "1"
    os.environ["CTMEVO_FSYNC"] = "0"
    seeds = args.seeds or (30 if args.full else 5)
    todo = [(t, a, s) for s in range(seeds) for t in args.tasks for a in args.arms
            if not _cache_path(t, a, s, args.budget, args.sim_workers).exists()]
    print(f"{len(todo)} runs to do ({seeds} seeds, {len(args.arms)} arms, {len(args.tasks)} tasks; the rest cached)",
          flush=True)
    began = time.monotonic()
    if todo:
        import multiprocessing
        with ProcessPoolExecutor(args.workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = [pool.submit(_run_one, t, a, s, args.budget, args.sim_workers) for t, a, s in todo]
            for n, f in enumerate(as_completed(futures), 1):
                print(f"  [{n}/{len(todo)} {time.monotonic() - began:.0f} s] {f.result()}", flush=True)
    traces: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for t in args.tasks:
        for a in args.arms:
            traces[(t, a)] = [json.loads(_cache_path(t, a, s, args.budget, args.sim_workers).read_text())
                              for s in range(seeds)]
    result = {"seeds": seeds, "budget_steps": args.budget, "workers_simulated": args.sim_workers,
              "replay": "boosting surrogate",
              "arms": list(args.arms), "versus": args.versus,
              "judges": {j: summarise(traces, args.arms, j, args.versus) for j in JUDGES}}
    OUT.mkdir(parents=True, exist_ok=True)
    name = ("results.json" if args.full else "results-short.json").replace(
        "results", "results-small" if args.small else "results")
    if set(args.arms) != set(ARMS) or set(args.tasks) != set(TASK_KEYS):  # never overwrite the whole comparison
        name = name.replace(".json", "-subset.json")
    (OUT / name).write_text(json.dumps(result, indent=1) + "\n")
    plot(traces, result["judges"]["boosting"], OUT / name.replace(".json", ".png"), args.sim_workers)
    (OUT / name.replace(".json", ".md")).write_text("\n".join(markdown(result, j) for j in JUDGES))
    for judge, per_task in result["judges"].items():
        for task, entry in per_task.items():
            target = "none" if entry["target"] is None else f"{entry['target']:.3f}"
            print(f"\n{task} (judge: {judge}; compared with {entry['reference']}, target {target}, "
                  f"best measured {entry['best_measured']:.3f})")
            print(f"{'arm':<24}{'final median [q1, q3]':>26}{'compute ratio [95% CI]':>28}{'median curves':>24}"
                  f"{'p':>8}{'QD':>8}{'cov':>6}"
                  f"{'evals':>7}{'eval/s':>8}")
            for a, row in sorted(entry["arms"].items(), key=lambda kv: -kv[1]["final"]["median"]):
                f = row["final"]
                cr = _interval(row.get("compute_ratio", {}))
                cc = _interval(row.get("compute_ratio_curve", {}))
                p = "" if row.get("p_value") is None else f"{row['p_value']:.3f}"
                print(f"{a:<24}{f['median']:>10.3f} [{f['q1']:.3f}, {f['q3']:.3f}]{cr:>28}{cc:>24}{p:>8}"
                      f"{row['qd_score_median']:>8.2f}{row['coverage_median']:>6.2f}{row['evaluations_median']:>7.0f}"
                      f"{row['evaluations_per_s_median']:>8.0f}")
    print(f"\nwrote {OUT / name} in {time.monotonic() - began:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
