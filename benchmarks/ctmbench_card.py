"""CTM-Bench's data card: what the data holds, what it cost, how faithful the surrogates are, two paper claims.

    python benchmarks/ctmbench_card.py   # writes ctm/bench/card.json, ctm/bench/DATA_CARD.md, docs/img/ctmbench-*.png

Fidelity (per task, per surrogate class): the genomes are split 80/20 (seeded); the surrogate is fitted on the 80%
and judged on the held-out 20% at every recorded step: Kendall τ between its predicted mean and the measured
seed mean, the noise ceiling (τ between seed 0 and seed 1 of the same held-out genomes), and the share of
held-out single-seed measurements inside its 80% prediction interval. Run it after every ``--pack`` of the data:
a test checks that the card's counts match the data.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CARD_JSON = ROOT / "ctm" / "bench" / "card.json"
CARD_MD = ROOT / "ctm" / "bench" / "DATA_CARD.md"
IMG = ROOT / "docs" / "img"


def fidelity(curves, kind: str, seed: int = 0) -> dict:
    from scipy.stats import kendalltau

    from ctm.bench.space import STEPS
    from ctm.bench.surrogate import Surrogate
    rng = np.random.default_rng(seed)
    perm = rng.permutation(curves.n)
    test, train = perm[: max(curves.n // 5, 2)], perm[max(curves.n // 5, 2):]
    model = Surrogate.fit(curves, kind=kind, genomes=train)
    genomes = [curves.genomes[i] for i in test]
    pred = np.stack([model.predict(g)["val_accuracy"] for g in genomes])
    low = np.stack([model.predict(g)["val_accuracy:low"] for g in genomes])
    high = np.stack([model.predict(g)["val_accuracy:high"] for g in genomes])
    values = curves.values["val_accuracy"][test]  # [n, seeds, steps]
    meas = np.nanmean(values, axis=1)
    taus, ceilings, cover = [], [], []
    for k in range(len(STEPS)):
        taus.append(float(kendalltau(pred[:, k], meas[:, k])[0]))
        both = np.isfinite(values[:, 0, k]) & np.isfinite(values[:, 1, k]) if values.shape[1] > 1 else None
        ceilings.append(float(kendalltau(values[both, 0, k], values[both, 1, k])[0]) if both is not None else None)
        inside = (values[:, :, k] >= low[:, None, k]) & (values[:, :, k] <= high[:, None, k])
        cover.append(float(inside[np.isfinite(values[:, :, k])].mean()))
    return {"held_out": len(test), "train": len(train), "steps": list(STEPS), "tau": taus, "noise_ceiling": ceilings,
            "coverage80": cover,
            "tau_ok": [t >= 0.75 or (c is not None and t >= c - 0.05) for t, c in zip(taus, ceilings, strict=True)]}


def agreement(curves) -> dict:
    """What a low-fidelity measurement tells of the final one, from the data alone: at every recorded step, Kendall
    τ between seed 0's accuracy there and seed 0's at the last step (the same run continued: what a rung's ranking
    predicts of the run it promotes) and seed 1's at the last step (another run of the same genome: what it
    predicts of a re-training from scratch; at the last step this is the noise ceiling)."""
    from scipy.stats import kendalltau
    values = curves.values["val_accuracy"]  # [n, seeds, steps]
    out: dict[str, list[float | None]] = {"same_run": [], "other_seed": []}
    for k in range(values.shape[2]):
        for name, seed in (("same_run", 0), ("other_seed", 1)):
            if seed >= values.shape[1]:
                out[name].append(None)
                continue
            here, final = values[:, 0, k], values[:, seed, -1]
            ok = np.isfinite(here) & np.isfinite(final)
            out[name].append(float(kendalltau(here[ok], final[ok])[0]) if ok.sum() > 2 else None)
    return out


def claims(curves, task: str) -> dict:
    """Two of the paper's qualitative claims, measured: accuracy against ticks (other genes near fixed), and the
    mean exit tick against training steps."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ctm.bench.space import STEPS
    acc = curves.mean("val_accuracy")[:, -1]
    ticks = np.array([g.ticks for g in curves.genomes])
    # "other genes near fixed": residualise accuracy on every other gene with the forest surrogate's view:
    # compare each genome's measured accuracy with the same genome at other tick counts, as the surrogate sees it.
    from ctm.bench.surrogate import Surrogate
    model = Surrogate.fit(curves, kind="forest")
    space = model._codec.space
    lo, hi = space.domains["ticks"]
    grid = list(range(lo, hi + 1))
    sweep = []
    for g in curves.genomes:
        row = []
        for t in grid:
            try:
                h = space.repair({**g.to_dict(), "ticks": t})
                row.append(model.predict(h)["val_accuracy"][-1])
            except Exception:
                row.append(np.nan)
        sweep.append(row)
    sweep = np.array(sweep)
    # the most certain tick (the paper's t2, what the loss selects), as a share of T, from the per-tick certainty
    sure = np.full((curves.n, curves.seeds, len(STEPS)), np.nan)
    for (g, s), points in curves.detail.items():
        for k, p in enumerate(points):
            c = p["per_tick_certainty"]
            sure[g, s, k] = (int(np.argmax(c)) + 1) / len(c)
    sure_mean = np.nanmean(np.nanmean(sure, axis=1), axis=0)
    exit_t = curves.values["exit_tick_mean"] / ticks[:, None, None]  # relative exit tick
    rel_exit = np.nanmean(np.nanmean(exit_t, axis=1), axis=0)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    axes[0].scatter(ticks, acc, s=10, alpha=0.5, label="measured genomes (seed mean)")
    axes[0].plot(grid, np.nanmedian(sweep, axis=0), color="C3",
                 label="surrogate: each genome swept over ticks (median)")
    axes[0].set_xlabel("ticks T")
    axes[0].set_ylabel(f"val accuracy at {STEPS[-1]} steps")
    axes[0].legend(fontsize=7)
    axes[0].set_title(f"{task}: accuracy against ticks")
    axes[1].plot(STEPS, rel_exit, marker="o", label="exit tick (certainty >= 0.8, else T) / T")
    axes[1].plot(STEPS, sure_mean, marker="s", label="most certain tick / T")
    axes[1].set_xscale("log")
    axes[1].set_xlabel("training steps")
    axes[1].set_ylabel("share of the ticks T")
    axes[1].legend(fontsize=7)
    axes[1].set_title(f"{task}: where the CTM is most certain")
    fig.tight_layout()
    IMG.mkdir(parents=True, exist_ok=True)
    path = IMG / f"ctmbench-{task}-claims.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    med = np.nanmedian(sweep, axis=0)
    return {"ticks_grid": grid, "sweep_median": [float(v) for v in med],
            "spearman_acc_ticks": float(__import__("scipy.stats").stats.spearmanr(ticks, acc)[0]),
            "relative_exit_tick_by_step": [float(v) for v in rel_exit],
            "relative_most_certain_tick_by_step": [float(v) for v in sure_mean], "plot": str(path.relative_to(ROOT))}


