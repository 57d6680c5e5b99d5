"""Faults a user meets, each reproduced with real processes and real files (issue 11): bad or odd input ends in
exit 2 with one message naming the file, the field, the value and what is allowed; an operational failure (a
tracking server or a Ray cluster that does not answer) in exit 1 saying what to do next; never a traceback,
never a hang, never a message of megabytes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from search.campaign import Campaign, start
from search.campaign.config import load_campaign_config
from search.journal import Journal
from tests.search.mlflow_helpers import free_port
from tests.search.test_campaign import results_in

ROOT = Path(__file__).resolve().parents[2]
FAKE = "tests.search.campaign_fakes:landscape_evaluate"
MAX_MESSAGE = 2000  # characters: every message here is a few lines


def config(tmp: Path, name: str = "faulty", **changes) -> dict:
    base = {
        "name": name, "seed": 5, "output_dir": str(tmp / name),
        "task": {"name": "parity", "params": {"length": 4}},
        "genome_space": {"ticks": {"min": 1, "max": 20}, "memory_length": {"min": 1, "max": 8},
                         "d_model": {"min": 16, "max": 64}, "d_input": {"min": 16, "max": 32}},
        "strategy": {"name": "map_elites", "settings": {"initial_samples": 6}},
        "descriptors": [{"name": "ticks", "bins": 5, "range": [1, 21]},
                        {"name": "memory_length", "bins": 4, "range": [1, 9]}],
        "evaluation": {"steps": 5}, "budget": {"evaluations": 6},
        "workers": {"backend": "inline", "evaluate_fn": FAKE},
        "tracking": {"checkpoints": "elites"}, "snapshot_every": 100,
    }
    for dotted, value in changes.items():
        *parents, leaf = dotted.split("__")
        node = base
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return base


def write(tmp: Path, data: dict, file: str = "campaign.yaml") -> Path:
    path = tmp / file
    path.write_text(yaml.safe_dump(data, width=10**9))
    return path


def ctmevo(*args: str, cwd: Path = ROOT, extra_path: Path | None = None, timeout: float = 120,
           **env: str) -> subprocess.CompletedProcess:
    paths = [str(ROOT), *([str(extra_path)] if extra_path else [])]
    full_env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths), "CTMEVO_TEST_EVAL_SLEEP": "0.01", **env}
    full_env.pop("CTMEVO_TRACEBACK", None)
    return subprocess.run([sys.executable, "-m", "search.cli", *args], capture_output=True, text=True,
                          cwd=cwd, env=full_env, timeout=timeout)


def refused(out: subprocess.CompletedProcess, status: int, *needles: str) -> str:
    """Assert one clear message: the exit status, no traceback, bounded, containing every needle."""
    assert out.returncode == status, f"exit {out.returncode}\n{out.stdout[-2000:]}\n{out.stderr[-4000:]}"
    assert "Traceback" not in out.stderr, out.stderr[-4000:]
    assert len(out.stderr) < MAX_MESSAGE, out.stderr[:3000]
    for needle in needles:
        assert needle in out.stderr, f"{needle!r} not in:\n{out.stderr}"
    return out.stderr


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A finished 6-evaluation campaign (inline, fake evaluations); tests copy it before damaging it."""
    tmp = tmp_path_factory.mktemp("finished")
    campaign = start(write(tmp, config(tmp, "done")))
    campaign.run()
    return campaign.paths.root


def copy_of(finished: Path, tmp: Path) -> Path:
    target = tmp / "copy"
    shutil.copytree(finished, target, ignore=shutil.ignore_patterns("campaign.lock"))
    return target


# -- files that are not campaign files (fast: refused before any heavy import) -----------------------------
def _alias_bomb() -> str:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, 9):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    return "\n".join(lines) + "\nname: bomb\n"


@pytest.mark.parametrize(("make", "needles"), [
    (lambda p: p.mkdir(), ["is a directory, not a genome or campaign file"]),
    (lambda p: p.write_text(""), ["the file is empty"]),
    (lambda p: p.write_bytes(b"\x7fELF\x02\x01\x01\x00" + bytes(range(256))), ["not UTF-8 text"]),
    (lambda p: p.write_bytes("name: café\n".encode("latin-1")), ["not UTF-8 text (byte 0xe9", "save", "UTF-8"]),
    (lambda p: p.write_text(_alias_bomb()), ["aliases", "more than 200,000 values"]),
    (lambda p: p.write_text("x: " + "[" * 3000 + "]" * 3000 + "\n"), ["nested too deeply"]),
    (lambda p: p.write_text("name: " + "n" * (5 * 2**20) + "\n"), ["larger than 4,194,304 bytes"]),
    (lambda p: os.mkfifo(p), ["not a regular file"]),
    (lambda p: p.write_text("genes: [unclosed\n"), ["malformed YAML"]),
    (lambda p: p.write_text("name: a\nbudget: {evaluations: 3}\nbudget: {evaluations: 9}\n"),
     ["line 3: key 'budget' is given twice", "first on line 2"]),
], ids=["directory", "empty", "binary", "latin-1", "alias-bomb", "deep-nesting", "10MB", "fifo", "malformed",
        "duplicate-key"])
