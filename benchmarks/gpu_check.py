"""The GPU checks of ctmevo in one prepared run, parts ordered by value, each saved as soon as it is measured.

    python benchmarks/gpu_check.py --device cuda --out DIR --deadline-s 540     # on the accelerator machine
    python benchmarks/gpu_check.py --device cpu --out /tmp/gpu-rehearsal --quick # the same script rehearsed on CPU

Parts (``DIR/gpu-ctm-step.json`` is rewritten after each; ``DIR/log.txt`` has the printed tables):
1. ``step``: ``benchmarks/ctm_step.py`` for parity-small, maze-small and parity-large, eager fp32 and bf16, a
   batch sweep at the paper's parity size, the per-tick wall time at batch 1 (launch-bound floor).
2. ``evaluate``: one evaluation end to end through the inline pool on the device (the campaign path), and a
   rung ladder whose state moves CPU -> device -> CPU (continued training across devices).
3. ``packing``: small-genome evaluations one at a time in one process vs several processes sharing the GPU
   (what fractional ``gpus_per_eval`` does on a cluster): evaluations/hour and sampled GPU utilisation.
4. ``oom``: a genome too big for its share of the GPU (a per-process memory cap) runs out of memory with a real
   CUDA error; the pool retries it at half the batch, which fits.
5. ``compile``: ``torch.compile`` (default and CUDA-graph ``reduce-overhead`` modes), each in its own process
   under a time cap.
6. ``bench``: CTM-Bench curves (fp32) with the time that is left, on GPU workers and CPU workers side by side.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS: dict[str, Any] = {}
STEP_PY = str(ROOT / "benchmarks" / "ctm_step.py")


def save(out: Path) -> None:
    tmp = out / "gpu-ctm-step.json.tmp"
    tmp.write_text(json.dumps(RESULTS, indent=1))
    os.replace(tmp, out / "gpu-ctm-step.json")


def log(out: Path, *parts: Any) -> None:
    line = " ".join(str(p) for p in parts)
    print(line, flush=True)
    with open(out / "log.txt", "a", encoding="utf-8") as f:
        f.write(line + "\n")


def run_step(out: Path, device: str, args: list[str], cap_s: float) -> list[dict[str, Any]]:
    """ctm_step.py in a subprocess under ``cap_s`` seconds; the rows it wrote before any cut-off."""
    jsonl = out / "step-rows.jsonl"
    before = jsonl.read_text().count("\n") if jsonl.exists() else 0
    cmd = [sys.executable, STEP_PY, "--device", device, "--jsonl", str(jsonl), *args]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=cap_s, cwd=ROOT)
        log(out, done.stdout.rstrip(), done.stderr[-1500:] if done.returncode else "")
    except subprocess.TimeoutExpired as exc:
        log(out, (exc.stdout or b"").decode() if isinstance(exc.stdout, bytes) else exc.stdout or "",
            f"[cut off after {cap_s:.0f} s: {' '.join(args)}]")
    rows = [json.loads(x) for x in jsonl.read_text().splitlines()[before:]] if jsonl.exists() else []
    return rows


# -- 2. evaluation end to end ------------------------------------------------------------------------------
def part_evaluate(device: str) -> dict[str, Any]:
    from ctm.evaluation import evaluate
    from ctm.result import EvalBudget, TaskSpec
    from genome.genome import Genome
    from workers import EvalJob, InlinePool, WorkersConfig

    genome = Genome(d_model=64, d_input=32, ticks=12, memory_length=6, heads=2, n_sync_out=16, n_sync_action=16,
                    nlm_hidden=8, batch_size=64, learning_rate=0.003)
    task = TaskSpec(name="parity", params={"length": 8})
    out: dict[str, Any] = {}
    pool = InlinePool(WorkersConfig(backend="inline", gpus_per_eval=1 if device == "cuda" else 0))
    began = time.perf_counter()
    pool.submit(EvalJob(genome=genome, task=task, budget=EvalBudget(steps=300, val_samples=512), seed=1,
                        want_checkpoint=True))
    (result,) = pool.poll()
    out["pool"] = {"status": result.status, "fitness": result.fitness, "wall_s": time.perf_counter() - began,
                   "device_used": device, "checkpoint_bytes": len(result.checkpoint or b""),
                   "failure": result.failure.message if result.failure else None}
    ladder = []
    state = None
    for steps, dev in ((100, "cpu"), (300, device), (400, "cpu")):
        t = time.perf_counter()
        r = evaluate(genome, task, EvalBudget(steps=steps, val_samples=512), 1, dev, want_checkpoint=True,
                     start=state)
        state = r.checkpoint
        ladder.append({"steps": steps, "device": dev, "status": r.status, "fitness": r.fitness,
                       "train_steps": r.metrics.get("train_steps"), "wall_s": time.perf_counter() - t})
    out["ladder_cpu_device_cpu"] = ladder
    return out


# -- 3. packing ---------------------------------------------------------------------------------------------
def _pack_job(args: tuple[int, str]) -> float:
    index, device = args
    import torch
    torch.set_num_threads(1)
    from ctm.evaluation import evaluate
    from ctm.result import EvalBudget, TaskSpec
    from genome.genome import Genome
    g = Genome(d_model=32 + 8 * (index % 5), d_input=16, ticks=4 + index % 9, memory_length=2 + index % 6, heads=2,
               n_sync_out=8, n_sync_action=8, nlm_hidden=4, batch_size=32, learning_rate=0.003)
    t = time.perf_counter()
    r = evaluate(g, TaskSpec(name="parity", params={"length": 6}), EvalBudget(steps=300, val_samples=256), index,
                 device)
    assert r.status == "ok", r.failure
    return time.perf_counter() - t


class GpuSampler:
    """Samples GPU utilisation (NVML) every 0.2 s on a thread."""

    def __init__(self) -> None:
        self.samples: list[int] = []
        self._stop = threading.Event()
        try:
            import pynvml
            pynvml.nvmlInit()
            self._handle = pynvml.nvmlDeviceGetHandleByIndex(0)
            self._nvml = pynvml
        except Exception:
            self._nvml = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            if self._nvml is not None:
                self.samples.append(self._nvml.nvmlDeviceGetUtilizationRates(self._handle).gpu)

    def __enter__(self) -> GpuSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def mean(self) -> float | None:
        return sum(self.samples) / len(self.samples) if self.samples else None


def part_packing(device: str, n: int, procs: list[int]) -> dict[str, Any]:
    out: dict[str, Any] = {"evaluations": n, "steps": 300, "task": "parity length 6", "runs": []}
    ctx = multiprocessing.get_context("spawn")
    for p in procs:
        with ctx.Pool(p) as pool:
            pool.map(_pack_job, [(0, device)] * p)  # start-up (CUDA context, imports) not counted
            with GpuSampler() as gpu:
                t = time.perf_counter()
                times = pool.map(_pack_job, [(i, device) for i in range(n)])
                wall = time.perf_counter() - t
        out["runs"].append({"processes": p, "wall_s": wall, "evals_per_hour": 3600 * n / wall,
                            "mean_eval_s": sum(times) / n, "gpu_util_mean_pct": gpu.mean})
    return out


# -- 4. out of memory --------------------------------------------------------------------------------------
def part_oom(device: str) -> dict[str, Any]:
    import torch

    from ctm.evaluation import evaluate
    from ctm.result import EvalBudget, TaskSpec
    from genome.genome import Genome
    from workers import EvalJob, InlinePool, WorkersConfig
    if device != "cuda":
        return {"skipped": "needs CUDA"}
    genome = Genome(d_model=512, d_input=128, ticks=50, memory_length=16, heads=4, n_sync_out=64,
                    n_sync_action=64, nlm_hidden=16, batch_size=64)
    task = TaskSpec(name="parity", params={"length": 32})
    big = 1024
    torch.cuda.reset_peak_memory_stats()
    r = evaluate(genome, task, EvalBudget(steps=2, val_samples=64), 0, "cuda", batch_size=big)
    peak_big = torch.cuda.max_memory_allocated()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    evaluate(genome, task, EvalBudget(steps=2, val_samples=64), 0, "cuda", batch_size=big // 2)
    peak_half = torch.cuda.max_memory_allocated()
    torch.cuda.empty_cache()
    total = torch.cuda.get_device_properties(0).total_memory
    cap = (peak_big + peak_half) / 2  # between the two peaks: the full batch cannot fit, the half can
    torch.cuda.set_per_process_memory_fraction(cap / total)
    pool = InlinePool(WorkersConfig(backend="inline", gpus_per_eval=1))
    pool.submit(EvalJob(genome=genome, task=task, budget=EvalBudget(steps=20, val_samples=64), seed=0,
                        batch_size=big))
    (result,) = pool.poll()
    torch.cuda.set_per_process_memory_fraction(1.0)
    return {"first_status": r.status, "peak_batch_full_gib": peak_big / 2**30, "peak_batch_half_gib": peak_half / 2**30,
            "cap_gib": cap / 2**30, "final_status": result.status, "attempts": result.attempts,
            "metrics_batch": result.metrics.get("batch_size"), "history": getattr(result, "history", None),
            "failure": result.failure.message[:300] if result.failure else None}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--deadline-s", type=float, default=540, help="stop starting parts after this long")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a CPU rehearsal of the script)")
    parser.add_argument("--skip", nargs="*", default=[], help="parts to skip")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    began = time.monotonic()
    left = lambda: args.deadline_s - (time.monotonic() - began)  # noqa: E731
    out, dev = args.out, args.device
    import torch
    RESULTS.update({"device": torch.cuda.get_device_name(0) if dev == "cuda" else "cpu", "torch": torch.__version__,
                    "cpu_count": os.cpu_count(), "configs": [], "parts_done": []})
    save(out)
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from ctm_step import matmul_rate  # type: ignore[import-not-found]

    rate = matmul_rate(torch.device(dev), seconds=0.5 if args.quick else 2.0)
    RESULTS["matmul_tflops"] = 2 * rate / 1e12
    log(out, f"device {RESULTS['device']}, torch {torch.__version__}, dense matmul {2 * rate / 1e12:.1f} TFLOP/s")
    save(out)
    q = args.quick
    modes = ["fp32", "bf16"] if dev == "cuda" else ["fp32"]
    common = ["--steps", "2" if q else "5", "--matmul-rate", str(rate)]

    def part(name: str, need_s: float, fn: Any) -> None:
        if name in args.skip:
            return
        if left() < need_s:
            log(out, f"[{name}: skipped, {left():.0f} s left and it needs about {need_s:.0f} s]")
            return
        t = time.monotonic()
        try:
            RESULTS[name] = fn()
        except Exception as exc:  # one part failing does not stop the others
            RESULTS[name] = {"error": f"{type(exc).__name__}: {exc}"[:1000]}
        RESULTS["parts_done"].append({"part": name, "seconds": time.monotonic() - t})
        log(out, f"[{name}] {time.monotonic() - t:.0f} s: {json.dumps(RESULTS[name])[:1500]}")
        save(out)

    def step() -> dict[str, Any]:
        rows = []
        small = ["8", "16"] if q else None
        rows += run_step(out, dev, ["--configs", "parity-small", "--modes", *modes, "--ticks-overhead",
                                    *(["--batches", *small] if q else ["--batches", "64", "256", "1024"]), *common],
                         cap_s=min(70, left()))
        if not q:
            rows += run_step(out, dev, ["--configs", "maze-small", "--modes", *modes, "--batches", "16", "64",
                                        *common], cap_s=min(60, left()))
        rows += run_step(out, dev, ["--configs", "parity-large", "--modes", *modes, "--ticks-overhead",
                                    "--batches", *(["2"] if q else ["64", "128", "256", "512", "1024", "2048"]),
                                    *common], cap_s=min(120, left()))
        RESULTS["configs"] += rows
        return {"rows": len(rows)}

    def compile_part() -> dict[str, Any]:
        rows = []
        cmodes = ["fp32+compile"] if dev != "cuda" else ["bf16+compile", "bf16+cudagraphs"]
        plan = [(cmodes[0], "parity-small", "64"), (cmodes[-1], "parity-small", "64")]
        if not q:
            plan = [(cmodes[0], "parity-large", "1024"), (cmodes[-1], "parity-large", "1024"), *plan]
        for mode, cfg, batch in dict.fromkeys(plan):
            if left() < 60:
                break
            rows += run_step(out, dev, ["--configs", cfg, "--modes", mode, "--batches", "8" if q else batch,
                                        *common], cap_s=min(120, left() - 30))
        RESULTS["configs"] += rows
        return {"rows": len(rows)}

    def bench() -> dict[str, Any]:
        minutes = max((left() - 90) / 60, 0.5)
        data = out / "bench"
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        build = [sys.executable, str(ROOT / "benchmarks" / "ctmbench_build.py"), "--data", str(data),
                 "--minutes", f"{minutes:.2f}"]
        gpu_workers, cpu_workers = (2, 1) if q else (8, 6)
        procs = [subprocess.Popen([*build, "--device", dev, "--workers", str(gpu_workers), "--name", "gpu",
                                   "--indices", "1000:1010" if q else "400:700"], env=env,
                                  stdout=open(out / "bench-gpu.log", "w"), stderr=subprocess.STDOUT),  # noqa: SIM115
                 subprocess.Popen([*build, "--device", "cpu", "--workers", str(cpu_workers), "--name", "cpu",
                                   "--indices", "1010:1020" if q else "700:1000"], env=env,
                                  stdout=open(out / "bench-cpu.log", "w"), stderr=subprocess.STDOUT)]  # noqa: SIM115
        t = time.monotonic()
        with GpuSampler() as gpu:
            for p in procs:
                try:
                    p.wait(timeout=max(left() - 20, 10))
                except subprocess.TimeoutExpired:
                    p.kill()
        wall = time.monotonic() - t
        res: dict[str, Any] = {"wall_s": wall, "gpu_util_mean_pct": gpu.mean}
        for name, workers in (("gpu", gpu_workers), ("cpu", cpu_workers)):
            path = data / "raw" / f"{name}.jsonl"
            rows = [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []
            res[name] = {"workers": workers, "curves": len(rows),
                         "curves_per_minute": 60 * len(rows) / wall,
                         "mean_curve_s": sum(r["wall_s"] for r in rows) / len(rows) if rows else None}
        return res

    part("step", 60 if q else 200, step)
    part("evaluate", 20, lambda: part_evaluate(dev))
    part("packing", 30 if q else 90, lambda: part_packing(dev, 4 if q else 24, [1, 2] if q else [1, 8]))
    part("oom", 20, lambda: part_oom(dev))
    part("compile", 60 if q else 200, compile_part)
    part("bench", 60 if q else 150, bench)
    log(out, f"done in {time.monotonic() - began:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
