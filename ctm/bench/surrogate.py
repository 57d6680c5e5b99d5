"""CTM-Bench's surrogate: a model of CTM training fitted on the measured curves.

``Surrogate.fit(curves, kind="boosting")`` fits, for every measure of :data:`ctm.bench.data.MEASURES`, a model
of the seed mean over (genome, steps), a model of the seed-to-seed spread, and for validation accuracy the 10%
and 90% quantiles of a single seed's measurement (the 80% prediction interval). Inputs are the genome's codec
vector in the bench task's space (:class:`genome.codec.VectorCodec`), log10 of its parameter count and MACs per
forward (:func:`genome.cost.estimate`) and log(steps). Two model classes, so that a
search can be judged by a surrogate it did not learn from:

- ``"boosting"``: scikit-learn's ``HistGradientBoostingRegressor`` (squared error for means and spread, quantile
  loss for the interval);
- ``"forest"``: scikit-learn's ``ExtraTreesRegressor``, the interval from the spread of its trees' predictions
  and the predicted seed noise.

The models are refitted when loaded (a fixed ``random_state``; a second or two on the shipped data), never
unpickled. Cost per step (``seconds_per_step``) and the overhead per measurement are predicted the same way
from the genome alone. A genome outside the task's space is refused with the gene, its value and the domain.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from ctm.bench.data import MEASURES, Curves
from ctm.bench.space import STEPS, bench_task, cost
from genome.genome import Genome

Kind = Literal["boosting", "forest"]
KINDS: tuple[str, ...] = ("boosting", "forest")
Z80 = 1.2815515655446004  # the standard normal's 90% quantile: mean ± Z80·σ holds 80%


class OutsideSpace(ValueError):
    """A genome the bench was not built for."""


def _model(kind: str, *, loss: str = "squared_error", quantile: float | None = None, seed: int = 0) -> Any:
    from sklearn.ensemble import ExtraTreesRegressor, HistGradientBoostingRegressor
    if kind == "boosting":
        extra = {"quantile": quantile} if quantile is not None else {}
        return HistGradientBoostingRegressor(loss=loss, max_iter=200, learning_rate=0.03, max_depth=3,
                                             min_samples_leaf=20, l2_regularization=1.0, random_state=seed, **extra)
    if kind == "forest":
        return ExtraTreesRegressor(n_estimators=150, min_samples_leaf=3, max_features=0.6, random_state=seed,
                                   n_jobs=1)
    raise ValueError(f"kind = {kind!r}: allowed is one of {list(KINDS)}")


@dataclass
class Surrogate:
    """Fitted models for one bench task (see the module doc). Build with :meth:`fit`."""

    task: str
    kind: str
    models: dict[str, Any] = field(default_factory=dict)
    _codec: Any = None
    _cache: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    _flat: Any = None  # ctm.bench.trees.StackedEnsembles of every model, built after fitting

    @classmethod
    def fit(cls, curves: Curves, *, kind: Kind = "boosting", genomes: Sequence[int] | None = None,
            seed: int = 0) -> Surrogate:
        """Fit on ``curves`` (only the genome rows ``genomes`` when given: a train split)."""
        if kind not in KINDS:
            raise ValueError(f"kind = {kind!r}: allowed is one of {list(KINDS)}")
        from genome.codec import VectorCodec
        with _one_thread():  # small data: one thread each is fastest and leaves other cores alone
            return cls._fit(curves, kind=kind, genomes=genomes, seed=seed, codec=VectorCodec(
                bench_task(curves.task).space()))

    @classmethod
    def _fit(cls, curves: Curves, *, kind: str, genomes: Sequence[int] | None, seed: int, codec: Any) -> Surrogate:
        out = cls(task=curves.task, kind=kind, _codec=codec)
        rows = np.arange(curves.n) if genomes is None else np.asarray(genomes)
        feats = out._features([curves.genomes[i] for i in rows])  # [n * steps, d]
        for m in MEASURES:
            v = curves.values[m][rows]  # [n, seeds, steps]
            mean = np.nanmean(v, axis=1).reshape(-1)
            ok = np.isfinite(mean)
            out.models[m] = _model(kind, seed=seed).fit(feats[ok], mean[ok])
            both = np.isfinite(v).all(axis=1)  # genomes measured on every seed: the spread is observable
            if v.shape[1] > 1:
                spread = np.nanstd(v, axis=1, ddof=1).reshape(-1)
                okb = both.reshape(-1) & np.isfinite(spread)
                out.models[m + ":spread"] = _model(kind, seed=seed).fit(feats[okb], spread[okb])
        acc = curves.values["val_accuracy"][rows]  # one row per (genome, seed, step): single measurements
        f_seed = np.repeat(feats.reshape(len(rows), 1, len(STEPS), -1), acc.shape[1], axis=1)
        f_seed = f_seed.reshape(-1, feats.shape[1])
        y_seed = acc.reshape(-1)
        ok = np.isfinite(y_seed)
        if kind == "boosting":
            for q in (0.1, 0.9):
                out.models[f"val_accuracy:q{int(q * 100)}"] = _model(kind, loss="quantile", quantile=q,
                                                                    seed=seed).fit(f_seed[ok], y_seed[ok])
        g = out._features([curves.genomes[i] for i in rows], steps=(STEPS[-1],))
        out.models["seconds_per_step"] = _model(kind, seed=seed).fit(g, np.log(curves.seconds_per_step[rows]))
        out.models["overhead_s"] = _model(kind, seed=seed).fit(g, np.log(np.maximum(curves.overhead_s[rows], 1e-4)))
        from ctm.bench.trees import StackedEnsembles
        out._flat = StackedEnsembles.of(out.models)
        return out

    # -- inputs --------------------------------------------------------------------------------------------
    def check(self, genome: Genome) -> None:
        """Raise :class:`OutsideSpace` naming every gene of ``genome`` outside the task's space (the space's own
        check: each gene, its value and the domain)."""
        from genome.errors import GenomeError
        try:
            self._codec.space.check(genome)
        except GenomeError as exc:
            raise OutsideSpace(f"genome {genome.hash} is outside CTM-Bench's {self.task} space: "
                               + "; ".join(str(p) for p in exc.problems)) from None

    def _features(self, genomes: Sequence[Genome], steps: Sequence[int] = STEPS) -> np.ndarray:
        x = np.stack([np.concatenate([self._codec.encode(g), _capacity(g, self.task)]) for g in genomes])  # [n, d+2]
        s = np.log(np.asarray(steps, dtype=np.float64))
        return np.concatenate([np.repeat(x, len(s), axis=0), np.tile(s, len(x))[:, None]], axis=1)

    # -- predictions ---------------------------------------------------------------------------------------
    def predict(self, genome: Genome) -> dict[str, np.ndarray]:
        """For ``genome`` at every recorded step: ``<measure>`` (seed mean) and ``<measure>:spread`` (seed-to-seed
        standard deviation) arrays over :data:`STEPS`, ``val_accuracy:low``/``:high`` (80% interval of one
        seed's measurement), and scalars ``seconds_per_step`` and ``overhead_s``. Cached per genome."""
        got = self._cache.get(genome.hash)
        if got is not None:
            return got
        self.check(genome)
        out = self._predict(genome)
        self._cache[genome.hash] = out
        return out

    def _predict(self, genome: Genome) -> dict[str, np.ndarray]:
        x = self._features([genome])
        trees = self._flat.per_tree(x)
        raw = self._flat.predict(x, trees)
        out: dict[str, np.ndarray] = {}
        for name, value in raw.items():
            if name in ("seconds_per_step", "overhead_s"):
                out[name] = np.exp(value[-1:])
            elif not name.startswith("val_accuracy:q"):
                out[name] = value
        for m in MEASURES:
            out[m + ":spread"] = np.maximum(out.get(m + ":spread", np.zeros(len(STEPS))), 0.0)
        if self.kind == "boosting":
            low, high = raw["val_accuracy:q10"], raw["val_accuracy:q90"]
            out["val_accuracy:low"], out["val_accuracy:high"] = np.minimum(low, high), np.maximum(low, high)
        else:
            sd = np.sqrt(trees["val_accuracy"].var(0) + out["val_accuracy:spread"] ** 2)
            out["val_accuracy:low"] = out["val_accuracy"] - Z80 * sd
            out["val_accuracy:high"] = out["val_accuracy"] + Z80 * sd
        return out

    def predict_many(self, genomes: Sequence[Genome], measure: str = "val_accuracy") -> np.ndarray:
        """[len(genomes), steps]: the predicted seed mean of ``measure`` (one batched call per model)."""
        for g in genomes:
            self.check(g)
        x = self._features(genomes)
        return self._flat.parts[self._flat.names.index(measure)].predict(x).reshape(len(genomes), len(STEPS))


def _capacity(genome: Genome, task: str) -> np.ndarray:
    """log10 of the parameter count and of the MACs per forward (exact, from the cost model): the size of the
    model as one number each, which trees otherwise have to assemble from several widths."""
    c = cost(genome, task)
    return np.log10([max(c.params, 1), max(c.macs_per_forward, 1)])


_LIMIT: list[Any] = []


def _one_thread() -> Any:
    """A context in which scikit-learn's OpenMP runs one thread: on these small tables, more threads only
    contend (a fit took 15× longer beside two busy cores)."""
    import sklearn.ensemble  # noqa: F401  # load its OpenMP runtime first: only loaded libraries are limited
    from threadpoolctl import ThreadpoolController
    if not _LIMIT:
        _LIMIT.append(ThreadpoolController())
    return _LIMIT[0].limit(limits=1, user_api="openmp")
