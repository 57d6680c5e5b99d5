"""The ask/tell contract every strategy follows, and the bookkeeping they share.

An asynchronous campaign asks for proposals whenever a worker is free (``ask(n)``) and tells each finished
evaluation on its own (``tell(result)``), in any order, possibly long after the ask. There is no generation
barrier: a strategy keeps the proposals in flight (asked, not told), never proposes a genome that is in
flight or already evaluated (canonical hash), and saves its whole state to plain JSON data.

State and exact restore: the saved state is the seed and settings, the random generator's state, the
proposals in flight, and the log of told evaluations (in tell order). Loading rebuilds archives and
populations by replaying that log through the same deterministic update the live strategy ran, so every
structure (and therefore every next ask) is identical to the original's. Strategies whose updates are not
a pure function of the log (Optuna, EvoTorch) add their own replay log (see their modules).
"""

from __future__ import annotations

import json
import math
import numbers
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from ctm.result import EvalResult
from genome import Genome, GenomeSpace, VectorCodec
from search.archive import QDArchive
from search.descriptors import Descriptor, describe_result
from search.records import Proposal
from search.strategies.evaluated import Evaluated, Revision, ghash, phash, plain
from search.strategies.fidelity import Fidelity, interleave
from search.strategies.history import History, hash_key
from search.strategies.settings import (
    COMMON_SETTINGS,
    Setting,
    StrategyConfigError,
    check_variation,
    resolve_seed_genomes,
    validate_settings,
)
from search.strategies.variation import Variation

STATE_FORMAT = 1


class Unset:
    """The type of :data:`UNSET`: an argument not given (``None`` means something else)."""


UNSET = Unset()


class UnknownProposalError(LookupError):
    """A tell for a genome hash this strategy did not ask for, or one already told."""


