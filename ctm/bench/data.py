"""CTM-Bench's measured curves, loaded: one :class:`Curves` table per task.

A row of the shipped files (``ctm/bench/data/<task>.jsonl.gz``, written by :mod:`ctm.bench.build`) is one
training run: a genome, a seed and its measurements at every step of :data:`ctm.bench.space.STEPS`. Here they
become arrays indexed [genome, seed, step] so that the surrogate, the lookup replay and the data card read the
same numbers. Rows whose run failed, or that lack points, are kept in ``failed`` and left out of the arrays.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ctm.bench.build import DATA_DIR, read_rows
from ctm.bench.space import STEPS, bench_task
from genome.genome import Genome

MEASURES = ("val_accuracy", "val_loss", "exit_tick_mean", "ece")  # per step, predicted by the surrogate


@dataclass
class Curves:
    """Measured curves of one task: ``values[measure]`` is [genomes, seeds, steps] (NaN where a seed is
    missing); ``per_tick`` and ``behaviour`` hold, per (genome index, seed), the lists at each step."""

    task: str
    genomes: list[Genome]
    index: dict[str, int]  # genome hash -> row in the arrays
    seeds: int
    values: dict[str, np.ndarray]
    seconds_per_step: np.ndarray  # [genomes]: mean training seconds per step over the genome's seeds
    overhead_s: np.ndarray  # [genomes]: mean seconds per recorded point beyond training (validation, state)
    detail: dict[tuple[int, int], list[dict[str, Any]]] = field(default_factory=dict)
    failed: list[dict[str, Any]] = field(default_factory=list)
    rows: int = 0
    compute_s: float = 0.0
    devices: dict[str, int] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.genomes)

    def mean(self, measure: str) -> np.ndarray:
        """[genomes, steps]: the seed mean (seeds that were measured)."""
        return np.nanmean(self.values[measure], axis=1)


def load_curves(task: str, data_dir: Path = DATA_DIR) -> Curves:
    """The packed curves of bench task ``task`` (ValueError if the task is unknown or has no data)."""
    bench_task(task)
    path = data_dir / f"{task}.jsonl.gz"
    if not path.exists():
        raise ValueError(f"task = {task!r}: no CTM-Bench data at {path}; build it with benchmarks/ctmbench_build.py")
    rows = list(read_rows([path]))
    good = [r for r in rows if r["status"] == "ok" and len(r["points"]) == len(STEPS)]
    failed = [r for r in rows if r not in good]
    hashes = list(dict.fromkeys(r["hash"] for r in sorted(good, key=lambda r: r["index"])))  # by first index
    index = {h: i for i, h in enumerate(hashes)}
    seeds = max((r["seed"] for r in good), default=0) + 1
    values = {m: np.full((len(hashes), seeds, len(STEPS)), np.nan) for m in MEASURES}
    sps = np.zeros((len(hashes), seeds))
    over = np.zeros((len(hashes), seeds))
    genomes: list[Genome | None] = [None] * len(hashes)
    detail: dict[tuple[int, int], list[dict[str, Any]]] = {}
    devices: dict[str, int] = {}
    compute = 0.0
    for r in rows:
        compute += float(r.get("wall_s") or 0.0)
        devices[r.get("device", "cpu")] = devices.get(r.get("device", "cpu"), 0) + 1
    for r in good:
        g, s = index[r["hash"]], r["seed"]
        genomes[g] = Genome.from_dict(r["genome"])
        train = 0.0
        extra = 0.0
        previous = 0
        for k, p in enumerate(r["points"]):
            for m in MEASURES:
                values[m][g, s, k] = np.nan if p.get(m) is None else p[m]
            train += p["train_time_s"] or 0.0
            extra += max((p["seconds_per_step"] or 0.0) * (p["step"] - previous) - (p["train_time_s"] or 0.0), 0.0)
            previous = p["step"]
        sps[g, s] = train / STEPS[-1]
        over[g, s] = extra / len(STEPS)
        detail[(g, s)] = [{"per_tick_accuracy": p["per_tick_accuracy"], "per_tick_certainty": p["per_tick_certainty"],
                           "behaviour": p["behaviour"]} for p in r["points"]]
    measured = ~np.isnan(values["val_accuracy"][:, :, -1])
    count = np.maximum(measured.sum(1), 1)
    return Curves(task=task, genomes=[g for g in genomes if g is not None], index=index, seeds=seeds, values=values,
                  seconds_per_step=(sps * measured).sum(1) / count, overhead_s=(over * measured).sum(1) / count,
                  detail=detail, failed=failed, rows=len(rows), compute_s=compute, devices=devices)
