"""rank_score: one number in the order of `ctmevo status`, kept current in the runs table as results arrive."""

from __future__ import annotations

import random

import pytest

from genome import Genome
from search.records import EvaluationRecord, Proposal, rank, rank_score, standings
from search.tracking.scores import ScoreBoard
from workers.testing import ok_result


def test_rank_score_orders_rung_then_belief_then_birth() -> None:
    assert rank_score(1, 0.1, 5) > rank_score(0, 0.99, 0)  # a higher rung first
    assert rank_score(0, 0.8, 9) > rank_score(0, 0.7, 0)  # then the higher belief
    assert rank_score(0, 0.8, 3) > rank_score(0, 0.8, 4)  # then the earlier birth
    assert rank_score(0, -2.0, 0) < rank_score(0, -1.0, 0) < rank_score(0, 1e5, 0) < rank_score(0, 1e5 + 1, 0)
    assert rank_score(0, 10.0, 0, maximise=False) > rank_score(0, 11.0, 0, maximise=False)
    entries = [(0, [0.5], 2), (0, [0.5], 1), (1, [0.1], 3), (0, [0.9], 4)]
    assert [i for i, _ in rank(entries)] == [2, 3, 1, 0]


def _record(genes: Genome, birth: int, fitness: float, *, rung: int = 0, repeat: int = 0) -> EvaluationRecord:
    return EvaluationRecord(campaign="c", birth=birth, proposal=Proposal(genome=genes), rung=rung, repeat=repeat,
                            result=ok_result(genes, repeat, fitness), finished_at=1.0 + birth)


@pytest.mark.parametrize("seed", range(6))
def test_the_table_head_follows_status_and_the_whole_table_after_settling(seed: int) -> None:
    """Results arrive in batches (new genomes, promotions, repeats whose spread moves the noise model); after each
    batch the runs re-scored by the board keep the table's first `top` rows in status's order."""
    rng = random.Random(seed)
    genomes = [Genome(ticks=t, memory_length=m) for t in range(1, 11) for m in range(1, 5)]
    board, table, records = ScoreBoard(top=8), {}, []
    births: dict[str, int] = {}
    for _ in range(25):
        batch = []
        for _ in range(rng.randint(1, 4)):
            g = rng.choice(genomes)
            births.setdefault(g.hash, len(births))
            mine = [r for r in records + batch if r.genome.hash == g.hash]
            rung = max((r.rung for r in mine), default=0)
            if mine and rng.random() < 0.3:
                rung += 1
            repeat = len([r for r in mine if r.rung == rung])
            batch.append(_record(g, births[g.hash], rng.gauss(0.5, 0.2) + 0.1 * rung, rung=rung, repeat=repeat))
        records += batch
        for r in batch:
            board.add(r)
        due = board.due({r.genome.hash for r in batch}, full=True)
        table.update(due)
        board.logged(due)
        want = [s.record.genome.hash for s in standings(records)]
        shown = sorted(table, key=lambda h: -table[h])
        assert shown[:8] == want[:8]
        assert board.best()[0] == want[0]
    due = board.due(everything=True)
    table.update(due)
    board.logged(due)
    assert sorted(table, key=lambda h: -table[h]) == [s.record.genome.hash for s in standings(records)]
    assert board.due(everything=True) == {}


def test_between_full_rescorings_a_batch_costs_only_its_own_genomes() -> None:
    board = ScoreBoard()
    genomes = [Genome(ticks=t) for t in range(1, 30)]
    for i, g in enumerate(genomes):
        board.add(_record(g, i, 0.01 * i))
    board.logged(board.due({g.hash for g in genomes}, full=True))
    late = Genome(ticks=31, memory_length=2)
    board.add(_record(late, 99, 0.99))
    assert set(board.due({late.hash})) == {late.hash}  # no rescoring: only the batch
    assert board.best()[0] == late.hash


@pytest.mark.parametrize("seed", range(3))
def test_a_flat_board_logs_the_same_scores_and_keeps_only_what_is_not_logged(seed: int) -> None:
    """One rung, one seed (no genome measured twice): the flat board's scores and best are the full board's, and it
    lets every genome go once its score is logged (its memory does not grow with the campaign)."""
    rng = random.Random(seed)
    genomes = [Genome(ticks=t, memory_length=m) for t in range(1, 21) for m in range(1, 6)]
    rng.shuffle(genomes)
    full, flat, follower = ScoreBoard(top=5), ScoreBoard(top=5, flat=True), ScoreBoard(flat=True)
    tables: tuple[dict[str, float], dict[str, float]] = ({}, {})
    for start in range(0, len(genomes), 7):
        batch = [_record(g, start + i, round(rng.random(), 2)) for i, g in enumerate(genomes[start:start + 7])]
        for board, table in zip((full, flat), tables, strict=True):
            for r in batch:
                board.add(r)
            due = board.due({r.genome.hash for r in batch}, full=rng.random() < 0.5)
            table.update(due)
            board.logged(due)
        for r in batch:
            follower.add(r, pending=False)
        assert full.best() == flat.best() == follower.best()
        assert not flat._genomes and not flat._current and not follower._genomes
    for board, table in zip((full, flat), tables, strict=True):
        table.update(board.due(everything=True))
    assert tables[0] == tables[1]