def test_validate_odd_files_exit_2_with_one_bounded_message(tmp_path, make, needles):
    path = tmp_path / "odd.yaml"
    make(path)
    started = time.monotonic()
    out = ctmevo("validate", str(path), timeout=60)
    refused(out, 2, str(path), *needles)
    assert time.monotonic() - started < 30  # no hang (a FIFO would block a plain open)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_an_unreadable_campaign_file_is_named(tmp_path):
    path = write(tmp_path, config(tmp_path))
    path.chmod(0)
    refused(ctmevo("validate", str(path)), 2, str(path), "cannot be read", "Permission denied")


# -- campaign files that validate used to accept and run then failed on ------------------------------------
def _syntax_error_module(tmp: Path) -> None:
    (tmp / "broken_task_mod.py").write_text("class Task:\n    def __init__(self:\n        pass\n")


def _raising_module(tmp: Path) -> None:
    (tmp / "raising_task_mod.py").write_text("class Task:\n    def __init__(self, **params):\n"
                                             "        raise ValueError('the data folder is missing')\n")


@pytest.mark.parametrize(("changes", "setup", "needles"), [
    ({"workers__backend": "ray", "workers__num_cpus": 0},
     None, ["workers.cpus_per_eval = 1.0: allowed is at most num_cpus = 0"]),
    ({"name": "n" * 300}, None, ["name = 'nnnn", "(302 characters)", "allowed is 1 to 191"]),
    ({"tracking__uri": "foo://bar"}, None, ["tracking.uri = 'foo://bar'", "unknown scheme 'foo'", "sqlite:///"]),
    ({"task__name": "broken_task_mod:Task"}, _syntax_error_module,
     ["task.name = 'broken_task_mod:Task'", "syntax error", "broken_task_mod.py, line 2"]),
    ({"task__name": "raising_task_mod:Task", "task__params": {}}, _raising_module,
     ["task.params = {}", "Task(**params) raised ValueError: the data folder is missing"]),
], ids=["num_cpus-0", "long-name", "unknown-uri-scheme", "task-syntax-error", "task-constructor-raises"])
def test_validate_rejects_what_run_could_never_do(tmp_path, changes, setup, needles):
    if setup:
        setup(tmp_path)
    path = write(tmp_path, config(tmp_path, **changes))
    refused(ctmevo("validate", str(path), extra_path=tmp_path), 2, str(path), *needles)


@pytest.mark.parametrize("kind", ["file", "proc"])
def test_an_output_dir_that_cannot_hold_a_campaign_is_refused_before_anything_is_created(tmp_path, kind):
    """More shapes (symlink loops, a file as parent, ...) in test_campaign_checks.py, in-process."""
    target = {"file": tmp_path / "taken", "proc": Path("/proc/ctmevo-x")}[kind]
    (tmp_path / "taken").write_text("not a directory")
    path = write(tmp_path, config(tmp_path, output_dir=str(target)))
    expected = {"file": "it is an existing file", "proc": "nothing can be created in /proc"}[kind]
    refused(ctmevo("run", str(path)), 2, f"output_dir = '{target}'", "allowed is a directory you can create",
            expected)
    assert (tmp_path / "taken").read_text() == "not a directory"


def test_run_with_a_long_name_creates_nothing(tmp_path):
    path = write(tmp_path, config(tmp_path, name="a" * 600, output_dir=str(tmp_path / "out")))
    refused(ctmevo("run", str(path)), 2, "allowed is 1 to 191")
    assert not (tmp_path / "out").exists()  # before: created, then a crash, and resume crashed too


