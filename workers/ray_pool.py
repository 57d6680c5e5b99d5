"""``RayPool``: asynchronous, fault-tolerant evaluation on a Ray cluster (local or remote).

Each attempt of a job is one Ray task with the job's resources (:mod:`workers.resources`). The task is a
*streaming generator*: it first yields a start record (which worker, when), then the :class:`EvalResult`.
The start record lets the pool count ``timeout_s`` from the moment an evaluation really starts, not from
when it was queued behind others. Through Ray Client (``ray://``), which has no streaming generators, tasks
return the result directly and timeouts count from submission.

Faults: Ray's own retries are off (``max_retries=0``); the pool retries a job whose worker process died
(``WorkerCrashedError``) or whose node died (``NodeDiedError``) on whatever node is left, cancels and reports
attempts past ``timeout_s`` (``ray.cancel(force=True)`` kills the worker process, a hung evaluation included),
and raises :class:`workers.PoolDisconnected` once the cluster's GCS has been unreachable for
``disconnect_after_s``.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, NoReturn

import ray
import ray.exceptions as rex

from ctm.result import EvalResult, TaskSpec
from genome.cost import TaskShape
from workers.cluster_info import alive_nodes, autoscaling_node_types, bootstrap_address
from workers.config import WorkersConfig, WorkersConfigError
from workers.execute import run_attempt
from workers.feasibility import UnsatisfiableRequest, check_request, evaluation_request
from workers.job import Attempt, EvalJob
from workers.pool import ClusterUnreachable, Pool, PoolDisconnected
from workers.reach import address_problem
from workers.resources import ResourcePlanner, Resources

log = logging.getLogger(__name__)

HEALTH_CHECK_EVERY_S = 5.0  # at most this long between cluster checks while no result arrives
WAITING_REPORT_EVERY_S = 60.0  # how often the "waiting for the autoscaler" status line is repeated
_LOST = (rex.WorkerCrashedError, rex.NodeDiedError, rex.ObjectLostError, rex.LocalRayletDiedError)


def _worker_identity() -> tuple[str, str]:
    """(``ip:pid`` of this Ray worker, the device its evaluation should use)."""
    worker = f"{ray.util.get_node_ip_address()}:{os.getpid()}"
    return worker, ("cuda" if ray.get_gpu_ids() else "cpu")


@ray.remote(max_retries=0)
def _attempt_streaming(job: EvalJob, evaluate_fn: str) -> Iterator[Any]:
    """Ray task: yield a start record ``{"worker", "pid"}``, then the attempt's EvalResult."""
    worker, device = _worker_identity()
    yield {"worker": worker, "pid": os.getpid()}
    yield run_attempt(job, evaluate_fn, device, worker)


@ray.remote(max_retries=0)
def _attempt_plain(job: EvalJob, evaluate_fn: str) -> EvalResult:
    """Ray task (Ray Client): the attempt's EvalResult."""
    worker, device = _worker_identity()
    return run_attempt(job, evaluate_fn, device, worker)


TASK_NAME = "ctmevo.eval"  # the Ray task name of every evaluation attempt
_AUTH_LOGGER = "ray._private.authentication.authentication_token_setup"


def _quiet_default_auth(record: logging.LogRecord) -> bool:
    """Drop Ray's notice that the embedded cluster enabled token authentication (its secure default, kept);
    the warning that authentication is *disabled* still shows."""
    return "Token authentication is enabled" not in record.getMessage()


@dataclass(kw_only=True)
class _Running:
    state: Attempt
    ref: Any  # ObjectRefGenerator (streaming) or ObjectRef
    resources: Resources
    submitted: float
    started: float | None = None
    worker: str = ""


def _client_mode() -> bool:
    return bool(ray.util.client.ray.is_connected())


