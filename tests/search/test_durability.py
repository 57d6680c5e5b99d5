"""Durability against faults, with real processes and real files: nothing lost, nothing left running.

--fresh on a campaign that runs; weights that must exist before the journal refers to them (and are evaluated
again when lost); a directory that refuses writes; the campaign's MLflow run status at every kind of end.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow import MlflowClient

from search.campaign import Campaign, start
from tests.search.test_campaign import ROOT, campaign_file, ctmevo, env, results_in

pytestmark = pytest.mark.slow


def _wait_for(directory: Path, results: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while len(results_in(directory)) < results and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    assert len(results_in(directory)) >= results, "the campaign did not get far enough"


def _campaign_run_status(directory: Path) -> str:
    client = MlflowClient(f"sqlite:///{directory / 'mlflow.db'}")
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()],
                              "tags.`ctmevo.kind` = 'campaign'")
    (run,) = runs
    return run.info.status


def test_fresh_refuses_a_campaign_that_is_running_and_leaves_it_intact(tmp_path: Path) -> None:
    path = campaign_file(tmp_path, "busy", evaluations=60)
    directory = tmp_path / "busy"
    proc = subprocess.Popen([sys.executable, "-m", "search.cli", "run", str(path)], cwd=ROOT, env=env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for(directory, 3, proc)
        out = ctmevo("run", str(path), "--fresh")
        assert out.returncode == 2 and "is being run by another ctmevo process" in out.stderr
        assert "Traceback" not in out.stderr
        assert (directory / "journal.jsonl").exists() and len(results_in(directory)) >= 3  # nothing deleted
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=120)
    assert len(results_in(directory)) < 60
    short = tmp_path / "short.yaml"
    short.write_text(path.read_text().replace("evaluations: 60", "evaluations: 5"))
    out = ctmevo("run", str(short), "--fresh")  # not running any more: --fresh starts over
    assert out.returncode == 0, out.stderr
    assert len(results_in(directory)) == 5


def test_weights_are_on_disk_before_the_journal_and_lost_ones_come_back(tmp_path: Path) -> None:
    campaign = start(campaign_file(tmp_path, "weights", evaluations=12))
    campaign.run()
    for event in results_in(campaign.paths.root):  # every journaled success has its weights
        h = event["record"]["result"]["genome_hash"]
        if event["record"]["result"]["status"] == "ok":
            assert campaign.paths.checkpoint(h).read_bytes() == b"not-a-real-checkpoint"
    assert _campaign_run_status(campaign.paths.root) == "FINISHED"

    lost = campaign.strategy.elite_hashes()[:2]
    for h in lost:
        campaign.paths.checkpoint(h).unlink()
    config = campaign.paths.config.read_text().replace("evaluations: 12", "evaluations: 13")
    campaign.paths.config.write_text(config)  # one more evaluation: resume has work to do
    out = ctmevo("resume", str(campaign.paths.root))
    assert out.returncode == 0, out.stderr
    assert "evaluated again" in out.stderr
    for h in lost:  # evaluated again with the same seed: the same weights
        assert campaign.paths.checkpoint(h).read_bytes() == b"not-a-real-checkpoint"
    assert len(results_in(campaign.paths.root)) == 13  # the repairs are not results


def test_a_directory_that_refuses_writes_stops_the_campaign_cleanly(tmp_path: Path) -> None:
    if shutil.which("chattr") is None:
        pytest.skip("chattr (e2fsprogs) is needed to make a directory immutable")
    path = campaign_file(tmp_path, "full", evaluations=40)
    directory = tmp_path / "full"
    proc = subprocess.Popen([sys.executable, "-m", "search.cli", "run", str(path)], cwd=ROOT, env=env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    checkpoints = directory / "checkpoints"
    locked = False
    try:
        _wait_for(directory, 3, proc)
        locked = subprocess.run(["chattr", "+i", str(checkpoints)], capture_output=True).returncode == 0
        if not locked:
            pytest.skip("this filesystem does not support immutable directories")
        _, stderr = proc.communicate(timeout=120)
    finally:
        if locked:
            subprocess.run(["chattr", "-i", str(checkpoints)], check=True)
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, stderr
    assert "Traceback" not in stderr and f"cannot write {checkpoints}" in stderr
    assert "Operation not permitted" in stderr and f"ctmevo resume {directory}" in stderr
    done = len(results_in(directory))
    assert done >= 3
    for event in results_in(directory):  # the journal refers to no weights that are not there
        h = event["record"]["result"]["genome_hash"]
        assert event["record"]["result"]["status"] != "ok" or (checkpoints / f"{h}.safetensors").exists()
    assert _campaign_run_status(directory) == "FAILED"
    out = ctmevo("resume", str(directory))  # fixed: it carries on from every result it had
    assert out.returncode == 0, out.stderr
    assert len(results_in(directory)) == 40 and _campaign_run_status(directory) == "FINISHED"
    assert Campaign.open(directory).progress.done == 40


def test_ctrl_c_marks_the_campaign_run_killed(tmp_path: Path) -> None:
    path = campaign_file(tmp_path, "stopped", evaluations=200)
    directory = tmp_path / "stopped"
    proc = subprocess.Popen([sys.executable, "-m", "search.cli", "run", str(path)], cwd=ROOT, env=env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_for(directory, 3, proc)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=120) == 130
    assert _campaign_run_status(directory) == "KILLED"
