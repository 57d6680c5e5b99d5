"""Job identity as its own field: ``EvalResult.job_id`` names the job, ``genome_hash`` always the genome; a
campaign journaled before the change (with promotions in flight at a kill -9) resumes exactly."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from ctm.result import EvalBudget, TaskSpec
from genome import Genome
from search.campaign import Campaign, start
from search.campaign.rungs import JobKey
from search.views import QuietReporter
from tests.search.test_campaign import results_in
from workers import EvalJob
from workers.pool import InlinePool, WorkersConfig

OLD = Path(__file__).parent / "data" / "before_job_ids"  # written by ctmevo 3d833d1, killed with a promotion in flight


def test_a_pool_result_names_its_job_and_its_genome_separately() -> None:
    genome = Genome(ticks=3)
    pool = InlinePool(WorkersConfig.from_dict({"backend": "inline", "evaluate_fn": "workers.testing:fake_evaluate"}))
    job = EvalJob(genome=genome, task=TaskSpec(name="fake"), budget=EvalBudget(steps=1), job_id=f"{genome.hash}@2#1")
    pool.submit(job)
    (result,) = pool.poll(timeout=30)
    assert result.job_id == job.job_id and result.genome_hash == genome.hash
    assert result.to_dict()["job_id"] == job.job_id


def _keys(records: list[dict]) -> list[tuple[str, int, int, float]]:
    return sorted((r["result"]["genome_hash"], r.get("rung", 0), r.get("repeat", 0), round(r["result"]["fitness"], 9))
                  for r in records)


def test_a_journal_written_before_job_ids_resumes_exactly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CTMEVO_TEST_EVAL_SLEEP", "0")
    old = tmp_path / "old"
    shutil.copytree(OLD, old)
    before = [e["record"] for e in results_in(old)]
    campaign = Campaign.open(old)
    pending = {key.id for key, _ in campaign.ledger.in_flight()}
    assert pending == {"9f458d74bdace89b@1"}  # a promotion in flight at the kill
    campaign.run(reporter=QuietReporter())
    after = [e["record"] for e in results_in(old)]
    assert after[: len(before)] == before and len(after) == 24  # the old results stay, each once
    jobs = [JobKey(r["result"]["genome_hash"], r.get("rung", 0), r.get("repeat", 0)).id for r in after]
    assert len(set(jobs)) == len(jobs) and pending <= set(jobs)  # every job in flight at the kill ran, once
    assert all(r["result"]["genome_hash"] == Genome.from_dict(r["proposal"]["genes"]).hash for r in after)

    config = yaml.safe_load((OLD / "campaign.yaml").read_text())  # the same campaign, never interrupted
    config["output_dir"] = str(tmp_path / "reference")
    path = tmp_path / "reference.yaml"
    path.write_text(yaml.safe_dump(config))
    reference = start(path)
    reference.run(reporter=QuietReporter())
    assert _keys(after) == _keys([e["record"] for e in results_in(reference.paths.root)])
    assert Campaign.open(old).strategy.archive_rows() == reference.strategy.archive_rows()
