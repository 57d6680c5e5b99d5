"""Bundles: written from a model, loaded in a fresh process with identical outputs; damage is refused clearly."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import yaml

from ctm import build_model, make_task
from ctm.bundle import BundleError, load_bundle, read_manifest, write_bundle
from ctm.result import TaskSpec
from genome import SCHEMA_VERSION, Genome

ROOT = Path(__file__).resolve().parents[2]
PARITY4 = TaskSpec(name="parity", params={"length": 4})


def tiny_genome(**genes: object) -> Genome:
    base: dict[str, object] = dict(d_model=16, d_input=8, heads=2, ticks=3, memory_length=2, nlm_hidden=4,
                                   n_sync_out=4, n_sync_action=4, batch_size=8)
    return Genome(**{**base, **genes})


def trained_like_model(genome: Genome, seed: int = 3) -> torch.nn.Module:
    """A model whose weights differ from a fresh build (as after training), so loading really matters."""
    model = build_model(genome, make_task(PARITY4), seed=seed)
    with torch.no_grad():
        gen = torch.Generator().manual_seed(11)
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen))
    return model.eval()


@pytest.fixture
def bundle(tmp_path: Path) -> tuple[Path, torch.nn.Module, Genome]:
    genome = tiny_genome()
    model = trained_like_model(genome)
    path = write_bundle(tmp_path / "b", genome=genome, task_spec=PARITY4, weights=model.state_dict(),
                        model_seed=3, source={"run_id": "abc"})
    return path, model, genome


def test_bundle_loads_in_a_fresh_process_with_identical_outputs(bundle, tmp_path):
    path, model, genome = bundle
    x, _ = make_task(PARITY4).batch("val", 0, 5, seed=1)
    torch.save(x, tmp_path / "x.pt")
    with torch.no_grad():
        expected_p, expected_c = model(x)
    script = textwrap.dedent(f"""
        import sys, torch
        torch.set_num_threads(1)
        from ctm.bundle import load_bundle
        model, genome, task = load_bundle({str(path)!r})
        x = torch.load({str(tmp_path / 'x.pt')!r}, weights_only=True)
        with torch.no_grad():
            p, c = model(x)
        torch.save({{"p": p, "c": c, "hash": genome.hash}}, {str(tmp_path / 'out.pt')!r})
        heavy = sorted(m for m in ("mlflow", "ray", "search") if m in sys.modules)
        print("HEAVY", heavy)
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert "HEAVY []" in out.stdout  # loading needs torch, ctm and genome only
    got = torch.load(tmp_path / "out.pt", weights_only=True)
    assert got["hash"] == genome.hash
    assert torch.equal(got["p"], expected_p) and torch.equal(got["c"], expected_c)


def test_bundle_files_are_readable_without_ctmevo(bundle):
    path, _, genome = bundle
    assert sorted(p.name for p in path.iterdir()) == ["genome.yaml", "model.yaml", "weights.safetensors"]
    doc = yaml.safe_load((path / "model.yaml").read_text())
    assert doc["bundle_version"] == 1 and doc["genome_hash"] == genome.hash
    assert doc["model"]["d_model"] == 16 and doc["model"]["task"]["out_positions"] == 4
    assert doc["cost"]["parameters"] == sum(p.numel() for p in load_bundle(path).model.parameters())
    g = yaml.safe_load((path / "genome.yaml").read_text())
    assert g["schema_version"] == SCHEMA_VERSION and g["hash"] == genome.hash


def test_bundle_unpacks_and_keeps_its_task(bundle):
    path, _, genome = bundle
    loaded = load_bundle(path / "model.yaml")
    model, g, task = loaded
    assert g == genome and task.shape.out_positions == 4 and not model.training
    assert loaded.has_weights and loaded.source == {"run_id": "abc"}


def _flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def test_tampered_weights_are_rejected(bundle):
    path, _, _ = bundle
    weights = path / "weights.safetensors"
    _flip_byte(weights, weights.stat().st_size - 3)  # a bit inside a tensor: still parses, wrong numbers
    with pytest.raises(BundleError, match=r"sha256 .* does not match"):
        load_bundle(path)


def test_truncated_weights_are_rejected(bundle):
    path, _, _ = bundle
    weights = path / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(BundleError, match="truncated"):
        load_bundle(path)


def test_missing_weights_file_is_rejected(bundle):
    path, _, _ = bundle
    (path / "weights.safetensors").unlink()
    with pytest.raises(BundleError, match="missing"):
        load_bundle(path)


def test_newer_bundle_and_genome_schema_are_rejected(bundle):
    path, _, _ = bundle
    manifest = path / "model.yaml"
    text = manifest.read_text()
    manifest.write_text(text.replace("bundle_version: 1", "bundle_version: 7"))
    with pytest.raises(BundleError, match="newer ctmevo"):
        read_manifest(path)
    manifest.write_text(text)
    genome_file = path / "genome.yaml"
    genome_file.write_text(genome_file.read_text().replace(f"schema_version: {SCHEMA_VERSION}",
                                                           f"schema_version: {SCHEMA_VERSION + 7}"))
    with pytest.raises(BundleError, match="newer ctmevo"):
        load_bundle(path)


def test_task_whose_shapes_do_not_match_the_weights_is_rejected(bundle):
    path, _, _ = bundle
    with pytest.raises(BundleError, match=r"out_positions: expected 4, got 8"):
        load_bundle(path, task=TaskSpec(name="parity", params={"length": 8}))
    assert load_bundle(path, task=TaskSpec(name="parity", params={"length": 8}), weights=False).task.length == 8


def test_weights_of_another_architecture_are_refused_before_writing(tmp_path):
    other = trained_like_model(tiny_genome(d_model=20))
    target = tmp_path / "b"
    with pytest.raises(BundleError, match="shape mismatch"):
        write_bundle(target, genome=tiny_genome(), task_spec=PARITY4, weights=other.state_dict())
    assert not target.exists() or not any(target.iterdir())


def test_existing_directory_is_not_overwritten_without_permission(bundle):
    path, _, genome = bundle
    before = (path / "weights.safetensors").read_bytes()
    with pytest.raises(BundleError, match="not empty"):
        write_bundle(path, genome=genome, task_spec=PARITY4, weights=None)
    assert (path / "weights.safetensors").read_bytes() == before
    write_bundle(path, genome=genome, task_spec=PARITY4, weights=None, overwrite=True)
    assert not load_bundle(path).has_weights and not (path / "weights.safetensors").exists()


def test_campaign_checkpoint_bytes_round_trip(tmp_path):
    from safetensors.torch import save

    genome = tiny_genome()
    model = trained_like_model(genome)
    blob = save({k: v.contiguous() for k, v in model.state_dict().items()})
    path = write_bundle(tmp_path / "b", genome=genome, task_spec=PARITY4, weights=blob)
    loaded = load_bundle(path)
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[key], value)
    with pytest.raises(BundleError, match="not a readable safetensors"):
        write_bundle(tmp_path / "c", genome=genome, task_spec=PARITY4, weights=b"not safetensors")
