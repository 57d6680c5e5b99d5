"""The family-tree and archive pages: every evaluation a node linked to its run, self-contained, interactive."""

from __future__ import annotations

import re
from pathlib import Path

from genome import Genome
from search.tracking.family import fitness_colour, write_family_views
from tests.search.mlflow_helpers import make_record


def _campaign() -> tuple[list, dict[str, str], dict[str, str]]:
    a, b = Genome(ticks=3), Genome(ticks=4, memory_length=2)
    c, d = a.replace(memory_length=5), Genome(ticks=6, memory_length=2)
    e = d.replace(ticks=9)
    records = [make_record(a, campaign="f", birth=0, fitness=0.2), make_record(b, campaign="f", birth=1, fitness=0.4),
               make_record(c, campaign="f", birth=2, parents=[a.hash], operator="mutation", fitness=0.9),
               make_record(d, campaign="f", birth=3, parents=[c.hash, b.hash], operator="crossover", fitness=0.6),
               make_record(e, campaign="f", birth=4, parents=[d.hash], operator="mutation", status="diverged")]
    run_ids = {r.genome.hash: f"{i:032x}" for i, r in enumerate(records[:4])}  # e's run not written yet
    cells = {r.genome.hash: f"{i % 2}_0" for i, r in enumerate(records)}
    return records, run_ids, cells


def test_family_tree_has_every_evaluation_linked_to_its_run(tmp_path: Path) -> None:
    records, run_ids, cells = _campaign()
    made = write_family_views(tmp_path, records=records, run_ids=run_ids, tracking_uri="http://mlflow.lab:5000",
                              experiment_id="4", cells=cells)
    assert [p.name for p in made] == ["family_tree.html"]  # no archive given: no archive view
    page = made[0].read_text()
    nodes = re.findall(r'<a class="node[^"]*" href="#" data-hash="([0-9a-f]{16})" data-run="([0-9a-f]*)"', page)
    assert sorted(h for h, _ in nodes) == sorted(r.genome.hash for r in records)
    assert all(run == run_ids.get(h, "") for h, run in nodes)
    assert "data-base='http://mlflow.lab:5000' data-experiment='4'" in page
    assert page.count('<path class="edge"') == 4  # one per parent: c ← a, d ← c, d ← b, e ← d
    d = records[3].genome.hash
    assert f'data-parents="{records[2].genome.hash},{records[1].genome.hash}"' in page
    assert f"data-best='{records[2].genome.hash}'" in page  # the fittest is selected first
    assert '<option value="crossover">' in page and '<option value="1_0">' in page  # filters
    assert 'class="node failed"' in page and f'data-hash="{d}"' in page
    assert 'data-changes="memory_length 10→5"' in page  # c from a
    assert 'data-changes="ticks 4→6"' in page and "ticks 3→6" not in page  # d from its nearer parent b, not c
    for forbidden in ("src=", "<link", "@import", "https://"):  # no network
        assert forbidden not in page
    assert "addEventListener('wheel'" in page and "function select(" in page  # zoom/pan and selection


def test_archive_view_links_each_cell_to_its_elite(tmp_path: Path) -> None:
    records, run_ids, _ = _campaign()
    rows = [{"hash": records[2].genome.hash, "fitness": 0.9, "cell": "2_1", "descriptors": {"ticks": 3.0, "m": 5.0}},
            {"hash": records[1].genome.hash, "fitness": 0.4, "cell": "0_0", "descriptors": {"ticks": 4.0, "m": 2.0}}]
    descriptors = [{"name": "ticks", "bins": 3, "range": [1, 10]}, {"name": "m", "bins": 2, "range": [1, 9]}]
    made = write_family_views(tmp_path, records=records, run_ids=run_ids, tracking_uri="sqlite:///x/mlflow.db",
                              experiment_id="2", archive_rows=rows, descriptors=descriptors)
    page = (tmp_path / "archive_view.html").read_text()
    assert len(made) == 2
    for row in rows:
        assert f'<a class="cell" data-run="{run_ids[row["hash"]]}" data-hash="{row["hash"]}"' in page
    assert page.count("<rect") == 3 * 2 + 2  # the empty grid, then the two elites
    assert "data-base='http://127.0.0.1:5000'" in page and "ticks (1 … 10, 3 bins)" in page


def test_fitness_colours_run_from_dark_to_bright() -> None:
    assert fitness_colour(0.0, 0.0, 1.0) == "#440154" and fitness_colour(1.0, 0.0, 1.0) == "#fde725"
    assert fitness_colour(None, 0.0, 1.0) == "#cccccc" and fitness_colour(5.0, 5.0, 5.0).startswith("#")


def test_a_single_node_gets_a_swatch_not_a_degenerate_scale(tmp_path: Path) -> None:
    record = make_record(Genome(ticks=3), campaign="f", birth=0, fitness=0.5)
    (page,) = write_family_views(tmp_path, records=[record], run_ids={}, tracking_uri="sqlite:///x.db",
                                 experiment_id="1", cells={})
    text = page.read_text()
    assert "(one value: no scale)" in text and "linear-gradient" not in text


def test_a_large_campaigns_tree_shows_the_best_and_their_ancestors(tmp_path: Path, monkeypatch) -> None:
    """Beyond FAMILY_TREE_MAX genomes the page holds the best few and every ancestor of theirs (bounded work and
    size every time it is redrawn), and says so in its title."""
    import search.tracking.family as family

    records, run_ids, cells = _campaign()
    monkeypatch.setattr(family, "FAMILY_TREE_MAX", 4)
    monkeypatch.setattr(family, "FAMILY_TREE_ROOTS", 1)
    page = family.family_tree_html(records, run_ids, tracking_uri="", experiment_id="4", cells=cells)
    nodes = set(re.findall(r'data-hash="([0-9a-f]{16})" data-run', page))
    a, c = records[0].genome.hash, records[2].genome.hash  # the best (c, 0.9) and its parent a
    assert nodes == {a, c} and "the best 1 of 5 genomes and their ancestors" in page
    monkeypatch.setattr(family, "FAMILY_TREE_ROOTS", 2)  # then d (0.6), whose parents c and b come along
    nodes = set(re.findall(r'data-hash="([0-9a-f]{16})" data-run', family.family_tree_html(
        records, run_ids, tracking_uri="", experiment_id="4", cells=cells)))
    assert nodes == {a, c, records[3].genome.hash, records[1].genome.hash}