# -- a damaged campaign directory ---------------------------------------------------------------------------
@pytest.mark.parametrize(("damage", "needles"), [
    (lambda d: _corrupt_line(d / "journal.jsonl", 3), ["journal.jsonl: line 3 is corrupt", "move the bad line"]),
    (lambda d: (d / "campaign.json").write_text("{oops"), ["campaign.json: not valid JSON", '"campaign_id": "done-']),
    (lambda d: (d / "campaign.json").write_text("{}"), ["campaign.json: damaged", '"campaign_id": "done-']),
    (lambda d: (d / "state.json").write_bytes(b"\xff\xfe{"), ["state.json: not valid JSON", "rm ", "rebuilt"]),
], ids=["journal-middle-line", "campaign-json-garbled", "campaign-json-empty", "state-json-binary"])
def test_a_damaged_campaign_is_refused_with_the_file_line_and_the_fix(tmp_path, finished, damage, needles):
    directory = copy_of(finished, tmp_path)
    damage(directory)
    refused(ctmevo("status", str(directory)), 2, *needles)


def _corrupt_line(path: Path, number: int) -> None:
    lines = path.read_bytes().split(b"\n")
    lines[number - 1] = b'{"event": "result", "rec'
    path.write_bytes(b"\n".join(lines))


def test_following_the_state_hint_recovers(tmp_path, finished):
    directory = copy_of(finished, tmp_path)
    (directory / "state.json").write_text("[]")  # valid JSON, wrong shape
    refused(ctmevo("status", str(directory)), 2, "state.json: damaged", f"rm {directory / 'state.json'}",
            "rebuilt from")
    (directory / "state.json").unlink()  # what the message says to do
    out = ctmevo("status", str(directory))
    assert out.returncode == 0, out.stderr
    assert "evaluations: 6 of 6" in out.stdout


