"""A campaign-like driver for the multi-node tests, run as a subprocess (its own Ray connection).

    python cluster_driver.py SCENARIO --address HOST:PORT --node-ip IP --report-dir DIR --out FILE

Scenarios:

- ``node_death``: two one-CPU nodes; two jobs (one lands on each node) that sleep; the test kills the worker
  node; both must succeed (the lost one retried on the head), then one more job proves the campaign goes on.
- ``disconnect``: one long job; the test kills the head node; ``poll`` must raise ``PoolDisconnected`` naming
  the job, and ``shutdown`` must return promptly.
- ``local``: no address: the pool starts (and on shutdown stops) its own local Ray cluster with one logical
  GPU, ships the project's packages to the workers through the runtime environment (``py_modules``) and
  sizes GPU shares from the cost model (small genomes an eighth of the GPU, a large one all of it; the large
  one runs out of memory once and is retried at half the batch, keeping its whole GPU).

- ``rungs``: a campaign with fidelity rungs (``workers.testing:rung_evaluate``) on the two-node cluster: promoted
  evaluations carry their training state in the job (Ray's object store), whichever node runs them.
- ``inherit``: a campaign of real CTM evaluations with rungs and ``evaluation.inherit: parent`` on the two-node
  cluster: children start from their parents' trained weights, whichever node trained the parent.

Progress goes to stdout; the outcome is written as JSON to ``--out``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from ctm.result import EvalBudget, TaskSpec
from genome.cost import BackboneSpec, TaskShape
from genome.genome import Genome
from workers import EvalJob, PoolDisconnected, WorkersConfig
from workers.ray_pool import RayPool

FAKE = "workers.testing:fake_evaluate"


def job(ticks: int, **params: Any) -> EvalJob:
    return EvalJob(genome=Genome(ticks=ticks), task=TaskSpec(name="fake", params=params),
                   budget=EvalBudget(steps=1))


def say(*parts: Any) -> None:
    print(f"[driver {time.monotonic():.2f}]", *parts, flush=True)


def collect(pool: RayPool, count: int, timeout_s: float) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout_s
    while len(out) < count and time.monotonic() < deadline:
        for result in pool.poll(timeout=1.0):
            say("result", result.genome_hash, result.status, result.attempts, result.worker)
            out.append(result.to_dict())
    return out


def wait_for_cpus(cpus: float, timeout_s: float = 60.0) -> None:
    import ray

    deadline = time.monotonic() + timeout_s
    while ray.cluster_resources().get("CPU", 0) < cpus:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the cluster did not reach {cpus} CPUs: {ray.cluster_resources()}")
        time.sleep(0.2)


def node_death(args: argparse.Namespace) -> dict[str, Any]:
    config = WorkersConfig(address=args.address, evaluate_fn=FAKE, max_retries=2)
    pool = RayPool(config, init_kwargs={"_node_ip_address": args.node_ip})
    wait_for_cpus(2)
    say("cluster ready; free slots", pool.free_slots)
    first = [job(1, sleep=6, report_dir=args.report_dir), job(2, sleep=6, report_dir=args.report_dir)]
    for j in first:
        pool.submit(j)
    results = collect(pool, 2, timeout_s=90)
    pool.submit(after := job(3, sleep=0.1))
    results += collect(pool, 1, timeout_s=30)
    outcome = {"results": results, "after": after.job_id, "free_slots_after": pool.free_slots}
    pool.shutdown()
    return outcome


def disconnect(args: argparse.Namespace) -> dict[str, Any]:
    config = WorkersConfig(address=args.address, evaluate_fn=FAKE, disconnect_after_s=4.0)
    pool = RayPool(config, init_kwargs={"_node_ip_address": args.node_ip})
    pool.submit(long := job(4, sleep=300, report_dir=args.report_dir))
    try:
        collect(pool, 1, timeout_s=120)
    except PoolDisconnected as exc:
        raised_at = time.time()
        say("disconnected:", exc)
        started = time.monotonic()
        try:
            pool.poll(timeout=1.0)
            again = False
        except PoolDisconnected:
            again = True
        cancelled = pool.shutdown()
        return {"disconnected": True, "in_flight": exc.in_flight, "message": str(exc), "raised_at": raised_at,
                "raises_again": again, "shutdown_s": time.monotonic() - started, "shutdown_ids": cancelled,
                "job": long.job_id}
    return {"disconnected": False}


def local(args: argparse.Namespace) -> dict[str, Any]:
    import ray

    import ctm
    import genome
    import workers

    code = [str(Path(m.__file__).parent) for m in (ctm, genome, workers)]
    config = WorkersConfig(evaluate_fn=FAKE, num_cpus=2, num_gpus=1, cpus_per_eval=0.25, gpu_memory_aware=True,
                           gpu_memory_gib=8, runtime_env={"py_modules": code})
    parity = TaskShape(name="parity", backbone=BackboneSpec(kind="embedding", n_tokens=64, vocab=2),
                       out_positions=64, out_classes=2)
    pool = RayPool(config, task_shape=lambda spec: parity)  # one logical GPU: Ray needs no real one
    owned = ray.is_initialized()
    slots = pool.free_slots
    small = [EvalJob(genome=Genome(ticks=t, d_model=64, batch_size=16), budget=EvalBudget(steps=1),
                     task=TaskSpec(name="fake", params={"sleep": 0.1, "report_dir": args.report_dir}))
             for t in (5, 6, 7)]
    large = EvalJob(genome=Genome(ticks=100, d_model=1024, memory_length=32, batch_size=512),
                    task=TaskSpec(name="fake", params={"oom_above": 256, "oom_as_result": True}),
                    budget=EvalBudget(steps=1))
    for j in small:
        pool.submit(j)
    shares = {"small": pool._running[small[0].job_id].resources.num_gpus}
    pool.submit(large)
    shares["large"] = pool._running[large.job_id].resources.num_gpus
    results = collect(pool, 4, timeout_s=60)
    pool.shutdown()
    return {"results": results, "free_slots": slots, "started": owned, "stopped": not ray.is_initialized(),
            "shares": shares, "large": large.job_id}


def _campaign(args: argparse.Namespace, config: dict[str, Any]) -> list[dict[str, Any]]:
    import ray

    from search.campaign import Campaign, parse_campaign_config
    from workers.ray_pool import RayPool

    campaign = Campaign.create(parse_campaign_config(config), Path(args.report_dir) / "campaign")
    ray.init(address=args.address, _node_ip_address=args.node_ip, logging_level="WARNING")
    deadline = time.monotonic() + 90
    while ray.cluster_resources().get("CPU", 0) < 2 and time.monotonic() < deadline:  # both worker nodes joined
        time.sleep(0.5)
    pool = RayPool(dataclasses.replace(campaign.workers_config, address=None))  # this connection
    campaign.run(pool=pool)
    pool.shutdown()
    return [e["record"] for e in campaign.journal.read() if e["event"] == "result"]


def rungs(args: argparse.Namespace) -> dict[str, Any]:
    records = _campaign(args, {
        "name": "cluster", "seed": 1, "task": {"name": "parity", "params": {"length": 4}},
        "genome_space": {"ticks": {"min": 1, "max": 20}, "memory_length": {"min": 1, "max": 8}},
        "strategy": {"name": "map_elites", "settings": {"initial_samples": 6}},
        "descriptors": [{"name": "ticks", "bins": 5, "range": [1, 21]}, {"name": "memory_length", "bins": 4,
                                                                          "range": [1, 9]}],
        "evaluation": {"steps": 100, "fidelity": {"rungs": [100, 300], "eta": 2}},
        "budget": {"evaluations": 24}, "tracking": {"checkpoints": "elites"},
        "workers": {"address": args.address, "evaluate_fn": "workers.testing:rung_evaluate"}})
    return {"results": [{"hash": r["result"]["genome_hash"], "rung": r.get("rung", 0), "status": r["result"]["status"],
                         "worker": r["result"]["worker"], "start_step": r["result"]["metrics"].get("start_step")}
                        for r in records]}


def inherit(args: argparse.Namespace) -> dict[str, Any]:
    records = _campaign(args, {
        "name": "inherit", "seed": 2, "task": {"name": "parity", "params": {"length": 4}},
        "genome_space": {"ticks": {"min": 1, "max": 8}, "memory_length": {"min": 1, "max": 6},
                         "d_model": {"min": 16, "max": 32}, "d_input": 16, "heads": {"choices": [1, 2]},
                         "nlm_hidden": {"min": 2, "max": 6}, "n_sync_out": {"min": 4, "max": 8},
                         "n_sync_action": {"min": 2, "max": 8}, "batch_size": 16},
        "strategy": {"name": "map_elites", "settings": {"initial_samples": 4}},
        "descriptors": [{"name": "ticks", "bins": 4, "range": [1, 9]}, {"name": "memory_length", "bins": 3,
                                                                         "range": [1, 7]}],
        "evaluation": {"steps": 20, "val_samples": 64, "fidelity": {"rungs": [20, 60], "eta": 2},
                       "inherit": "parent"},
        "budget": {"evaluations": 20}, "workers": {"address": args.address}})
    return {"results": [{"hash": r["result"]["genome_hash"], "rung": r.get("rung", 0), "status": r["result"]["status"],
                         "worker": r["result"]["worker"], "parent": r["extra"].get("inherited_from"),
                         "inherited": r["extra"].get("inherited"), "metrics": r["result"]["metrics"]}
                        for r in records]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("scenario", choices=["node_death", "disconnect", "local", "rungs", "inherit"])
    parser.add_argument("--address")
    parser.add_argument("--node-ip", default="127.0.0.2")
    parser.add_argument("--report-dir")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    scenarios = {"node_death": node_death, "disconnect": disconnect, "local": local, "rungs": rungs,
                 "inherit": inherit}
    outcome = scenarios[args.scenario](args)
    Path(args.out).write_text(json.dumps(outcome))
    say("done")
    sys.stdout.flush()
    os._exit(0)  # skip Ray's exit handlers: after a disconnect they would wait for the dead GCS


if __name__ == "__main__":
    main()
