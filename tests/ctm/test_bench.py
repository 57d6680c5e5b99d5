"""CTM-Bench: curves, replay (lookup and surrogate), the surrogate's contract, the flat tree walk, the data card."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ctm.bench.curves import evaluate_curve
from ctm.bench.space import STEPS, TASKS, genome_at
from ctm.result import EvalBudget, ParentWeights, TaskSpec, increasing_steps
from genome.genome import Genome

sklearn = pytest.importorskip("sklearn", reason="the bench extra (scikit-learn) is not installed")

ROOT = Path(__file__).resolve().parents[2]
PARITY = TASKS["parity10"].task.to_dict()


def test_a_curve_is_the_evaluation_at_each_step():
    from ctm.evaluation import evaluate
    g = Genome(d_model=16, d_input=8, ticks=3, memory_length=2, heads=1, n_sync_out=4, n_sync_action=4,
               nlm_hidden=2, batch_size=8)
    task = TaskSpec(name="parity", params={"length": 4})
    budget = EvalBudget(steps=6, val_samples=32)
    curve = evaluate_curve(g, task, steps=[3, 6], seed=5, budget=budget)
    direct = evaluate(g, task, budget, 5)
    assert [r.status for r in curve] == ["ok", "ok"]
    assert curve[-1].fitness == direct.fitness and curve[-1].per_tick_accuracy == direct.per_tick_accuracy
    assert curve[-1].metrics["val_loss"] == pytest.approx(direct.metrics["val_loss"])
    assert curve[0].metrics["train_steps"] == 3 and curve[0].checkpoint is None


@pytest.mark.parametrize("steps", [[], [0, 5], [5, 5], [10, 5]])
def test_curve_steps_are_checked(steps):
    with pytest.raises(ValueError, match="steps"):
        increasing_steps(steps)


def _measured(key: str = "parity10") -> Genome:
    from ctm.bench.replay import curves_for
    return curves_for(key).genomes[0]


def test_lookup_replays_the_measured_curve_exactly_and_continues_across_rungs():
    from ctm.bench.replay import curves_for, lookup
    g = _measured()
    c = curves_for("parity10")
    row = c.index[g.hash]
    for k, step in enumerate(STEPS):
        r = lookup(g, PARITY, EvalBudget(steps=step), 0)
        assert r.fitness == pytest.approx(c.values["val_accuracy"][row, 0, k])
    first = lookup(g, PARITY, EvalBudget(steps=100), 0, want_checkpoint=True)
    promoted = lookup(g, PARITY, EvalBudget(steps=300), 0, start=first.checkpoint)
    assert promoted.fitness == lookup(g, PARITY, EvalBudget(steps=300), 0).fitness
    assert promoted.metrics["start_step"] == 100 and promoted.metrics["train_time_s"] > 0
    between = lookup(g, PARITY, EvalBudget(steps=150), 0).fitness  # log-step interpolation between 100 and 200
    lo, hi = sorted(c.values["val_accuracy"][row, 0, 3:5])
    assert lo <= between <= hi
    assert lookup(g, PARITY, EvalBudget(steps=300), 1).fitness == pytest.approx(c.values["val_accuracy"][row, 1, 5])


def test_surrogate_replay_is_deterministic_and_one_seed_is_one_curve():
    from ctm.bench.replay import seed_z, surrogate
    g = genome_at("parity10", 123_456)  # not measured: the surrogate answers for any genome of the space
    a = [surrogate(g, PARITY, EvalBudget(steps=s), 11).fitness for s in (100, 300, 900)]
    b = [surrogate(g, PARITY, EvalBudget(steps=s), 11).fitness for s in (100, 300, 900)]
    assert a == b
    token = surrogate(g, PARITY, EvalBudget(steps=100), 11, want_checkpoint=True).checkpoint
    assert surrogate(g, PARITY, EvalBudget(steps=300), 11, start=token).fitness == a[1]
    other = [surrogate(g, PARITY, EvalBudget(steps=s), 12).fitness for s in (100, 300, 900)]
    assert other != a  # a repeat with a fresh seed is another draw
    assert seed_z(g.hash, 11) == seed_z(g.hash, 11) != seed_z(g.hash, 12)
    r = surrogate(g, PARITY, EvalBudget(steps=300), 11)
    assert len(r.per_tick_accuracy) == g.ticks and len(r.behaviour) == 16 and r.metrics["simulated"] == 1.0


def test_replay_refuses_what_the_bench_cannot_replay():
    from ctm.bench.replay import lookup, surrogate
    g = _measured()
    with pytest.raises(ValueError, match=r"budget.steps = 901"):
        surrogate(g, PARITY, EvalBudget(steps=901), 0)
    with pytest.raises(ValueError, match=r"budget.seconds"):
        surrogate(g, PARITY, EvalBudget(steps=None, seconds=10.0), 0)
    with pytest.raises(ValueError, match="inherited weights"):
        surrogate(g, PARITY, EvalBudget(steps=100), 0, parent=ParentWeights(genome=g, state=b"x"))
    with pytest.raises(ValueError, match="not among the"):
        lookup(genome_at("parity10", 999_999), PARITY, EvalBudget(steps=100), 0)
    with pytest.raises(ValueError, match="CTM-Bench has data for"):
        surrogate(g, {"name": "parity", "params": {"length": 12}}, EvalBudget(steps=100), 0)
    with pytest.raises(ValueError, match="token"):
        surrogate(g, PARITY, EvalBudget(steps=300), 0, start=b"not a token")


def test_the_surrogate_refuses_genomes_outside_its_space_naming_the_gene():
    from ctm.bench.replay import surrogate_for
    from ctm.bench.surrogate import OutsideSpace
    model = surrogate_for("parity10", "boosting")
    big = Genome.from_dict({**_measured().to_dict(), "d_model": 512, "ticks": 50})
    with pytest.raises(OutsideSpace, match=r"d_model = 512: allowed is an integer in \[16, 96\]") as info:
        model.predict(big)
    assert "ticks = 50" in str(info.value)


def test_surrogate_intervals_and_spreads_are_sane():
    from ctm.bench.replay import surrogate_for
    for kind in ("boosting", "forest"):
        p = surrogate_for("sort6", kind).predict(genome_at("sort6", 424_242))
        assert p["val_accuracy"].shape == (len(STEPS),)
        assert np.all(p["val_accuracy:low"] <= p["val_accuracy:high"])
        assert np.all(p["val_accuracy:spread"] >= 0) and p["seconds_per_step"][0] > 0


def test_the_flat_tree_walk_equals_scikit_learn():
    from sklearn.ensemble import ExtraTreesRegressor, HistGradientBoostingRegressor

    from ctm.bench.trees import FlatEnsemble, StackedEnsembles
    rng = np.random.default_rng(3)
    x = rng.random((400, 6))
    y = np.sin(3 * x[:, 0]) + x[:, 1] ** 2 + rng.normal(0, 0.05, 400)
    models = {"hgb": HistGradientBoostingRegressor(max_iter=60, random_state=0).fit(x, y),
              "q": HistGradientBoostingRegressor(loss="quantile", quantile=0.9, max_iter=60, random_state=0).fit(x, y)}
    forest = ExtraTreesRegressor(n_estimators=20, min_samples_leaf=2, random_state=0).fit(x, y)
    test = rng.random((50, 6))
    for m in (*models.values(), forest):
        assert np.allclose(FlatEnsemble.of(m).predict(test), m.predict(test), rtol=0, atol=1e-12)
    stacked = StackedEnsembles.of(models).predict(test)
    for name, m in models.items():
        assert np.allclose(stacked[name], m.predict(test), rtol=0, atol=1e-12)
    with pytest.raises(TypeError, match="apart"):
        StackedEnsembles.of({**models, "forest": forest})


def test_the_data_card_matches_the_data():
    from scipy.stats import kendalltau

    from ctm.bench.data import load_curves
    card = json.loads((ROOT / "ctm" / "bench" / "card.json").read_text())
    assert card["steps"] == list(STEPS)
    for key, entry in card["tasks"].items():
        curves = load_curves(key)
        assert entry["rows"] == curves.rows, "run benchmarks/ctmbench_card.py after packing new data"
        assert entry["genomes"] == curves.n
        assert entry["best_final_mean"] == pytest.approx(float(np.nanmax(curves.mean("val_accuracy")[:, -1])))
        assert entry["compute_core_hours"] == pytest.approx(curves.compute_s / 3600)
        acc = curves.values["val_accuracy"]  # what a rung tells of the final measurement, from the data alone
        both = np.isfinite(acc[:, 0, -1]) & np.isfinite(acc[:, 1, -1])
        assert entry["agreement"]["same_run"][-1] == pytest.approx(1.0)
        assert entry["agreement"]["other_seed"][-1] == pytest.approx(kendalltau(acc[both, 0, -1], acc[both, 1, -1])[0])
    text = (ROOT / "ctm" / "bench" / "DATA_CARD.md").read_text()
    for entry in card["tasks"].values():
        assert f"{entry['rows']} curves of {entry['genomes']} genomes" in text
