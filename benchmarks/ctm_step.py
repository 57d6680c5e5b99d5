"""Training-step speed of the CTM for a few named configurations, against the machine's dense-matmul rate.

For each configuration: the fastest and the median wall time of one AdamW training step (forward, loss,
backward, update; the fastest is the better estimate on a shared machine) and the achieved multiply-accumulates
per second (from the fastest step), taking a training step as 3 × the forward MACs (the backward
pass costs about twice the forward) with the forward MACs from ``ctm.metrics.measure_macs`` (equal to the
cost model). The reference rate is a large square matmul measured in the same run (fp32 on CPU, bf16 on
CUDA), so "% of matmul" says how close the model's mix of small products gets to the machine's best.

    python benchmarks/ctm_step.py                     # all configurations, CPU (or CUDA when present)
    python benchmarks/ctm_step.py --configs parity-small --steps 5 --device cpu
    python benchmarks/ctm_step.py --device cuda --modes fp32 bf16 bf16+compile --batches 64 256 1024 \
        --jsonl out.jsonl                             # every measurement also as one JSON line, as it lands

Modes: ``fp32`` and ``bf16`` (autocast, CUDA only) run eagerly; ``+compile`` wraps the model in
``torch.compile`` (its compile time is reported apart: the first step); ``+cudagraphs`` compiles with
``mode="reduce-overhead"`` (CUDA graphs: one launch replays a whole step's kernels). ``--batches`` overrides each
configuration's batch size (a sweep); ``--ticks-overhead`` also times batch 1 and reports the wall time per tick
there, the launch-bound floor of the per-tick loop.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from dataclasses import dataclass

import torch

from ctm import build_model, make_task
from ctm.evaluation import autocast_context
from ctm.metrics import measure_macs
from ctm.model import count_parameters
from ctm.result import TaskSpec
from genome.genome import Genome


@dataclass(frozen=True)
class Config:
    name: str
    task: TaskSpec
    genome: Genome
    batch: int
    note: str


CONFIGS = [
    Config("parity-small", TaskSpec(name="parity", params={"length": 64}),
           Genome(d_model=256, d_input=64, ticks=25, memory_length=10, heads=4, n_sync_out=32, n_sync_action=32,
                  sync_select="random", nlm_depth=2, nlm_hidden=16, synapse_depth=1), 64,
           "reference small parity: D=256 D_in=64 T=25 M=10 4 heads 32/32 random"),
    Config("maze-small", TaskSpec(name="maze", params={"size": 15, "route_length": 100, "stride": 1}),
           Genome(d_model=1024, d_input=256, ticks=50, memory_length=25, heads=4, n_sync_out=128,
                  n_sync_action=128, sync_select="random-pairing", nlm_depth=1, synapse_depth=8,
                  n_self_pairs=0), 16,
           "reference CPU-sized maze: 15x15 image, D=1024 D_in=256 T=50 M=25 U-Net depth 8, 128/128 pairing"),
    Config("parity-large", TaskSpec(name="parity", params={"length": 64}),
           Genome(d_model=1024, d_input=512, ticks=75, memory_length=25, heads=8, n_sync_out=32,
                  n_sync_action=32, sync_select="random", nlm_depth=2, nlm_hidden=16, synapse_depth=1), 64,
           "paper parity: D=1024 D_in=512 T=75 M=25 8 heads H=16 32/32 random"),
]


def matmul_rate(device: torch.device, seconds: float = 2.0) -> float:
    """Dense matmul multiply-accumulates per second (fp32 on CPU, bf16 on CUDA)."""
    n = 2048 if device.type == "cpu" else 8192
    dtype = torch.float32 if device.type == "cpu" else torch.bfloat16
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    a @ b
    _sync(device)
    reps, began = 0, time.perf_counter()
    while time.perf_counter() - began < seconds:
        a @ b
        reps += 1
        _sync(device)
    return reps * n**3 / (time.perf_counter() - began)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass(frozen=True)
class Timing:
    fastest: float
    median: float
    macs: int
    params: int
    first_step: float  # the first (warm-up) step: includes compilation for +compile modes


def step_time(cfg: Config, device: torch.device, steps: int, *, batch: int | None = None,
              mode: str = "bf16") -> Timing:
    """Time ``steps`` AdamW training steps of ``cfg`` at ``batch`` (default: the configuration's) in ``mode``."""
    batch = batch or cfg.batch
    amp = mode.startswith("bf16")
    if amp and device.type != "cuda":
        raise ValueError(f"mode {mode!r}: bf16 autocast runs on CUDA only")
    task = make_task(cfg.task)
    model = build_model(cfg.genome, task, seed=0).to(device)
    x, y = task.batch("train", 0, batch, seed=0)
    x, y = x.to(device), y.to(device)
    macs = measure_macs(model, x[:1])
    forward = model
    if "+compile" in mode or "+cudagraphs" in mode:
        forward = torch.compile(model, mode="reduce-overhead" if "+cudagraphs" in mode else None)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    times = []
    first = 0.0
    warmup = 3 if "+cudagraphs" in mode else 1  # CUDA graphs record on a later call
    for i in range(steps + warmup):
        _sync(device)
        began = time.perf_counter()
        with autocast_context(device, amp):
            predictions, certainties = forward(x)
        loss = task.loss(predictions.float(), certainties.float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        _sync(device)
        if i >= warmup:  # the first step(s) warm up allocators and kernels (and compile)
            times.append(time.perf_counter() - began)
        elif i == 0:
            first = time.perf_counter() - began
    return Timing(min(times), statistics.median(times), macs, count_parameters(model), first)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="*", default=[c.name for c in CONFIGS])
    parser.add_argument("--steps", type=int, default=5, help="timed steps per configuration (after 1 warm-up)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    parser.add_argument("--modes", nargs="*", default=None,
                        help="fp32, bf16, and either with +compile or +cudagraphs (default: bf16 on CUDA, fp32 on CPU)")
    parser.add_argument("--batches", nargs="*", type=int, default=None, help="batch sizes (default: each config's)")
    parser.add_argument("--ticks-overhead", action="store_true", help="also time batch 1: wall time per tick")
    parser.add_argument("--jsonl", default=None, help="append each measurement as a JSON line to this file")
    parser.add_argument("--matmul-rate", type=float, default=None,
                        help="dense matmul MAC/s measured earlier (skips measuring it again)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    threads = f"CPU, {torch.get_num_threads()} threads"
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else threads
    load = ", load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    print(f"device: {where}; torch {torch.__version__}{load}")
    rate = args.matmul_rate or matmul_rate(device)
    print(f"dense matmul ({'fp32 2048^3' if device.type == 'cpu' else 'bf16 8192^3'}): {rate / 1e9:.1f} GMAC/s")
    modes = args.modes or (["bf16"] if device.type == "cuda" else ["fp32"])
    print(f"{'config':<14}{'mode':<18}{'batch':>6}{'params':>12}{'fwd MACs/sample':>17}{'step s min':>11}"
          f"{'median':>8}{'first':>8}{'TFLOP/s':>9}{'% matmul':>10}")
    for cfg in CONFIGS:
        if cfg.name not in args.configs:
            continue
        for mode in modes:
            for batch in args.batches or [cfg.batch]:
                try:
                    t = step_time(cfg, device, args.steps, batch=batch, mode=mode)
                except torch.OutOfMemoryError as exc:
                    print(f"{cfg.name:<14}{mode:<18}{batch:>6}  out of memory: {str(exc)[:80]}", flush=True)
                    torch.cuda.empty_cache()
                    continue
                achieved = 3 * t.macs * batch / t.fastest
                row = {"name": cfg.name, "mode": mode, "batch": batch, "step_s": t.fastest, "median_s": t.median,
                       "first_step_s": t.first_step, "tflops": 2 * achieved / 1e12,
                       "pct_matmul": 100 * achieved / rate, "params": t.params, "fwd_macs_per_sample": t.macs,
                       "ticks": cfg.genome.ticks, "device": where, "torch": torch.__version__,
                       "matmul_tflops": 2 * rate / 1e12}
                if args.ticks_overhead and batch == (args.batches or [cfg.batch])[0]:
                    one = step_time(cfg, device, args.steps, batch=1, mode=mode)
                    row["batch1_step_s"] = one.fastest
                    row["batch1_s_per_tick"] = one.fastest / cfg.genome.ticks
                print(f"{cfg.name:<14}{mode:<18}{batch:>6}{t.params:>12,}{t.macs:>17,}{t.fastest:>11.4f}"
                      f"{t.median:>8.4f}{t.first_step:>8.1f}{row['tflops']:>9.3f}{row['pct_matmul']:>9.2f}%"
                      + (f"  batch 1: {1e3 * row['batch1_s_per_tick']:.3f} ms/tick" if "batch1_s_per_tick" in row
                         else ""), flush=True)
                if args.jsonl:
                    with open(args.jsonl, "a", encoding="utf-8") as f:
                        f.write(json.dumps(row) + "\n")
    for cfg in CONFIGS:
        if cfg.name in args.configs:
            print(f"  {cfg.name}: {cfg.note}")


if __name__ == "__main__":
    main()
