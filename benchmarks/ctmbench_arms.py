"""The arms of the CTM-Bench comparison: each runs one search on replayed training and simulated time and returns
its stream of evaluations. ctmevo's arms are real campaigns (the campaign loop, strategy, rung scheduler and
repeats on :class:`workers.simulated.SimulatedPool`); DEHB and top-K are drivers of the same pool.

An evaluation is recorded as ``(genome, steps, fitness, seed, trained_steps, sim_finish_s)``.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
RUNGS = [100, 300, 900]
WORKERS = 64  # simulated workers (``--small``: 2, the real-training comparison's)
REPLAY = "ctm.bench.replay:surrogate"

# name: (strategy, settings, rungs?, repeats: None, or evaluation.repeats)   -- drivers (DEHB, top-K) below
REPEATS = {"seeds": 2, "share": 0.15}
CAMPAIGN_ARMS: dict[str, tuple[str, dict[str, Any], bool, dict[str, Any] | None]] = {
    "random": ("random", {}, False, None),
    "regularized_evolution": ("regularized_evolution", {}, True, None),
    "optuna_tpe_sh": ("optuna_tpe", {"pruner": "successive_halving"}, True, None),
    "optuna_tpe_hb": ("optuna_tpe", {"pruner": "hyperband"}, True, None),
    "map_elites": ("map_elites", {"initial_samples": 64}, True, REPEATS),
    "surrogate_elites": ("surrogate_elites", {"initial_samples": 64}, True, {"seeds": 3, "share": 0.3}),
    "surrogate_fresh": ("surrogate_elites", {"initial_samples": 64}, True, {"seeds": 3, "share": 0.3}),
    "surrogate_exploit": ("surrogate_elites", {"initial_samples": 64, "explore_share": 0.0}, True,
                          {"seeds": 3, "share": 0.3}),  # the default before exploring proposals
    "surrogate_cells": ("surrogate_elites", {"initial_samples": 64}, True, {"seeds": 3, "share": 0.3}),
    # the default's shares halved, one at a time (repeats; cell promotions below): not faster, docs/search.md
    "surrogate_cells_r15": ("surrogate_elites", {"initial_samples": 64}, True, {"seeds": 3, "share": 0.15}),
    "surrogate_cells_c12": ("surrogate_elites", {"initial_samples": 64}, True, {"seeds": 3, "share": 0.3}),
    "cvt_map_elites": ("cvt_map_elites", {"initial_samples": 64}, True, REPEATS),
    "novelty": ("novelty", {}, True, None),
    "nslc": ("nslc", {}, True, None),
    "dns": ("dns", {}, True, None),
}
PROMOTE = {"surrogate_fresh": "fresh"}  # fidelity.promote of an arm (default: continue the genome's checkpoint)
# fidelity.cell_share of an arm (default 0: only ASHA's top 1/eta goes up)
CELL_SHARE = {"surrogate_cells": 0.25, "surrogate_cells_r15": 0.25, "surrogate_cells_c12": 0.12}
# arms still changing: their cached runs are keyed by a fingerprint of these sources and their settings, so an
# edit of the algorithm never mixes with runs of an older version (the settled arms' caches keep their names)
ARM_SOURCES: dict[str, tuple[str, ...]] = {
    "surrogate_elites": ("search/strategies/surrogate_elites.py", "search/strategies/gp.py",
                         "search/strategies/map_elites.py", "search/archive.py", "search/campaign/rungs.py",
                         "search/records.py"),
}
ARM_SOURCES["surrogate_fresh"] = ARM_SOURCES["surrogate_elites"] + ("search/campaign/jobs.py",)
for _arm in ("surrogate_exploit", "surrogate_cells", "surrogate_cells_r15", "surrogate_cells_c12"):
    ARM_SOURCES[_arm] = ARM_SOURCES["surrogate_elites"]
DRIVER_ARMS = ("dehb", "topk")
ANCHORS = ("random", "regularized_evolution", "optuna_tpe_sh", "optuna_tpe_hb", "dehb", "topk")
ARMS = (*CAMPAIGN_ARMS, *DRIVER_ARMS)
Event = tuple[dict[str, Any], int, float, int, float, float]


def initial_samples(workers: int) -> int:
    """Random genomes before a model-guided or elite-based arm breeds: one batch of the simulated workers, at
    least 8 (the real-training comparison's setting), at most 64."""
    return min(64, max(8, workers))


def _campaign_config(task: str, arm: str, seed: int, budget_steps: int | None, evaluations: int | None = None,
                     workers: int = WORKERS) -> Any:
    from ctm.bench.space import TASKS
    from search.campaign import parse_campaign_config
    bench = TASKS[task]
    strategy, settings, rungs, repeats = CAMPAIGN_ARMS[arm]
    if "initial_samples" in settings:
        settings = {**settings, "initial_samples": initial_samples(workers)}
    data: dict[str, Any] = {
        "name": f"bench-{task}-{arm}-{seed}", "seed": seed, "task": bench.task.to_dict(),
        "genome_space": bench.genome_space, "strategy": {"name": strategy, "settings": settings},
        "descriptors": [{"name": "ticks", "bins": 8, "range": [1, 25]},
                        {"name": "memory_length", "bins": 6, "range": [1, 13]}],
        "evaluation": {"steps": RUNGS[0] if rungs else RUNGS[-1], "val_samples": 256},
        "budget": {k: v for k, v in (("steps", budget_steps), ("evaluations", evaluations)) if v is not None},
        "workers": {"backend": "simulated", "concurrency": workers, "evaluate_fn": REPLAY},
        "tracking": {"checkpoints": "none"},
    }
    if rungs:
        data["evaluation"]["fidelity"] = {"rungs": RUNGS, "eta": 3, "promote": PROMOTE.get(arm, "continue"),
                                          "cell_share": CELL_SHARE.get(arm, 0.0)}
    if repeats:
        data["evaluation"]["repeats"] = dict(repeats)
    return parse_campaign_config(yaml.safe_load(yaml.safe_dump(data)), source=f"{task}/{arm}")


def run_campaign_arm(task: str, arm: str, seed: int, budget_steps: int, workers: int = WORKERS,
                     inspect: Callable[[Any], None] | None = None) -> list[Event]:
    """The arm's campaign run to its end; ``inspect(campaign)`` looks at it before its directory goes."""
    from search.campaign import Campaign
    from search.views import QuietReporter
    with tempfile.TemporaryDirectory() as tmp:
        campaign = Campaign.create(_campaign_config(task, arm, seed, budget_steps, workers=workers), Path(tmp) / "c")
        campaign.run(reporter=QuietReporter())
        if inspect is not None:
            inspect(campaign)
        events = []
        for e in campaign.journal.read():
            if e["event"] != "result":
                continue
            r = e["record"]["result"]
            if r["status"] != "ok":
                continue
            m = r["metrics"]
            events.append((e["record"]["proposal"]["genes"], int(m["train_steps"]), float(r["fitness"]),
                           int(r["seed"]), float(m["train_steps"] - m["start_step"]), float(m["sim_finish_s"])))
        return events


def arm_version(arm: str) -> str:
    """A fingerprint of an arm still changing (``ARM_SOURCES``), else ``""``."""
    if arm not in ARM_SOURCES:
        return ""
    digest = hashlib.sha256(repr((CAMPAIGN_ARMS.get(arm), CELL_SHARE.get(arm, 0.0))).encode())
    for source in ARM_SOURCES[arm]:
        digest.update((ROOT / source).read_bytes())
    return digest.hexdigest()[:8]


def _eval_seed(seed: int, genome_hash: str, repeat: int = 0) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}:{genome_hash}:{repeat}".encode()).digest()[:4], "big")


