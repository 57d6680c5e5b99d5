"""``ctmevo export`` and ``ctmevo train`` on a finished tiny campaign.

The campaign is real: ``search.campaign.start(...).run()`` with the inline worker backend and the real
``ctm.evaluate`` (tiny CTMs on parity of length 4, 3 training steps each), checkpoints kept for every
evaluation, MLflow in the campaign's sqlite store. One evaluation's checkpoint is then deleted from disk (one
whose MLflow run holds none either), to export an architecture without weights.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import yaml

from ctm import build_model, make_task
from ctm.eval_state import weights_only
from ctm.result import TaskSpec
from genome import SCHEMA_VERSION, Genome, to_yaml
from search.cli import main
from search.records import EvaluationRecord

ROOT = Path(__file__).resolve().parents[2]
TASK = TaskSpec(name="parity", params={"length": 4})
CONFIG = {
    "name": "tiny", "seed": 3, "task": TASK.to_dict(),
    "genome_space": {"ticks": {"min": 2, "max": 4}, "memory_length": {"min": 1, "max": 3}, "d_model": 16,
                     "d_input": 8, "heads": 2, "nlm_hidden": 4, "n_sync_out": 4, "n_sync_action": 4,
                     "n_self_pairs": 0, "synapse_depth": 1, "batch_size": 8},
    "strategy": {"name": "map_elites", "settings": {"initial_samples": 3}},
    "descriptors": [{"name": "ticks", "bins": 3, "range": [2, 5]},
                    {"name": "memory_length", "bins": 3, "range": [1, 4]}],
    "evaluation": {"steps": 3, "val_samples": 32}, "budget": {"evaluations": 6},
    "workers": {"backend": "inline", "timeout_s": 120}, "tracking": {"checkpoints": "elites"},
    "snapshot_every": 2, "plot_every_s": 100,
}


@dataclass
class Tiny:
    root: Path
    uri: str
    records: list[EvaluationRecord]
    best: EvaluationRecord
    child: EvaluationRecord  # an elite made from parents
    cell: str  # the child's archive cell
    bare: EvaluationRecord | None  # no checkpoint on disk or in MLflow


@pytest.fixture(scope="module")
def campaign(tmp_path_factory: pytest.TempPathFactory) -> Tiny:
    from mlflow import MlflowClient

    from search.campaign import Campaign, start
    from search.records import best_record

    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("campaign")
    (tmp / "tiny.yaml").write_text(yaml.safe_dump({**CONFIG, "output_dir": str(tmp / "tiny")}))
    start(tmp / "tiny.yaml").run()
    c = Campaign.open(tmp / "tiny")
    records, elites = c.records, set(c.strategy.elite_hashes())
    assert len(records) == 6 and all(r.result.ok for r in records)
    best = best_record(records)
    child = next(r for r in records if r.proposal.parents and r.genome.hash in elites)
    uri = c.tracking_uri
    client = MlflowClient(uri)
    bare = None
    for r in records:
        if r is best or r is child:
            continue
        runs = client.search_runs([e.experiment_id for e in client.search_experiments()],
                                  f"tags.`ctmevo.genome_hash` = '{r.genome.hash}'")
        if runs and not client.list_artifacts(runs[0].info.run_id, "checkpoint"):
            (c.paths.checkpoints / f"{r.genome.hash}.safetensors").unlink()
            bare = r
            break
    return Tiny(root=c.paths.root, uri=uri, records=records, best=best, child=child,
                cell=str(c.strategy.cell_of(child.genome.hash)), bare=bare)


def ctmevo(*args: str) -> int:
    return main([str(a) for a in args])


def search_model(root: Path, genome: Genome) -> torch.nn.Module:
    """The model as the search process had it: built from the genome, the campaign's checkpoint loaded."""
    model = build_model(genome, make_task(TASK), seed=0)
    model.load_state_dict(weights_only((root / "checkpoints" / f"{genome.hash}.safetensors").read_bytes()))
    return model.eval()


def first_parent_chain(records: list[EvaluationRecord], record: EvaluationRecord) -> list[str]:
    by_hash = {r.genome.hash: r for r in records}
    chain = [record]
    while chain[-1].proposal.parents and chain[-1].proposal.parents[0] in by_hash:
        chain.append(by_hash[chain[-1].proposal.parents[0]])
    return [r.genome.hash for r in reversed(chain)]


