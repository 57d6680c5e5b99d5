"""Optuna baselines through its ask/tell interface over the genome's vector codec.

Every searched gene is one ``FloatDistribution(0, 1)`` parameter (named after the gene); a trial's point is
decoded (clipped and repaired) into a genome by :class:`genome.VectorCodec`.

- ``optuna_tpe``: TPE, single objective (maximise fitness), with the constant liar for trials in flight.
- ``optuna_nsga2``: NSGA-II, several objectives, e.g. maximise fitness and minimise ``macs_per_forward``
  (each objective is ``fitness`` or a key of ``result.metrics``).

Duplicates: when a trial decodes to a genome already evaluated, the trial is told that genome's values at
once (a success) or as failed (a failure, or a genome still in flight), and another trial is asked; after
``max_resample`` such trials a random genome is proposed and, once told, added to the study as a finished
trial. Failures are told as ``TrialState.FAIL`` (TPE and NSGA-II ignore them).

Fidelity rungs (``evaluation.fidelity``): ``optuna_tpe`` reports each rung's fitness as an intermediate value
of the genome's trial (rung r at step 3**r, so that each campaign rung is one of the pruner's rungs), completes
the trial at the top rung, and asks its ``pruner`` (successive halving, Hyperband or median) whether the genome
may go on: a pruned trial is told PRUNED and the genome is not promoted (``may_promote``), every other one is
(the pruner decides, not the campaign's quota). With ``pruner: none`` the campaign's own successive halving
decides.

Exact restore (a documented replay): the state keeps the log of every ask, tell and add made on the study;
loading creates the study again from the seed and replays that log call by call, so the sampler's random
state and the trials are what they were, and the next asks are identical. Replay costs one sampler call per
logged ask.

Memory grows with every evaluation: Optuna keeps every trial (about 6 KB per evaluation for NSGA-II, 12 KB
for TPE, whose ask also slows as trials accumulate; docs/search.md, "Memory at scale").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import optuna
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState

from ctm.result import EvalResult
from search.records import Proposal
from search.strategies.base import Strategy
from search.strategies.evaluated import Evaluated, ghash, phash
from search.strategies.settings import Setting, StrategyConfigError

optuna.logging.set_verbosity(optuna.logging.WARNING)  # no INFO line per trial in campaign logs

# Optuna's successive halving and Hyperband judge a trial at steps min_resource * factor**k (1, 3, 9, ... here);
# rung r is reported at step factor**r, so every campaign rung below the top is one of the pruner's rungs (with
# steps 1, 2, 3 the pruner would skip rung 1 and let everything that passed rung 0 train to the top).
RUNG_STEP_FACTOR = 3


class _OptunaStrategy(Strategy):
    OPERATOR: ClassVar[str] = "optuna"

    def _objective_names(self) -> list[str]:
        return ["fitness"]

    def _directions(self) -> list[str]:
        return ["maximize"]

    def _sampler(self) -> optuna.samplers.BaseSampler:
        raise NotImplementedError

    def _pruner(self) -> optuna.pruners.BasePruner:
        return optuna.pruners.NopPruner()

    @property
    def _by_rung(self) -> bool:
        """Whether trials follow the fidelity rungs (one objective, a campaign with rungs)."""
        return self.top_rung > 0 and len(self._directions()) == 1

    def _init_state(self) -> None:
        super()._init_state()
        self._distributions = {name: FloatDistribution(0.0, 1.0) for name in self.codec.names}
        self.study = optuna.create_study(directions=self._directions(), sampler=self._sampler(),
                                         pruner=self._pruner())
        self._trials: dict[int, optuna.Trial] = {}  # every asked trial by number (report, should_prune)
        self._open: dict[str, int] = {}  # genome hash → trial number of a trial still climbing the rungs
        self._vetoed: set[str] = set()  # genomes whose trial the pruner stopped
        self._log: list[dict[str, Any]] = []
        self._trial_of: dict[str, int] = {}  # in-flight genome hash → trial number
        self._added: set[str] = set()  # in-flight random fallbacks, added to the study once told
        self._values_of: dict[str, list[float] | None] = {}  # told genome → objective values (None: failed)
        self._objective_missing = 0

    # -- study calls (each one logged, so that a restore can replay them) ----------------------------------
    def _ask(self) -> optuna.Trial:
        self._log.append({"op": "ask"})
        trial = self.study.ask(self._distributions)
        self._trials[trial.number] = trial
        return trial

    def _tell(self, number: int, values: list[float] | None) -> None:
        self._log.append({"op": "tell", "trial": number, "values": values})
        if values is None:
            self.study.tell(number, state=TrialState.FAIL)
        else:
            self.study.tell(number, values)

    def _add(self, params: list[float], values: list[float] | None) -> None:
        self._log.append({"op": "add", "params": params, "values": values})
        state = TrialState.FAIL if values is None else TrialState.COMPLETE
        self.study.add_trial(optuna.trial.create_trial(
            state=state, values=values, distributions=self._distributions,
            params=dict(zip(self.codec.names, params, strict=True))))

    def _report(self, number: int, value: float, step: int) -> None:
        self._log.append({"op": "report", "trial": number, "value": value, "step": step})
        self._trials[number].report(value, step)

    def _prune(self, number: int) -> None:
        self._log.append({"op": "prune", "trial": number})
        self.study.tell(number, state=TrialState.PRUNED)

    def _replay(self, event: Mapping[str, Any]) -> None:
        if event["op"] == "ask":
            self._ask()
        elif event["op"] == "tell":
            self._tell(event["trial"], event["values"])
        elif event["op"] == "report":
            self._report(event["trial"], event["value"], event["step"])
        elif event["op"] == "prune":
            self._prune(event["trial"])
        else:
            self._add(event["params"], event["values"])

    # -- fidelity rungs -----------------------------------------------------------------------------------
    @property
    def decides_promotions(self) -> bool:
        return self._by_rung and self.settings.get("pruner", "none") != "none"

    def may_promote(self, genome_hash: str) -> bool:
        return genome_hash not in self._vetoed

    def _climb(self, h: str, number: int, value: float, rung: int) -> None:
        """A rung's value of ``h``'s trial: completed at the top rung, else reported and judged by the pruner."""
        if rung >= self.top_rung:
            self._open.pop(h, None)
            self._tell(number, [value])
            return
        self._report(number, value, RUNG_STEP_FACTOR ** rung)  # steps 1, 3, 9, ...: a pruner rung per rung
        self._open[h] = number
        if self._trials[number].should_prune():
            self._open.pop(h, None)
            self._vetoed.add(h)
            self._prune(number)

    def _on_revise(self, rec: Evaluated, rev: Any) -> None:
        if self.loading or rec.hash not in self._open or rev.fitness is None:
            return
        self._climb(rec.hash, self._open[rec.hash], float(rev.fitness), rev.rung)

    # -- the contract -------------------------------------------------------------------------------------
    def _propose(self) -> Proposal | None:
        for _ in range(self.settings["max_resample"]):
            trial = self._ask()
            genome = self.codec.decode([trial.params[name] for name in self.codec.names])
            h = ghash(genome)
            if not self._taken(h):
                self._trial_of[h] = trial.number
                return Proposal(genome=genome, operator=self.OPERATOR)
            self._tell(trial.number, self._values_of.get(h))  # a known genome: its values, else failed
        proposal = self._sample()
        if proposal is not None:
            self._added.add(phash(proposal))
        return proposal

    def _on_seed(self, proposal: Proposal) -> None:
        self._added.add(phash(proposal))  # told to the study as a finished trial, like a random sample

    def _objectives(self, rec: Evaluated, result: EvalResult) -> list[float] | None:
        if not rec.ok:
            return None
        values = []
        for name in self._objective_names():
            value = rec.fitness if name == "fitness" else result.metrics.get(name)
            if value is None:
                self._objective_missing += 1
                return None
            values.append(float(value))
        return values

    def _on_record(self, rec: Evaluated, result: EvalResult | None) -> None:
        if result is None:
            return  # replaying: the study is rebuilt from the log in _load_extra
        values = self._objectives(rec, result)
        self._values_of[rec.hash] = values
        if rec.hash in self._trial_of and self._by_rung and values is not None:
            self._climb(rec.hash, self._trial_of.pop(rec.hash), values[0], 0)
        elif rec.hash in self._trial_of:
            self._tell(self._trial_of.pop(rec.hash), values)
        elif rec.hash in self._added:
            self._added.discard(rec.hash)
            self._add(self.codec.encode(rec.proposal.genome).tolist(), values)

    def _extra_state(self) -> dict[str, Any]:
        return {"log": list(self._log), "trial_of": dict(self._trial_of), "added": sorted(self._added),
                "values_of": dict(self._values_of), "objective_missing": self._objective_missing,
                "open": dict(self._open), "vetoed": sorted(self._vetoed)}

    def _load_extra(self, extra: Mapping[str, Any]) -> None:
        for event in extra["log"]:
            self._replay(event)
        self._trial_of = dict(extra["trial_of"])
        self._added = set(extra["added"])
        self._values_of = {k: (None if v is None else list(v)) for k, v in extra["values_of"].items()}
        self._objective_missing = int(extra["objective_missing"])
        self._open = {k: int(v) for k, v in (extra.get("open") or {}).items()}
        self._vetoed = set(extra.get("vetoed") or [])

    def _extra_metrics(self) -> dict[str, float]:
        return {"optuna_trials": float(len(self.study.trials)),
                "objective_missing": float(self._objective_missing)}


class OptunaTPE(_OptunaStrategy):
    """Optuna's TPE sampler, maximising fitness."""

    NAME = "optuna_tpe"
    OPERATOR = "tpe"
    SETTINGS: ClassVar[dict[str, Setting]] = {
        "n_startup_trials": Setting(kind=int, default=10, low=0, high=1_000_000,
                                    doc="random trials before TPE models the results"),
        "n_ei_candidates": Setting(kind=int, default=24, low=1, high=10_000,
                                   doc="candidates scored by expected improvement per trial"),
        "constant_liar": Setting(kind=bool, default=True, doc="treat trials in flight as bad (async)"),
        "pruner": Setting(kind=str, default="none", choices=("none", "successive_halving", "hyperband", "median"),
                          doc="with fidelity rungs: Optuna's pruner judges each rung's value (none: the "
                          "campaign's successive halving alone decides promotions)"),
    }

    def _pruner(self) -> optuna.pruners.BasePruner:
        name = self.settings["pruner"]
        if name == "successive_halving":
            return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=RUNG_STEP_FACTOR)
        if name == "hyperband":
            top = RUNG_STEP_FACTOR ** max(1, self.top_rung)
            return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=top, reduction_factor=RUNG_STEP_FACTOR)
        if name == "median":
            return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=0)
        return optuna.pruners.NopPruner()

    def _sampler(self) -> optuna.samplers.BaseSampler:
        s = self.settings
        return optuna.samplers.TPESampler(seed=self.seed, n_startup_trials=s["n_startup_trials"],
                                          n_ei_candidates=s["n_ei_candidates"], constant_liar=s["constant_liar"])


