"""The ``ctmevo`` command line as a user runs it: real processes, exit codes and messages."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from genome import Genome, to_yaml

ROOT = Path(__file__).resolve().parents[1]
CTMEVO = [sys.executable, "-m", "search.cli"]


def ctmevo(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([*CTMEVO, *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=300)


def test_help_lists_every_command_and_each_has_help():
    out = ctmevo("--help")
    assert out.returncode == 0
    commands = re.findall(r"^    ([\w-]+)\s", out.stdout, flags=re.M)
    assert {"validate", "run", "resume", "status", "sync", "lineage", "export", "train", "presets",
            "import-reference", "export-reference"} <= set(commands)
    for command in commands:
        sub = ctmevo(command, "--help")
        assert sub.returncode == 0, sub.stderr
        assert "usage: ctmevo " + command in sub.stdout


def test_validate_a_good_genome_prints_hash_and_parameter_count(tmp_path):
    path = tmp_path / "g.yaml"
    path.write_text(to_yaml(Genome(ticks=10)))
    out = ctmevo("validate", str(path))
    assert out.returncode == 0, out.stderr
    assert Genome(ticks=10).hash in out.stdout and "parameters" in out.stdout
    assert len(out.stdout.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("genes: [unclosed", "malformed YAML"),
        ("schema_version: 1\ngenes: {tiks: 3}\n", "tiks"),
        ("schema_version: 1\ngenes: {ticks: many}\n", "ticks = 'many'"),
        ("schema_version: 1\ngenes: {ticks: 0, dropout: 3}\n", "ticks = 0: allowed is an integer in [1, 1000]"),
        ("schema_version: 99\ngenes: {}\n", "newer ctmevo"),
    ],
)
def test_validate_bad_genome_files_exit_2_naming_file_and_gene(tmp_path, text, expected):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    out = ctmevo("validate", str(path))
    assert out.returncode == 2
    assert expected in out.stderr
    assert "bad.yaml" in out.stderr
    assert "Traceback" not in out.stderr


def test_validate_a_missing_file_exits_2():
    out = ctmevo("validate", "no/such/file.yaml")
    assert out.returncode == 2 and "no such file" in out.stderr


def test_presets_lists_the_papers_configurations():
    out = ctmevo("presets")
    assert out.returncode == 0, out.stderr
    assert re.search(r"^parity-paper\s+parity \(length 64\)\s+T=75 M=25 D=1024 D_in=512", out.stdout, flags=re.M)
    assert "maze-paper" in out.stdout and "seed_genomes" in out.stdout


def test_import_reference_writes_a_bundle_that_train_accepts_and_bad_input_exits_2(tmp_path):
    from tests.ctm.test_reference import fixture, reference_checkpoint

    args, state, _ = fixture("random_glu")
    checkpoint = reference_checkpoint(tmp_path / "checkpoint_19.pt", state, args)
    out = ctmevo("import-reference", str(checkpoint), "--out", str(tmp_path / "bundle"))
    assert out.returncode == 0, out.stderr
    trained = ctmevo("train", str(tmp_path / "bundle"), "--steps", "3", "--eval-every", "3", "--eval-samples", "8",
                     "--out", str(tmp_path / "run"), "--no-progress")
    assert trained.returncode == 0, trained.stderr
    back = ctmevo("export-reference", str(tmp_path / "bundle"), "--out", str(tmp_path / "back.pt"))
    assert back.returncode == 0 and (tmp_path / "back.pt").is_file(), back.stderr
    missing = ctmevo("import-reference", str(tmp_path / "nope.pt"), "--out", str(tmp_path / "b2"))
    assert missing.returncode == 2 and "no such checkpoint file" in missing.stderr
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    junk = ctmevo("import-reference", str(tmp_path / "junk.pt"), "--out", str(tmp_path / "b3"))
    assert junk.returncode == 2 and "Traceback" not in junk.stderr and "junk.pt" in junk.stderr
