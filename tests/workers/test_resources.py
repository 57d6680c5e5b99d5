"""Per-evaluation resources and free slots, including memory-aware GPU shares from the cost model."""

from __future__ import annotations

from collections.abc import Callable

from ctm.result import TaskSpec
from genome.cost import BackboneSpec, TaskShape, training_memory_bytes
from genome.genome import Genome
from workers import EvalJob, WorkersConfig
from workers.resources import GIB, ResourcePlanner, Resources, gpu_share

PARITY = TaskShape(name="parity", backbone=BackboneSpec(kind="embedding", n_tokens=64, vocab=2),
                   out_positions=64, out_classes=2)


def shape_of(task: TaskSpec) -> TaskShape:
    return PARITY


def test_gpu_share_rounds_up_to_a_power_of_two_fraction() -> None:
    assert gpu_share(1 * GIB, 80) == 0.125
    assert gpu_share(10 * GIB, 80) == 0.125
    assert gpu_share(10.5 * GIB, 80) == 0.25
    assert gpu_share(30 * GIB, 80) == 0.5
    assert gpu_share(79 * GIB, 80) == 1.0
    assert gpu_share(500 * GIB, 80) == 1.0  # larger than a GPU: a whole one (the OOM retry halves the batch)


def test_memory_aware_small_genomes_share_and_large_get_a_whole_gpu(fake_job: Callable[..., EvalJob]) -> None:
    config = WorkersConfig(gpu_memory_aware=True, gpu_memory_gib=8)
    planner = ResourcePlanner(config, {"CPU": 16, "GPU": 2}, task_shape=shape_of)
    small = fake_job(genome=Genome(ticks=5, d_model=64, memory_length=4, batch_size=32))
    large = fake_job(genome=Genome(ticks=100, d_model=1024, memory_length=32, batch_size=512))
    assert training_memory_bytes(small.genome, PARITY) < GIB < 8 * GIB < training_memory_bytes(large.genome, PARITY)
    assert planner.for_job(small) == Resources(num_cpus=1.0, num_gpus=0.125)
    assert planner.for_job(large) == Resources(num_cpus=1.0, num_gpus=1.0)
    # a halved batch (the OOM retry) needs less memory, never more
    halved = EvalJob(genome=large.genome, task=large.task, budget=large.budget, batch_size=256)
    assert planner.for_job(halved).num_gpus <= 1.0


def test_fixed_and_automatic_gpu_shares(fake_job: Callable[..., EvalJob]) -> None:
    job = fake_job()
    assert ResourcePlanner(WorkersConfig(), {"CPU": 4}).for_job(job) == Resources(1.0, 0.0)
    assert ResourcePlanner(WorkersConfig(), {"CPU": 4, "GPU": 1}).for_job(job) == Resources(1.0, 1.0)
    planner = ResourcePlanner(WorkersConfig(gpus_per_eval=0.25, cpus_per_eval=2), {"CPU": 16, "GPU": 2})
    assert planner.for_job(job) == Resources(2.0, 0.25)


def test_free_slots_count_cpus_gpus_and_the_concurrency_cap() -> None:
    cpu = ResourcePlanner(WorkersConfig(), {"CPU": 4})
    assert cpu.free_slots([]) == 4
    assert cpu.free_slots([Resources(1, 0)] * 3) == 1
    assert cpu.free_slots([Resources(1, 0)] * 5) == 0
    capped = ResourcePlanner(WorkersConfig(concurrency=2), {"CPU": 4})
    assert capped.free_slots([]) == 2 and capped.free_slots([Resources(1, 0)] * 3) == 0
    autoscaling = ResourcePlanner(WorkersConfig(concurrency=16, gpus_per_eval=1), {"CPU": 0})
    assert autoscaling.free_slots([]) == 16  # an explicit concurrency queues work for nodes yet to come
    gpu = ResourcePlanner(WorkersConfig(gpus_per_eval=0.5), {"CPU": 16, "GPU": 2})
    assert gpu.free_slots([]) == 4 and gpu.free_slots([Resources(1, 0.5)] * 3) == 1
    gpu.set_cluster({"CPU": 16, "GPU": 1})  # a node died
    assert gpu.free_slots([Resources(1, 0.5)] * 3) == 0


def test_memory_aware_free_slots_follow_the_recent_average_share(fake_job: Callable[..., EvalJob]) -> None:
    planner = ResourcePlanner(WorkersConfig(gpu_memory_aware=True, gpu_memory_gib=8, cpus_per_eval=0),
                              {"CPU": 64, "GPU": 2}, task_shape=shape_of)
    assert planner.free_slots([]) == 8  # nothing sized yet: assumes quarter-GPU evaluations
    small = [planner.for_job(fake_job(genome=Genome(ticks=t, d_model=64, batch_size=16))) for t in (3, 4, 5)]
    for _ in range(20):
        planner.for_job(fake_job(genome=Genome(ticks=6, d_model=64, batch_size=16)))
    assert planner.free_slots(small) >= 12  # mostly eighth-GPU evaluations: many more fit