class OptunaNSGA2(_OptunaStrategy):
    """Optuna's NSGA-II sampler over several objectives (default: maximise fitness, minimise MACs)."""

    NAME = "optuna_nsga2"
    OPERATOR = "nsga2"
    SETTINGS: ClassVar[dict[str, Setting]] = {
        "population_size": Setting(kind=int, default=20, low=2, high=100_000, doc="NSGA-II population size"),
        "objectives": Setting(kind=list, item=str, default=["fitness", "macs_per_forward"],
                              doc="'fitness' or keys of result.metrics"),
        "directions": Setting(kind=list, item=str, default=["maximize", "minimize"],
                              choices=("maximize", "minimize"), doc="one direction per objective"),
        "crossover_prob": Setting(kind=float, default=0.9, low=0.0, high=1.0, doc="NSGA-II crossover rate"),
    }

    def _check_settings(self, s: dict[str, Any], field: str) -> None:
        if len(s["directions"]) != len(s["objectives"]):
            raise StrategyConfigError(f"{field}.directions", s["directions"],
                                      f"one direction per objective ({len(s['objectives'])}: {s['objectives']})")
        if len(set(s["objectives"])) != len(s["objectives"]):
            raise StrategyConfigError(f"{field}.objectives", s["objectives"], "objectives named once each")

    def _objective_names(self) -> list[str]:
        return list(self.settings["objectives"])

    def _directions(self) -> list[str]:
        return list(self.settings["directions"])

    def _sampler(self) -> optuna.samplers.BaseSampler:
        s = self.settings
        return optuna.samplers.NSGAIISampler(seed=self.seed, population_size=s["population_size"],
                                             crossover_prob=s["crossover_prob"])
