"""The analysis pages: the best-so-far curve follows the one ranking, and the pages load plotly.js, not embed it."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

from genome import Genome
from search.records import EvaluationRecord, Proposal, standings
from search.views.analysis import BestSoFar, write_analysis
from workers.testing import ok_result


def _records(n: int, seed: int = 0) -> list[EvaluationRecord]:
    rng = random.Random(seed)
    genomes = [Genome(ticks=t, memory_length=m) for t in range(1, 21) for m in range(1, 6)]
    out: list[EvaluationRecord] = []
    for i in range(n):
        g = rng.choice(genomes)
        mine = [r for r in out if r.genome.hash == g.hash]
        rung = max((r.rung for r in mine), default=0) + (1 if mine and rng.random() < 0.3 else 0)
        repeat = sum(1 for r in mine if r.rung == rung)
        result = ok_result(g, repeat, rng.random() * 0.5 + 0.2 * rung)
        result.metrics.update(train_steps=100.0 * (rung + 1), wall_time_s=0.5)
        out.append(EvaluationRecord(campaign="c", birth=i, proposal=Proposal(genome=g), result=result,
                                    finished_at=10.0 + i, rung=rung, repeat=repeat))
    return out


def test_the_best_so_far_is_the_ranking_best_after_each_share_of_the_results() -> None:
    records = _records(300)
    progress = BestSoFar()
    for r in records:
        progress.add(r)
    curve = progress.points()
    assert [p["evaluations"] for p in curve[:100]] == list(range(1, 101))  # every one of the first hundred
    assert curve[-1]["evaluations"] == 300 and len(curve) < 130  # then every 5 % more
    for point in curve[::7] + curve[-1:]:
        best = standings(records[: point["evaluations"]])[0]
        assert point["genome"] == best.record.genome.hash and point["fitness"] == best.value
    steps = [p["steps"] for p in curve]
    assert steps == sorted(steps) and curve[-1]["steps"] == sum(r.cost for r in records)


def test_pages_draw_figures_with_plotly_loaded_from_the_store_not_embedded(tmp_path: Path) -> None:
    records = _records(60)
    progress = BestSoFar()
    for r in records:
        progress.add(r)
    latest = {r.genome.hash: r for r in records}
    elites = [{"genes": r.genome.to_dict(), "fitness": r.result.fitness} for r in list(latest.values())[:8]]
    history = [{"evaluations": i, "qd_score": 0.1 * i, "coverage": 0.01 * i} for i in range(1, 30)]
    made = write_analysis(tmp_path / "analysis", progress=progress, records=list(latest.values()), elites=elites,
                          history=history, asset_run="abc123")
    assert {p.name for p in made} == {"progress.html", "genes.html", "elites.html", "qd.html", "progress.png",
                                      "genes.png"}
    assert (tmp_path / "plotly.min.mjs").stat().st_size > 1_000_000  # one local copy beside the folder
    for page in ("progress", "genes", "elites", "qd"):
        text = (tmp_path / "analysis" / f"{page}.html").read_text()
        assert len(text) < 500_000 and "data-asset-run='abc123'" in text and "get-artifact?path=plotly.min.mjs" in text
        figures = json.loads(re.search(r"id='figures'>(.*?)</script>", text, flags=re.S).group(1))
        assert figures and all(f["data"] for f in figures), page
