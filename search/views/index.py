"""The campaign index: what ``ctmevo status`` and ``ctmevo lineage`` read, kept beside the journal so that they
read a few rows of it instead of the whole history.

``index.sqlite`` in the campaign directory holds one row per genome (its standing: the highest rung with a
successful result and the count, sum and sum of squares of its fitness there; its birth, genes, parents, operator,
cell, last status and reported fitness; its MLflow run id once the MLflow consumer has written it) and the
campaign's counters (results, failures, jobs asked, optimizer steps trained), with the byte offset of the journal
read so far; and each parent's children, counted and kept in order of their reported fitness, so that a parent's run
note reads its best few children from an index however many it has (an elite of a long campaign has tens of
thousands). :meth:`CampaignIndex.update` reads the journal from that offset and applies the new events in one
transaction (``BEGIN IMMEDIATE``), so several processes may keep it current: the running campaign (its consumer,
every tick) and ``ctmevo status`` (before it reads). The index is never the truth: a missing, damaged or stale one
(another campaign id, another version, a journal shorter than its offset) is deleted and rebuilt from the journal.

The order is :func:`search.records.rank`'s, computed from the stored sums: per rung, the sufficient statistics of
:class:`search.records.NoiseModel` are SQL aggregates (:meth:`CampaignIndex.noise_model`); the best are fetched by
an ``ORDER BY`` on the belief and then sorted exactly by :func:`search.records.rank_score`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import sqlite3
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ctm.result import EvalResult
from genome.genome import Genome
from search.journal import JournalCorruptError, JsonLinesFollower
from search.lineage import generation_of
from search.records import EvaluationRecord, NoiseModel, Proposal, belief, rank_score

__all__ = ["INDEX_FILE", "CampaignIndex", "IndexKeeper", "record_run_ids"]

log = logging.getLogger("ctmevo.index")

INDEX_FILE = "index.sqlite"
VERSION = 4
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS genomes (
    hash TEXT PRIMARY KEY, birth INTEGER, operator TEXT, parents TEXT, genes TEXT, campaign TEXT,
    rung INTEGER, n INTEGER NOT NULL DEFAULT 0, total REAL NOT NULL DEFAULT 0, sumsq REAL NOT NULL DEFAULT 0,
    first_repeat INTEGER, cell TEXT, status TEXT, reported REAL, inherited TEXT, generation INTEGER,
    first_end INTEGER);
CREATE INDEX IF NOT EXISTS genomes_standing ON genomes (rung, n);
CREATE TABLE IF NOT EXISTS children (
    parent TEXT NOT NULL, child TEXT NOT NULL, rank REAL NOT NULL, birth INTEGER NOT NULL,
    PRIMARY KEY (parent, child)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS children_best ON children (parent, rank, birth);
CREATE INDEX IF NOT EXISTS children_of ON children (child);
CREATE TABLE IF NOT EXISTS child_counts (parent TEXT PRIMARY KEY, n INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS runs (hash TEXT PRIMARY KEY, run_id TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS mlflow (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
NO_RANK = 1e308  # a child without a reported fitness (a failure) sorts after every fitness
COUNTERS = ("offset", "lines", "results", "failures", "asked", "spent")


def _connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, timeout=30.0, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")  # the journal is the truth: a lost index transaction is re-read
    return db


class CampaignIndex:
    """The index of the campaign in ``root`` (see the module docstring); ``campaign_id`` is the one in
    ``campaign.json`` (an index of another campaign is rebuilt)."""

    def __init__(self, root: Path, campaign_id: str) -> None:
        self.root, self.campaign_id = Path(root), campaign_id
        self.path = self.root / INDEX_FILE
        self.journal = self.root / "journal.jsonl"
        self._db: sqlite3.Connection | None = None

    # -- keeping it current ------------------------------------------------------------------------------
    def update(self) -> int:
        """Apply the journal's events after the stored offset; returns how many lines were read. A stale or
        damaged index is rebuilt first. Raises :class:`JournalCorruptError` for a damaged journal line."""
        try:
            return self._update()
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
                raise
            self.rebuild()
            return self._update()

    def rebuild(self) -> None:
        """Delete the index (and its WAL files); the next :meth:`update` reads the journal from the start."""
        self.close()
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                Path(f"{self.path}{suffix}").unlink()

    def _update(self) -> int:
        db = self._open()
        db.execute("BEGIN IMMEDIATE")
        try:
            counters = self._counters(db)
            follower = JsonLinesFollower(self.journal, counters["offset"])
            follower.line = counters["lines"]
            if self.journal.exists() and self.journal.stat().st_size < counters["offset"]:
                raise sqlite3.DatabaseError("the journal is shorter than the index's offset")  # replaced: rebuild
            read = 0
            while lines := follower.read():
                for end, event in lines:
                    self._apply(db, event, counters, end)
                read += len(lines)
            counters.update(offset=follower.offset, lines=follower.line)
            db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", [(k, repr(counters[k])) for k in COUNTERS])
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return read

    def _open(self) -> sqlite3.Connection:
        if self._db is None:
            db = _connect(self.path)
            try:
                db.executescript(SCHEMA)
                meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
                if not meta:
                    db.executemany("INSERT INTO meta VALUES (?, ?)",
                                   [("version", str(VERSION)), ("campaign_id", self.campaign_id)])
                elif meta.get("version") != str(VERSION) or meta.get("campaign_id") != self.campaign_id:
                    raise sqlite3.DatabaseError(f"an index of version {meta.get('version')}, campaign "
                                                f"{meta.get('campaign_id')}")
            except BaseException:
                db.close()
                raise
            self._db = db
        return self._db

    @staticmethod
    def _counters(db: sqlite3.Connection) -> dict[str, Any]:
        meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        return {k: (float if k == "spent" else int)(meta.get(k, "0")) for k in COUNTERS}

    def _apply(self, db: sqlite3.Connection, event: Mapping[str, Any], counters: dict[str, Any], end: int) -> None:
        kind = event.get("event")
        if kind == "ask":
            counters["asked"] += len(event.get("proposals") or ())
        elif kind == "job":  # a promotion or a repeat
            counters["asked"] += 1
        elif kind == "adopt":
            counters["asked"] += len(event.get("proposals") or ())
        elif kind == "result":
            try:
                self._result(db, event["record"], counters, end)
            except (KeyError, TypeError, ValueError) as exc:
                raise JournalCorruptError(self.journal, counters["lines"], f"not an evaluation record: {exc!r}"
                                          ) from None

    @staticmethod
    def _result(db: sqlite3.Connection, record: Mapping[str, Any], counters: dict[str, Any], end: int) -> None:
        result, proposal, extra = record["result"], record["proposal"], record.get("extra") or {}
        ok, fitness = result["status"] == "ok", result.get("fitness")
        counters["results"] += 1
        counters["failures"] += not ok
        counters["spent"] += journaled_cost(record)
        h, rung, repeat = result["genome_hash"], int(record.get("rung", 0)), int(record.get("repeat", 0))
        reported = _number(extra.get("fitness_mean", fitness))
        parents = list(dict.fromkeys(proposal.get("parents", ())))
        cell = extra.get("cell")
        new = db.execute("INSERT OR IGNORE INTO genomes (hash, birth, operator, parents, genes, campaign, inherited, "
                         "cell, first_end) VALUES (?, ?, ?, ?, ?, ?, '', ?, ?)",
                         (h, int(record["birth"]), str(proposal.get("operator", "")),
                          ",".join(proposal.get("parents", ())),
                          json.dumps(proposal["genes"], separators=(",", ":")), str(record.get("campaign", "")),
                          None if cell is None else str(cell), end))
        if new.rowcount:  # its first result: its generation (as the run notes count it) and its place as a child
            known = dict(db.execute(f"SELECT hash, generation FROM genomes WHERE hash IN "
                                    f"({','.join('?' * len(parents))})", parents).fetchall()) if parents else {}
            db.execute("UPDATE genomes SET generation = ? WHERE hash = ?",
                       (generation_of(known.get(p) for p in parents), h))
            db.executemany("INSERT OR IGNORE INTO children VALUES (?, ?, ?, ?)",
                           [(p, h, NO_RANK, int(record["birth"])) for p in parents])
            db.executemany("INSERT INTO child_counts VALUES (?, 1) ON CONFLICT (parent) DO UPDATE SET n = n + 1",
                           [(p,) for p in parents])
        db.execute("UPDATE genomes SET status = ?, reported = ?, inherited = CASE WHEN inherited = '' THEN ? ELSE "
                   "inherited END WHERE hash = ?", (result["status"], reported,
                                                    str(extra.get("inherited") or ""), h))
        if parents:  # its place among its parents' children follows its reported fitness
            db.execute("UPDATE children SET rank = ? WHERE child = ?", (NO_RANK if reported is None else -reported, h))
        value = _number(fitness)
        if not ok or value is None:
            return
        top, first = db.execute("SELECT rung, first_repeat FROM genomes WHERE hash = ?", (h,)).fetchone()
        if top is None or rung > top:  # a higher rung: its standing starts again there
            db.execute("UPDATE genomes SET rung = ?, n = 1, total = ?, sumsq = ?, first_repeat = ?, cell = ? "
                       "WHERE hash = ?", (rung, value, value * value, repeat, cell, h))
        elif rung == top:
            db.execute("UPDATE genomes SET n = n + 1, total = total + ?, sumsq = sumsq + ? WHERE hash = ?",
                       (value, value * value, h))
            if repeat < first:  # the record that represents it: its first seed at that rung
                db.execute("UPDATE genomes SET first_repeat = ?, cell = ? WHERE hash = ?", (repeat, cell, h))

    # -- reading -----------------------------------------------------------------------------------------
    def counters(self) -> dict[str, Any]:
        """``results``, ``failures``, ``asked``, ``spent`` (optimizer steps) and the journal ``offset`` read."""
        return self._counters(self._open())

    def noise_model(self, rung: int) -> NoiseModel | None:
        """:meth:`search.records.NoiseModel.fit` over the genomes standing at ``rung``, from SQL aggregates."""
        groups, dof, within, sum_m, sum_m2, sum_inv = self._open().execute(
            "SELECT COUNT(*), SUM(n - 1), SUM(CASE WHEN n > 1 THEN MAX(sumsq - total * total / n, 0) ELSE 0 END), "
            "SUM(total / n), SUM((total / n) * (total / n)), SUM(1.0 / n) FROM genomes WHERE rung = ? AND n > 0",
            (rung,)).fetchone()
        if not dof or groups < 2:
            return None
        noise = max(within / dof, 1e-12)
        center = sum_m / groups
        variance = max(sum_m2 - sum_m * sum_m / groups, 0.0) / (groups - 1)
        spread = variance - noise * sum_inv / groups
        return NoiseModel(center=center, spread=max(spread, noise * 1e-3), noise=noise)

    def best(self, top: int = 5) -> list[dict[str, Any]]:
        """The ``top`` genomes in the order of :func:`search.records.rank`, as ``ctmevo status`` shows them:
        ``{"hash", "fitness" (plain mean), "seeds", "belief", "rung", "birth", "genes", "cell"}``."""
        db = self._open()
        out: list[dict[str, Any]] = []
        for (rung,) in db.execute("SELECT DISTINCT rung FROM genomes WHERE n > 0 ORDER BY rung DESC").fetchall():
            model = self.noise_model(rung)
            order = ("(total / n)" if model is None else
                     f"(({model.center!r} / {model.spread!r}) + total / {model.noise!r}) / "
                     f"((1.0 / {model.spread!r}) + n / {model.noise!r})")
            rows = db.execute(f"SELECT hash, n, total, birth, genes, cell FROM genomes WHERE rung = ? AND n > 0 "
                              f"ORDER BY {order} DESC, birth ASC LIMIT ?", (rung, 4 * top + 100)).fetchall()
            scored = []
            for h, n, total, birth, genes, cell in rows:
                b = belief([total / n] * n, model)
                scored.append((-rank_score(rung, b, birth), {
                    "hash": h, "fitness": total / n, "seeds": n, "belief": b, "rung": rung, "birth": birth,
                    "genes": json.loads(genes), "cell": cell}))
            out += [entry for _, entry in sorted(scored, key=lambda s: s[0])]
            if len(out) >= top:
                break
        return out[:top]

    def genomes(self, hashes: list[str], *, raw: bool = False) -> dict[str, dict[str, Any]]:
        """The rows of ``hashes`` (those it holds) with their run id: ``{"hash", "birth", "operator", "parents"
        (tuple), "genes" (gene → str; ``raw``: as journaled), "campaign", "status", "fitness" (as last reported),
        "inherited", "cell", "generation", "run_id"}``."""
        db = self._open()
        out: dict[str, dict[str, Any]] = {}
        for i in range(0, len(hashes), 500):
            chunk = hashes[i:i + 500]
            marks = ",".join("?" * len(chunk))
            for h, birth, op, parents, genes, campaign, status, reported, inherited, cell, gen, run_id in db.execute(
                    "SELECT g.hash, birth, operator, parents, genes, campaign, status, reported, inherited, cell, "
                    "generation, run_id "
                    f"FROM genomes g LEFT JOIN runs r ON r.hash = g.hash WHERE g.hash IN ({marks})", chunk):
                out[h] = {"hash": h, "birth": birth, "operator": op, "parents": tuple(filter(None, parents.split(","))),
                          "genes": {k: v if raw else str(v) for k, v in json.loads(genes).items()},
                          "campaign": campaign,
                          "status": status, "fitness": reported, "inherited": inherited, "cell": cell,
                          "generation": gen, "run_id": run_id}
        return out

    def told_before(self, offset: int) -> list[str]:
        """The genomes with a result in the journal's first ``offset`` bytes (what a strategy had been told there)."""
        return [h for (h,) in self._open().execute("SELECT hash FROM genomes WHERE first_end <= ?", (offset,))]

    def run_ids(self, hashes: list[str]) -> dict[str, str]:
        """Genome hash → MLflow run id, of those the MLflow consumer has recorded."""
        db, out = self._open(), {}
        for i in range(0, len(hashes), 500):
            chunk = hashes[i:i + 500]
            out.update(db.execute(f"SELECT hash, run_id FROM runs WHERE hash IN ({','.join('?' * len(chunk))})",
                                  chunk).fetchall())
        return out

    def children(self, parent: str, limit: int) -> tuple[int, list[str]]:
        """How many children ``parent`` has, and the ``limit`` best of them (by reported fitness; failures last,
        then the earlier born): what a parent's run note lists."""
        db = self._open()
        count = db.execute("SELECT n FROM child_counts WHERE parent = ?", (parent,)).fetchone()
        best = db.execute("SELECT child FROM children WHERE parent = ? ORDER BY rank, birth LIMIT ?", (parent, limit))
        return int(count[0]) if count else 0, [h for (h,) in best]

    def genome_count(self) -> int:
        return int(self._open().execute("SELECT COUNT(*) FROM genomes").fetchone()[0])

    def hashes(self) -> list[str]:
        """Every genome, in birth order."""
        return [h for (h,) in self._open().execute("SELECT hash FROM genomes ORDER BY birth")]

    def ranked_by_reported(self) -> list[str]:
        """The genomes whose last result succeeded, by their reported fitness, best first (ties: the earlier born):
        what the pictures choose from (two columns of every row, not the rows)."""
        rows = self._open().execute("SELECT hash FROM genomes WHERE status = 'ok' AND reported IS NOT NULL "
                                    "ORDER BY reported DESC, birth ASC")
        return [h for (h,) in rows]

    def records(self, hashes: list[str]) -> list[EvaluationRecord]:
        """Slim records of ``hashes`` (those it holds, in birth order) for pictures: the genome, parents, operator,
        birth, last status, the reported fitness as the result's fitness, ``extra`` with ``cell`` and ``inherited``.
        A genome whose genes this ctmevo cannot read (an older schema) is left out."""
        out = []
        for row in self.genomes(hashes, raw=True).values():
            try:
                genome = Genome.from_dict(row["genes"])
            except (TypeError, ValueError, KeyError):
                continue
            result = EvalResult(genome_hash=row["hash"], status=row["status"] or "ok", fitness=row["fitness"])
            extra = {"cell": row["cell"], **({"inherited": row["inherited"]} if row["inherited"] else {})}
            out.append(EvaluationRecord(campaign=row["campaign"], birth=row["birth"], result=result, extra=extra,
                                        proposal=Proposal(genome=genome, parents=row["parents"],
                                                          operator=row["operator"]), finished_at=0.0))
        return sorted(out, key=lambda r: r.birth)

    def matching(self, prefix: str, limit: int = 20) -> list[str]:
        """Genome hashes starting with ``prefix`` (at most ``limit``), by a range scan of the primary key."""
        rows = self._open().execute("SELECT hash FROM genomes WHERE hash >= ? AND hash < ? ORDER BY hash LIMIT ?",
                                    (prefix, prefix + "\uffff", limit))
        return [h for (h,) in rows]

    def experiment_id(self) -> str | None:
        """The MLflow experiment of the campaign's runs, once the MLflow consumer has written one."""
        row = self._open().execute("SELECT value FROM mlflow WHERE key = 'experiment_id'").fetchone()
        return row[0] if row else None

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def __enter__(self) -> CampaignIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class IndexKeeper:
    """Keeps a running campaign's index current from a thread of its own: an :meth:`CampaignIndex.update` every
    ``every_s`` seconds and a last one at :meth:`stop` (so ``status`` after a run reads nothing but the index).
    A failing update is logged and tried again at the next turn: the index is never the truth."""

    def __init__(self, root: Path, campaign_id: str, *, every_s: float = 5.0) -> None:
        self.index = CampaignIndex(root, campaign_id)
        self.every_s = every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ctmevo-index", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while True:
            stopping = self._stop.wait(self.every_s)
            try:
                self.index.update()
            except Exception as exc:  # derived data: never stops a campaign
                log.warning("the campaign index could not be updated (%s); status reads the journal's new lines", exc)
            if stopping:
                self.index.close()
                return

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)


def record_run_ids(root: Path, run_ids: Mapping[str, str], *, experiment_id: str | None = None) -> None:
    """Remember the MLflow run of each genome and the experiment (the MLflow consumer calls this after writing
    runs), so that ``ctmevo lineage --campaign`` links runs without asking MLflow. Best effort: the index is not the
    truth, and a genome without a run id here is looked up in MLflow."""
    if not run_ids:
        return
    with contextlib.suppress(sqlite3.Error, OSError), contextlib.closing(_connect(Path(root) / INDEX_FILE)) as db:
        db.executescript(SCHEMA)
        db.executemany("INSERT OR REPLACE INTO runs VALUES (?, ?)", list(run_ids.items()))
        if experiment_id is not None:
            db.execute("INSERT OR REPLACE INTO mlflow VALUES ('experiment_id', ?)", (str(experiment_id),))


def journaled_cost(record: Mapping[str, Any]) -> float:
    """Optimizer steps one journaled result trained (as :attr:`search.records.EvaluationRecord.cost`)."""
    metrics = record["result"].get("metrics") or {}
    return max(0.0, float(metrics.get("train_steps") or 0.0) - float(metrics.get("start_step") or 0.0))


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None

