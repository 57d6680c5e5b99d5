"""Fixtures for the workers tests: fake jobs, pools that clean up after themselves, and loopback clusters.

``LoopbackCluster`` starts real Ray nodes with ``ray start --block`` on loopback addresses (127.0.0.2 for the
head, 127.0.0.3, ... for workers), each in a new session and its own short temp dir, on free ports. It stops
only what it started: the process tree under each ``ray start`` it launched (read from /proc, recorded before
killing) and, for stragglers, that process's own process group. Tests drive such a cluster from a
subprocess (``cluster_driver.py``), so the suite's shared ``ray_session`` cluster is never touched.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ctm.result import EvalBudget, TaskSpec
from genome.genome import Genome
from workers import EvalJob, Pool, WorkersConfig

FAKE_FN = "workers.testing:fake_evaluate"
RAY_BIN = Path(sys.executable).with_name("ray")
# Fast node-death detection (defaults: 3 s x 5 missed checks); generous enough for a busy 2-core machine.
HEAD_SYSTEM_CONFIG = {"health_check_period_ms": 1000, "health_check_timeout_ms": 1000,
                      "health_check_failure_threshold": 3, "health_check_initial_delay_ms": 0}
_ticks = itertools.count(1)


@pytest.fixture
def fake_job() -> Callable[..., EvalJob]:
    """``fake_job(sleep=0.5, report_dir=...)``: an EvalJob for ``fake_evaluate`` with these task params and a
    genome no other job of the session has (so job ids are unique)."""

    def make(*, seed: int = 0, batch_size: int | None = None, want_checkpoint: bool = False,
             genome: Genome | None = None, **params: Any) -> EvalJob:
        genome = genome or Genome(ticks=next(_ticks))
        return EvalJob(genome=genome, task=TaskSpec(name="fake", params=params), budget=EvalBudget(steps=1),
                       seed=seed, batch_size=batch_size, want_checkpoint=want_checkpoint)

    return make


@pytest.fixture
def ray_pool(ray_session: Any) -> Iterator[Callable[..., Pool]]:
    """``ray_pool(timeout_s=1.0, ...)``: a RayPool on the session cluster running ``fake_evaluate``; every
    pool made is shut down (its hung workers killed) when the test ends."""
    from workers.ray_pool import RayPool

    pools: list[Pool] = []

    def make(**settings: Any) -> Pool:
        pool = RayPool(WorkersConfig(evaluate_fn=settings.pop("evaluate_fn", FAKE_FN), **settings))
        pools.append(pool)
        return pool

    yield make
    for pool in pools:
        pool.shutdown()


def wait_for_reports(report_dir: Path, count: int, timeout_s: float = 60.0) -> list[dict[str, Any]]:
    """The start records ``fake_evaluate`` wrote to ``report_dir``, once there are ``count`` of them."""
    deadline = time.monotonic() + timeout_s
    while True:
        reports = [json.loads(p.read_text()) for p in sorted(report_dir.glob("*.json"))]
        if len(reports) >= count:
            return reports
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(reports)} of {count} evaluations started within {timeout_s} s")
        time.sleep(0.05)


def poll_until(pool: Pool, count: int, timeout_s: float = 60.0) -> list[Any]:
    """Poll until ``count`` results arrived (fails the test after ``timeout_s``)."""
    results: list[Any] = []
    deadline = time.monotonic() + timeout_s
    while len(results) < count:
        assert time.monotonic() < deadline, f"only {len(results)} of {count} results after {timeout_s} s"
        results.extend(pool.poll(timeout=1.0))
    return results


def free_port(ip: str) -> int:
    with socket.socket() as s:
        s.bind((ip, 0))
        return int(s.getsockname()[1])


def _has_ray_client() -> bool:
    from ray._private.parameter import get_ray_client_dependency_error

    return get_ray_client_dependency_error() is None


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        kids.setdefault(ppid, []).append(int(entry))
    return kids


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (from /proc)."""
    kids, tree = _children(), [pid]
    for p in tree:
        tree.extend(kids.get(p, []))
    return tree


