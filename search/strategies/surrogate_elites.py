"""Surrogate-assisted MAP-Elites: a model of fitness, trained on the campaign's own results, screens the children.

The ideas, and where they come from:

- **Screening** (SAIL, Gaier et al. 2018; BOP-Elites, Kent & Branke 2023): for every proposal, ``candidates``
  children are made by MAP-Elites' own variation (plus a share of random genomes); a Gaussian process
  (:mod:`search.strategies.gp`) over the codec vector predicts each one's fitness at the top fidelity rung with
  an uncertainty, and the child with the highest *expected improvement* is proposed: improvement of the best
  genome so far (a ``quality_share`` of the proposals), or of the elite of the archive cell the child would land
  in (the rest; a cell nobody holds is measured against the weakest elite), so the archive fills with good
  genomes in every cell rather than one peak. Cells are known before evaluation only for descriptors that need
  the genome alone (genes); otherwise every proposal aims at the best.
- **Exploration** (SMAC's interleaved random configurations, screened here): an ``explore_share`` of the
  proposals is chosen among random genomes only, by the same expected improvement. Children of elites otherwise
  win nearly every screen, so a small campaign spends itself on the neighbours of whichever genome looked best
  after its first few (noisy, short) evaluations.
- **Proposals in flight** are added to the model as if they had scored its prediction ("kriging believer"):
  64 asynchronous workers do not all get the same genome's neighbours.
- **Fidelity as an input** (multi-fidelity GP; freeze-thaw BO, DyHPO): the rung is one more input of the model,
  so a genome's short-training result moves the prediction of its long-training one. Promotions keep the
  campaign's ASHA quota (the top ``1/eta`` of a rung by what was measured there); the model vetoes a promotion
  whose *predicted* final fitness, optimistically (mean + ``promote_kappa`` sd), could beat neither the best
  genome measured at the top rung nor its own cell's: curves that will not matter stop costing compute.
- **Noise** (a model, not a rule): an observation that is the mean of k seeds has 1/k of one measurement's noise
  variance in the model, and the archive compares two elites at the same rung by their lower one-sigma bound
  ``mean − σ/√seeds`` with σ the model's noise estimate, so a lucky single seed does not displace a mean of
  several.

The model is refitted (hyperparameters by marginal likelihood) every ``refit_every`` results and conditioned
on every new result before the next proposal; it keeps at most ``max_points`` observations (all at the top rung
first, then the most recent). Everything is a pure function of the told log and the random generator, so a
resumed campaign proposes exactly the same genomes.

Memory grows with every evaluation: the surrogate's training set is every told genome (docs/search.md,
"Memory at scale").
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from ctm.result import EvalResult
from genome import Genome
from search.records import Proposal
from search.strategies.evaluated import Evaluated, Revision, phash
from search.strategies.gp import GaussianProcess, expected_improvement
from search.strategies.map_elites import MapElites
from search.strategies.settings import Setting

__all__ = ["SurrogateElites"]

MIN_POINTS = 8  # observations before the model is trusted (random proposals until then)


class SurrogateElites(MapElites):
    """MAP-Elites whose children are screened by a Gaussian process (see the module docstring)."""

    NAME = "surrogate_elites"
    BOUNDED_HISTORY = FULL_SNAPSHOT = False  # its surrogate trains on every told genome
    SETTINGS: ClassVar[dict[str, Setting]] = {
        **MapElites.SETTINGS,
        "initial_samples": Setting(kind=int, default=32, low=1, high=1_000_000,
                                   doc="random genomes proposed before the model screens children"),
        "candidates": Setting(kind=int, default=200, low=2, high=100_000,
                              doc="children screened by the model for each proposal"),
        "random_share": Setting(kind=float, default=0.2, low=0.0, high=1.0,
                                doc="share of the screened candidates that are random genomes, not children"),
        "explore_share": Setting(kind=float, default=0.3, low=0.0, high=1.0,
                                 doc="share of proposals screened among random genomes only, no children "
                                     "(docs/search.md: why 0.3)"),
        "quality_share": Setting(kind=float, default=0.5, low=0.0, high=1.0,
                                 doc="share of proposals chosen by improvement of the best (the rest: of their "
                                     "archive cell)"),
        "promote_kappa": Setting(kind=float, default=1.0, low=0.0, high=100.0,
                                 doc="optimism of promotions: predicted final mean + kappa sd must reach the "
                                     "best at the top rung or the cell's; 100 = never veto"),
        "max_points": Setting(kind=int, default=300, low=MIN_POINTS, high=5_000,
                              doc="observations the model keeps (its cost grows with the cube)"),
        "refit_every": Setting(kind=int, default=32, low=1, high=1_000_000,
                               doc="results between fits of the model's hyperparameters"),
    }

    # -- state (rebuilt by replaying the told log) ---------------------------------------------------------
    def _init_state(self) -> None:
        super()._init_state()
        self._obs: dict[tuple[str, int], tuple[float, int]] = {}  # (genome, rung) → (mean fitness, seeds)
        self.model = GaussianProcess(dim=self.codec.dim + 1)
        self._conditioned: tuple[int, tuple[str, ...]] | None = None  # what the model is conditioned on now
        self._changes = 0  # observations made (the model's data version)

    def _on_record(self, rec: Evaluated, result: EvalResult | None) -> None:
        super()._on_record(rec, result)
        if rec.ok and rec.fitness is not None:
            self._observe(rec.hash, rec.rung, rec.fitness, rec.seeds)

    def _on_revise(self, rec: Evaluated, rev: Revision) -> None:
        super()._on_revise(rec, rev)
        if rec.ok and rev.fitness is not None and np.isfinite(rev.fitness):
            self._observe(rev.hash, rev.rung, float(rev.fitness), rev.seeds)

    def _observe(self, h: str, rung: int, fitness: float, seeds: int) -> None:
        self._obs.pop((h, rung), None)  # re-inserted last: the most recent observations are kept first
        self._obs[(h, rung)] = (float(fitness), int(seeds))
        self._changes += 1
        if self._changes == MIN_POINTS or (self._changes > MIN_POINTS and
                                           self._changes % self.settings["refit_every"] == 0):
            self._fit()  # at fixed places in the told log, so a replay of the log fits exactly the same

    def _fit(self) -> None:
        """Fit the hyperparameters (warm start from the previous fit) to the observations kept now."""
        x, y, seeds = self._data()
        self.model.fit(x, y, seeds, steps=40 if self._changes == MIN_POINTS else 12)
        if self.qd is not None:
            self.qd.noise_sd = self.model.noise_sd  # the archive's comparison at equal rungs (THE RULE, 2)
        self._conditioned = None

    # -- the model ------------------------------------------------------------------------------------------
    def _x(self, genome: Genome, rung: float) -> np.ndarray:
        fidelity = rung / self.top_rung if self.top_rung else 1.0
        return np.append(self.codec.encode(genome), fidelity)

    def _ready(self) -> bool:
        return len(self._obs) >= MIN_POINTS

    def _condition(self) -> GaussianProcess:
        """The model conditioned on the kept observations and on the proposals in flight (at their prediction)."""
        key = (self._changes, tuple(self._in_flight))
        if self._conditioned == key:
            return self.model
        x, y, seeds = self._data()
        self.model.fit(x, y, seeds)
        if self._in_flight:  # kriging believer: the proposals in flight "score" what the model predicts
            pending = np.array([self._x(p.genome, 0) for p in self._in_flight.values()])
            believed, _ = self.model.predict(pending)
            self.model.fit(np.vstack([x, pending]), np.concatenate([y, believed]),
                           np.concatenate([seeds, np.ones(len(pending))]))
        self._conditioned = key
        return self.model

    def _data(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The observations the model keeps: all at the top rung (up to half), then the most recent."""
        cap = self.settings["max_points"]
        items = list(self._obs.items())
        if len(items) > cap:
            top = [it for it in items if it[0][1] == self.top_rung][-(cap // 2):]
            kept = {it[0] for it in top}
            items = [it for it in items if it[0] not in kept][-(cap - len(top)):] + top
        x = np.array([self._x(self._records[h].proposal.genome, r) for (h, r), _ in items])
        y = np.array([v for _, (v, _) in items])
        return x, y, np.array([k for _, (_, k) in items], dtype=np.float64)

    def _top_means(self, hashes: list[str]) -> np.ndarray:
        model = self._condition()
        if not hashes:
            return np.zeros(0)
        return model.predict(np.array([self._x(self._records[h].proposal.genome, self.top_rung)
                                       for h in hashes]))[0]

    # -- proposals ------------------------------------------------------------------------------------------
    def _propose(self) -> Proposal | None:
        assert self.qd is not None
        cells = self.qd.elite_indices()
        if self._asked < self.settings["initial_samples"] or not cells or not self._ready():
            return self._sample()
        # no draw at share 0: the random stream, and so every proposal, stays that of the strategy before the setting
        explore = self.settings["explore_share"] > 0 and self.rng.random() < self.settings["explore_share"]
        candidates = self._candidates(cells, explore=explore)
        if not candidates:
            return self._sample()
        model = self._condition()
        mu, sd = model.predict(np.array([self._x(p.genome, self.top_rung) for p in candidates]))
        reference = self._references(candidates, by_cell=self.rng.random() >= self.settings["quality_share"])
        gain = expected_improvement(mu, sd, reference)
        return candidates[int(np.argmax(gain))]

    def _candidates(self, cells: list[int], *, explore: bool = False) -> list[Proposal]:
        """Children of elites (and random genomes; only random ones when ``explore``), each new and not in
        flight, each genome once."""
        s = self.settings
        out: dict[str, Proposal] = {}
        n_random = s["candidates"] if explore else round(s["candidates"] * s["random_share"])
        for i in range(s["candidates"]):
            if i < n_random:
                proposal = self._sample()
            else:
                picks = self.rng.integers(len(cells), size=2)
                parents = [self._records[self.qd.elite_hash(cells[int(j)])] for j in picks]  # type: ignore[union-attr]
                proposal = self._fresh(lambda p=parents, c=picks[0] != picks[1]: self._breed(p, crossover_ok=c))
            if proposal is not None:
                out.setdefault(phash(proposal), proposal)
        return list(out.values())

    def _references(self, candidates: list[Proposal], *, by_cell: bool) -> np.ndarray:
        """What each candidate must improve on: the best predicted final fitness of any evaluated genome, or
        (``by_cell``, descriptors of the genome alone) that of its cell's elite, the weakest elite's for a cell
        nobody holds."""
        assert self.qd is not None
        elites = self.qd.elite_hashes()
        elite_means = dict(zip(elites, self._top_means(elites), strict=True))
        measured = [h for h, r in self._obs if r == self.top_rung]
        best = max([*elite_means.values(), *self._top_means(measured)], default=0.0)
        if not by_cell or not all(d.genome_only for d in self.descriptors):
            return np.full(len(candidates), best)
        floor = min(elite_means.values(), default=0.0)
        by_index = {self.qd.elite_cell(h): m for h, m in elite_means.items()}
        out = []
        for p in candidates:
            values = [d(p.genome, None) for d in self.descriptors]
            out.append(by_index.get(self.qd.index_of(values), floor))
        return np.array(out)

    # -- promotions -----------------------------------------------------------------------------------------
    def may_promote(self, genome_hash: str) -> bool:
        """Veto a promotion that cannot matter: its predicted final fitness, optimistically, stays below both the
        best genome measured at the top rung and its cell's best there."""
        rec = self._records.get(genome_hash)
        if self.top_rung == 0 or rec is None or not self._ready() or self.settings["promote_kappa"] >= 100:
            return True
        model = self._condition()
        mu, sd = model.predict(self._x(rec.proposal.genome, self.top_rung)[None, :])
        optimistic = float(mu[0] + self.settings["promote_kappa"] * sd[0])
        at_top = [h for h, r in self._obs if r == self.top_rung and h != genome_hash]
        if not at_top:
            return True
        means = self._top_means(at_top)
        same_cell = [m for h, m in zip(at_top, means, strict=True) if self._records[h].cell == rec.cell]
        bar = min(float(np.max(means)), max(same_cell) if same_cell and rec.cell is not None else -np.inf)
        return optimistic >= bar

    def _extra_metrics(self) -> dict[str, Any]:
        return {"model_points": float(min(len(self._obs), self.settings["max_points"]))}