def main() -> int:
    from ctm.bench.data import load_curves
    from ctm.bench.space import STEPS, TASKS, VAL_SAMPLES
    card: dict = {"steps": list(STEPS), "val_samples": VAL_SAMPLES, "tasks": {}}
    for key, bench in TASKS.items():
        try:
            curves = load_curves(key)
        except ValueError as exc:
            print(exc, file=sys.stderr)
            continue
        per_genome = np.isfinite(curves.values["val_accuracy"][:, :, -1]).sum(1)
        entry = {"task": bench.task.to_dict(), "rows": curves.rows, "genomes": curves.n,
                 "genomes_with_2_seeds": int((per_genome >= 2).sum()), "failed_rows": len(curves.failed),
                 "compute_core_hours": curves.compute_s / 3600, "devices": curves.devices,
                 "best_final_mean": float(np.nanmax(curves.mean("val_accuracy")[:, -1])),
                 "median_final_mean": float(np.nanmedian(curves.mean("val_accuracy")[:, -1])),
                 "fidelity": {k: fidelity(curves, k) for k in ("boosting", "forest")},
                 "agreement": agreement(curves),
                 "claims": claims(curves, key)}
        card["tasks"][key] = entry
        f = entry["fidelity"]["boosting"]
        print(f"{key}: {curves.rows} rows, {curves.n} genomes, {entry['compute_core_hours']:.2f} core-hours; "
              f"boosting tau {np.round(f['tau'], 2).tolist()} ceiling {np.round(f['noise_ceiling'], 2).tolist()} "
              f"coverage {np.round(f['coverage80'], 2).tolist()}")
    CARD_JSON.write_text(json.dumps(card, indent=1) + "\n")
    CARD_MD.write_text(render(card))
    print(f"wrote {CARD_JSON.relative_to(ROOT)} and {CARD_MD.relative_to(ROOT)}")
    return 0


