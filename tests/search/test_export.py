"""``ctmevo export`` and ``ctmevo train`` on a finished tiny campaign.

The campaign directory is built with the real pieces, in the layout of ``search.campaign.CampaignPaths``:
three genomes (founder → mutation → mutation) trained by ``ctm.evaluate`` with checkpoints, the journal's
"ask"/"result" events, ``checkpoints/<hash>.safetensors`` (the founder's not kept), ``plots/archive.csv``,
and the MLflow archive written by ``search.tracking.Tracker`` into ``mlflow.db``.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load as st_load

import search.train_commands  # noqa: F401  (registers export and train)
from ctm import build_model, evaluate, make_task
from ctm.result import EvalBudget, TaskSpec
from genome import Genome, to_yaml
from search.cli import main
from search.journal import Journal
from search.records import EvaluationRecord, Proposal

ROOT = Path(__file__).resolve().parents[2]
TASK = TaskSpec(name="parity", params={"length": 4})
CAMPAIGN_ID = "tiny-0a1b2c3d"
FOUNDER = Genome(d_model=16, d_input=8, heads=2, ticks=3, memory_length=2, nlm_hidden=4, n_sync_out=4,
                 n_sync_action=4, batch_size=8)
CHILD = FOUNDER.replace(ticks=4)
GRANDCHILD = CHILD.replace(memory_length=3)


def _config(root: Path) -> dict:
    return {"name": "tiny", "seed": 0, "output_dir": str(root), "task": TASK.to_dict(), "genome_space": {},
            "strategy": {"name": "map-elites", "settings": {}}, "descriptors": [
                {"name": "ticks", "bins": 4, "range": [1, 5]}],
            "evaluation": {"steps": 3, "val_samples": 32, "exit_threshold": 0.8}, "budget": {"evaluations": 3},
            "workers": {"backend": "inline"}, "tracking": {"uri": None, "checkpoints": "all"}}


@pytest.fixture(scope="module")
def campaign(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from search.tracking import Tracker

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("campaign")
    config = _config(root)
    (root / "campaign.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    (root / "campaign.json").write_text(f'{{"campaign_id": "{CAMPAIGN_ID}", "created": 0, "state_version": 1}}')
    journal = Journal(root / "journal.jsonl")
    tracker = Tracker(tracking_uri=f"sqlite:///{root / 'mlflow.db'}", experiment_name="tiny",
                      campaign_id=CAMPAIGN_ID, spool_dir=root)
    tracker.start_campaign(config=config)
    lineage = [(FOUNDER, (), "sample"), (CHILD, (FOUNDER.hash,), "mutation"),
               (GRANDCHILD, (CHILD.hash,), "mutation")]
    rows = []
    for birth, (genome, parents, operator) in enumerate(lineage):
        proposal = Proposal(genome=genome, parents=parents, operator=operator)
        journal.append({"event": "ask", "births": [birth], "proposals": [proposal.to_dict()]})
        result = evaluate(genome, TASK, EvalBudget(steps=3, val_samples=32), seed=100 + birth, want_checkpoint=True)
        assert result.ok, result.failure
        result.fitness = 0.5 + 0.1 * birth  # a strict order, whatever 3 steps of training give
        checkpoint, result.checkpoint = result.checkpoint, None
        record = EvaluationRecord(campaign=CAMPAIGN_ID, birth=birth, proposal=proposal, result=result,
                                  finished_at=1_700_000_000.0 + birth,
                                  extra={"descriptors": {"ticks": float(genome.ticks)}})
        journal.append({"event": "result", "record": record.to_dict()})
        path = None
        if birth > 0:  # the founder's checkpoint was not kept
            path = root / "checkpoints" / f"{genome.hash}.safetensors"
            path.parent.mkdir(exist_ok=True)
            path.write_bytes(checkpoint)
        cell = f"{genome.ticks - 1}"
        tracker.log_evaluation(record, cell=cell, checkpoint_path=path)
        rows = [r for r in rows if r["cell"] != cell] + [{"hash": genome.hash, "cell": cell,
                                                          "fitness": result.fitness}]  # the cell's elite
    tracker.close()
    (root / "plots").mkdir()
    with (root / "plots" / "archive.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["hash", "cell", "fitness"])
        writer.writeheader()
        writer.writerows(rows)
    return root


def ctmevo(*args: str) -> int:
    return main([str(a) for a in args])


def search_model(root: Path, genome: Genome) -> torch.nn.Module:
    """The model as the search process had it: built from the genome, the campaign's checkpoint loaded."""
    model = build_model(genome, make_task(TASK), seed=0)
    model.load_state_dict(st_load((root / "checkpoints" / f"{genome.hash}.safetensors").read_bytes()))
    return model.eval()


