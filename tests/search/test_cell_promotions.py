"""Cell promotions (``evaluation.fidelity.cell_share``): each archive cell's elite goes up to the top rung within
its share of the training steps, the journal marks them, and a campaign killed after some resumes exactly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from search.campaign import Campaign, start
from search.campaign.rungs import JobKey, RungScheduler
from search.descriptors import make_descriptors
from search.errors import ConfigError
from search.strategies import make_strategy
from tests.search import landscapes as L
from tests.search.test_campaign import ctmevo, results_in, run_until_killed
from tests.search.test_rungs import RUNGS, rung_campaign


def _finish(s: RungScheduler, key: JobKey, fitness: float) -> None:
    s.asked(key)
    s.observe(key, fitness)


def test_a_cell_promotion_takes_the_first_elite_in_line_up_one_rung_within_its_share() -> None:
    s = RungScheduler(rungs=RUNGS, eta=3, cell_share=0.5)
    for h, f in (("a", 0.9), ("b", 0.5), ("c", 0.4)):
        _finish(s, JobKey(h), f)
    elites = [("b", 0), ("c", 0)]  # the strategy's order: the highest rung first, then the fittest
    assert s.next_job() == JobKey("a", 1)  # ASHA's quota first (floor(3 / 3) = 1)
    s.asked(JobKey("a", 1))
    assert s.cell_promotion(lambda: [("a", 0), *elites]) == JobKey("b", 1)  # a was promoted from rung 0 already
    s.asked(JobKey("b", 1), cell=True)
    assert s.cell_steps == 200 and s.steps == 700
    # the next, c (200 steps), would bring cell promotions to 400 of 900 steps asked: within 0.5
    assert s.cell_promotion(lambda: elites) == JobKey("c", 1)
    s.asked(JobKey("c", 1), cell=True)
    s.observe(JobKey("b", 1), 0.6)
    assert s.cell_promotion(lambda: [("b", 1)]) is None  # 600 more steps: 1,000 of 1,500 would pass the share
    assert not s.cell_room()  # not even the cheapest (200 steps: 600 of 1,100), so no need to list elites
    for h in ("d", "e", "f", "g"):
        _finish(s, JobKey(h), 0.1)
    assert s.cell_room()  # 200 more would fit now (600 of 1,500), but not b's 600
    waiting = [("b", 1), ("d", 0)]
    assert s.cell_promotion(lambda: waiting) is None  # the first in line waits; cheaper ones do not jump it
    _finish(s, JobKey("h"), 0.1)
    assert s.cell_promotion(lambda: waiting) == JobKey("b", 2)  # 1,000 of 2,000 steps: its turn now
    assert s.cell_promotion(lambda: [("b", 5)]) is None  # at the top
    assert s.cell_promotion(lambda: [("zz", 0)]) is None  # never run
    off = RungScheduler(rungs=RUNGS, eta=3)
    _finish(off, JobKey("b"), 0.5)
    assert off.cell_promotion(lambda: [("b", 0)]) is None and not off.cell_room()  # share 0: never


def test_the_strategy_lists_its_cell_elites_below_the_top_rung_highest_rung_first() -> None:
    space = L.space()
    strategy = make_strategy("map_elites", space=space, seed=0, descriptors=make_descriptors(
        L.DESCRIPTORS, field="descriptors", space=space))
    strategy.configure_rungs(2)
    L.run(strategy, L.Landscape(space).evaluate, budget=40)
    elites = strategy.elite_hashes()
    assert len(elites) >= 4
    up, top = elites[0], elites[1]
    strategy.revise(up, fitness=0.01, rung=1, seeds=1)  # the weakest fitness, but trained longer
    strategy.revise(top, fitness=0.5, rung=2, seeds=1)
    listed = strategy.cell_elites()
    assert listed[0] == (up, 1) and top not in {h for h, _ in listed}
    assert {h for h, _ in listed} == set(elites) - {top}
    rest = [strategy.record(h).fitness for h, _ in listed[1:]]
    assert rest == sorted(rest, reverse=True) and all(r == 0 for _, r in listed[1:])
    assert make_strategy("random", space=space, seed=0).cell_elites() == []  # no archive: nothing to list


def _config(tmp: Path, name: str, share: float, evaluations: int = 40) -> Path:
    path = rung_campaign(tmp, name, evaluations=evaluations)
    config = yaml.safe_load(path.read_text())
    config["evaluation"]["fidelity"]["cell_share"] = share
    config["evaluation"].pop("repeats")
    config["tracking"] = {"checkpoints": "none"}
    path.write_text(yaml.safe_dump(config))
    return path


def _top_cells(campaign: Campaign) -> int:
    return sum(1 for h in campaign.strategy.elite_hashes() if campaign.strategy.record(h).rung == len(RUNGS) - 1)


def _listing_checked(campaign: Campaign) -> list[int]:
    """Counts the strategy's cell-elite listings, each of which must come only when a promotion could fit."""
    calls, listing = [], campaign.strategy.cell_elites

    def checked() -> list[tuple[str, int]]:
        assert campaign.rungs.cell_room(), "the archive was ranked with no room for any cell promotion"
        calls.append(1)
        return listing()

    campaign.strategy.cell_elites = checked  # type: ignore[method-assign]
    return calls


