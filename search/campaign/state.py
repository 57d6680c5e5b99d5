"""The campaign's restart point: a small snapshot of the loop and the strategy; the journal holds the rest.

``state.json`` (written atomically every ``snapshot_every`` evaluations and at every stop) holds the number of
journal events it covers, the births counter, the proposals in flight, the elapsed time, and the strategy's
state WITHOUT its told log (``Strategy.state_dict(with_log=False)``): its random generator, settings, in-flight
proposals and small extras. The told log is the journal's result events, in order; restoring hands them back
to ``Strategy.load_state_dict(state, log=...)``. So a snapshot costs O(proposals in flight), not
O(evaluations), whatever the campaign's size, and resuming replays the journal once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from search.errors import CampaignError
from search.journal import read_json, write_atomic
from search.records import Proposal
from search.strategies import Strategy
from search.views.lookups import indexed_before

__all__ = ["STATE_VERSION", "LoopState", "ResumePoint"]

STATE_VERSION = 2
READABLE_VERSIONS = (1, 2)  # version 1 kept the strategy's whole told log inside the snapshot


@dataclass
class LoopState:
    """The loop's own counters, restored together with the strategy."""

    events: int = 0  # journal events applied
    births: int = 0  # proposals asked so far
    pending: dict[str, tuple[int, Proposal]] = field(default_factory=dict)  # job id → (birth, proposal)
    elapsed_s: float = 0.0

    def to_dict(self, strategy: Strategy) -> dict[str, Any]:
        return {"version": STATE_VERSION, "events": self.events, "births": self.births,
                "strategy": strategy.state_dict(with_log=False), "elapsed_s": self.elapsed_s,
                "pending": {h: [b, p.to_dict()] for h, (b, p) in self.pending.items()}}

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str) -> LoopState:
        if data.get("version") not in READABLE_VERSIONS:
            raise CampaignError(f"{where}: state version {data.get('version')} is not one of {READABLE_VERSIONS}; "
                                "this campaign was written by another ctmevo version")
        try:
            return cls(events=int(data["events"]), births=int(data["births"]), elapsed_s=float(data["elapsed_s"]),
                       pending={h: (int(b), Proposal.from_dict(p)) for h, (b, p) in data["pending"].items()})
        except (KeyError, TypeError, ValueError) as exc:
            raise CampaignError(f"{where}: not a campaign state ({type(exc).__name__}: {exc}); move it aside and "
                                "resume: the state is rebuilt from the journal") from None


POINT_VERSION = 1
POINT_EVERY = 10_000  # results between two resume points (and one at every stop)


class ResumePoint:
    """``strategy.json``: the whole state of a flat campaign's strategy (:meth:`Strategy.compact_state`), its rung
    scheduler and counters at a point of the journal (its byte offset), written every :data:`POINT_EVERY` results
    and at every stop. Resuming then reads only the journal after that point; the genomes told before it come
    from the campaign index. Only where the strategy has a compact history and a :attr:`FULL_SNAPSHOT`; a point
    that does not fit (another campaign, ahead of ``state.json``, a journal shorter than its offset) is ignored
    and the journal is replayed whole, as always."""

    def __init__(self, path: Path, campaign_id: str) -> None:
        self.path, self.campaign_id = path, campaign_id
        self._written = 0  # results at the last point

    def due(self, results: int, *, final: bool) -> bool:
        return results > self._written and (final or results - self._written >= POINT_EVERY)

    def write(self, *, events: int, offset: int, results: int, failures: int, spent: float, rungs: dict[str, Any],
              strategy: dict[str, Any]) -> None:
        write_atomic(self.path, {"version": POINT_VERSION, "campaign_id": self.campaign_id, "events": events,
                                 "offset": offset, "results": results, "failures": failures, "spent": spent,
                                 "rungs": rungs, "strategy": strategy})
        self._written = results

    def read(self, snapshot: dict[str, Any] | None, journal: Path) -> tuple[dict[str, Any] | None, list[str]]:
        """The point, if it can start a resume from ``snapshot`` (state.json) on ``journal`` (else None), and the
        genomes told before it (from the campaign index)."""
        if snapshot is None or not self.path.exists():
            return None, []
        try:
            point = read_json(self.path)
            fits = (point["version"] == POINT_VERSION and point["campaign_id"] == self.campaign_id
                    and int(point["events"]) <= int(snapshot["events"]) and journal.stat().st_size >= point["offset"])
        except (CampaignError, OSError, KeyError, TypeError, ValueError):
            return None, []
        if not fits:
            return None, []
        self._written = int(point["results"])
        return point, indexed_before(journal.parent, self.campaign_id, int(point["offset"]))