class Strategy(Variation, Fidelity, History, ABC):
    """Abstract ask/tell strategy. Subclasses implement :meth:`_propose` and optionally the hooks.

    Constructor (keyword-only): ``space``, ``seed``, ``descriptors`` and the strategy's settings (see the
    class's ``SETTINGS``), validated with errors naming ``{field}.settings.<name>``.
    """

    NAME: ClassVar[str] = "strategy"
    SETTINGS: ClassVar[dict[str, Setting]] = {}
    NEEDS_DESCRIPTORS: ClassVar[bool] = False

    def __init__(self, *, space: GenomeSpace, seed: int, descriptors: Sequence[Descriptor] = (),
                 field: str = "strategy", **settings: Any):
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise StrategyConfigError("seed", seed, "a non-negative integer")
        self.field = field
        self.settings = validate_settings({**COMMON_SETTINGS, **self.SETTINGS}, settings, f"{field}.settings")
        if "variation" in self.settings:
            check_variation(settings, self.settings["variation"], f"{field}.settings")
        self._check_settings(self.settings, f"{field}.settings")
        if self.NEEDS_DESCRIPTORS and not descriptors:
            raise StrategyConfigError(f"{field}.name", self.NAME, "a strategy that needs no descriptors, or "
                                      "at least one entry in the campaign's `descriptors` list")
        if not space.evolvable:
            raise StrategyConfigError("genome_space", space.to_config(), "a space with at least one searched "
                                      "gene (every domain here is a single value)")
        self.space, self.seed, self.descriptors = space, int(seed), list(descriptors)
        self.codec = VectorCodec(space)
        self._seeds = resolve_seed_genomes(self.settings["seed_genomes"] or [], space, f"{field}.settings")
        self._enumerated: list[Genome] | None = None
        self._compact = False
        self._init_state()

    # -- structures (re-created by load_state_dict) -------------------------------------------------------
    def _init_state(self) -> None:
        self.rng = np.random.default_rng(self.seed)
        self.loading = False  # True while load_state_dict replays the told log
        self._seeded = 0  # seed genomes proposed so far
        self._in_flight: dict[str, Proposal] = {}
        self._records: dict[str, Evaluated] = {}  # told genome → its record (compact history: those retained)
        self._init_history()
        self._asked = 0
        self.exhausted = False
        self._best: float | None = None
        self._successes = 0
        self._revisions: list[tuple[int, Revision]] = []  # (evaluations told before it, revision), for the log
        self._failure_kinds: Counter[str] = Counter()
        self._failure_regions: Counter[str] = Counter()
        self._descriptor_errors = 0
        self._qd: QDArchive | None = None  # built on first use (CVT archives run k-means)

    @property
    def qd(self) -> QDArchive | None:
        """The QD archive over the descriptors (None without descriptors); built on first use."""
        if self._qd is None and self.descriptors:
            self._qd = self._make_archive(None)
        return self._qd

    def _make_archive(self, config: Mapping[str, Any] | None) -> QDArchive:
        """The QD archive over the descriptors (a passive result archive unless a subclass searches it)."""
        return QDArchive(descriptors=self.descriptors, solution_dim=self.codec.dim, kind="grid",
                         seed=self.seed, qd_offset=self.settings["qd_offset"])

    def _check_settings(self, s: dict[str, Any], field: str) -> None:
        """Cross-setting checks (raise StrategyConfigError naming ``{field}.<name>``)."""
        return None  # nothing by default

    # -- the contract -------------------------------------------------------------------------------------
    @property
    def in_flight(self) -> tuple[str, ...]:
        """Hashes asked for and not yet told, in ask order."""
        return tuple(self._in_flight)

    @property
    def evaluations(self) -> int:
        return self._told

    def ask(self, n: int) -> list[Proposal]:
        """Up to ``n`` new proposals; fewer when the space is exhausted (see ``exhausted``) or the strategy
        waits for results (generation-based strategies: see ``waiting``)."""
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise ValueError(f"ask(n): n = {n!r}: allowed is a non-negative integer")
        out: list[Proposal] = []
        for _ in range(int(n)):
            proposal = self._next_seed() or self._propose()
            if proposal is None:
                break
            h = phash(proposal)
            assert not self._taken(h), f"strategy {self.NAME} proposed {h} twice"
            self._in_flight[h] = proposal
            self._asked += 1
            out.append(proposal)
        return out

    def adopt(self, proposal: Proposal) -> None:
        """Take in a genome this strategy did not propose (a transfer from another task of an open-ended campaign):
        it is in flight from now on and its result is told like any other; the strategy's own sampler sees it as
        it sees a seed genome (:meth:`_on_seed`). The random generator is not used, so asks stay replayable."""
        h = phash(proposal)
        if self._taken(h):
            raise UnknownProposalError(f"adopt({h}): this genome is already evaluated or in flight")
        self._in_flight[h] = proposal
        self._on_seed(proposal)

    def _next_seed(self) -> Proposal | None:
        """The next seed genome not yet evaluated or in flight (``seed_genomes``), else None."""
        while self._seeded < len(self._seeds):
            genome = self._seeds[self._seeded]
            self._seeded += 1
            if not self._taken(ghash(genome)):
                proposal = Proposal(genome=genome, operator="seed")
                self._on_seed(proposal)
                return proposal
        return None

    def _on_seed(self, proposal: Proposal) -> None:
        """Called when a seed genome is proposed (strategies with their own samplers note it here)."""
        return None

    @property
    def waiting(self) -> bool:
        """True when the strategy can propose nothing until some in-flight result is told."""
        return False

    def tell(self, result: EvalResult, *, descriptors: Sequence[float] | Unset | None = UNSET) -> None:
        """Record one finished evaluation (success or typed failure) of a proposal this strategy asked for.

        ``descriptors``: the evaluation's descriptor values as the campaign computed and journaled them
        (:func:`search.descriptors.describe_result`; ``None``: not computable); by default they are computed
        here by that same rule.
        """
        h = result.genome_hash
        proposal = self._in_flight.get(h)
        if proposal is None:
            if self.told(h):
                raise UnknownProposalError(f"tell({h}): this genome's result was already told")
            raise UnknownProposalError(f"tell({h}): no proposal with this genome hash is in flight (in flight: "
                                       f"{len(self._in_flight)} proposals)")
        del self._in_flight[h]
        if isinstance(descriptors, Unset):
            values = describe_result(self.descriptors, proposal.genome, result)[0]
        else:
            values = None if descriptors is None else [float(v) for v in descriptors]
            if values is not None and len(values) != len(self.descriptors):
                raise ValueError(f"tell({h}): {len(values)} descriptor values for {len(self.descriptors)} "
                                 "descriptors")
        self._apply(self._evaluate_record(proposal, result, values), result)

    def _evaluate_record(self, proposal: Proposal, result: EvalResult, values: list[float] | None) -> Evaluated:
        status, fitness = result.status, result.fitness
        if status == "ok" and (isinstance(fitness, bool) or not isinstance(fitness, numbers.Real)
                               or not math.isfinite(fitness)):
            status, fitness = "invalid", None  # an "ok" result without a finite fitness
        behaviour = [float(b) for b in result.behaviour]
        rec = Evaluated(proposal=proposal, status=status, fitness=float(fitness) if status == "ok" else None,
                        behaviour=behaviour if behaviour and all(map(math.isfinite, behaviour)) else None)
        rec.values = values if self.descriptors else None  # a success without values: counted, never archived
        return rec

    def _apply(self, rec: Evaluated, result: EvalResult | None) -> None:
        """Update every structure with one told evaluation; ``result`` is None when replaying the log."""
        self._records[rec.hash] = rec
        self._told += 1
        if rec.values is not None and self.qd is not None:
            rec.cell = self.qd.cell_of_values(rec.values)
        if rec.ok:
            assert rec.fitness is not None
            self._successes += 1
            if self.descriptors and rec.values is None:
                self._descriptor_errors += 1
            if self._best is None or rec.fitness > self._best:
                self._best, self._best_hash = rec.fitness, rec.hash
            if rec.values is not None and self.qd is not None:
                self.qd.add(rec.hash, self.codec.encode(rec.proposal.genome), rec.fitness, rec.values, rung=rec.rung,
                            seeds=rec.seeds)
        else:
            self._failure_kinds[rec.status] += 1
            rec.region = rec.cell or self._parent_region(rec.proposal)
            self._failure_regions[rec.region] += 1
        self._on_record(rec, result)
        if self._compact and len(self._records) >= self._sweep_at:
            self._sweep()

    def _parent_region(self, proposal: Proposal) -> str:
        cells = [self._records[p].cell for p in proposal.parents if p in self._records]
        return f"near_{cells[0]}" if cells and cells[0] else "unknown"

    # -- hooks --------------------------------------------------------------------------------------------
    @abstractmethod
    def _propose(self) -> Proposal | None:
        """One new proposal (not evaluated, not in flight), or None when nothing can be proposed now."""

    def _on_record(self, rec: Evaluated, result: EvalResult | None) -> None:
        """Update strategy-specific structures with one told evaluation (also called on replay)."""
        return None  # nothing by default

    def _extra_metrics(self) -> dict[str, float]:
        return {}

    def _extra_state(self) -> dict[str, Any]:
        return {}

    def _load_extra(self, extra: Mapping[str, Any]) -> None:
        """Called after the log was replayed and the in-flight proposals restored."""
        return None  # nothing by default

    # -- metrics and archive views ------------------------------------------------------------------------
    def metrics(self) -> dict[str, float]:
        """QD and search metrics (plain floats). ``best_fitness`` appears after the first success.

        ``failures.kind.<kind>`` counts failures by kind; ``failures.cell.<cell>`` by the archive cell
        (``near_<cell>``: the first parent's cell when a failure's own descriptors can't be computed).
        """
        successes = self._successes
        out = {"evaluations": float(self._told), "successes": float(successes),
               "failures": float(self._told - successes), "in_flight": float(len(self._in_flight)),
               "asked": float(self._asked), "qd_score": 0.0, "coverage": 0.0, "archive_size": 0.0,
               "novelty_archive_size": 0.0, "novelty_threshold": 0.0, "exhausted": float(self.exhausted),
               "descriptor_errors": float(self._descriptor_errors)}
        if self.qd is not None:
            out.update(self.qd.stats())
        if self._best is not None:
            out["best_fitness"] = self._best
        out.update({f"failures.kind.{k}": float(v) for k, v in sorted(self._failure_kinds.items())})
        out.update({f"failures.cell.{k}": float(v) for k, v in sorted(self._failure_regions.items())})
        out.update(self._extra_metrics())
        return out

    def cell_for(self, values: Sequence[float]) -> str | None:
        """The archive cell descriptor ``values`` fall in (None without an archive): a pure function of them."""
        return self.qd.cell_of_values(values) if self.qd is not None else None

    def cell_of(self, genome_hash: str) -> str | None:
        """The archive cell an evaluated genome landed in (None: not evaluated, or no cell computable)."""
        rec = self._records.get(genome_hash)
        return None if rec is None else rec.cell

    def elite_hashes(self) -> list[str]:
        return self.qd.elite_hashes() if self.qd is not None else []

    def archive_rows(self) -> list[dict[str, Any]]:
        """The QD archive as a table: hash, genes, fitness, descriptors (by name), cell."""
        if self.qd is None:
            return []
        rows = self.qd.rows()
        for row in rows:
            row["genes"] = self._records[row["hash"]].proposal.genome.to_dict()
        return rows

    def record(self, genome_hash: str) -> Evaluated | None:
        return self._records.get(genome_hash)

    def evaluated(self) -> list[Evaluated]:
        """Every told evaluation, in tell order (with :meth:`compact_history`: the retained ones)."""
        return list(self._records.values())

    # -- state ------------------------------------------------------------------------------------------
    def _identity(self) -> dict[str, Any]:
        return json.loads(json.dumps({"strategy": self.NAME, "seed": self.seed, "settings": self.settings,
                                      "descriptors": [d.to_config() for d in self.descriptors],
                                      "space": self.space.to_config()}))

    def state_dict(self, *, with_log: bool = True) -> dict[str, Any]:
        """The full state as plain JSON data (no numpy, no pickle).

        ``with_log=False`` leaves out the told log (every evaluation, O(evaluations)): a campaign keeps that log
        in its journal and hands it back to :meth:`load_state_dict`, so its snapshots stay small.
        """
        state = {"format": STATE_FORMAT, **self._identity(), "rng": plain(self.rng.bit_generator.state),
                 "asked": self._asked, "exhausted": self.exhausted,
                 "archive": self.qd.config() if self.qd is not None else None,
                 "in_flight": [p.to_dict() for p in self._in_flight.values()], "extra": self._extra_state(),
                 "told": self._told, "seeded": self._seeded}
        if with_log and self._compact:
            raise ValueError("a strategy with a compact history keeps no told log: save it with with_log=False and "
                             "restore it with the journal's log")
        if with_log:
            state["records"] = [r.to_dict() for r in self._records.values()]
            state["revisions"] = [[told, rev.to_dict()] for told, rev in self._revisions]
        return state

    def log_entry(self, proposal: Proposal, result: EvalResult, descriptors: Sequence[float] | None) -> Evaluated:
        """The told-log entry of one evaluation, as :meth:`tell` makes it (for a log kept elsewhere)."""
        return self._evaluate_record(proposal, result, None if descriptors is None else list(descriptors))

    def load_state_dict(self, state: Mapping[str, Any], *, log: Iterable[Evaluated | Revision] | None = None,
                        start: Mapping[str, Any] | None = None, told: Iterable[str] = ()) -> None:
        """Restore a state saved by a strategy built with the same name, seed, settings, descriptors, space.

        A state saved without its log (``state_dict(with_log=False)``) needs ``log``: the told evaluations in
        tell order (see :meth:`log_entry`), exactly ``state["told"]`` of them, with the :class:`Revision` s
        (:meth:`revise`) where they happened. ``start``: a :meth:`compact_state` saved earlier (with ``told``, the
        genomes told by then), from which ``log`` goes on: only the evaluations told after it.
        """
        if state.get("format") != STATE_FORMAT:
            raise ValueError(f"strategy state format {state.get('format')!r}: this ctmevo reads {STATE_FORMAT}")
        mine = self._identity()
        for key, value in mine.items():
            if state.get(key) != value:
                raise ValueError(f"cannot load a strategy state whose {key} is {state.get(key)!r} into a "
                                 f"strategy whose {key} is {value!r}")
        self._init_state()
        if self.qd is not None and state.get("archive"):
            self._qd = self._make_archive(state["archive"])
        if start is not None:
            self.load_compact_state(start, told)
        if "records" in state:
            log = interleave([Evaluated.from_dict(data) for data in state["records"]],
                              [(int(told), Revision.from_dict(rev)) for told, rev in state.get("revisions", [])])
        elif log is None:
            raise ValueError("this strategy state was saved without its told log: pass log=... (the journal's)")
        self.loading = True  # hooks see a replay (Optuna and EvoTorch rebuild their own state from their logs)
        for entry in log:
            if isinstance(entry, Revision):
                self._apply_revision(entry)
            else:
                self._apply(entry, None)
        if "told" in state and self._told != int(state["told"]):
            raise ValueError(f"strategy state: {self._told} told evaluations replayed, the state was saved "
                             f"after {state['told']}")
        for data in state["in_flight"]:
            proposal = Proposal.from_dict(data)
            self._in_flight[phash(proposal)] = proposal
        self._asked, self.exhausted = int(state["asked"]), bool(state["exhausted"])
        self._seeded = int(state.get("seeded", 0))
        self.loading = False
        self._load_extra(state.get("extra") or {})
        self.rng.bit_generator.state = state["rng"]

    # -- helpers for subclasses -------------------------------------------------------------------------
    def _taken(self, genome_hash: str) -> bool:
        return genome_hash in self._records or genome_hash in self._in_flight or (
            bool(self._forgotten) and hash_key(genome_hash) in self._forgotten)

