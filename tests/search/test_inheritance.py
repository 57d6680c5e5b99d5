"""Weight inheritance in a campaign (``evaluation.inherit: parent``): which parent, which jobs inherit, what the
journal, MLflow and the lineage view say, and a campaign killed mid-run that resumes with the same children.

The campaigns here use ``workers.testing:rung_evaluate``, whose checkpoints are JSON records: a child handed
anything but its parent's own latest state fails, so these tests see the plumbing, not a number. The mapping
itself (``ctm.inherit``) is tested in ``tests/ctm``; the real thing on a two-node cluster in
``tests/workers/test_cluster_faults.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from genome.genome import Genome
from search.campaign import Campaign, parse_campaign_config, start
from search.campaign.jobs import inheritance_parent
from search.campaign.rungs import JobKey
from search.errors import ConfigError
from search.lineage import lineage_from_records
from search.records import Proposal
from search.tracking.lineages import lineage
from search.tracking.payload import TAG_HASH, TAG_INHERITED, TAG_INHERITED_FROM, TAG_NOTE
from tests.search.test_campaign import ctmevo, results_in, run_until_killed
from tests.search.test_rungs import rung_campaign


def inherit_campaign(tmp: Path, name: str, *, evaluations: int = 40) -> Path:
    config = yaml.safe_load(rung_campaign(tmp, name, evaluations=evaluations).read_text())
    config["evaluation"]["inherit"] = "parent"
    config["tracking"]["checkpoints"] = "none"  # inheriting keeps the training states anyway
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_a_child_inherits_from_the_parent_it_shares_most_genes_with() -> None:
    a, b = Genome(ticks=4, memory_length=3, d_model=32), Genome(ticks=9, memory_length=5, d_model=64)
    known = {a.hash: a, b.hash: b}
    child = Proposal(genome=Genome(ticks=9, memory_length=3, d_model=64), parents=(a.hash, b.hash),
                     operator="crossover")
    assert inheritance_parent(child, known.get) == b.hash  # two genes from b, one from a
    tie = Proposal(genome=Genome(ticks=9, memory_length=3, d_model=48), parents=(a.hash, b.hash))
    assert inheritance_parent(tie, known.get) == a.hash  # a tie: the first parent listed
    assert inheritance_parent(Proposal(genome=a), known.get) is None  # a founder
    assert inheritance_parent(Proposal(genome=a, parents=("0" * 16,)), known.get) is None  # an unknown parent


def test_inherit_must_be_none_or_parent() -> None:
    with pytest.raises(ConfigError, match=r"evaluation\.inherit = 'parents'.*'none' or 'parent'"):
        parse_campaign_config({"name": "x", "task": {"name": "parity"}, "strategy": {"name": "random"},
                               "evaluation": {"steps": 10, "inherit": "parents"}})


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Campaign:
    campaign = start(inherit_campaign(tmp_path_factory.mktemp("inherit"), "inherit"))
    campaign.run()
    return campaign


def test_children_start_from_their_parents_latest_checkpoint(reference: Campaign) -> None:
    records = [e["record"] for e in results_in(reference.paths.root)]
    assert all(r["result"]["status"] == "ok" for r in records)  # a wrong start or parent state is an error
    genomes = {r["result"]["genome_hash"]: Proposal.from_dict(r["proposal"]).genome for r in records}
    top: dict[str, float] = {}  # each genome's own steps so far (repeat 0): what its checkpoint holds
    inherited = 0
    for r in records:
        metrics, key = r["result"]["metrics"], JobKey(r["result"]["genome_hash"], r.get("rung", 0), r.get("repeat", 0))
        proposal = Proposal.from_dict(r["proposal"])
        if key.promotion:  # a promotion continues its own state: nothing inherited
            assert metrics["start_step"] > 0 and "inherited_fraction" not in metrics
        elif proposal.parents:  # a child's first rung, or a repeat of it with a fresh seed
            parent = inheritance_parent(proposal, genomes.get)
            assert r["extra"]["inherited_from"] == parent
            assert r["extra"]["inherited"] == (f"inherited: {metrics['inherited_fraction']:.2f} of parameters "
                                               f"from {parent}")
            assert 0 < metrics["parent_steps"] <= top[parent]  # a state the parent had reached by then
            inherited += 1
        else:  # founders train from their own initialisation
            assert "inherited_from" not in r["extra"] and "inherited_fraction" not in metrics
        if key.repeat == 0:
            top[key.genome_hash] = metrics["train_steps"]
    assert inherited >= 10


def test_mlflow_runs_and_the_lineage_view_say_what_was_inherited(reference: Campaign) -> None:
    records = reference.records
    child = next(r for r in records if r.extra.get("inherited_from"))
    founder = next(r for r in records if not r.proposal.parents)
    client = MlflowClient(tracking_uri=reference.tracking_uri)
    runs = {run.data.tags.get(TAG_HASH): run for run in client.search_runs(
        [e.experiment_id for e in client.search_experiments()], max_results=1000)}
    tags = runs[child.genome.hash].data.tags
    assert tags[TAG_INHERITED_FROM] == child.extra["inherited_from"]
    assert tags[TAG_INHERITED] == child.extra["inherited"]  # "inherited: 0.83 of parameters from <hash>"
    assert child.extra["inherited"] in tags[TAG_NOTE]  # the run's description says it too
    assert TAG_INHERITED not in runs[founder.genome.hash].data.tags
    for graph in (lineage(reference.tracking_uri, child.genome.hash), lineage_from_records(records, child.genome.hash)):
        assert child.extra["inherited"] in graph.to_tree_text()


def test_a_campaign_with_inheritance_killed_mid_run_resumes_with_the_same_children(
        tmp_path: Path, reference: Campaign) -> None:
    path = inherit_campaign(tmp_path, "inherit")  # same name, seed and settings as the reference
    directory = tmp_path / "inherit"
    # kill once some children have inherited and more are to come
    run_until_killed(path, lambda: sum("inherited_from" in e["record"]["extra"] for e in results_in(directory)) >= 4,
                     sleep="0.2")
    before = len(results_in(directory))
    assert 0 < before < 40
    out = ctmevo("resume", str(directory))
    assert out.returncode == 0, out.stderr

    def outcome(root: Path) -> list[tuple]:
        return sorted((r["result"]["genome_hash"], r.get("rung", 0), r.get("repeat", 0),
                       r["extra"].get("inherited_from"), r["result"]["metrics"].get("parent_steps"),
                       round(r["result"]["fitness"], 9)) for r in (e["record"] for e in results_in(root)))

    assert outcome(directory) == outcome(reference.paths.root)  # the same children, inheriting the same states
    assert json.dumps(Campaign.open(directory).strategy.archive_rows()) == json.dumps(
        reference.strategy.archive_rows())
