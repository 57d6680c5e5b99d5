"""``fidelity.promote: fresh``: a promotion trains from scratch to its rung with a seed of that rung (the way DEHB
measures each fidelity), instead of continuing the genome's checkpoint with the seed that won the rung below."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from search.campaign import Campaign, start
from search.campaign.rungs import JobKey, RungScheduler, job_seed, repeat_seed
from search.errors import ConfigError
from tests.search.test_campaign import results_in
from tests.search.test_rungs import RUNGS, rung_campaign


def test_a_fresh_promotion_costs_its_whole_rung_and_has_a_seed_of_its_own() -> None:
    h = "ab" * 8
    keep, fresh = RungScheduler(rungs=RUNGS, eta=3), RungScheduler(rungs=RUNGS, eta=3, fresh=True)
    for rung in (1, 2):
        assert keep.cost(JobKey(h, rung)) == RUNGS[rung] - RUNGS[rung - 1]
        assert fresh.cost(JobKey(h, rung)) == RUNGS[rung]
    assert fresh.cost(JobKey(h, 2, 1)) == keep.cost(JobKey(h, 2, 1)) == RUNGS[2]  # a repeat starts over anyway
    seeds = {job_seed(7, JobKey(h, rung), fresh=True) for rung in range(3)}
    seeds |= {job_seed(7, JobKey(h, 2, k), fresh=True) for k in (1, 2)}
    assert len(seeds) == 5  # every rung and every repeat is its own training run
    assert job_seed(7, JobKey(h, 0), fresh=True) == repeat_seed(7, h, 0)  # rung 0 is the campaign's usual seed
    assert job_seed(7, JobKey(h, 2)) == repeat_seed(7, h, 0)  # continuing keeps the seed that won below


def _fresh_campaign(tmp: Path, name: str) -> Path:
    path = rung_campaign(tmp, name, evaluations=30)
    config = yaml.safe_load(path.read_text())
    config["evaluation"]["fidelity"]["promote"] = "fresh"
    path.write_text(yaml.safe_dump(config))
    return path


def test_fresh_promotions_train_from_scratch_count_every_step_and_replay(tmp_path: Path) -> None:
    campaign = start(_fresh_campaign(tmp_path, "fresh"))
    campaign.run()
    records = [e["record"] for e in results_in(campaign.paths.root)]
    assert all(r["result"]["status"] == "ok" for r in records)  # the test evaluator refuses a start not its own
    promoted = [r for r in records if r.get("rung", 0) > 0 and r.get("repeat", 0) == 0]
    assert {r["rung"] for r in promoted} == {1, 2}
    for r in promoted:
        metrics, h = r["result"]["metrics"], r["result"]["genome_hash"]
        assert (metrics["start_step"], metrics["train_steps"]) == (0, RUNGS[r["rung"]])
        assert r["result"]["seed"] == job_seed(3, JobKey(h, r["rung"]), fresh=True) != repeat_seed(3, h, 0)
    spent = sum(r["result"]["metrics"]["train_steps"] - r["result"]["metrics"]["start_step"] for r in records)
    assert campaign.progress.metrics["train_steps_spent"] == spent
    assert campaign.rungs.steps == campaign.rungs.steps_answered == spent  # what it asked is what was trained
    again = Campaign.open(campaign.paths.root)  # replayed from the journal: the same scheduler
    assert (again.rungs.steps, again.rungs.repeat_steps) == (campaign.rungs.steps, campaign.rungs.repeat_steps)
    assert "promotions fresh" in again.config.summary()


def test_an_unknown_promotion_mode_is_refused_naming_the_field(tmp_path: Path) -> None:
    path = _fresh_campaign(tmp_path, "bad")
    path.write_text(path.read_text().replace("promote: fresh", "promote: sideways"))
    with pytest.raises(ConfigError) as err:
        start(path)
    assert "evaluation.fidelity.promote = 'sideways'" in str(err.value)
    assert "'continue' or 'fresh'" in str(err.value)
