"""``ctmevo status`` without starting anything: a campaign summarised from its files alone, in well under a second.

Reads ``campaign.json``, ``campaign.yaml`` (as YAML, not validated), the campaign index (:mod:`.index`: the counts
and the best genomes, brought up to date with the journal's new lines, so the time does not grow with the
campaign), the last line of ``metrics.jsonl`` and the MLflow consumer's cursor. It imports no strategy, torch, Ray
or MLflow, and writes nothing but the index: a running campaign can be summarised while it runs. Where the index
cannot be written (a read-only copy), the whole journal is read instead.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from search.errors import CampaignError
from search.journal import Journal, JournalCorruptError, SnapshotCorruptError, read_json
from search.paths import CampaignPaths, default_tracking_uri, is_locked
from search.records import rank
from search.views.index import CampaignIndex, journaled_cost
from search.views.progress import spent_text

__all__ = ["Summary", "summarise"]

SHOWN_METRICS = ("best_fitness", "best_mean_fitness", "best_seeds", "best_rung", "coverage", "qd_score", "archive_size",
                 "train_steps_spent")
NOVELTY_METRICS = ("novelty_archive_size", "novelty_threshold")  # shown only for the strategies that have them


@dataclass
class Summary:
    """What ``ctmevo status`` prints."""

    root: Path
    name: str
    campaign_id: str
    strategy: str
    budget: int | None  # budget.evaluations
    budget_steps: int | None = None
    budget_wall_s: float | None = None
    steps_spent: float = 0.0  # optimizer steps trained by all evaluations (what budget.steps limits)
    done: int = 0
    failures: int = 0
    pending: int = 0
    elapsed_s: float = 0.0
    metrics: dict[str, float] = field(default_factory=dict)
    best: list[dict[str, Any]] = field(default_factory=list)  # {"hash", "fitness", "seeds", "rung", "genes", "cell"}
    mlflow_done: int = 0
    tracking_uri: str = ""
    running: bool = False

    @property
    def finished(self) -> bool:
        """The budget is spent (as :meth:`search.campaign.Campaign.finished` decides it)."""
        return ((self.budget is not None and self.done >= self.budget)
                or (self.budget_steps is not None and self.steps_spent >= self.budget_steps)
                or (self.budget_wall_s is not None and self.elapsed_s >= self.budget_wall_s))

    def spent(self) -> str:
        return spent_text(done=self.done, evaluations=self.budget, steps_spent=self.steps_spent,
                          steps=self.budget_steps, elapsed_s=self.elapsed_s, wall_time_s=self.budget_wall_s)

    @property
    def mlflow_behind(self) -> int:
        return max(0, self.done - self.mlflow_done)


def summarise(root: Path, *, top: int = 5) -> Summary:
    """The summary of the campaign in ``root`` (:class:`CampaignError` if it is not one, or is unreadable)."""
    paths = CampaignPaths(Path(root))
    if not paths.meta.is_file() or not paths.config.is_file():
        raise CampaignError(f"{root} is not a campaign directory (no campaign.json / campaign.yaml): start one "
                            "with 'ctmevo run FILE'")
    try:
        meta = read_json(paths.meta)
        config = yaml.safe_load(paths.config.read_text(encoding="utf-8")) or {}
    except SnapshotCorruptError:
        raise  # the caller says how to repair it
    except (ValueError, OSError, yaml.YAMLError) as exc:
        raise CampaignError(f"{root}: cannot be read ({exc})") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("campaign_id"), str):
        raise SnapshotCorruptError(paths.meta, "no campaign_id")
    budget = config.get("budget") or {}
    summary = Summary(root=paths.root, name=str(config.get("name", "?")), campaign_id=str(meta.get("campaign_id")),
                      strategy=str((config.get("strategy") or {}).get("name", "?")), budget=budget.get("evaluations"),
                      budget_steps=budget.get("steps"), budget_wall_s=budget.get("wall_time_s"),
                      tracking_uri=(config.get("tracking") or {}).get("uri") or default_tracking_uri(paths))
    try:
        with CampaignIndex(paths.root, summary.campaign_id) as index:  # the journal's new lines only
            index.update()
            counters, summary.best = index.counters(), index.best(top)
        summary.done, summary.failures = counters["results"], counters["failures"]
        summary.steps_spent = counters["spent"]
        size = paths.journal.stat().st_size if paths.journal.exists() else 0
        if size > counters["offset"]:  # bytes after the last complete line: a write cut short (or in progress)
            Journal(paths.journal).report_torn(counters["lines"] + 1, size - counters["offset"])
        summary.pending = max(0, counters["asked"] - counters["results"])  # every job ends in exactly one result
    except (sqlite3.Error, OSError):  # no index can be written here (a read-only copy): the whole journal
        _from_journal(summary, paths, top)
    summary.metrics = _last_metrics(paths.metrics, summary.strategy)
    if paths.state.is_file():  # a damaged snapshot is said now, not at the next resume
        state = read_json(paths.state)
        if not isinstance(state, dict) or not isinstance(state.get("events"), int):
            raise SnapshotCorruptError(paths.state, "no loop state in it")
        summary.elapsed_s = float(state.get("elapsed_s", 0.0))
    cursor = paths.consumer_cursor("mlflow")
    if cursor.is_file():
        with contextlib.suppress(ValueError):
            summary.mlflow_done = int(read_json(cursor).get("results", 0))
    summary.running = is_locked(paths.root)
    return summary


def _from_journal(summary: Summary, paths: CampaignPaths, top: int) -> None:
    """The counts and the best read from every line of the journal."""
    try:
        events = Journal(paths.journal).read()
    except JournalCorruptError:
        raise
    except (ValueError, OSError) as exc:
        raise CampaignError(f"{paths.root}: cannot be read ({exc})") from None
    asked = 0
    results = []
    for event in events:
        if event.get("event") in ("ask", "adopt"):
            asked += len(event["proposals"])
        elif event.get("event") == "job":  # a promotion or a repeat
            asked += 1
        elif event.get("event") == "result":
            results.append(event["record"])
    summary.done = len(results)
    summary.failures = sum(r["result"]["status"] != "ok" for r in results)
    summary.steps_spent = sum(journaled_cost(r) for r in results)
    summary.pending = max(0, asked - len(results))  # every job ends in exactly one result
    summary.best = _best(results)[:top]


def _best(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per genome: its mean fitness over the seeds of its highest rung, in the order of
    :func:`search.records.rank` (``belief``: that mean read with its noise)."""
    top: dict[str, list[dict[str, Any]]] = {}
    for r in results:
        if r["result"]["status"] != "ok" or r["result"].get("fitness") is None:
            continue
        h, rung = r["result"]["genome_hash"], r.get("rung", 0)
        mine = top.get(h)
        if mine is None or rung > mine[0].get("rung", 0):
            top[h] = [r]
        elif rung == mine[0].get("rung", 0):
            mine.append(r)
    groups = [(h, sorted(rs, key=lambda r: r.get("repeat", 0))) for h, rs in top.items()]
    order = rank([(rs[0].get("rung", 0), [r["result"]["fitness"] for r in rs], rs[0]["birth"]) for _, rs in groups])
    out = []
    for i, belief in order:
        h, rs = groups[i]
        out.append({"hash": h, "fitness": sum(r["result"]["fitness"] for r in rs) / len(rs), "seeds": len(rs),
                    "belief": belief, "rung": rs[0].get("rung", 0), "birth": rs[0]["birth"],
                    "genes": rs[0]["proposal"]["genes"], "cell": (rs[0].get("extra") or {}).get("cell")})
    return out


def _last_metrics(path: Path, strategy: str) -> dict[str, float]:
    try:
        with path.open("rb") as fh:
            fh.seek(0, 2)
            size = fh.tell()
            fh.seek(max(0, size - 65536))
            lines = fh.read().splitlines()
    except FileNotFoundError:
        return {}
    for raw in reversed(lines):
        try:
            point = json.loads(raw)
        except ValueError:
            continue
        keys = SHOWN_METRICS + (NOVELTY_METRICS if strategy in ("novelty", "nslc") else ())
        return {k: float(point[k]) for k in keys if isinstance(point.get(k), (int, float))}
    return {}