def test_export_best_loads_in_a_fresh_process_with_the_search_outputs(campaign, tmp_path):
    out = tmp_path / "best"
    assert ctmevo("export", "--best", "--campaign", campaign, "--out", out) == 0
    doc = yaml.safe_load((out / "genome.yaml").read_text())
    assert doc["hash"] == GRANDCHILD.hash and doc["schema_version"] == 1
    model_doc = yaml.safe_load((out / "model.yaml").read_text())
    assert model_doc["model"]["memory_length"] == 3 and model_doc["weights"]["sha256"]
    card = (out / "MODEL_CARD.md").read_text()
    assert f"`{FOUNDER.hash[:8]}` → `{CHILD.hash[:8]}` → `{GRANDCHILD.hash[:8]}` (this)" in card
    for needle in ("Adaptive compute", "mean exit tick", "parameters", "ctmevo train", "evaluation run",
                   "memory_length 2→3", "descriptor `ticks`"):
        assert needle in card, needle

    x, _ = make_task(TASK).batch("val", 0, 6, seed=3)
    torch.save(x, tmp_path / "x.pt")
    with torch.no_grad():
        expected = search_model(campaign, GRANDCHILD)(x)
    script = textwrap.dedent(f"""
        import torch
        from ctm.bundle import load_bundle
        model, genome, task = load_bundle({str(out)!r})
        with torch.no_grad():
            p, c = model(torch.load({str(tmp_path / 'x.pt')!r}, weights_only=True))
        torch.save([p, c], {str(tmp_path / 'y.pt')!r})
    """)
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert run.returncode == 0, run.stderr
    p, c = torch.load(tmp_path / "y.pt", weights_only=True)
    assert torch.equal(p, expected[0]) and torch.equal(c, expected[1])


def test_registered_mlflow_model_loads_with_mlflows_loader(campaign, tmp_path):
    import mlflow
    import mlflow.pytorch
    from mlflow import MlflowClient

    from search.export import export, locate

    found = locate(CHILD.hash[:7], campaign=campaign)
    assert found.run_id and found.checkpoint is not None
    result = export(found, tmp_path / "child")
    assert result.model_uri and result.warning is None
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(found.tracking_uri)  # models:/ URIs resolve against the tracking server
    try:
        loaded = mlflow.pytorch.load_model(result.model_uri)
    finally:
        mlflow.set_tracking_uri(previous)
    x, _ = make_task(TASK).batch("val", 0, 4, seed=9)
    with torch.no_grad():
        got, want = loaded.eval()(x), search_model(campaign, CHILD)(x)
    assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])
    client = MlflowClient(found.tracking_uri)
    run = client.get_run(result.export_run_id)
    assert run.data.tags["ctmevo.source_run_id"] == found.run_id and run.data.tags["ctmevo.kind"] == "export"
    model = client.get_logged_model(result.model_uri.removeprefix("models:/"))
    assert model.params["ticks"] == str(CHILD.ticks)
    assert {m.key for m in model.metrics} >= {"fitness", "val_accuracy", "exit_tick_mean"}


def test_export_from_mlflow_alone_by_run_id_and_by_cell(campaign, tmp_path):
    from search.export import locate

    uri = f"sqlite:///{campaign / 'mlflow.db'}"
    by_campaign = locate(GRANDCHILD.hash, campaign=campaign)
    found = locate(by_campaign.run_id, tracking_uri=uri)
    assert found.genome == GRANDCHILD and found.task == TASK and found.checkpoint is not None
    assert found.checkpoint == (campaign / "checkpoints" / f"{GRANDCHILD.hash}.safetensors").read_bytes()
    assert found.record.result.per_tick_accuracy == by_campaign.record.result.per_tick_accuracy
    out = tmp_path / "cell"
    assert ctmevo("export", "--cell", "3", "--campaign", campaign, "--out", out, "--no-mlflow") == 0
    assert yaml.safe_load((out / "genome.yaml").read_text())["hash"] == GRANDCHILD.hash
    assert locate(cell="(2)", tracking_uri=uri).genome == FOUNDER
    assert locate(cell="3", tracking_uri=uri).genome == GRANDCHILD


def test_export_without_a_checkpoint_writes_no_weights_and_says_how_to_train(campaign, tmp_path):
    out = tmp_path / "founder"
    assert ctmevo("export", FOUNDER.hash, "--campaign", campaign, "--out", out, "--no-mlflow") == 0
    assert not (out / "weights.safetensors").exists()
    assert "none: the campaign kept no checkpoint" in (out / "MODEL_CARD.md").read_text()