class RayPool(Pool):
    """The default pool. Connects on construction:

    - Ray already initialised in this process (e.g. the test fixture): use that connection, leave it open
      on :meth:`shutdown` (``config.runtime_env`` must then be given to ``ray.init`` instead).
    - ``config.address is None``: start a local cluster (``num_cpus``/``num_gpus`` from the config or the
      machine, no dashboard) and stop it on :meth:`shutdown`.
    - otherwise join ``config.address`` (``"auto"``, ``"host:port"``, ``"ray://host:port"``).

    ``task_shape`` maps a TaskSpec to the cost model's TaskShape (default ``ctm.make_task(spec).shape``;
    used in memory-aware mode); ``init_kwargs`` go to ``ray.init`` (e.g. ``_node_ip_address``).

    At start the request of one evaluation is checked against the cluster's nodes (:mod:`workers.feasibility`):
    :class:`workers.UnsatisfiableRequest` when no node can ever hold it; on an autoscaling cluster that may
    add such a node, :attr:`waiting_for` holds a status line (also logged) until one joins.
    """

    def __init__(self, config: WorkersConfig | None = None, *,
                 task_shape: Callable[[TaskSpec], TaskShape] | None = None,
                 init_kwargs: dict[str, Any] | None = None) -> None:
        super().__init__(config or WorkersConfig())
        self._check_evaluate_fn()
        self._owns_ray = self._connect(init_kwargs or {})
        self._streaming = not _client_mode()
        self._planner = ResourcePlanner(self.config, ray.cluster_resources(), task_shape=task_shape)
        self._running: dict[str, _Running] = {}
        self._by_ref: dict[Any, str] = {}
        self._unreachable_since: float | None = None
        self._last_check = time.monotonic()
        self._disconnected: str | None = None
        self.waiting_for: str | None = None  # status line while no node can hold an evaluation yet
        self._waiting_reported = 0.0
        self._check_feasible()

    # -- connection -----------------------------------------------------------------------------------------
    def _connect(self, init_kwargs: dict[str, Any]) -> bool:
        c = self.config
        if ray.is_initialized():
            if c.runtime_env is not None:
                raise WorkersConfigError([("runtime_env", c.runtime_env, "null when Ray is already "
                                           "initialised in this process (pass it to ray.init instead)")])
            return False
        kwargs: dict[str, Any] = {"runtime_env": c.runtime_env, "logging_level": logging.WARNING, **init_kwargs}
        if c.address is None:
            kwargs = {"address": "local", "num_cpus": c.num_cpus, "num_gpus": c.num_gpus,
                      "include_dashboard": False, **kwargs}
            logging.getLogger(_AUTH_LOGGER).addFilter(_quiet_default_auth)
        else:
            kwargs = {"address": c.address, **kwargs}
            problem = address_problem(bootstrap_address(c.address))
            if problem is not None:
                raise ClusterUnreachable(f"cannot connect to the Ray cluster at workers.address = {c.address!r}: "
                                         f"{problem}; start the cluster (ray start --head) or fix workers.address")
        try:
            ray.init(**kwargs)
        except (ConnectionError, rex.RayError) as exc:
            lines = str(exc).strip().splitlines() or [type(exc).__name__]
            raise ClusterUnreachable(f"cannot connect to the Ray cluster at {c.address!r}: {lines[0][:300]}") from exc
        return True

    def _where(self) -> str:
        if self.config.address is None:
            return "the local Ray cluster"
        return f"the Ray cluster at {self.config.address}"

    def _check_feasible(self) -> None:
        """Refuse a request no node can ever hold; on an autoscaling cluster, say that we wait for a node."""
        nodes = alive_nodes()
        if nodes is None:  # Ray Client or unknown internals: the planner still sees the totals
            return
        request = evaluation_request(self.config, self._planner.gpus)
        verdict = check_request(request, nodes, where=self._where(), node_types=autoscaling_node_types())
        if verdict.kind == "never":
            self.shutdown()
            raise UnsatisfiableRequest([(f, getattr(self.config, f, v), a) for f, v, a in verdict.problems])
        message = verdict.message
        if message and self.config.concurrency is None:
            message += "; set workers.concurrency so that queued evaluations ask the autoscaler for nodes"
        was_waiting, self.waiting_for = self.waiting_for, message or None
        now = time.monotonic()
        if self.waiting_for and (not was_waiting or now - self._waiting_reported >= WAITING_REPORT_EVERY_S):
            log.warning("%s", self.waiting_for)
            self._waiting_reported = now
        elif was_waiting and not self.waiting_for:
            log.warning("a node that holds an evaluation has joined %s; evaluations start", self._where())

    def _check_evaluate_fn(self) -> None:
        """Fail fast when the evaluation module cannot be found here (code shipped by a runtime env excepted)."""
        module = self.config.evaluate_fn.partition(":")[0]
        if self.config.runtime_env is not None:
            return
        try:
            found = importlib.util.find_spec(module) is not None
        except ImportError:
            found = False
        if not found:
            raise WorkersConfigError([("evaluate_fn", self.config.evaluate_fn,
                                       f"a function in an importable module (no module named {module!r})")])

    # -- the interface --------------------------------------------------------------------------------------
    def submit(self, job: EvalJob) -> None:
        self._check_connected()
        self._check_new(job)
        self._launch(Attempt(job=job))

    def poll(self, timeout: float = 0.0) -> list[EvalResult]:
        """See :meth:`Pool.poll`. With nothing in flight and no free slot (a cluster without capacity yet),
        waits up to ``timeout`` re-reading the cluster's size, instead of returning at once."""
        self._check_connected()
        deadline = time.monotonic() + max(0.0, timeout)
        if not self._running:
            self._health_check()
            if self.free_slots == 0:
                time.sleep(max(0.0, min(deadline - time.monotonic(), HEALTH_CHECK_EVERY_S)))
            return []
        out: list[EvalResult] = []
        while self._running:
            now = time.monotonic()
            wait_s = max(0.0, min(deadline - now, self._next_expiry(now) - now, HEALTH_CHECK_EVERY_S))
            ready = self._wait(wait_s)
            for ref in ready:
                out.extend(self._handle(ref))
            out.extend(self._expire(time.monotonic()))
            if not ready and not out:
                self._health_check()
            if out or time.monotonic() >= deadline:
                break
        return out

    @property
    def in_flight(self) -> list[str]:
        return list(self._running)

    @property
    def free_slots(self) -> int:
        if self._disconnected:
            return 0
        return self._planner.free_slots([r.resources for r in self._running.values()])

    def cancel(self, job_id: str) -> bool:
        run = self._running.pop(job_id, None)
        if run is None:
            return False
        self._by_ref.pop(run.ref, None)
        if not self._disconnected:
            self._kill(run)
        return True

    def shutdown(self) -> list[str]:
        ids = list(self._running)
        for job_id in ids:
            self.cancel(job_id)
        if self._owns_ray and not self._disconnected and ray.is_initialized():
            ray.shutdown()
        self._owns_ray = False
        return ids

    # -- attempts -------------------------------------------------------------------------------------------
    def _launch(self, state: Attempt, floor: Resources | None = None) -> None:
        """Submit one attempt; a retry keeps at least the resources of the attempt before (``floor``): an
        out-of-memory retry halves the batch, not the GPU share."""
        job = state.job
        res = self._planner.for_job(job)
        if floor is not None:
            res = Resources(max(res.num_cpus, floor.num_cpus), max(res.num_gpus, floor.num_gpus))
        # One task name for all: Ray's core worker keeps state per distinct task name for the driver's lifetime
        # (measured: ~2 KiB per name, 2 GB over a million evaluations); results carry the job id and worker.
        options: dict[str, Any] = {"num_cpus": res.num_cpus, "num_gpus": res.num_gpus, "name": TASK_NAME}
        try:
            if self._streaming:
                ref = _attempt_streaming.options(num_returns="streaming", **options).remote(
                    job, self.config.evaluate_fn)
            else:
                ref = _attempt_plain.options(**options).remote(job, self.config.evaluate_fn)
        except ConnectionError as exc:  # Ray Client lost its server
            self._lose_connection(f"submitting failed: {exc}", also=[job.job_id])
        self._running[job.job_id] = _Running(state=state, ref=ref, resources=res, submitted=time.monotonic())
        self._by_ref[ref] = job.job_id

    def _wait(self, wait_s: float) -> list[Any]:
        refs = list(self._by_ref)
        try:
            ready, _ = ray.wait(refs, num_returns=1, timeout=wait_s)
            if ready and len(refs) > 1:
                ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
        except (ConnectionError, rex.RaySystemError, rex.RpcError) as exc:
            self._lose_connection(f"ray.wait failed: {type(exc).__name__}: {exc}")
        return ready

    def _handle(self, ref: Any) -> list[EvalResult]:
        """Read the next item of a ready attempt; returns the job's final result, if this was it."""
        job_id = self._by_ref[ref]
        run = self._running[job_id]
        try:
            item = ray.get(next(ref)) if self._streaming else ray.get(ref)
        except StopIteration:
            return self._end(run, None, lost="the task ended without a result")
        except ConnectionError as exc:  # Ray Client lost its server
            self._lose_connection(f"fetching a result failed: {exc}")
        except rex.OutOfMemoryError as exc:  # Ray's memory monitor killed the worker: the node ran out of RAM
            return self._end(run, EvalResult.failed(run.state.job.genome.hash, "oom",
                                                    f"killed by Ray's memory monitor: {exc}"))
        except _LOST as exc:
            if isinstance(exc, rex.NodeDiedError):
                self._last_check = float("-inf")  # re-read the cluster's size at the next quiet moment
            return self._end(run, None, lost=f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
        except rex.RayError as exc:  # the task itself failed (e.g. the code is missing on the worker)
            return self._end(run, EvalResult.failed(run.state.job.genome.hash, "error",
                                                    f"{type(exc).__name__}: {str(exc)[:500]}", str(exc)[-4000:]))
        if isinstance(item, dict):  # the start record
            run.started, run.worker = time.monotonic(), str(item.get("worker", ""))
            return []
        return self._end(run, item)

    def _end(self, run: _Running, result: EvalResult | None, *, lost: str = "") -> list[EvalResult]:
        job_id = run.state.job.job_id
        self._running.pop(job_id, None)
        self._by_ref.pop(run.ref, None)
        final, retry = self._settle(run.state, result, worker=run.worker, lost_reason=lost)
        if retry is not None:
            log.warning("retrying job %s (attempt %d): %s", job_id, retry.number, retry.history[-1])
            self._launch(retry, floor=run.resources)
            return []
        assert final is not None
        return [final]

    def _clock_start(self, run: _Running) -> float | None:
        return run.started if self._streaming else run.submitted

    def _next_expiry(self, now: float) -> float:
        limit = self.config.timeout_s
        starts = [s for s in map(self._clock_start, self._running.values()) if s is not None]
        if limit is None or not starts:
            return now + HEALTH_CHECK_EVERY_S
        return min(starts) + limit

    def _expire(self, now: float) -> list[EvalResult]:
        """Cancel attempts past ``timeout_s`` (killing their worker process) and report them as ``timeout``."""
        limit = self.config.timeout_s
        if limit is None:
            return []
        out: list[EvalResult] = []
        for run in list(self._running.values()):
            start = self._clock_start(run)
            if start is None or now - start < limit:
                continue
            self._kill(run)
            result = EvalResult.failed(run.state.job.genome.hash, "timeout", f"exceeded timeout_s={limit:g} (ran "
                                       f"{now - start:.1f} s on {run.worker or 'a worker'}; cancelled)")
            out.extend(self._end(run, result))
        return out

    def _kill(self, run: _Running) -> None:
        try:
            ray.cancel(run.ref, force=True)
        except (rex.RayError, ValueError, TypeError) as exc:  # already finished or gone
            log.debug("cancel of %s failed: %s", run.state.job.job_id, exc)

    # -- connection health ----------------------------------------------------------------------------------
    def _health_check(self) -> None:
        now = time.monotonic()
        every = min(HEALTH_CHECK_EVERY_S, self.config.disconnect_after_s / 3)
        if now - self._last_check < every:
            return
        self._last_check = now
        if _gcs_reachable(timeout_s=min(2.0, every)):
            self._unreachable_since = None
            self._planner.set_cluster(ray.cluster_resources())
            if self.waiting_for:
                self._check_feasible()
            return
        self._unreachable_since = self._unreachable_since or now
        down = now - self._unreachable_since
        log.warning("Ray cluster unreachable for %.0f s", down)
        if down >= self.config.disconnect_after_s:
            self._lose_connection(f"the Ray cluster's GCS has been unreachable for {down:.0f} s")

    def _lose_connection(self, why: str, also: list[str] | None = None) -> NoReturn:
        self._disconnected = why
        raise PoolDisconnected(f"lost the Ray cluster: {why}", [*self._running, *(also or [])])

    def _check_connected(self) -> None:
        if self._disconnected:
            raise PoolDisconnected(f"lost the Ray cluster earlier: {self._disconnected}", list(self._running))


def _gcs_reachable(timeout_s: float) -> bool:
    """Whether the cluster's GCS answers within ``timeout_s``. ``ray.nodes()`` would block until Ray's own
    60 s reconnect limit (and Ray then exits the process), so this asks the driver's GCS client directly."""
    if _client_mode():
        return True  # Ray Client raises ConnectionError from ray.wait itself
    try:
        ray._private.worker.global_worker.gcs_client.get_all_node_info(timeout=timeout_s)
    except AttributeError:
        return True  # unknown Ray internals: rely on errors from ray.wait
    except Exception:  # RpcError / GetTimeoutError: no answer in time
        return False
    return True
