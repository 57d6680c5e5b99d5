"""The journal: append + fsync, torn final lines, corruption, atomic snapshots, followers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from genome import Genome
from search import journal as journal_module
from search.journal import Journal, JournalCorruptError, JsonLines, JsonLinesFollower, read_json, write_atomic
from tests.search.mlflow_helpers import make_record


def _records(n: int) -> list:
    return [make_record(Genome(ticks=10 + i), campaign="c", birth=i) for i in range(n)]


def test_append_and_read_round_trip(tmp_path: Path) -> None:
    records = _records(3)
    with Journal(tmp_path / "j.jsonl") as journal:
        for record in records:
            journal.append(record)
        journal.append({"event": "ask", "births": [3]})
    journal = Journal(tmp_path / "j.jsonl")
    assert [r.genome.hash for r in journal.records()] == [r.genome.hash for r in records]
    assert journal.records()[1].to_dict() == records[1].to_dict()
    assert len(journal.read()) == 4 and journal.read()[3] == {"event": "ask", "births": [3]}


def test_records_reads_campaign_result_events(tmp_path: Path) -> None:
    record = _records(1)[0]
    with Journal(tmp_path / "j.jsonl") as journal:
        journal.append({"event": "ask", "births": [0], "proposals": [record.proposal.to_dict()]})
        journal.append({"event": "result", "record": record.to_dict()})
    assert [r.genome.hash for r in Journal(tmp_path / "j.jsonl").records()] == [record.genome.hash]


def test_every_append_is_fsynced_before_returning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(journal_module.os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    journal = Journal(tmp_path / "j.jsonl")
    for i, record in enumerate(_records(3), start=1):
        journal.append(record)
        file_syncs = [fd for fd in synced if not os.path.isdir(f"/proc/self/fd/{fd}")]
        assert len(file_syncs) >= i  # the file was fsynced by the time append returned
        assert len((tmp_path / "j.jsonl").read_bytes().splitlines()) == i
    journal.close()


def test_non_finite_numbers_become_null(tmp_path: Path) -> None:
    record = _records(1)[0]
    record.extra["novelty"] = float("nan")
    with Journal(tmp_path / "j.jsonl") as journal:
        journal.append(record)
    line = (tmp_path / "j.jsonl").read_text()
    assert "NaN" not in line and json.loads(line)["extra"]["novelty"] is None


def test_torn_last_line_is_ignored_then_truncated(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    with Journal(path) as journal:
        for record in _records(2):
            journal.append(record)
    whole = path.read_bytes()
    path.write_bytes(whole + b'{"campaign": "c", "birth": 2, "prop')  # killed mid-write
    assert len(Journal(path).records()) == 2
    assert path.read_bytes().endswith(b"prop")  # reading never changes the file
    with Journal(path) as journal:
        journal.append(_records(3)[2])  # opening for append drops the torn tail first
    lines = path.read_bytes().splitlines()
    assert len(lines) == 3 and all(json.loads(line) for line in lines)
    assert [r.birth for r in Journal(path).records()] == [0, 1, 2]


def test_torn_tail_of_nul_bytes_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    lines = JsonLines(path)
    lines.append({"a": 1})
    lines.close()
    with open(path, "ab") as handle:
        handle.write(b"\x00" * 64)  # a crash after the size grew but before the data landed
    assert JsonLines(path).read() == [{"a": 1}]


def test_a_garbled_newline_terminated_last_line_is_torn_too(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Power loss can keep a line's newline but not all its bytes: the last line only is dropped, with one
    warning naming the file and line, and truncated before the next append."""
    path = tmp_path / "j.jsonl"
    with JsonLines(path) as lines:
        lines.extend([{"a": 1}, {"b": 2}])
    path.write_bytes(path.read_bytes() + b'{"c": \x00\x00\x00\n')
    reader = Journal(path)
    with caplog.at_level("WARNING", logger="ctmevo.journal"):
        assert reader.read() == [{"a": 1}, {"b": 2}]
        assert reader.read() == [{"a": 1}, {"b": 2}]
    assert reader.torn is not None and reader.torn.line == 3
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "j.jsonl: line 3 is incomplete" in warnings[0] and "resume" in warnings[0]
    with JsonLines(path) as lines:
        lines.append({"d": 4})
    assert JsonLines(path).read() == [{"a": 1}, {"b": 2}, {"d": 4}]


def test_journal_and_snapshot_damage_are_campaign_errors_the_cli_prints(tmp_path: Path) -> None:
    from search.errors import CampaignError

    path = tmp_path / "j.jsonl"
    path.write_text('{"a": 1}\n{oops\n{"b": 2}\n')
    with pytest.raises(CampaignError, match="line 2 is corrupt"):
        JsonLines(path).read()
    (tmp_path / "s.json").write_bytes(b"\xff{")
    with pytest.raises(CampaignError, match=r"s\.json: not valid JSON \(byte 0xff at offset 0"):
        read_json(tmp_path / "s.json")


