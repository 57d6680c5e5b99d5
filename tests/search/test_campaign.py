"""Campaigns end to end: the loop, the journal, MLflow, and resuming after SIGKILL at several points."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from search.campaign import Campaign, start
from search.journal import Journal

ROOT = Path(__file__).resolve().parents[2]
FAKE = "tests.search.campaign_fakes:landscape_evaluate"


def campaign_file(tmp: Path, name: str, *, evaluations: int = 24, tracking_uri: str | None = None,
                  backend: str = "inline", strategy: str = "map_elites", consumers: str = "auto") -> Path:
    config = {
        "name": name, "seed": 5, "output_dir": str(tmp / name),
        "task": {"name": "parity", "params": {"length": 4}},
        "genome_space": {"ticks": {"min": 1, "max": 20}, "memory_length": {"min": 1, "max": 8},
                         "d_model": {"min": 16, "max": 64}, "d_input": {"min": 16, "max": 32}},
        "strategy": {"name": strategy, "settings": {"initial_samples": 6}},
        "descriptors": [{"name": "ticks", "bins": 5, "range": [1, 21]},
                        {"name": "memory_length", "bins": 4, "range": [1, 9]}],
        "evaluation": {"steps": 5},
        "budget": {"evaluations": evaluations},
        "workers": {"backend": backend, "evaluate_fn": FAKE, "timeout_s": 60},
        "tracking": {"uri": tracking_uri, "checkpoints": "elites", "retry_after_s": 2, "consumers": consumers},
        "snapshot_every": 4, "plot_every_s": 5,
    }
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "CTMEVO_TEST_EVAL_SLEEP": "0.15"}


def ctmevo(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "search.cli", *args], capture_output=True, text=True, env=env(),
                          cwd=ROOT, timeout=300, **kwargs)


def run_until_killed(path: Path, ready: Callable[[], bool], *, sleep: str | None = None,
                     timeout: float = 120.0) -> None:
    """``ctmevo run path`` in a process of its own, SIGKILLed as soon as ``ready()`` holds (or when it ends by
    itself, or after ``timeout`` seconds); ``sleep``: its ``CTMEVO_TEST_EVAL_SLEEP``, so work is in flight."""
    proc = subprocess.Popen([sys.executable, "-m", "search.cli", "run", str(path)], cwd=ROOT,
                            env={**env(), **({"CTMEVO_TEST_EVAL_SLEEP": sleep} if sleep else {})},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and proc.poll() is None and not ready():
            time.sleep(0.02)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


def results_in(directory: Path) -> list[dict]:
    path = directory / "journal.jsonl"
    return [e for e in Journal(path).read() if e["event"] == "result"] if path.exists() else []


def archive(campaign: Campaign) -> list[tuple[str, float]]:
    return sorted((row["hash"], round(row["fitness"], 9)) for row in campaign.strategy.archive_rows())


def child_runs(uri: str, campaign_id: str) -> list:
    client = MlflowClient(tracking_uri=uri)
    experiments = client.search_experiments()
    runs = client.search_runs([e.experiment_id for e in experiments],
                              filter_string=f"tags.`ctmevo.campaign` = '{campaign_id}'", max_results=1000)
    return [r for r in runs if r.data.tags.get("ctmevo.kind") != "campaign"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Campaign:
    """The uninterrupted campaign every interrupted one must reproduce."""
    tmp = tmp_path_factory.mktemp("reference")
    campaign = start(campaign_file(tmp, "ref"))
    campaign.run()
    return campaign


def test_campaign_runs_to_budget_and_archives_everything(reference):
    c = reference
    results = results_in(c.paths.root)
    assert len(results) == 24 == c.progress.done
    hashes = [r["record"]["result"]["genome_hash"] for r in results]
    assert len(set(hashes)) == 24  # never the same genome twice
    assert any(r["record"]["result"]["status"] == "error" for r in results)  # ticks in (7, 14) fail, and are kept
    assert (c.paths.plots / "archive.png").stat().st_size > 5000
    assert (c.paths.plots / "archive.csv").read_text().count("\n") == len(c.strategy.archive_rows()) + 1
    uri = f"sqlite:///{c.paths.mlflow_db}"
    runs = child_runs(uri, c.campaign_id)
    assert sorted(r.data.tags["ctmevo.genome_hash"] for r in runs) == sorted(hashes)
    by_hash = {r.data.tags["ctmevo.genome_hash"]: r for r in runs}
    child = next(r for r in results if r["record"]["proposal"]["parents"])
    run = by_hash[child["record"]["result"]["genome_hash"]]
    parent_runs = run.data.tags["ctmevo.parent_run_ids"]
    for parent in child["record"]["proposal"]["parents"]:
        assert by_hash[parent].info.run_id in parent_runs
    assert run.data.params["ticks"] == str(child["record"]["proposal"]["genes"]["ticks"])


def test_descriptors_are_computed_once_and_the_archive_holds_the_journaled_values(reference):
    journaled = {r["record"]["result"]["genome_hash"]: r["record"]["extra"] for r in results_in(reference.paths.root)}
    rows = reference.strategy.archive_rows()
    assert rows
    for row in rows:
        assert journaled[row["hash"]]["descriptors"] == row["descriptors"]
    for h, extra in journaled.items():  # failures too: gene descriptors place them (ticks, memory length)
        assert set(extra["descriptors"]) == {"ticks", "memory_length"}, h


@pytest.mark.parametrize("kill_after", [1, 6, 15])
def test_sigkill_at_any_point_then_resume_reproduces_the_archive(tmp_path, reference, kill_after):
    path = campaign_file(tmp_path, "ref")  # the same name, seed and settings as the reference
    directory = tmp_path / "ref"
    run_until_killed(path, lambda: len(results_in(directory)) >= kill_after)
    done_at_kill = len(results_in(directory))
    assert kill_after <= done_at_kill < 24, "the kill must land mid-campaign"

    out = ctmevo("resume", str(directory))
    assert out.returncode == 0, out.stderr
    resumed = Campaign.open(directory)
    assert resumed.progress.done == 24
    assert archive(resumed) == archive(reference)
    hashes = [r["record"]["result"]["genome_hash"] for r in results_in(directory)]
    assert len(hashes) == len(set(hashes)) == 24  # every completed result kept, none evaluated twice
    runs = child_runs(f"sqlite:///{directory / 'mlflow.db'}", resumed.campaign_id)
    assert sorted(r.data.tags["ctmevo.genome_hash"] for r in runs) == sorted(hashes)  # no duplicate run


def test_ctrl_c_stops_gracefully_and_prints_the_resume_command(tmp_path):
    path = campaign_file(tmp_path, "interrupted", evaluations=200)
    proc = subprocess.Popen([sys.executable, "-m", "search.cli", "run", str(path)], cwd=ROOT, env=env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    while len(results_in(tmp_path / "interrupted")) < 3:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr[-4000:]
    assert f"ctmevo resume {tmp_path / 'interrupted'}" in stdout
    campaign = Campaign.open(tmp_path / "interrupted")
    assert campaign.progress.done == len(results_in(tmp_path / "interrupted")) >= 3


def test_status_summarises_a_stopped_campaign(reference):
    out = ctmevo("status", str(reference.paths.root))
    assert out.returncode == 0, out.stderr
    assert "evaluations: 24 of 24" in out.stdout and "best genomes:" in out.stdout
    assert "archive.png" in out.stdout


def test_resuming_a_finished_campaign_says_so_from_its_index_and_changes_nothing(tmp_path, reference):
    """The budget check reads the index (no replay of the journal); a damaged index is rebuilt, a missing one too."""
    import shutil

    copy = tmp_path / "ref"
    shutil.copytree(reference.paths.root, copy)
    journal = (copy / "journal.jsonl").read_bytes()
    for damage in (None, b"not a database", "delete"):
        if damage == "delete":
            (copy / "index.sqlite").unlink()
        elif damage is not None:
            (copy / "index.sqlite").write_bytes(damage)
        out = ctmevo("resume", str(copy))
        assert out.returncode == 0, out.stderr
        assert "already spent its budget (evaluations: 24 of 24" in out.stdout, out.stdout
        assert (copy / "journal.jsonl").read_bytes() == journal


def test_running_twice_into_one_directory_is_refused(tmp_path, reference):
    out = ctmevo("run", str(reference.paths.root.parent / "ref.yaml"))
    assert out.returncode == 2 and "ctmevo resume" in out.stderr


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"strategy": {"name": "map_elite"}}, "strategy.name = 'map_elite'"),
        ({"descriptors": [{"name": "ticks", "bins": 0, "range": [1, 21]}]}, "descriptors[0].bins"),
        ({"descriptors": [{"name": "no_such_module:fn"}]}, "no_such_module"),
        ({"evaluation": {"steps": -1}}, "evaluation.steps = -1"),
        ({"genome_space": {"ticks": {"min": 0, "max": 5}}}, "genome_space.ticks"),
        ({"workers": {"backend": "slurm"}}, "workers.backend = 'slurm'"),
        ({"budgets": {"evaluations": 3}}, "budgets"),
        ({"task": {"name": "parity", "params": {"length": -3}}}, "length"),
    ],
)
def test_bad_campaign_files_fail_at_start_up_naming_the_field(tmp_path, change, expected):
    path = campaign_file(tmp_path, "bad")
    config = yaml.safe_load(path.read_text()) | change
    path.write_text(yaml.safe_dump(config))
    out = ctmevo("run", str(path))
    assert out.returncode == 2, out.stdout
    assert expected in out.stderr, out.stderr
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "bad" / "journal.jsonl").exists()  # nothing ran


def test_resuming_from_the_strategys_resume_point_reads_only_the_journal_after_it(tmp_path, monkeypatch):
    """A flat campaign writes the strategy's whole state at every stop (strategy.json, with the journal offset);
    resuming starts there (the journal before it is not read) and goes on exactly as an uninterrupted campaign."""
    for sub in ("whole", "split"):
        (tmp_path / sub).mkdir()
    whole = start(campaign_file(tmp_path / "whole", "whole", evaluations=60))
    whole.run()
    path = campaign_file(tmp_path / "split", "whole", evaluations=30)
    first = start(path)
    first.run()
    point = yaml.safe_load((first.paths.root / "strategy.json").read_text())
    assert point["results"] == 30 and point["offset"] == first.paths.journal.stat().st_size
    config = yaml.safe_load((first.paths.root / "campaign.yaml").read_text())
    config["budget"]["evaluations"] = 60
    (first.paths.root / "campaign.yaml").write_text(yaml.safe_dump(config))
    offsets: list[int] = []
    stream = Journal.stream
    monkeypatch.setattr(Journal, "stream", lambda self, offset=0, lines=0: offsets.append(offset) or stream(
        self, offset, lines))
    second = Campaign.open(first.paths.root)
    assert offsets == [point["offset"]] and second.ledger.results == 30
    second.run()
    assert [r["record"]["result"]["genome_hash"] for r in results_in(second.paths.root)] == [
        r["record"]["result"]["genome_hash"] for r in results_in(whole.paths.root)]
    assert archive(second) == archive(whole) and second.strategy.metrics() == whole.strategy.metrics()
