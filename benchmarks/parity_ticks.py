"""Accuracy against internal ticks on cumulative parity: the same small CTM trained at several tick counts.

Each run trains a fresh CTM (same genes except T, with M = min(T, --memory)) for the same number of steps
through ``ctm.evaluate`` and prints its validation accuracy (per position, at each sample's most certain tick),
whole-sequence accuracy, the adaptive-compute exit tick and its accuracy at a few relative ticks (how accuracy
grows over the model's own ticks). The paper's claim (more ticks ⇒ higher accuracy, 100% at T ≥ 75 for L = 64)
comes from 200k-step runs; on a CPU this script uses a short sequence and a few minutes of training (about
3.5 minutes on one core for the defaults). With D_in = 8 < L one attention read is a narrow summary of the
sequence, so extra ticks have something to do; on short sequences (L <= 10) one tick already did best here.

    python benchmarks/parity_ticks.py                          # L = 16, ticks 1 4 8 16, 4000 steps each
    python benchmarks/parity_ticks.py --length 64 --ticks 10 25 50 75 --steps 20000 --device cuda
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from ctm import EvalBudget, TaskSpec, evaluate
from ctm.metrics import resample
from genome.genome import Genome


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--length", type=int, default=16, help="parity length L")
    parser.add_argument("--ticks", type=int, nargs="*", default=[1, 4, 8, 16])
    parser.add_argument("--steps", type=int, default=4000, help="training steps per run")
    parser.add_argument("--memory", type=int, default=8, help="M = min(T, this)")
    parser.add_argument("--d-model", type=int, default=64)
    parser.add_argument("--d-input", type=int, default=8)
    parser.add_argument("--heads", type=int, default=2)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (a small model: 1 is fastest)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    task = TaskSpec(name="parity", params={"length": args.length})
    budget = EvalBudget(steps=args.steps, val_samples=1024, warmup_steps=min(100, args.steps // 10))
    load = ", load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    print(f"cumulative parity L={args.length}: D={args.d_model} D_in={args.d_input} heads={args.heads} "
          f"16/16 random pairs, batch {args.batch}, lr {args.lr:g}, {args.steps} steps per run, "
          f"device {args.device} ({torch.get_num_threads()} threads){load}")
    print("chance: 0.500 per position; the accuracy columns at relative ticks are the per-tick curve")
    points = 5
    header = "".join(f"{f'@{p / (points - 1):.2f}':>7}" for p in range(points))
    print(f"{'T':>4}{'M':>4}{'params':>9}{'val acc':>9}{'seq acc':>9}{'exit t':>8}{'train s':>9}   {header}")
    for ticks in args.ticks:
        genome = Genome(d_model=args.d_model, d_input=args.d_input, heads=args.heads, ticks=ticks,
                        memory_length=min(ticks, args.memory), nlm_hidden=8, n_sync_out=16, n_sync_action=16,
                        batch_size=args.batch, learning_rate=args.lr)
        began = time.perf_counter()
        result = evaluate(genome, task, budget, seed=args.seed, device=args.device)
        seconds = time.perf_counter() - began
        if not result.ok:
            print(f"{ticks:>4}  failed: {result.failure.kind}: {result.failure.message}")
            continue
        m = result.metrics
        curve = "".join(f"{v:>7.3f}" for v in resample(result.per_tick_accuracy, points))
        print(f"{ticks:>4}{genome.memory_length:>4}{int(m['param_count']):>9,}{m['val_accuracy']:>9.3f}"
              f"{m['sequence_accuracy']:>9.3f}{m['exit_tick_mean']:>8.1f}{seconds:>9.1f}   {curve}", flush=True)


if __name__ == "__main__":
    main()