def test_corruption_in_the_middle_raises_clearly(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    with JsonLines(path) as lines:
        lines.extend([{"a": 1}, {"b": 2}, {"c": 3}])
    data = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(data[0] + b'{"b": 2, oops\n' + data[2])
    with pytest.raises(JournalCorruptError, match=r"j\.jsonl: line 2 is corrupt") as info:
        JsonLines(path).read()
    assert info.value.line == 2
    with pytest.raises(JournalCorruptError):
        JsonLines(path).append({"d": 4})  # nothing is appended after damage
    assert path.read_bytes().count(b"\n") == 3


def test_a_line_that_is_not_a_record_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    path.write_text('[1, 2]\n')
    with pytest.raises(JournalCorruptError, match="not an object"):
        Journal(path).read()
    path.write_text('{"campaign": "c"}\n')
    with pytest.raises(JournalCorruptError, match="not an evaluation record"):
        Journal(path).records()


def test_killed_writer_leaves_a_readable_journal(tmp_path: Path) -> None:
    """A real process SIGKILLed while appending: every line it finished is there, the rest is ignored."""
    path = tmp_path / "j.jsonl"
    code = ("import sys; from search.journal import JsonLines\n"
            "lines = JsonLines(sys.argv[1])\n"
            "for i in range(10**6):\n"
            "    lines.append({'i': i, 'pad': 'x' * 3000})\n"
            "    print(i, flush=True)\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, text=True,
                            cwd=Path(__file__).resolve().parents[2])
    acknowledged = -1
    for line in proc.stdout:
        acknowledged = int(line)
        if acknowledged >= 30:
            break
    proc.kill()
    proc.wait()
    proc.stdout.close()
    entries = JsonLines(path).read()
    assert [e["i"] for e in entries] == list(range(len(entries)))
    assert len(entries) >= acknowledged + 1  # everything acknowledged (append returned) survived


def test_write_atomic_and_read_json(tmp_path: Path) -> None:
    path = tmp_path / "state" / "s.json"
    write_atomic(path, {"x": [1, 2.5, float("inf")], "y": "z"})
    assert read_json(path) == {"x": [1, 2.5, None], "y": "z"}
    write_atomic(path, {"x": 2})
    assert read_json(path) == {"x": 2}
    write_atomic(tmp_path / "raw.bin", b"\x00\x01")
    assert (tmp_path / "raw.bin").read_bytes() == b"\x00\x01"
    assert sorted(p.name for p in path.parent.iterdir()) == ["s.json"]  # no temporary files left


def test_write_atomic_keeps_the_old_file_when_writing_fails(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    write_atomic(path, {"old": True})
    with pytest.raises(TypeError):
        write_atomic(path, {"bad": object()})
    assert read_json(path) == {"old": True}
    assert [p.name for p in tmp_path.iterdir()] == ["s.json"]


def test_read_json_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nope\.json"):
        read_json(tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ValueError, match=r"bad\.json: not valid JSON"):
        read_json(tmp_path / "bad.json")


def test_a_follower_reads_complete_lines_as_they_come_and_resumes_from_its_offset(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    follower = JsonLinesFollower(path)
    assert follower.read() == []  # no file yet
    with JsonLines(path) as lines:
        lines.extend([{"n": 0}, {"n": 1}])
    got = follower.read()
    assert [obj["n"] for _, obj in got] == [0, 1] and got[-1][0] == follower.offset == path.stat().st_size
    with path.open("ab") as fh:
        fh.write(b'{"n": 2}\n{"n": 3')  # a line being written: left for later
    assert [obj["n"] for _, obj in follower.read()] == [2]
    with path.open("ab") as fh:
        fh.write(b"}\n")
    assert [obj["n"] for _, obj in follower.read()] == [3]
    again = JsonLinesFollower(path, got[0][0])  # a consumer restarted from its saved cursor
    assert [obj["n"] for _, obj in again.read()] == [1, 2, 3]
    with path.open("ab") as fh:
        fh.write(b"not json\n")
    with pytest.raises(JournalCorruptError, match="line"):
        follower.read()


def test_proposals_journaled_before_the_genome_schema_was_recorded_read_back_as_they_were() -> None:
    from genome import Genome
    from search.records import Proposal

    genome = Genome(ticks=7, positional_embedding="learned")  # what every genome was before schema 2
    old = Proposal(genome=genome).to_dict()
    del old["schema"]
    del old["genes"]["positional_embedding"]  # a schema-1 journal line
    assert Proposal.from_dict(old).genome == genome and Proposal.from_dict(old).genome_hash == genome.hash
    assert Proposal.from_dict(Proposal(genome=genome).to_dict()).genome == genome
