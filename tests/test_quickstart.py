"""The README's path for a new user: ``make run`` (a cut-down quickstart) and the commands that follow it.

This runs the real thing: ``ctmevo run`` as a process, real CTM training on parity, an embedded local Ray
cluster and the default sqlite MLflow store; then ``status``, ``lineage`` and ``sync`` on the result.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def ctmevo(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "search.cli", *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=600)


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """experiments/quickstart.yaml with a smaller budget, run from a scratch working directory."""
    tmp = tmp_path_factory.mktemp("quickstart")
    config = yaml.safe_load((ROOT / "experiments" / "quickstart.yaml").read_text())
    config["budget"] = {"evaluations": 8}
    config["evaluation"]["steps"] = 8
    config["evaluation"]["fidelity"] = {"rungs": [8, 24], "eta": 3}
    config["evaluation"]["val_samples"] = 64
    config["plot_every_s"] = 3
    (tmp / "quickstart.yaml").write_text(yaml.safe_dump(config))
    return tmp, ctmevo("run", "quickstart.yaml", cwd=tmp)


def test_run_trains_ctms_on_ray_and_says_where_to_look(quickstart):
    tmp, out = quickstart
    assert out.returncode == 0, out.stderr[-3000:]
    directory = tmp / "campaigns" / "quickstart"
    assert f"campaign directory : {Path('campaigns/quickstart')}" in out.stdout
    assert f"ctmevo ui {Path('campaigns/quickstart')}" in out.stdout  # where to look: the UI, one command
    best_line = r"best genome\s+: [0-9a-f]{16}  fitness [01]\.\d{4} \((mean of \d seeds, )?rung [01]\)"
    assert re.search(best_line, out.stdout)
    assert (directory / "plots" / "archive.png").stat().st_size > 5000
    events = [json.loads(line) for line in (directory / "journal.jsonl").read_text().splitlines()]
    results = [e["record"]["result"] for e in events if e["event"] == "result"]
    assert len(results) == 8
    assert all(r["status"] == "ok" and r["metrics"]["param_count"] > 0 for r in results)  # real evaluations
    assert all(len(r["per_tick_accuracy"]) >= 1 and r["train_loss"] for r in results)
    # fidelity rungs: the promising genomes went on from their own checkpoint to 24 steps in all
    promoted = [e["record"] for e in events if e["event"] == "result" and e["record"].get("rung", 0) == 1]
    assert promoted and all(r["result"]["metrics"]["train_steps"] == 24 for r in promoted)


def test_status_lineage_and_sync_work_on_the_quickstart(quickstart):
    tmp, out = quickstart
    directory = Path("campaigns/quickstart")
    best = re.search(r"best genome\s+: ([0-9a-f]{16})", out.stdout).group(1)

    status = ctmevo("status", str(directory), cwd=tmp)
    assert status.returncode == 0 and best in status.stdout

    tree = ctmevo("lineage", best, "--campaign", str(directory), cwd=tmp)
    assert tree.returncode == 0, tree.stderr
    assert best in tree.stdout and " run " in tree.stdout
    # from the campaign's index (every run id is in it), exactly what MLflow's runs say
    with sqlite3.connect(tmp / directory / "index.sqlite") as index:
        counts = index.execute("SELECT COUNT(*), COUNT(run_id) FROM genomes LEFT JOIN runs USING (hash)").fetchone()
    assert counts[0] > 0 and counts[0] == counts[1]  # every genome's run id: lineage needs nothing else
    store = f"sqlite:///{tmp / directory / 'mlflow.db'}"
    assert ctmevo("lineage", best, "--campaign", str(directory), "--tracking-uri", store, cwd=tmp).stdout == tree.stdout

    png = ctmevo("lineage", best, "--campaign", str(directory), "--format", "png", "--out", "lin.png", cwd=tmp)
    assert png.returncode == 0 and (tmp / "lin.png").stat().st_size > 2000

    sync = ctmevo("sync", str(directory), cwd=tmp)
    assert sync.returncode == 0 and "are in MLflow" in sync.stdout

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp / directory / 'mlflow.db'}")
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()], max_results=100)
    journal = (tmp / directory / "journal.jsonl").read_text().splitlines()
    events = [json.loads(line) for line in journal]
    genomes = {e["record"]["result"]["genome_hash"] for e in events if e["event"] == "result"}
    kinds = [r.data.tags.get("ctmevo.kind") for r in runs]
    assert kinds.count("campaign") == 1 and kinds.count("evaluation") == len(genomes)  # one run per genome
    assert kinds.count("assets") == 1  # the store's one copy of plotly.js for the analysis pages
    assert len(runs) == 2 + len(genomes)


def test_make_targets_do_the_setup_the_readme_promises():
    readme = (ROOT / "README.md").read_text()
    assert "make run" in readme and "make test" in readme
    plan = subprocess.run(["make", "-n", "-B", "run"], capture_output=True, text=True, cwd=ROOT, check=True).stdout
    assert "-m venv .venv" in plan and "-c constraints-cpu.txt" in plan
    assert "ctmevo run experiments/quickstart.yaml" in plan
    test_plan = subprocess.run(["make", "-n", "-B", "test"], capture_output=True, text=True, cwd=ROOT,
                               check=True).stdout
    assert "pytest" in test_plan and "ruff check" in test_plan
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    assert (ROOT / "constraints-cpu.txt").read_text().count("torch==2.13.0") == 1
