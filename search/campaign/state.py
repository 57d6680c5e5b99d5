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
from typing import Any

from search.errors import CampaignError
from search.records import Proposal
from search.strategies import Strategy

__all__ = ["STATE_VERSION", "LoopState"]

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
