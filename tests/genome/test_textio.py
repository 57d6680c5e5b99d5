"""Bounded reading of user files: regular UTF-8 files of bounded size, YAML with bounded alias expansion."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from genome import FileReadError, Genome, GenomeError, load, to_yaml
from genome.textio import parse_yaml, read_text


def bomb(levels: int) -> str:
    lines = ["l0: &l0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


def test_an_alias_bomb_is_refused_quickly_with_a_short_message() -> None:
    started = time.monotonic()
    with pytest.raises(FileReadError, match="aliases") as info:
        parse_yaml(bomb(30), source="bomb.yaml")  # 10**30 values once expanded
    assert time.monotonic() - started < 2 and len(str(info.value)) < 300
    assert str(info.value).startswith("bomb.yaml: ")


def test_ordinary_aliases_and_merge_keys_still_load() -> None:
    doc = parse_yaml("base: &b {steps: 5, seconds: 2}\nlong: {<<: *b, steps: 50}\nsame: *b\n", source="s")
    assert doc["long"] == {"steps": 50, "seconds": 2} and doc["same"] == {"steps": 5, "seconds": 2}
    assert len(parse_yaml(bomb(4), source="s")["l3"]) == 10  # 10,000 values: fine


def test_recursive_aliases_and_deep_nesting_are_refused() -> None:
    with pytest.raises(FileReadError, match="recursive alias"):
        parse_yaml("a: &a [1, *a]\n", source="s")
    with pytest.raises(FileReadError, match="nested too deeply"):
        parse_yaml("[" * 150 + "]" * 150, source="s")
    with pytest.raises(FileReadError, match="nested too deeply"):
        parse_yaml("[" * 5000 + "]" * 5000, source="s")  # deeper than Python's recursion limit


def test_read_text_names_what_is_wrong_with_the_file(tmp_path: Path) -> None:
    with pytest.raises(FileReadError, match="no such campaign file"):
        read_text(tmp_path / "nope.yaml", what="campaign file")
    with pytest.raises(FileReadError, match="is a directory, not a campaign file"):
        read_text(tmp_path, what="campaign file")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(FileReadError, match="not a regular file"):
        read_text(fifo)  # a plain open() would block until a writer comes
    big = tmp_path / "big.yaml"
    big.write_bytes(b"x" * 101)
    with pytest.raises(FileReadError, match="larger than 100 bytes"):
        read_text(big, max_bytes=100)
    latin = tmp_path / "latin.yaml"
    latin.write_bytes("name: café".encode("latin-1"))
    with pytest.raises(FileReadError, match=r"not UTF-8 text \(byte 0xe9 at offset 9\)"):
        read_text(latin)
    assert read_text(big, max_bytes=101) == "x" * 101


def test_genome_files_are_read_bounded(tmp_path: Path) -> None:
    latin = tmp_path / "g.yaml"
    latin.write_bytes(to_yaml(Genome()).encode() + "# café\n".encode("latin-1"))
    with pytest.raises(GenomeError, match="not UTF-8"):
        load(latin)
    bombed = tmp_path / "b.yaml"
    bombed.write_text(bomb(12) + "genes: {ticks: 3}\n")
    with pytest.raises(GenomeError, match="aliases"):
        load(bombed)
    assert load(_good(tmp_path)).ticks == Genome().ticks


def _good(tmp_path: Path) -> Path:
    path = tmp_path / "good.yaml"
    path.write_text(to_yaml(Genome()))
    return path


def test_a_key_given_twice_is_refused_with_both_lines() -> None:
    text = "name: a\nbudget: {evaluations: 3}\nseed: 1\nbudget: {evaluations: 9}\n"
    with pytest.raises(FileReadError, match=r"c\.yaml: line 4: key 'budget' is given twice .*first on line 2"):
        parse_yaml(text, source="c.yaml")
    assert parse_yaml("a: {x: 1}\nb: {x: 2}\n1: one\n'1': text\n", source="s")["b"] == {"x": 2}  # other mappings