def test_export_best_by_a_lower_is_better_metric(campaign):
    from search.export import locate

    found = locate(best=True, by="min:descriptor.ticks", campaign=campaign)
    assert found.genome == FOUNDER


@pytest.mark.parametrize(("args", "message"), [
    (["export", "--best", "--campaign", "no/such/dir", "--out", "x"], "not a campaign directory"),
    (["export", "ffffffff", "--campaign", "{c}", "--out", "x"], "no evaluation with this genome hash"),
    (["export", "--by", "ece", "--campaign", "{c}", "--out", "x"], "--by METRIC goes with --best"),
    (["export", "--best", "--cell", "1", "--campaign", "{c}", "--out", "x"], "exactly one"),
    (["export", "--best", "--by", "nonsense", "--campaign", "{c}", "--out", "x"], "known metrics"),
])
def test_export_bad_input_exits_2(campaign, tmp_path, capsys, args, message):
    args = [a.replace("{c}", str(campaign)) for a in args]
    assert ctmevo(*args) == 2
    assert message in capsys.readouterr().err


@pytest.fixture(scope="module")
def bundle(campaign, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bundle") / "b"
    assert ctmevo("export", GRANDCHILD.hash, "--campaign", campaign, "--out", out, "--no-mlflow") == 0
    return out


def test_train_a_bundle_logs_to_mlflow_linked_to_the_source_run(bundle, campaign, tmp_path, capsys):
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'train.db'}"
    out = tmp_path / "run"
    assert ctmevo("train", bundle, "--steps", "4", "--eval-every", "2", "--eval-samples", "16",
                  "--checkpoint-every", "2", "--out", out, "--no-progress", "--tracking-uri", uri) == 0
    assert "trained" in capsys.readouterr().out
    assert (out / "bundle" / "weights.safetensors").is_file()
    runs = MlflowClient(uri).search_runs([MlflowClient(uri).get_experiment_by_name("ctmevo-training").experiment_id])
    source = yaml.safe_load((bundle / "model.yaml").read_text())["source"]["run_id"]
    assert runs and runs[0].data.tags["ctmevo.source_run_id"] == source and runs[0].info.status == "FINISHED"
    assert "val_accuracy" in runs[0].data.metrics and runs[0].data.params["train.steps"] == "4"
    # a second start into the same directory is refused, its checkpoints untouched
    before = sorted(p.read_bytes() for p in (out / "checkpoints").iterdir())
    assert ctmevo("train", bundle, "--steps", "4", "--out", out, "--no-mlflow", "--no-progress") == 2
    assert "--resume" in capsys.readouterr().err
    assert sorted(p.read_bytes() for p in (out / "checkpoints").iterdir()) == before


def _copy(bundle: Path, to: Path) -> Path:
    to.mkdir()
    for f in bundle.iterdir():
        (to / f.name).write_bytes(f.read_bytes())
    return to


@pytest.mark.parametrize(("damage", "extra", "message"), [
    ("none", ["--task", "parity", "--param", "length=8"], "does not match the shapes"),
    ("weights", [], "does not match the recorded"),
    ("truncate", [], "truncated"),
    ("newer", [], "newer ctmevo"),
    ("missing", [], "no such bundle"),
    ("genome-only", [], "--task"),
    ("none", ["--task", "sort", "--param", "length=8", "--from-scratch"], "at least the sort length"),
])
def test_train_bad_input_exits_2_with_a_clear_message(bundle, tmp_path, capsys, damage, extra, message):
    b = _copy(bundle, tmp_path / "b")
    source = b
    if damage == "weights":
        data = bytearray((b / "weights.safetensors").read_bytes())
        data[-5] ^= 0x55
        (b / "weights.safetensors").write_bytes(bytes(data))
    elif damage == "truncate":
        (b / "weights.safetensors").write_bytes((b / "weights.safetensors").read_bytes()[:64])
    elif damage == "newer":
        (b / "model.yaml").write_text((b / "model.yaml").read_text().replace("bundle_version: 1",
                                                                            "bundle_version: 2"))
    elif damage == "missing":
        source = tmp_path / "nothing"
    elif damage == "genome-only":
        source = tmp_path / "g.yaml"
        source.write_text(to_yaml(GRANDCHILD))
    code = ctmevo("train", source, *extra, "--steps", "2", "--out", tmp_path / "out", "--no-mlflow",
                  "--no-progress")
    err = capsys.readouterr().err
    assert code == 2, err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "out" / "checkpoints").exists()