@pytest.fixture(scope="module")
def with_cells(tmp_path_factory: pytest.TempPathFactory) -> Campaign:
    campaign = start(_config(tmp_path_factory.mktemp("cells"), "cells", 0.4))
    campaign.listings = _listing_checked(campaign)  # type: ignore[attr-defined]
    campaign.run()
    return campaign


def test_cell_promotions_leave_more_cells_trained_to_the_top_within_their_share(tmp_path: Path,
                                                                                with_cells: Campaign) -> None:
    without = start(_config(tmp_path, "plain", 0.0))
    listings = _listing_checked(without)
    without.run()
    assert _top_cells(with_cells) > _top_cells(without)
    assert not listings and with_cells.listings  # type: ignore[attr-defined]
    jobs = [e for e in with_cells.journal.read() if e["event"] == "job"]
    cells = [JobKey.parse(e["job"]) for e in jobs if e.get("cell")]
    assert cells and all(k.promotion for k in cells)
    spent = sum(with_cells.rungs.cost(k) for k in cells)
    assert spent == with_cells.rungs.cell_steps <= 0.4 * with_cells.rungs.steps
    assert Campaign.open(with_cells.paths.root).rungs.cell_steps == spent  # counted again from the journal
    assert with_cells.progress.metrics["cell_promotion_steps"] == spent  # the live view's and MLflow's metric


def test_a_campaign_killed_after_cell_promotions_resumes_exactly(tmp_path: Path, with_cells: Campaign) -> None:
    path = _config(tmp_path, "cells", 0.4)  # same name, seed and settings as the uninterrupted one
    directory = tmp_path / "cells"
    journal = directory / "journal.jsonl"
    run_until_killed(path, lambda: journal.exists() and '"cell":true' in journal.read_text(), sleep="0.2")
    assert '"cell":true' in journal.read_text(), "no cell promotion before the kill"
    out = ctmevo("resume", str(directory))
    assert out.returncode == 0, out.stderr

    def results(root: Path) -> list[tuple]:
        return sorted((e["record"]["result"]["genome_hash"], e["record"].get("rung", 0),
                       round(e["record"]["result"]["fitness"], 9)) for e in results_in(root))

    assert results(directory) == results(with_cells.paths.root)  # every job once, the same results
    jobs = [json.loads(line) for line in journal.read_text().splitlines() if '"event":"job"' in line]
    reference = [e for e in with_cells.journal.read() if e["event"] == "job"]
    assert sorted(json.dumps(e, sort_keys=True) for e in jobs) == sorted(json.dumps(e, sort_keys=True)
                                                                         for e in reference)


def test_a_cell_share_without_an_archive_is_refused(tmp_path: Path) -> None:
    config = yaml.safe_load(_config(tmp_path, "bad", 0.3).read_text())
    config["strategy"] = {"name": "random"}
    config["descriptors"] = []
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError, match=r"evaluation.fidelity.cell_share = 0.3: allowed only with a strategy "
                                            r"that keeps an archive .* not random"):
        start(path)