class LoopbackCluster:
    """A Ray cluster of ``ray start`` nodes on loopback IPs; see the module docstring."""

    def __init__(self) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="ctmw", dir="/tmp"))  # short: Ray's socket paths are long
        self.nodes: dict[str, subprocess.Popen[bytes]] = {}
        self.killed: dict[str, list[int]] = {}
        self.address = ""
        self.env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
        self.env.update(RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0", OMP_NUM_THREADS="1")

    def _start(self, ip: str, args: list[str]) -> None:
        cmd = [str(RAY_BIN), "start", "--block", "--node-ip-address", ip, "--temp-dir", str(self.base / ip),
               "--dashboard-agent-listen-port", str(free_port(ip)), "--metrics-export-port", str(free_port(ip)),
               "--include-log-monitor", "false", "--disable-usage-stats", *args]
        with open(self.base / f"{ip}.log", "wb") as log:
            self.nodes[ip] = subprocess.Popen(cmd, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                              start_new_session=True)

    def start_head(self, ip: str = "127.0.0.2", num_cpus: int = 1, timeout_s: float = 60.0) -> str:
        port = free_port(ip)
        args = ["--head", "--port", str(port), "--num-cpus", str(num_cpus), "--num-gpus", "0",
                "--include-dashboard", "false", "--system-config", json.dumps(HEAD_SYSTEM_CONFIG)]
        if _has_ray_client():  # otherwise no client server starts; with it, avoid the fixed default port 10001
            args += ["--ray-client-server-port", str(free_port(ip))]
        self._start(ip, args)
        deadline = time.monotonic() + timeout_s
        while True:
            with contextlib.suppress(OSError), socket.create_connection((ip, port), timeout=0.5):
                break
            if self.nodes[ip].poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"head node did not start: {self.log(ip)[-2000:]}")
            time.sleep(0.1)
        self.address = f"{ip}:{port}"
        return self.address

    def add_node(self, ip: str, num_cpus: int = 1) -> None:
        self._start(ip, ["--address", self.address, "--num-cpus", str(num_cpus), "--num-gpus", "0"])

    def log(self, ip: str) -> str:
        path = self.base / f"{ip}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def kill(self, ip: str) -> list[int]:
        """SIGKILL every process of node ``ip`` (the ``ray start`` tree recorded first, then its group)."""
        proc = self.nodes[ip]
        pids = process_tree(proc.pid)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)  # the session we created for this node: only our processes
        proc.wait(timeout=10)
        self.killed[ip] = pids
        return pids

    def stop(self) -> None:
        for ip in list(self.nodes):
            if ip not in self.killed:
                self.kill(ip)
        shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture
def loopback_cluster() -> Iterator[LoopbackCluster]:
    cluster = LoopbackCluster()
    try:
        yield cluster
    finally:
        cluster.stop()


def run_driver(*args: str, cwd: Path) -> subprocess.Popen[str]:
    """Start ``cluster_driver.py`` with ``args`` in ``cwd`` (not the checkout: Ray puts the driver's directory
    on its workers' ``sys.path``, which would hide code shipped by a runtime env). Output goes to a pipe."""
    script = Path(__file__).with_name("cluster_driver.py")
    return subprocess.Popen([sys.executable, str(script), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, cwd=cwd)


@pytest.fixture(name="wait_for_reports")
def _wait_for_reports() -> Callable[..., list[dict[str, Any]]]:
    """The :func:`wait_for_reports` helper, as a fixture (test modules do not import conftest)."""
    return wait_for_reports


@pytest.fixture(name="poll_until")
def _poll_until() -> Callable[..., list[Any]]:
    """The :func:`poll_until` helper, as a fixture."""
    return poll_until


@pytest.fixture(name="run_driver")
def _run_driver(tmp_path: Path) -> Callable[..., subprocess.Popen[str]]:
    """``run_driver(*args)``: :func:`run_driver` in the test's temp dir."""
    return functools.partial(run_driver, cwd=tmp_path)