def _pool(seed: int, workers: int) -> Any:
    from workers import WorkersConfig
    from workers.simulated import SimulatedPool
    return SimulatedPool(WorkersConfig(backend="simulated", concurrency=workers, evaluate_fn=REPLAY), seed=seed)


def run_dehb(task: str, seed: int, budget_steps: int, workers: int = WORKERS) -> list[Event]:
    """DEHB through its ask/tell interface (:mod:`dehb_driver`), each evaluation from scratch at its fidelity
    (100/300/900 steps), on ``workers`` simulated workers."""
    from dehb_driver import dehb_run

    from ctm.bench.space import TASKS
    bench = TASKS[task]
    return [(genome.to_dict(), steps, r.fitness if r.ok else 0.0, r.seed, float(steps), r.metrics["sim_finish_s"])
            for genome, steps, r in dehb_run(_pool(seed, workers), space=bench.space(), task=bench.task, rungs=RUNGS,
                                             budget_steps=budget_steps, seed=seed,
                                             eval_seed=lambda g, n: _eval_seed(seed, g.hash, n))]


def run_topk(task: str, seed: int, budget_steps: int, workers: int = WORKERS) -> list[Event]:
    """Top-K after the first rung (Egele et al. 2023): half the compute samples genomes at 100 steps, the other
    half continues the best K of them to 900 steps (their own checkpoints)."""
    from ctm.bench.space import TASKS
    from ctm.result import EvalBudget
    from workers import EvalJob
    bench = TASKS[task]
    space = bench.space()
    rng = np.random.default_rng(seed)
    pool = _pool(seed, workers)
    n_first = budget_steps // 2 // RUNGS[0]
    k = (budget_steps - n_first * RUNGS[0]) // (RUNGS[-1] - RUNGS[0])
    events: list[Event] = []
    first: dict[str, tuple[Any, float, bytes, int]] = {}
    queue = [space.sample(rng) for _ in range(n_first)]
    jobs = {}

    def drain() -> list[Any]:
        out = []
        while pool.in_flight:
            for r in pool.poll():
                out.append(r)
            while queue and pool.free_slots:
                submit(queue.pop(0))
        return out

    def submit(item: Any) -> None:
        genome, steps, start = item if isinstance(item, tuple) else (item, RUNGS[0], None)
        job_id = f"{genome.hash}@{steps}"
        if job_id in jobs:
            return
        jobs[job_id] = genome
        pool.submit(EvalJob(genome=genome, task=bench.task, budget=EvalBudget(steps=steps, val_samples=256),
                            seed=_eval_seed(seed, genome.hash), job_id=job_id, want_checkpoint=True, start=start))
    while queue and pool.free_slots:
        submit(queue.pop(0))
    for r in drain():
        genome = jobs[r.job_id]
        if r.ok:
            first[genome.hash] = (genome, r.fitness, r.checkpoint, r.seed)
        events.append((genome.to_dict(), RUNGS[0], r.fitness or 0.0, r.seed, float(RUNGS[0]),
                       r.metrics.get("sim_finish_s", pool.clock)))
    best = sorted(first.values(), key=lambda t: -t[1])[:k]
    queue = [(g, RUNGS[-1], ckpt) for g, _, ckpt, _ in best]
    while queue and pool.free_slots:
        submit(queue.pop(0))
    for r in drain():
        genome = jobs[r.job_id]
        events.append((genome.to_dict(), RUNGS[-1], r.fitness or 0.0, r.seed, float(RUNGS[-1] - RUNGS[0]),
                       r.metrics.get("sim_finish_s", pool.clock)))
    return events


def run_arm(task: str, arm: str, seed: int, budget_steps: int, workers: int = WORKERS) -> list[Event]:
    if arm in CAMPAIGN_ARMS:
        return run_campaign_arm(task, arm, seed, budget_steps, workers)
    if arm == "dehb":
        return run_dehb(task, seed, budget_steps, workers)
    if arm == "topk":
        return run_topk(task, seed, budget_steps, workers)
    raise ValueError(f"arm = {arm!r}: allowed is one of {list(ARMS)}")
