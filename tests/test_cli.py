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
    assert out.returncode == 2 and "no such genome or campaign file" in out.stderr


def test_an_unexpected_failure_is_one_line_naming_a_report_file(monkeypatch, tmp_path, capsys):
    """The last net of main(): a bug becomes one line and a file with the traceback, exit 1; an OSError names
    the path and the OS error; a lower layer's input error is exit 2."""
    import tempfile

    from search.cli import app
    from search.cli.base import Command
    from workers import WorkersConfigError

    failures = iter([RuntimeError("boom\nsecond line"), OSError(28, "No space left on device", "/data/x"),
                     WorkersConfigError([("num_cpus", -1, "a whole number >= 0")])])

    def fail(args):
        raise next(failures)

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(app, "COMMANDS", [Command("boom", "fail", lambda p: None, fail)])
    monkeypatch.delenv("CTMEVO_TRACEBACK", raising=False)
    assert app.main(["boom"]) == 1
    err = capsys.readouterr().err
    assert "unexpected failure: RuntimeError: boom" in err and "second line" not in err and "Traceback" not in err
    [report] = tmp_path.glob("ctmevo-error-*.txt")
    assert str(report) in err and "Traceback" in report.read_text() and "second line" in report.read_text()
    assert app.main(["boom"]) == 1
    assert "/data/x: [Errno 28] No space left on device" in capsys.readouterr().err
    assert app.main(["boom"]) == 2
    assert "workers.num_cpus = -1: allowed is a whole number >= 0" in capsys.readouterr().err


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
    again = ctmevo("import-reference", str(checkpoint), "--out", str(tmp_path / "bundle"))
    assert again.returncode == 2 and "not empty" in again.stderr and "--force" in again.stderr, again.stderr
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


def test_ui_refuses_a_busy_port_at_once(tmp_path, capsys):
    import json
    import socket

    from search.cli import main

    (tmp_path / "campaign.json").write_text(json.dumps({"campaign_id": "c-1", "created": 0, "state_version": 1}))
    (tmp_path / "campaign.yaml").write_text("name: c\n")
    (tmp_path / "mlflow.db").write_bytes(b"")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["ui", str(tmp_path), "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert f"--port {port}: 127.0.0.1:{port} is in use" in err and "Traceback" not in err