def test_export_best_loads_in_a_fresh_process_with_the_search_outputs(campaign, tmp_path):
    out = tmp_path / "best"
    assert ctmevo("export", "--best", "--campaign", campaign.root, "--out", out) == 0
    best = campaign.best.genome
    doc = yaml.safe_load((out / "genome.yaml").read_text())
    assert doc["hash"] == best.hash and doc["schema_version"] == SCHEMA_VERSION
    model_doc = yaml.safe_load((out / "model.yaml").read_text())
    assert model_doc["model"]["memory_length"] == best.memory_length and model_doc["weights"]["sha256"]
    card = (out / "MODEL_CARD.md").read_text()
    for needle in ("Adaptive compute", "mean exit tick", "parameters", "ctmevo train", "evaluation run",
                   "logged model", "descriptor `ticks`", f"fitness {campaign.best.result.fitness:.4g}"):
        assert needle in card, needle

    x, _ = make_task(TASK).batch("val", 0, 6, seed=3)
    torch.save(x, tmp_path / "x.pt")
    with torch.no_grad():
        expected = search_model(campaign.root, best)(x)
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


def test_registered_mlflow_model_loads_with_mlflows_loader_and_card_has_lineage(campaign, tmp_path):
    import mlflow
    import mlflow.pytorch
    from mlflow import MlflowClient

    from search.export import export, locate
    from search.tracking.client import scoped_tracking_uri

    child = campaign.child.genome
    found = locate(child.hash[:7], campaign=campaign.root)
    assert found.run_id and found.checkpoint is not None and found.cell == campaign.cell
    result = export(found, tmp_path / "child")
    assert result.model_uri and result.warning is None
    with scoped_tracking_uri(found.tracking_uri):  # models:/ URIs resolve against the tracking server
        loaded = mlflow.pytorch.load_model(result.model_uri)
    x, _ = make_task(TASK).batch("val", 0, 4, seed=9)
    with torch.no_grad():
        got, want = loaded.eval()(x), search_model(campaign.root, child)(x)
    assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])
    client = MlflowClient(found.tracking_uri)
    run = client.get_run(result.export_run_id)
    assert run.data.tags["ctmevo.source_run_id"] == found.run_id and run.data.tags["ctmevo.kind"] == "export"
    model = client.get_logged_model(result.model_uri.removeprefix("models:/"))
    assert model.params["ticks"] == str(child.ticks)
    assert {m.key for m in model.metrics} >= {"fitness", "val_accuracy", "exit_tick_mean"}

    card = (tmp_path / "child" / "MODEL_CARD.md").read_text()
    chain = first_parent_chain(campaign.records, campaign.child)
    assert len(chain) >= 2
    assert " → ".join(f"`{h[:8]}`" for h in chain) + " (this)" in card
    assert f"`{chain[0]}` — founder" in card and campaign.child.proposal.operator in card


def test_export_from_mlflow_alone_by_run_id_and_by_cell(campaign, tmp_path):
    from search.export import locate

    child = campaign.child.genome
    by_campaign = locate(child.hash, campaign=campaign.root)
    found = locate(by_campaign.run_id, tracking_uri=campaign.uri)
    assert found.genome == child and found.task == TASK and found.checkpoint is not None
    assert found.checkpoint == (campaign.root / "checkpoints" / f"{child.hash}.safetensors").read_bytes()
    assert found.record.result.per_tick_accuracy == by_campaign.record.result.per_tick_accuracy
    assert found.record.proposal.parents == campaign.child.proposal.parents
    out = tmp_path / "cell"
    cell = "(" + campaign.cell.replace("_", ", ") + ")"
    assert ctmevo("export", "--cell", cell, "--campaign", campaign.root, "--out", out, "--no-mlflow") == 0
    assert yaml.safe_load((out / "genome.yaml").read_text())["hash"] == child.hash
    assert locate(cell=campaign.cell, tracking_uri=campaign.uri).genome == child


def test_export_without_a_checkpoint_writes_no_weights_and_says_how_to_train(campaign, tmp_path):
    if campaign.bare is None:
        pytest.skip("every evaluation of this campaign has a checkpoint in MLflow")
    out = tmp_path / "bare"
    assert ctmevo("export", campaign.bare.genome.hash, "--campaign", campaign.root, "--out", out,
                  "--no-mlflow") == 0
    assert not (out / "weights.safetensors").exists()
    assert "none: the campaign kept no checkpoint" in (out / "MODEL_CARD.md").read_text()


def test_export_best_by_a_lower_is_better_metric(campaign):
    from search.export import locate

    found = locate(best=True, by="min:descriptor.ticks", campaign=campaign.root)
    assert found.genome.ticks == min(r.genome.ticks for r in campaign.records)
    found = locate(best=True, by="ece", campaign=campaign.root)
    assert found.record.result.metrics["ece"] == min(r.result.metrics["ece"] for r in campaign.records)


