"""Consumers of the journal: MLflow beside the loop, lagging and catching up, exactly one run per evaluation."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from search.campaign import Campaign, start
from search.journal import read_json
from search.views.observers import MlflowConsumer
from tests.search.mlflow_helpers import MlflowServer
from tests.search.test_campaign import ROOT, campaign_file, child_runs, ctmevo, env, results_in

pytestmark = pytest.mark.slow


def _hashes(directory: Path) -> list[str]:
    return sorted(r["record"]["result"]["genome_hash"] for r in results_in(directory))


def test_a_campaign_killed_while_mlflow_lags_resumes_with_one_run_per_evaluation(tmp_path: Path) -> None:
    server = MlflowServer(tmp_path / "server").start()
    directory = tmp_path / "lag"
    try:
        path = campaign_file(tmp_path, "lag", evaluations=24, tracking_uri=server.uri)
        proc = subprocess.Popen([sys.executable, "-m", "search.cli", "run", str(path)], cwd=ROOT, env=env(),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        try:
            while len(results_in(directory)) < 3 and time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.02)
            server.stop()  # MLflow goes away: the campaign goes on, the MLflow consumer falls behind
            while len(results_in(directory)) < 12 and time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.02)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        done = len(results_in(directory))
        sent = read_json(directory / "consumers" / "mlflow.json")["results"] if (
            directory / "consumers" / "mlflow.json").exists() else 0
        assert 12 <= done < 24 and sent < done, "the kill must land while MLflow lags"

        status = ctmevo("status", str(directory))
        assert status.returncode == 0 and f"{done - sent} evaluation(s) not yet sent" in status.stdout

        server.start()
        out = ctmevo("resume", str(directory))
        assert out.returncode == 0, out.stderr
        hashes = _hashes(directory)
        assert len(hashes) == len(set(hashes)) == 24
        runs = child_runs(server.uri, Campaign.open(directory).campaign_id)
        assert sorted(r.data.tags["ctmevo.genome_hash"] for r in runs) == hashes  # each once, none lost
        assert read_json(directory / "consumers" / "mlflow.json")["results"] == 24
        assert "up to date" in ctmevo("status", str(directory)).stdout
    finally:
        server.stop()


def test_a_crashing_consumer_does_not_stop_dispatch_and_is_restarted(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CTMEVO_TEST_EVAL_SLEEP", "0.05")
    real = MlflowConsumer.results
    failures: list[float] = []
    recovered: list[float] = []

    def flaky(self: MlflowConsumer, items: list[Any]) -> None:
        if len(failures) < 2:
            failures.append(time.monotonic())
            raise RuntimeError("a bug in a consumer")
        real(self, items)
        recovered.append(time.monotonic())

    monkeypatch.setattr(MlflowConsumer, "results", flaky)
    campaign = start(campaign_file(tmp_path, "flaky", evaluations=12))
    dispatched: list[float] = []
    campaign.run(on_progress=lambda p: dispatched.append(time.monotonic()) if p.done == 12 and not dispatched
                 else None)
    assert campaign.progress.done == 12 and len(failures) == 2
    assert failures[1] - failures[0] >= 1.9  # restarted after its wait, not at once
    assert dispatched and recovered and dispatched[0] < recovered[0]  # the loop did not wait for the consumer
    hashes = _hashes(campaign.paths.root)
    runs = child_runs(f"sqlite:///{campaign.paths.mlflow_db}", campaign.campaign_id)
    assert sorted(r.data.tags["ctmevo.genome_hash"] for r in runs) == hashes  # restarted, then caught up


def _sidecar(parent: int) -> int | None:
    """The consumers' process of the driver ``parent`` (``tracking.consumers: process``), if it runs."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                if ppid == parent and b"search.campaign.sidecar" in (entry / "cmdline").read_bytes():
                    return int(entry.name)
            except (OSError, IndexError, ValueError):
                continue
    return None


def _alive(pid: int) -> bool:
    try:
        return (Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]) != "Z"
    except OSError:
        return False


def test_consumers_in_their_own_process_leave_with_a_killed_driver_and_resume_sends_each_result_once(
        tmp_path: Path) -> None:
    path = campaign_file(tmp_path, "side", evaluations=20, consumers="process")
    directory = tmp_path / "side"
    proc = subprocess.Popen([sys.executable, "-m", "search.cli", "run", str(path)], cwd=ROOT, env=env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    sidecar = None
    try:
        while (len(results_in(directory)) < 6 or sidecar is None) and time.monotonic() < deadline \
                and proc.poll() is None:
            sidecar = sidecar or _sidecar(proc.pid)
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert sidecar is not None, "tracking.consumers: process runs MLflow and the pictures in a child process"
    done = len(results_in(directory))
    assert 6 <= done < 20
    gone_by = time.monotonic() + 20
    while _alive(sidecar) and time.monotonic() < gone_by:
        time.sleep(0.1)
    assert not _alive(sidecar), "the consumers' process outlived its driver"

    out = ctmevo("resume", str(directory))
    assert out.returncode == 0, out.stderr
    hashes = _hashes(directory)
    assert len(hashes) == len(set(hashes)) == 20
    runs = child_runs(f"sqlite:///{directory / 'mlflow.db'}", Campaign.open(directory).campaign_id)
    assert sorted(r.data.tags["ctmevo.genome_hash"] for r in runs) == hashes  # each once, none lost
    assert read_json(directory / "consumers" / "mlflow.json")["results"] == 20
    assert (directory / "plots" / "archive.png").is_file()  # the pictures ran in the child too
