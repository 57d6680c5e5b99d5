"""Building CTM-Bench's data: learning curves of sampled genomes, trained in parallel, journaled as they land.

A *job* is (task key, genome index, seed); its genome is :func:`ctm.bench.space.genome_at` (a pure function of
the key and index), so machines that build disjoint index ranges grow one table. Each finished curve is one JSON
line appended (and fsynced) to this build's raw journal ``<data>/raw/<name>.jsonl`` before the next is counted
done; a build that is stopped at any moment is started again with the same command and skips every job already
in any raw journal or packed file (a torn last line is ignored). :func:`pack` merges the raw journals into one
compressed, sorted file per task (``<data>/<task>.jsonl.gz``), the form the repository ships.

The pool is a plain ``concurrent.futures`` process pool (one torch thread per worker), not Ray: the build must
also run on a bare accelerator machine where Ray is not installed. Each row records its device, precision,
torch version and thread count; rows built on a GPU run in fp32 (``amp=False``) so they stay comparable.
"""

from __future__ import annotations

import gzip
import json
import os
import platform
import sys
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ctm.bench.space import STEPS, bench_task, genome_at
from genome.io import jsonable

DATA_DIR = Path(__file__).parent / "data"
POINT_FIELDS = ("val_accuracy", "val_loss", "exit_accuracy", "exit_tick_mean", "ece", "sequence_accuracy",
                "seconds_per_step", "train_time_s")


@dataclass(frozen=True)
class Job:
    task: str
    index: int
    seed: int

    @property
    def key(self) -> tuple[str, int, int]:
        return (self.task, self.index, self.seed)


def run_job(job: Job, device: str = "cpu") -> dict[str, Any]:
    """Train one curve and return its row (runs in a worker process)."""
    import torch

    from ctm.bench.curves import evaluate_curve
    torch.set_num_threads(1)
    bench = bench_task(job.task)
    genome = genome_at(job.task, job.index)
    began = time.perf_counter()
    results = evaluate_curve(genome, bench.task, steps=STEPS, seed=job.seed, budget=bench.budget, device=device,
                             amp=False)
    points = []
    for step, result in zip(STEPS, results, strict=False):
        if result.failure is not None:
            break
        m = result.metrics
        points.append({"step": step, **{k: m.get(k) for k in POINT_FIELDS},
                       "per_tick_accuracy": result.per_tick_accuracy, "per_tick_certainty": result.per_tick_certainty,
                       "behaviour": result.behaviour})
    last = results[-1]
    where = torch.cuda.get_device_name(0) if device.startswith("cuda") else platform.processor() or "cpu"
    row = {"task": job.task, "index": job.index, "seed": job.seed, "hash": genome.hash, "genome": genome.to_dict(),
           "status": last.status, "failure": last.failure.message[:300] if last.failure else None,
           "param_count": last.metrics.get("param_count"), "macs_per_forward": last.metrics.get("macs_per_forward"),
           "points": points, "device": device.split(":")[0], "device_name": where, "precision": "fp32",
           "threads": torch.get_num_threads(), "torch": torch.__version__, "host": platform.node(),
           "wall_s": time.perf_counter() - began}
    return jsonable(row, digits=5)  # rows stay small and exact


def read_rows(paths: Iterable[Path]) -> Iterator[dict[str, Any]]:
    """Every complete row of the given raw (``.jsonl``) or packed (``.jsonl.gz``) files; a torn line is skipped."""
    for path in paths:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8") as f:
            for line in f:
                try:
                    yield json.loads(line)
                except json.JSONDecodeError:
                    continue  # a torn last line of a killed build: that job is done again


def data_files(data_dir: Path = DATA_DIR) -> list[Path]:
    return sorted(data_dir.glob("*.jsonl.gz")) + sorted((data_dir / "raw").glob("*.jsonl"))


def done_keys(data_dir: Path = DATA_DIR) -> set[tuple[str, int, int]]:
    return {(r["task"], r["index"], r["seed"]) for r in read_rows(data_files(data_dir))}


def plan(tasks: list[str], indices: range, seeds: int) -> list[Job]:
    """Jobs in the order that keeps a partial build useful: genome by genome, both tasks, every seed."""
    for key in tasks:
        bench_task(key)
    return [Job(key, i, s) for i in indices for key in tasks for s in range(seeds)]


def build(*, tasks: list[str], indices: range, seeds: int = 2, workers: int = 1, device: str = "cpu",
          name: str | None = None, data_dir: Path = DATA_DIR, stop_after_s: float | None = None,
          log: Any = sys.stdout) -> int:
    """Run every job of ``plan(tasks, indices, seeds)`` not yet in ``data_dir``; returns how many were added.
    ``stop_after_s`` stops submitting after that many seconds (the jobs in flight are finished and kept)."""
    todo = [j for j in plan(tasks, indices, seeds) if j.key not in done_keys(data_dir)]
    raw = data_dir / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    path = raw / f"{name or platform.node()}.jsonl"
    print(f"ctm-bench build: {len(todo)} curves to train ({device}, {workers} workers) -> {path}", file=log,
          flush=True)
    began, added = time.monotonic(), 0
    import multiprocessing
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool, \
            open(path, "a", encoding="utf-8") as out:
        queue = iter(todo)
        running = {}
        def fill() -> None:
            while len(running) < workers:
                if stop_after_s is not None and time.monotonic() - began > stop_after_s:
                    return
                job = next(queue, None)
                if job is None:
                    return
                running[pool.submit(run_job, job, device)] = job
        fill()
        while running:
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                job = running.pop(future)
                try:
                    row = future.result()
                except Exception as exc:  # a worker that died: say so, keep going
                    print(f"  {job.key}: {type(exc).__name__}: {exc}", file=log, flush=True)
                    continue
                out.write(json.dumps(row, separators=(",", ":")) + "\n")
                out.flush()
                os.fsync(out.fileno())
                added += 1
                final = row["points"][-1]["val_accuracy"] if row["points"] else None
                print(f"  [{added}/{len(todo)} {time.monotonic() - began:.0f}s] {job.task} #{job.index} seed "
                      f"{job.seed}: {row['status']} acc@{STEPS[-1]} {final} ({row['wall_s']:.1f}s)", file=log,
                      flush=True)
            fill()
    return added


def pack(data_dir: Path = DATA_DIR) -> dict[str, int]:
    """Merge every raw journal and packed file into ``<task>.jsonl.gz`` (sorted by index and seed, one row per
    job; deterministic bytes). The raw journals are kept (delete them once the packed files are committed)."""
    rows: dict[tuple[str, int, int], dict[str, Any]] = {}
    for row in read_rows(data_files(data_dir)):
        rows.setdefault((row["task"], row["index"], row["seed"]), row)
    counts: dict[str, int] = {}
    for key in sorted({k[0] for k in rows}):
        mine = [rows[k] for k in sorted(k for k in rows if k[0] == key)]
        target = data_dir / f"{key}.jsonl.gz"
        tmp = target.with_suffix(".tmp")
        with open(tmp, "wb") as raw_out, gzip.GzipFile(fileobj=raw_out, mode="wb", mtime=0) as gz:
            for row in mine:
                gz.write((json.dumps(row, separators=(",", ":"), sort_keys=True) + "\n").encode())
        os.replace(tmp, target)
        counts[key] = len(mine)
    return counts