@pytest.mark.parametrize(("args", "message"), [
    (["export", "--best", "--campaign", "no/such/dir", "--out", "x"], "not a campaign directory"),
    (["export", "ffffffff", "--campaign", "{c}", "--out", "x"], "no evaluation with this genome hash"),
    (["export", "--by", "ece", "--campaign", "{c}", "--out", "x"], "--by METRIC goes with --best"),
    (["export", "--best", "--cell", "1", "--campaign", "{c}", "--out", "x"], "exactly one"),
    (["export", "--best", "--by", "nonsense", "--campaign", "{c}", "--out", "x"], "known metrics"),
])
def test_export_bad_input_exits_2(campaign, tmp_path, capsys, args, message):
    args = [a.replace("{c}", str(campaign.root)) for a in args]
    assert ctmevo(*args) == 2
    assert message in capsys.readouterr().err


@pytest.fixture(scope="module")
def bundle(campaign, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bundle") / "b"
    assert ctmevo("export", campaign.best.genome.hash, "--campaign", campaign.root, "--out", out,
                  "--no-mlflow") == 0
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


def test_train_logs_to_the_source_store_by_default_with_a_card_and_progress_lines(bundle, campaign, tmp_path,
                                                                                   capsys, monkeypatch):
    from mlflow import MlflowClient

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    out = tmp_path / "run"
    assert ctmevo("train", bundle, "--steps", "4", "--eval-every", "2", "--eval-samples", "16",
                  "--checkpoint-every", "2", "--out", out) == 0
    printed = capsys.readouterr().out  # not a terminal: progress lines instead of a bar
    assert f"MLflow: logging to {campaign.uri} (the store of source campaign" in printed
    assert "step 2/4 (50%)" in printed and "val " in printed and "training finished at step 4" in printed
    client = MlflowClient(campaign.uri)
    runs = client.search_runs([client.get_experiment_by_name("ctmevo-training").experiment_id],
                              f"tags.`ctmevo.train.genome_hash` = '{campaign.best.genome.hash}'")
    source = yaml.safe_load((bundle / "model.yaml").read_text())["source"]
    run = next(r for r in runs if r.info.run_id in printed)
    assert run.data.tags["ctmevo.source_run_id"] == source["run_id"]
    assert f"runs/{source['run_id']}?" in run.data.tags["mlflow.note.content"]  # a link to the evaluation run
    card = (out / "bundle" / "MODEL_CARD.md").read_text()
    assert f"source evaluation run: `{source['run_id']}`" in card and f"training run: `{run.info.run_id}`" in card
    assert "| val_accuracy |" in card and "| steps | 4 |" in card and "load_bundle" in card
    assert "MODEL_CARD.md" in {Path(a.path).name for a in client.list_artifacts(run.info.run_id, "bundle")}


def yaml_genome(bundle: Path):
    from ctm.bundle import read_genome

    return read_genome(bundle)


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
        source.write_text(to_yaml(yaml_genome(bundle)))
    code = ctmevo("train", source, *extra, "--steps", "2", "--out", tmp_path / "out", "--no-mlflow",
                  "--no-progress")
    err = capsys.readouterr().err
    assert code == 2, err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "out" / "checkpoints").exists()


def test_export_reads_a_store_written_before_detail_files(tmp_path: Path) -> None:
    """Stores written by earlier ctmevo keep each run's genome.yaml and its curves as metric histories."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    from search.export import locate

    uri = f"sqlite:///{tmp_path / 'old.db'}"
    client = MlflowClient(uri)
    exp = client.create_experiment("old", artifact_location=(tmp_path / "artifacts").as_uri())
    campaign = client.create_run(exp, tags={"ctmevo.kind": "campaign", "ctmevo.campaign": "old"}).info.run_id
    client.log_text(campaign, yaml.safe_dump(CONFIG), "config.yaml")
    genome = Genome(ticks=3, memory_length=2, d_model=16, d_input=8, heads=2, nlm_hidden=4, n_sync_out=4,
                    n_sync_action=4, n_self_pairs=0)
    run = client.create_run(exp, tags={"ctmevo.kind": "evaluation", "ctmevo.campaign": "old", "ctmevo.status": "ok",
                                       "ctmevo.genome_hash": genome.hash, "mlflow.parentRunId": campaign}).info.run_id
    client.log_text(run, to_yaml(genome), "genome.yaml")
    client.log_batch(run, metrics=[Metric("fitness", 0.6, 1, 0)] + [
        Metric("tick_accuracy", 0.1 * t, 1, t) for t in (1, 2, 3)])
    found = locate(run, tracking_uri=uri)
    assert found.genome == genome and found.record.result.per_tick_accuracy == pytest.approx([0.1, 0.2, 0.3])
