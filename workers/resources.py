"""Resources of one evaluation (CPUs, GPU share) and how many evaluations the cluster holds at once.

In memory-aware mode the GPU share of a job comes from the cost model: the estimated training memory
``genome.cost.training_memory_bytes(genome, task_shape, batch_size)`` as a fraction of one GPU's memory,
rounded *up* to one of :data:`GPU_SHARES`. Power-of-two shares pack GPUs without leftovers, and the estimate
errs high, so packed evaluations do not run each other out of memory.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ctm.result import TaskSpec
from genome.cost import TaskShape, training_memory_bytes
from workers.config import WorkersConfig
from workers.job import EvalJob

GPU_SHARES = (1.0, 0.5, 0.25, 0.125)  # the shares a memory-aware evaluation may get, largest first
GIB = 2**30
_SHARE_MEMORY = 0.25  # initial running mean of memory-aware shares (before any job was sized)


@dataclass(frozen=True)
class Resources:
    """What one evaluation attempt reserves on the cluster (Ray ``num_cpus`` / ``num_gpus``)."""

    num_cpus: float
    num_gpus: float


def gpu_share(memory_bytes: float, gpu_memory_gib: float) -> float:
    """The smallest share in :data:`GPU_SHARES` whose memory holds ``memory_bytes``; a whole GPU if none."""
    need = memory_bytes / (gpu_memory_gib * GIB)
    for share in reversed(GPU_SHARES):
        if need <= share:
            return share
    return 1.0


def default_task_shape(task: TaskSpec) -> TaskShape:
    """A task's shapes, as the cost model needs them: ``ctm.make_task(spec).shape`` (imports ctm lazily)."""
    import ctm  # late: ctm imports torch, needed only in memory-aware mode

    return ctm.make_task(task).shape  # type: ignore[attr-defined]


class ResourcePlanner:
    """Sizes each job and counts free slots against the cluster's totals.

    ``cluster`` is Ray's ``cluster_resources()`` (``{"CPU": 8.0, "GPU": 2.0, ...}``); update it with
    :meth:`set_cluster` as nodes come and go.
    """

    def __init__(self, config: WorkersConfig, cluster: Mapping[str, float], *,
                 task_shape: Callable[[TaskSpec], TaskShape] | None = None) -> None:
        self.config = config
        self._task_shape = task_shape or default_task_shape
        self._shapes: dict[str, TaskShape] = {}
        self._mean_share = _SHARE_MEMORY
        self.cpus = self.gpus = 0.0
        self.set_cluster(cluster)

    def set_cluster(self, cluster: Mapping[str, float]) -> None:
        self.cpus = float(cluster.get("CPU", 0.0))
        self.gpus = float(cluster.get("GPU", 0.0))

    @property
    def gpus_per_eval(self) -> float:
        """The configured share, or 1 when the cluster has GPUs and none was configured."""
        if self.config.gpus_per_eval is not None:
            return float(self.config.gpus_per_eval)
        return 1.0 if self.gpus > 0 else 0.0

    def shape(self, task: TaskSpec) -> TaskShape:
        key = json.dumps(task.to_dict(), sort_keys=True, default=str)
        if key not in self._shapes:
            self._shapes[key] = self._task_shape(task)
        return self._shapes[key]

    def for_job(self, job: EvalJob) -> Resources:
        """The resources of ``job``'s next attempt."""
        gpus = self.gpus_per_eval
        if self.config.gpu_memory_aware and gpus > 0:
            assert self.config.gpu_memory_gib is not None  # checked by WorkersConfig
            need = training_memory_bytes(job.genome, self.shape(job.task), job.effective_batch_size)
            gpus = gpu_share(need, self.config.gpu_memory_gib)
            self._mean_share = 0.8 * self._mean_share + 0.2 * gpus
        return Resources(num_cpus=float(self.config.cpus_per_eval), num_gpus=gpus)

    def free_slots(self, in_flight: list[Resources]) -> int:
        """How many more evaluations to submit now.

        With ``concurrency`` set: up to that many in flight, whatever the cluster holds right now (jobs beyond
        its capacity wait in Ray's queue, which is what makes an autoscaler add nodes; timeouts count from
        the start). Otherwise what fits now: the free CPUs, and the free GPU capacity counted in evaluations
        of the fixed share or, memory-aware, of the recent average share.
        """
        if self.config.concurrency is not None:
            return max(0, self.config.concurrency - len(in_flight))
        limits: list[float] = []
        cpu_each = float(self.config.cpus_per_eval)
        if cpu_each > 0:
            limits.append((self.cpus - sum(r.num_cpus for r in in_flight)) / cpu_each)
        gpu_each = self._mean_share if self.config.gpu_memory_aware else self.gpus_per_eval
        if gpu_each > 0 and self.gpus_per_eval > 0:
            limits.append((self.gpus - sum(r.num_gpus for r in in_flight)) / gpu_each)
        if not limits:  # nothing reserved per evaluation and no cap: one per CPU
            limits.append(max(self.cpus, 1.0) - len(in_flight))
        return max(0, math.floor(min(limits) + 1e-9))
