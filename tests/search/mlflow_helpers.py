"""Test helpers for MLflow: a real ``mlflow server`` on loopback, and synthetic evaluation records."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from ctm.result import EvalResult
from genome import Genome
from search.records import EvaluationRecord, Proposal
from search.tracking.archiver import MlflowArchiver


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class MlflowServer:
    """``mlflow server`` with a sqlite backend under ``root`` (or ``backend``, e.g. PostgreSQL), on 127.0.0.1 and a
    free port.

    Started in its own process group (the server forks a uvicorn worker); :meth:`stop` ends that group by its
    id. :meth:`start` again later reuses the port and the database, as a restarted server would.
    """

    def __init__(self, root: Path, port: int | None = None, backend: str | None = None) -> None:
        self.root = Path(root)
        self.backend = backend
        self.root.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = self.root / "server.log"

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 90.0) -> MlflowServer:
        exe = Path(sys.executable).with_name("mlflow")
        cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "mlflow"]
        cmd += ["server", "--backend-store-uri", self.backend or f"sqlite:///{self.root / 'server.db'}",
                "--artifacts-destination", str(self.root / "artifacts"), "--host", "127.0.0.1",
                "--port", str(self.port), "--workers", "1"]
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self.root,
                                         start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mlflow server exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as response:
                    if response.status == 200:
                        return self
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"mlflow server did not answer on {self.uri} within {timeout:.0f} s")

    def stop(self) -> None:
        if self.proc is None:
            return
        pgid = self.proc.pid  # start_new_session: the group id is the server's pid
        for sig, wait in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(pgid, sig)
            except ProcessLookupError:
                break
            try:
                self.proc.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
        _wait_group_gone(pgid)
        self.proc = None

    def __enter__(self) -> MlflowServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _wait_group_gone(pgid: int, timeout: float = 10.0) -> None:
    """Wait until no process of the group is left (the uvicorn worker may outlive the server briefly)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


def make_record(genome: Genome, *, campaign: str, birth: int, parents: Sequence[str] = (),
                operator: str = "sample", fitness: float | None = 0.5, ticks: int = 5, losses: int = 4,
                status: str = "ok", descriptors: dict[str, float] | None = None, cell: str | None = None
                ) -> EvaluationRecord:
    """A plausible finished evaluation of ``genome`` (a failure when ``status`` is not ``ok``)."""
    if status == "ok":
        result = EvalResult(
            genome_hash=genome.hash, fitness=fitness,
            metrics={"val_accuracy": fitness or 0.0, "exit_tick_mean": 3.5, "ece": 0.07, "wall_time_s": 1.25,
                     "train_steps": float(losses), "param_count": 1234.0},
            per_tick_accuracy=[0.5 + 0.4 * t / ticks for t in range(ticks)],
            per_tick_certainty=[0.2 + 0.1 * t / ticks for t in range(ticks)],
            train_loss=[1.0 / (i + 1) for i in range(losses)], behaviour=[0.1, 0.2], seed=7, worker="w0")
    else:
        result = EvalResult.failed(genome.hash, status, "loss became NaN at step 12", seed=7)
    return EvaluationRecord(campaign=campaign, birth=birth,
                            proposal=Proposal(genome=genome, parents=tuple(parents), operator=operator),
                            result=result, finished_at=1_700_000_000.0 + birth,
                            extra={"descriptors": descriptors or {"ticks": float(genome.ticks)},
                                   **({"cell": cell} if cell is not None else {})})


def write_records(uri: str, campaign: str, records: Sequence[EvaluationRecord], *, experiment: str | None = None,
                  start: int = 0) -> MlflowArchiver:
    """Archive ``records`` as journal results ``start, start+1, ...`` (one batch), as a campaign would."""
    archiver = MlflowArchiver(tracking_uri=uri, experiment_name=experiment or f"exp-{campaign}",
                              campaign_id=campaign, config={"name": campaign})
    archiver.write_results(list(enumerate(records, start=start)))
    return archiver
