"""A campaign on CTM-Bench: the same campaign code (strategy, rungs, repeats, journal, resume) on replayed training
and simulated time."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from search.campaign import Campaign, parse_campaign_config
from search.views import QuietReporter

pytest.importorskip("sklearn", reason="the bench extra (scikit-learn) is not installed")
ROOT = Path(__file__).resolve().parents[2]


def _config(evaluations: int):
    data = yaml.safe_load((ROOT / "experiments" / "bench" / "parity10_map_elites.yaml").read_text())
    data["budget"] = {"evaluations": evaluations}
    data["strategy"]["settings"] = {"initial_samples": 16}
    return parse_campaign_config(data, source="bench")


def test_a_simulated_campaign_runs_and_resumes_exactly(tmp_path, monkeypatch):
    monkeypatch.setenv("CTMEVO_FSYNC", "0")
    campaign = Campaign.create(_config(150), tmp_path / "c")
    progress = campaign.run(reporter=QuietReporter())
    assert progress.done == 150 and progress.failures == 0
    assert progress.metrics["best_rung"] >= 1  # rungs promoted genomes on the replayed curves
    events = [e for e in campaign.journal.read() if e["event"] == "result"]
    assert len(events) == 150
    finishes = [e["record"]["result"]["metrics"]["sim_finish_s"] for e in events]
    assert finishes == sorted(finishes)  # recorded in simulated finish order
    again = Campaign.create(_config(150), tmp_path / "d").run(reporter=QuietReporter())
    assert again.metrics["best_fitness"] == progress.metrics["best_fitness"]  # a pure function of the seed

    more = Campaign.open(tmp_path / "c")
    more.config = _config(200)
    resumed = more.run(reporter=QuietReporter())
    assert resumed.done == 200
    assert len([e for e in more.journal.read() if e["event"] == "result"]) == 200


def test_the_comparison_arms_run_on_the_simulated_pool(monkeypatch):
    """DEHB (ask/tell) and top-K drive the same simulated pool as the campaigns, within the training budget."""
    pytest.importorskip("dehb", reason="the bench extra (dehb) is not installed")
    monkeypatch.setenv("CTMEVO_FSYNC", "0")
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    from ctmbench_arms import run_arm
    for arm in ("dehb", "topk", "optuna_tpe_sh"):
        events = run_arm("parity10", arm, 0, 9_000)
        assert events and sum(e[4] for e in events) <= 9_000 + 900
        assert {e[1] for e in events} <= {100, 300, 900}
        finishes = [e[5] for e in events]
        assert finishes == sorted(finishes) or arm == "topk"