def _row(values: list, fmt: str = "{:.2f}") -> str:
    return " | ".join("–" if v is None else fmt.format(v) for v in values)


def render(card: dict) -> str:
    steps = card["steps"]
    out = [(ROOT / "ctm" / "bench" / "CARD_HEAD.md").read_text().rstrip(), "", "## The data now (generated by "
           "`benchmarks/ctmbench_card.py`; numbers from `card.json`)", ""]
    for key, e in card["tasks"].items():
        out += [f"### {key}: {e['task']['name']} {e['task']['params']}", "",
                f"- {e['rows']} curves of {e['genomes']} genomes ({e['genomes_with_2_seeds']} with 2 seeds), "
                f"{e['failed_rows']} failed runs kept apart; {e['compute_core_hours']:.2f} core-hours "
                f"({', '.join(f'{n} rows on {d}' for d, n in e['devices'].items())}).",
                f"- Best genome's seed-mean accuracy at {steps[-1]} steps {e['best_final_mean']:.3f}; median "
                f"{e['median_final_mean']:.3f}.", "",
                "| surrogate | measure | " + " | ".join(str(s) for s in steps) + " |",
                "|---|---|" + "---|" * len(steps)]
        for kind, f in e["fidelity"].items():
            out.append(f"| {kind} | Kendall τ (held-out {f['held_out']}) | {_row(f['tau'])} |")
            out.append(f"| {kind} | 80% interval coverage | {_row(f['coverage80'])} |")
        f = e["fidelity"]["boosting"]
        out.append(f"| – | noise ceiling (τ seed 0 vs 1) | {_row(f['noise_ceiling'])} |")
        a = e["agreement"]
        out.append(f"| – | τ with the same run at {steps[-1]} steps | {_row(a['same_run'])} |")
        out.append(f"| – | τ with another seed at {steps[-1]} steps | {_row(a['other_seed'])} |")
        c = e["claims"]
        out += ["", f"![claims]({'../../' + c['plot']})", "",
                f"- Accuracy against ticks: Spearman ρ(ticks, accuracy) over measured genomes "
                f"{c['spearman_acc_ticks']:.2f}; the surrogate's median over genomes swept across ticks goes "
                f"{c['sweep_median'][0]:.3f} (T={c['ticks_grid'][0]}) → {max(c['sweep_median']):.3f} (best, "
                f"T={c['ticks_grid'][int(np.nanargmax(c['sweep_median']))]}) → {c['sweep_median'][-1]:.3f} "
                f"(T={c['ticks_grid'][-1]}).",
                "- Exit tick (first tick with certainty ≥ 0.8, else T; as a share of T) by training step: "
                + ", ".join(f"{s}: {v:.3f}" for s, v in zip(steps, c["relative_exit_tick_by_step"], strict=True)) + ".",
                "- Most certain tick (the paper's t2; share of T) by training step: "
                + ", ".join(f"{s}: {v:.2f}" for s, v in zip(steps, c["relative_most_certain_tick_by_step"],
                                                             strict=True)) + ".",
                ""]
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    sys.exit(main())