def test_a_torn_last_journal_line_is_dropped_with_a_warning_and_its_evaluation_runs_again(tmp_path, finished):
    directory = copy_of(finished, tmp_path)
    journal = directory / "journal.jsonl"
    lines = journal.read_bytes().splitlines(keepends=True)
    last = json.loads(lines[-1])
    assert last["event"] == "result"
    torn_hash = last["record"]["result"]["genome_hash"]
    journal.write_bytes(b"".join(lines[:-1]) + lines[-1][: len(lines[-1]) // 2])  # killed in the middle of a write
    (directory / "state.json").unlink()  # the crash came before the next snapshot

    status = ctmevo("status", str(directory))
    assert status.returncode == 0, status.stderr
    assert "Traceback" not in status.stderr
    assert f"line {len(lines)} is incomplete" in status.stderr and "done again on resume" in status.stderr
    assert "evaluations: 5 of 6" in status.stdout and "to re-submit on resume 1" in status.stdout

    resumed = ctmevo("resume", str(directory))
    assert resumed.returncode == 0, resumed.stderr
    results = [e for e in Journal(journal).read() if e["event"] == "result"]
    hashes = [r["record"]["result"]["genome_hash"] for r in results]
    assert len(hashes) == 6 and hashes.count(torn_hash) == 1  # the torn evaluation ran again, once
    assert Campaign.open(directory).progress.done == 6


# -- servers and clusters that do not answer -------------------------------------------------------------------
def test_sync_while_the_tracking_server_is_down_says_how_many_wait_and_to_run_it_again(tmp_path):
    dead = f"http://127.0.0.1:{free_port()}"
    path = write(tmp_path, config(tmp_path, "offline", tracking__uri=dead))
    directory = tmp_path / "offline"
    ran = ctmevo("run", "--offline", str(path))
    assert ran.returncode == 0, ran.stderr
    assert "not yet in MLflow" in ran.stdout and f"ctmevo sync {directory}" in ran.stdout
    waiting = len(results_in(directory))
    assert waiting >= 6
    refused(ctmevo("sync", str(directory)), 1, f"tracking server at {dead} does not answer",
            f"{waiting} evaluation(s) still wait in", f"ctmevo sync {directory}")
    assert len(results_in(directory)) == waiting  # nothing lost: the journal is the queue


def test_lineage_with_the_tracking_server_down_exits_1_with_one_line():
    dead = f"http://127.0.0.1:{free_port()}"
    refused(ctmevo("lineage", "abc123", "--tracking-uri", dead), 1, f"tracking server at {dead} does not answer",
            "connection refused", "run the command again")


def test_lineage_of_a_campaign_whose_store_is_gone_reads_the_journal_and_creates_nothing(tmp_path, finished):
    directory = copy_of(finished, tmp_path)
    (directory / "mlflow.db").unlink()
    genome_hash = next(e for e in Journal(directory / "journal.jsonl").read()
                       if e["event"] == "result")["record"]["result"]["genome_hash"]
    out = ctmevo("lineage", genome_hash[:8], "--campaign", str(directory))
    assert out.returncode == 0, out.stderr
    assert f"lineage of {genome_hash}" in out.stdout and "comes from" in out.stderr and "Traceback" not in out.stderr
    assert not (directory / "mlflow.db").exists()  # before: an empty store was created and the hash "not found"


def test_export_from_a_tracking_server_that_is_down_exits_1(tmp_path):
    dead = f"http://127.0.0.1:{free_port()}"
    refused(ctmevo("export", "--best", "--tracking-uri", dead, "--out", str(tmp_path / "bundle")), 1,
            f"tracking server at {dead} does not answer", "run the command again")
    assert not (tmp_path / "bundle").exists()


def test_a_ray_address_where_nothing_answers_fails_in_seconds(tmp_path):
    address = f"127.0.0.1:{free_port()}"
    path = write(tmp_path, config(tmp_path, workers={"backend": "ray", "address": address, "evaluate_fn": FAKE}))
    started = time.monotonic()
    out = ctmevo("run", str(path), timeout=90)
    refused(out, 1, f"workers.address = '{address}'", "connection refused", "ray start --head",
            "Nothing was created", "run the same command again")
    assert time.monotonic() - started < 60  # it waited for minutes inside ray.init before
    assert not (tmp_path / "faulty").exists()  # so that the same command works once the cluster is up


def test_a_request_no_node_of_the_cluster_can_hold_is_refused_naming_request_and_nodes(tmp_path):
    """A local cluster of the machine's size (num_cpus unset): 4096 CPUs per evaluation can never start."""
    path = write(tmp_path, config(tmp_path, workers={"backend": "ray", "cpus_per_eval": 4096, "evaluate_fn": FAKE}))
    out = ctmevo("run", str(path), timeout=180, RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0")
    refused(out, 2, "workers.cpus_per_eval = 4096: allowed is at most", "the local Ray cluster", "node(s): 1 × {CPU")
    assert not [e for e in Journal(tmp_path / "faulty" / "journal.jsonl").read() if e["event"] == "result"]


# -- evaluations -------------------------------------------------------------------------------------------------
def test_a_cpu_allocation_failure_is_an_out_of_memory_retried_with_half_the_batch(tmp_path):
    path = write(tmp_path, config(tmp_path, "oom", budget__evaluations=2, genome_space__batch_size=32,
                                  genome_space__ticks={"min": 1, "max": 6},  # 7 and 14 ticks fail on purpose
                                  workers__evaluate_fn="tests.search.fault_fakes:oom_once_evaluate"))
    out = ctmevo("run", str(path))
    assert out.returncode == 0, out.stderr
    results = [e["record"]["result"] for e in Journal(tmp_path / "oom" / "journal.jsonl").read()
               if e["event"] == "result"]
    assert len(results) == 2
    for result in results:  # before: status "error", one attempt
        assert result["attempts"] == 2, result
        assert result["metrics"]["batch_size"] == 16.0


# -- commands pointed at the wrong thing -------------------------------------------------------------------------
def test_train_on_a_campaign_directory_says_to_export_first(finished):
    refused(ctmevo("train", str(finished)), 2, "is a directory but not a bundle",
            f"ctmevo export --best --campaign {finished}")


def test_validate_on_a_campaign_directory_points_to_status(finished):
    refused(ctmevo("validate", str(finished)), 2, "is a directory, not a genome or campaign file",
            f"ctmevo status {finished}")


def test_export_best_of_a_campaign_without_results_says_so(tmp_path):
    campaign = Campaign.create(load_campaign_config(write(tmp_path, config(tmp_path, "empty"))), tmp_path / "empty")
    assert not campaign.paths.journal.exists()
    refused(ctmevo("export", "--best", "--campaign", str(campaign.paths.root), "--out", str(tmp_path / "b")), 2,
            "no successful evaluation yet (0 finished)", "run or resume it first")
    status = ctmevo("status", str(campaign.paths.root))
    assert status.returncode == 0 and "evaluations: 0 of 6" in status.stdout


def test_ctrl_c_while_validate_loads_ends_in_one_line():
    proc = subprocess.Popen([sys.executable, "-m", "search.cli", "validate", "experiments/quickstart.yaml"],
                            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    # Interrupt it inside the imports of the campaign checks: once torch's library is mapped, its Python modules
    # are still loading (a fixed delay instead lands after the command on a fast machine, in interpreter shutdown).
    maps, deadline = Path(f"/proc/{proc.pid}/maps"), time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < deadline and "libtorch_cpu" not in maps.read_text():
        time.sleep(0.005)
    assert proc.poll() is None, "validate ended before torch was loading"
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
