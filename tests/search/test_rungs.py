"""Fidelity rungs and repeated seeds: promotion order (ASHA), continued training from a genome's own checkpoint,
archives that compare like with like, and a campaign killed mid-promotion that resumes exactly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from ctm.result import EvalResult
from search.campaign import Campaign, start
from search.campaign.rungs import JobKey, RungScheduler, repeat_seed
from search.descriptors import make_descriptors
from search.lineage import lineage_from_records
from search.records import NoiseModel, rank
from search.strategies import make_strategy
from search.tracking.family import nodes_from_records
from tests.search import landscapes as L
from tests.search.test_campaign import ctmevo, results_in, run_until_killed
from workers.pool import InlinePool

RUNGS = [100, 300, 900]


def test_job_ids_round_trip() -> None:
    for key in (JobKey("abc"), JobKey("abc", 2), JobKey("abc", 2, 3), JobKey("abc", 0, 1)):
        assert JobKey.parse(key.id) == key
    assert JobKey("abc").id == "abc"  # a first evaluation keeps the genome hash as its job id
    assert repeat_seed(5, "abc", 0) != repeat_seed(5, "abc", 1) == repeat_seed(5, "abc", 1)


def test_the_top_third_of_a_rung_is_promoted_best_first_and_higher_rungs_go_first() -> None:
    s = RungScheduler(rungs=RUNGS, eta=3)
    fitness = {f"g{i}": i / 10 for i in range(8)}
    for h, f in fitness.items():
        s.asked(JobKey(h))
        s.observe(JobKey(h), f)
    assert s.next_job() == JobKey("g7", 1)  # floor(8 / 3) = 2 promotions from rung 0: g7, then g6
    s.asked(JobKey("g7", 1))
    assert s.next_job() == JobKey("g6", 1)
    s.asked(JobKey("g6", 1))
    assert s.next_job() is None  # the quota of rung 0 is spent until more genomes finish it
    s.observe(JobKey("g8"), None)  # a failure counts as finished but is never promoted
    s.observe(JobKey("g9"), 0.05)
    assert s.next_job() == JobKey("g5", 1)  # 10 finished: a third promotion
    s.asked(JobKey("g5", 1))
    for h, f in (("g7", 0.9), ("g6", 0.8), ("g5", 0.95)):
        s.observe(JobKey(h, 1), f)
    assert s.next_job() == JobKey("g5", 2)  # rung 1 (3 finished: one promotion) before more of rung 0


def test_repeats_take_their_share_and_the_best_is_a_mean_over_seeds() -> None:
    s = RungScheduler(rungs=[100], seeds=3, share=0.5)
    for h, f in (("a", 0.9), ("b", 0.8)):
        s.asked(JobKey(h))
        s.observe(JobKey(h), f)
    key = s.next_job()
    assert key == JobKey("a", 0, 1)  # the best genome, a fresh seed
    s.asked(key)
    s.observe(key, 0.5)  # a lucky first seed: a's mean is 0.7 now
    assert s.aggregates["a"].mean == pytest.approx(0.7) and s.aggregates["a"].seeds == 2
    assert s.next_job() == JobKey("b", 0, 1)  # b's 0.8 is the best mean now (share: 1 repeat of 3 jobs)
    best = s.best()
    assert best is not None and best[0] == "b"  # the best over the most seeds available... both have < 3
    s.asked(JobKey("b", 0, 1))
    s.observe(JobKey("b", 0, 1), 0.6)
    s.asked(JobKey("a", 0, 2))
    s.observe(JobKey("a", 0, 2), 0.7)
    best = s.best()
    assert best is not None and best[0] == "a" and best[1].seeds == 3  # the only one with 3 seeds wins
    assert s.best_metrics(1234.0) == {"best_mean_fitness": pytest.approx(0.7), "best_seeds": 3.0,
                                      "best_rung": 0.0, "train_steps_spent": 1234.0}


def test_a_genome_measured_at_a_higher_rung_is_never_displaced_by_a_lower_rung() -> None:
    space = L.space()
    strategy = make_strategy("map_elites", space=space, seed=0, descriptors=make_descriptors(L.DESCRIPTORS,
                             space=space), settings={"initial_samples": 4})
    strategy.configure_rungs(2)
    a, b = strategy.ask(2)
    cell = [0.5, 0.5]  # both in one cell
    strategy.tell(EvalResult(genome_hash=a.genome_hash, fitness=0.3), descriptors=cell)
    strategy.revise(a.genome_hash, fitness=0.4, rung=1, seeds=1)  # a was promoted: measured longer
    strategy.tell(EvalResult(genome_hash=b.genome_hash, fitness=0.9), descriptors=cell)  # b: rung 0 only
    assert strategy.elite_hashes() == [a.genome_hash]  # like is compared with like
    strategy.revise(b.genome_hash, fitness=0.35, rung=1, seeds=1)  # b at rung 1: compared at last
    assert strategy.elite_hashes() == [a.genome_hash]
    strategy.revise(b.genome_hash, fitness=0.45, rung=1, seeds=2)
    assert strategy.elite_hashes() == [b.genome_hash] and strategy.record(b.genome_hash).seeds == 2
    again = make_strategy("map_elites", space=space, seed=0, descriptors=strategy.descriptors,
                          settings={"initial_samples": 4})
    again.configure_rungs(2)
    again.load_state_dict(strategy.state_dict())  # revisions are part of the saved log
    assert again.archive_rows() == strategy.archive_rows()


@pytest.mark.parametrize("pruner", ["successive_halving", "hyperband"])
def test_optuna_pruners_judge_every_rung_below_the_top(pruner: str) -> None:
    """Rung 1 of three is a pruner rung too: the worse of two genomes there is stopped, not trained to the top."""
    space = L.space()
    strategy = make_strategy("optuna_tpe", space=space, seed=0, settings={"pruner": pruner, "n_startup_trials": 2})
    strategy.configure_rungs(2)
    a, b = strategy.ask(2)
    strategy.tell(EvalResult(genome_hash=a.genome_hash, fitness=0.5))  # alone at rung 0: goes on
    strategy.tell(EvalResult(genome_hash=b.genome_hash, fitness=0.6))  # the best of rung 0: goes on
    assert strategy.may_promote(a.genome_hash) and strategy.may_promote(b.genome_hash)
    strategy.revise(a.genome_hash, fitness=0.7, rung=1, seeds=1)
    assert strategy.may_promote(a.genome_hash)  # alone at rung 1: goes on to the top
    strategy.revise(b.genome_hash, fitness=0.65, rung=1, seeds=1)
    if pruner == "successive_halving":
        assert not strategy.may_promote(b.genome_hash)  # below the top third of rung 1: pruned there
    steps = {e["step"] for e in strategy.state_dict()["extra"]["log"] if e["op"] == "report"}
    assert steps == {1, 3}  # the pruners' own rungs (min_resource 1, reduction factor 3)


def rung_campaign(tmp: Path, name: str, *, evaluations: int = 36) -> Path:
    config = {
        "name": name, "seed": 3, "output_dir": str(tmp / name),
        "task": {"name": "parity", "params": {"length": 4}},
        "genome_space": {"ticks": {"min": 1, "max": 20}, "memory_length": {"min": 1, "max": 8}},
        "strategy": {"name": "map_elites", "settings": {"initial_samples": 6}},
        "descriptors": [{"name": "ticks", "bins": 5, "range": [1, 21]},
                        {"name": "memory_length", "bins": 4, "range": [1, 9]}],
        "evaluation": {"steps": RUNGS[0], "fidelity": {"rungs": RUNGS, "eta": 3},
                       "repeats": {"seeds": 2, "share": 0.25}},
        "budget": {"evaluations": evaluations},
        "workers": {"backend": "inline", "evaluate_fn": "workers.testing:rung_evaluate"},
        "tracking": {"checkpoints": "elites", "retry_after_s": 2}, "snapshot_every": 5, "plot_every_s": 60,
    }
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _results(directory: Path) -> list[dict]:
    return [e["record"] for e in results_in(directory)]


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Campaign:
    campaign = start(rung_campaign(tmp_path_factory.mktemp("rungs"), "rungs"))
    campaign.run()
    return campaign


def test_mlflow_status_and_export_agree_on_the_order(reference: Campaign) -> None:
    """One ranking everywhere: the runs table sorted by rank_score, `ctmevo status` and `export --best` (from the
    campaign directory and from MLflow) name the same genomes in the same order, on a campaign with rungs and
    repeats (where the best by mean fitness alone is not the best by rank)."""
    from mlflow import MlflowClient

    from search.export import locate
    from search.records import standings
    from search.views.summary import summarise

    order = [s.record.genome.hash for s in standings(reference.records)]
    assert any(s.seeds > 1 for s in standings(reference.records))
    assert len({s.rung for s in standings(reference.records)}) > 1
    client = MlflowClient(reference.tracking_uri)
    runs = client.search_runs([client.get_experiment_by_name("rungs").experiment_id],
                              "tags.`ctmevo.kind` = 'evaluation' and metrics.rank_score > -1",
                              order_by=["metrics.rank_score DESC"], max_results=1000)
    assert [r.data.tags["ctmevo.genome_hash"] for r in runs] == order
    assert [b["hash"] for b in summarise(reference.paths.root, top=len(order)).best] == order
    assert locate(best=True, campaign=reference.paths.root).record.genome.hash == order[0]
    assert locate(best=True, tracking_uri=reference.tracking_uri).record.genome.hash == order[0]
    assert {r.data.metrics["rung"] for r in runs} == {float(s.rung) for s in standings(reference.records)}
    assert runs[0].data.metrics["seeds"] == standings(reference.records)[0].seeds
    # the campaign run says which is best, how it was measured, and how evaluations became runs
    (campaign_run,) = client.search_runs([runs[0].info.experiment_id], "tags.`ctmevo.kind` = 'campaign'")
    note = campaign_run.data.tags["mlflow.note.content"]
    top = standings(reference.records)[0]
    assert f"[`{order[0][:12]}`]" in note and f"rung **{top.rung}**" in note
    assert (f"mean of **{top.seeds} seeds**" if top.seeds > 1 else "one seed") in note
    assert ("a **founder**" in note) == (not top.record.proposal.parents)
    promotions = sum(1 for r in reference.records if r.rung > 0 and r.repeat == 0)
    genomes = len({r.genome.hash for r in reference.records})
    assert f"{len(reference.records)} evaluations (journal results) are {genomes} runs" in note
    assert f"{promotions} promotion(s)" in note and "analysis/progress.html" in note


def test_promoted_evaluations_continue_their_own_checkpoint(reference: Campaign) -> None:
    records = _results(reference.paths.root)
    assert all(r["result"]["status"] == "ok" for r in records)  # a wrong start would be an error result
    promoted = [r for r in records if r.get("rung", 0) > 0 and r.get("repeat", 0) == 0]
    assert {r["rung"] for r in promoted} == {1, 2}
    for r in promoted:  # rung k+1 started from the rung-k state: it trained only the steps in between
        assert r["result"]["metrics"]["start_step"] == RUNGS[r["rung"] - 1]
        assert r["result"]["metrics"]["train_steps"] == RUNGS[r["rung"]]
    repeats = [r for r in records if r.get("repeat", 0) > 0]
    assert repeats and all(r["rung"] == 2 and r["result"]["metrics"]["start_step"] == 0 for r in repeats)
    top = next(r for r in promoted if r["rung"] == 2)["result"]["genome_hash"]
    state = json.loads(reference.paths.checkpoint(top).read_text())
    assert (state["steps"], state["from"]) == (RUNGS[2], RUNGS[1])  # the weights kept are the highest rung's
    spent = sum(r["result"]["metrics"]["train_steps"] - r["result"]["metrics"]["start_step"] for r in records)
    assert reference.progress.metrics["train_steps_spent"] == spent


def test_export_takes_the_kept_weights_seed_and_reports_the_mean_over_seeds(reference: Campaign) -> None:
    from search.export import locate

    records = _results(reference.paths.root)
    repeated = {r["result"]["genome_hash"] for r in records if r.get("repeat", 0) > 0}
    best = locate(best=True, campaign=reference.paths.root)
    from search.records import standings
    from search.views.summary import summarise

    best_of = reference.rungs.best()  # one ranking (search.records.rank): the loop, status and export agree
    assert best_of is not None and best.genome.hash == best_of[0] == standings(reference.records)[0].record.genome.hash
    assert summarise(reference.paths.root).best[0]["hash"] == best.genome.hash
    for found in (*(locate(h, campaign=reference.paths.root) for h in sorted(repeated)),):
        h = found.genome.hash
        top = [r for r in records if r["result"]["genome_hash"] == h and r.get("rung", 0) == 2]
        assert (found.record.rung, found.record.repeat) == (2, 0)  # the seed whose weights are kept
        assert found.seeds == len(top) == 2
        assert found.mean_fitness == pytest.approx(sum(r["result"]["fitness"] for r in top) / 2)
        assert found.fitness_text().startswith(f"{found.mean_fitness:.4f} (mean of 2 seeds at rung 2;")
        # the lineage and the family tree show the same number as status and MLflow: the mean, not one seed
        assert lineage_from_records(reference.records, h).nodes[h].fitness == pytest.approx(found.mean_fitness)
        latest = list({r.genome.hash: r for r in reference.records}.values())  # what the family tree is drawn from
        node = next(n for n in nodes_from_records(latest, {}) if n.genome_hash == h)
        assert node.fitness == pytest.approx(found.mean_fitness)


class NewestFirstPool(InlinePool):
    """Finishes the newest job first, as a cluster may: the budget is crossed while older jobs are still in flight."""

    def poll(self, timeout: float = 0.0) -> list[EvalResult]:
        if self._queue:
            self._queue.move_to_end(next(reversed(self._queue)), last=False)
        return super().poll(timeout)


def test_a_training_steps_budget_waits_for_its_last_evaluations_instead_of_abandoning_them(tmp_path: Path) -> None:
    from search.views.summary import summarise

    path = rung_campaign(tmp_path, "steps")
    config = yaml.safe_load(path.read_text())
    config["budget"] = {"steps": 3000}
    config["workers"]["concurrency"] = 4  # four jobs queued at once: the end of the budget finds some in flight
    path.write_text(yaml.safe_dump(config))
    campaign = start(path)
    campaign.run(pool=NewestFirstPool(campaign.workers_config))
    records = _results(campaign.paths.root)
    spent = sum(r["result"]["metrics"]["train_steps"] - r["result"]["metrics"]["start_step"] for r in records)
    assert campaign.pending == 0  # nothing asked and left without a result
    assert 3000 <= spent < 3000 + RUNGS[-1]  # at most one job's steps past the budget
    s = summarise(campaign.paths.root)
    assert s.finished and s.pending == 0 and s.steps_spent == spent
    assert s.spent() == f"{len(records)}, training steps {spent:,.0f} of 3,000"
    assert f"training steps {spent:,.0f} of 3,000" in Campaign.open(campaign.paths.root).spent()
    assert Campaign.open(campaign.paths.root).finished()


def test_a_campaign_killed_mid_promotion_resumes_exactly(tmp_path: Path, reference: Campaign) -> None:
    path = rung_campaign(tmp_path, "rungs")  # same name, seed and settings as the reference
    directory = tmp_path / "rungs"
    journal = directory / "journal.jsonl"

    def promotion_in_flight() -> bool:  # a promotion whose result is not in yet: the evaluation at rung 1 runs
        lines = journal.read_text().splitlines() if journal.exists() else []
        jobs = [json.loads(line)["job"] for line in lines if '"event":"job"' in line]
        done = {JobKey(r["result"]["genome_hash"], r.get("rung", 0), r.get("repeat", 0)).id
                for r in _results(directory)}
        return any(j not in done for j in jobs)

    run_until_killed(path, promotion_in_flight, sleep="0.3")
    assert any('"event":"job"' in line for line in journal.read_text().splitlines()), "no promotion before the kill"
    out = ctmevo("resume", str(directory))
    assert out.returncode == 0, out.stderr
    mine = sorted((r["result"]["genome_hash"], r.get("rung", 0), r.get("repeat", 0), round(r["result"]["fitness"], 9))
                  for r in _results(directory))
    theirs = sorted((r["result"]["genome_hash"], r.get("rung", 0), r.get("repeat", 0), round(r["result"]["fitness"], 9))
                    for r in _results(reference.paths.root))
    assert mine == theirs  # every job once, the same results as the uninterrupted campaign
    assert Campaign.open(directory).strategy.archive_rows() == reference.strategy.archive_rows()


@pytest.mark.parametrize("strategy", ["map_elites", "surrogate_elites", "cvt_map_elites", "novelty", "nslc", "dns",
                                      "random", "regularized_evolution", "optuna_tpe", "optuna_nsga2", "evotorch_cmaes",
                                      "evotorch_ga"])
def test_every_strategy_runs_with_rungs_and_resumes(tmp_path: Path, strategy: str, monkeypatch) -> None:
    monkeypatch.setenv("CTMEVO_TEST_EVAL_SLEEP", "0")
    config = yaml.safe_load(rung_campaign(tmp_path, "every", evaluations=24).read_text())
    config["strategy"] = {"name": strategy, "settings": {"pruner": "successive_halving"}
                          if strategy == "optuna_tpe" else {}}
    if strategy in ("optuna_tpe", "optuna_nsga2", "evotorch_cmaes", "evotorch_ga", "random",
                    "regularized_evolution"):
        config["descriptors"] = []
    config["tracking"] = {"checkpoints": "none"}  # states are still kept: promotions continue them
    path = tmp_path / "every.yaml"
    path.write_text(yaml.safe_dump(config))
    campaign = start(path)
    campaign.run()
    records = _results(campaign.paths.root)
    assert len(records) == 24 and all(r["result"]["status"] == "ok" for r in records)
    assert any(r.get("rung", 0) > 0 for r in records)  # promotions happened, and continued their states
    reopened = Campaign.open(campaign.paths.root)  # the strategy's state restores from snapshot + journal
    assert reopened.strategy.metrics()["evaluations"] == campaign.strategy.metrics()["evaluations"]


def _plain_choice(s: RungScheduler, quota: bool) -> JobKey | None:
    """The scheduler's rule as the module docstring states it, computed from scratch (no indexes)."""
    price = s.rungs[-1]
    if s.seeds > 1 and s.repeat_steps + price <= s.share * (s.steps + price):
        measured = [agg for agg in s.aggregates.values() if agg.rung == s.top and agg.mean is not None
                    and 0 in agg.values]
        noise = NoiseModel.fit([v for v in agg.values.values() if v is not None] for agg in measured)
        best = None
        for h, agg in s.aggregates.items():
            if agg.rung != s.top or agg.mean is None or 0 not in agg.values:
                continue
            pending = [r + 1 for r in range(s.top) if h in s.promoted[r] and h not in s.finished[r + 1]]
            if len(s.repeats_asked[h] | set(agg.values)) >= s.seeds or any(r > agg.rung for r in pending):
                continue
            score = agg.mean if noise is None else sum(noise.posterior(agg.mean, agg.seeds))
            if best is None or score > best[0]:
                best = (score, h)
        if best is not None:
            h = best[1]
            return JobKey(h, s.aggregates[h].rung, max(s.repeats_asked[h] | set(s.aggregates[h].values)) + 1)
    for rung in range(s.top - 1, -1, -1):
        done = s.finished[rung]
        n = int(len(done) // s.eta) if quota else len(done)
        ranked = sorted((h for h, v in done.items() if v is not None), key=lambda h: -(done[h] or 0.0))
        for h in ranked[:n]:
            if h not in s.promoted[rung]:
                return JobKey(h, rung + 1, 0)
    return None


@pytest.mark.parametrize("seed", range(6))
def test_the_indexed_scheduler_chooses_what_the_plain_rule_says(seed: int) -> None:
    import random

    rng = random.Random(seed)
    s = RungScheduler(rungs=RUNGS, eta=rng.choice([2, 3, 4]), seeds=rng.choice([1, 2, 3]), share=0.2)
    running: list[JobKey] = []
    quota = seed % 2 == 0
    for step in range(400):
        key = s.next_job(quota=quota)
        assert key == _plain_choice(s, quota), step
        if key is not None and rng.random() < 0.1 and key.repeat == 0:
            s.veto(key)  # the strategy refused it
        elif key is not None:
            s.asked(key)
            running.append(key)
        else:
            new = JobKey(f"g{step}")
            s.asked(new)
            running.append(new)
        if running and rng.random() < 0.7:
            done = running.pop(rng.randrange(len(running)))
            fitness = None if rng.random() < 0.1 else rng.choice([0.1, 0.2, 0.5, rng.random()])  # ties too
            s.observe(done, fitness)
        plain = [(h, a) for h, a in s.aggregates.items() if a.mean is not None]  # in order of first sight
        ranking = rank([(a.rung, [v for v in a.values.values() if v is not None], i)
                        for i, (_, a) in enumerate(plain)])
        expected = plain[ranking[0][0]][0] if plain else None
        assert (s.best() or (None,))[0] == expected


def test_a_mean_of_few_seeds_is_read_with_its_noise() -> None:
    noise = NoiseModel.fit([[0.80, 0.78, 0.82, 0.79], [0.82], [0.70, 0.72], [0.75], [0.77]])
    assert noise is not None and NoiseModel.fit([[0.8], [0.7]]) is None  # no genome with two seeds: unknown
    lucky, steady = noise.posterior(0.82, 1), noise.posterior(0.7975, 4)
    assert lucky[0] < 0.82 and lucky[1] > steady[1]  # one seed: pulled towards the centre, less certain
    assert noise.posterior(0.80, 1)[0] > noise.posterior(0.79, 1)[0]  # equal seeds: the order of the means


def test_repeats_go_where_one_more_seed_can_change_which_genome_is_best() -> None:
    s = RungScheduler(rungs=[100], seeds=4, share=0.9)
    for h, f in (("steady", 0.80), ("lucky", 0.83), ("low", 0.60)):
        s.asked(JobKey(h))
        s.observe(JobKey(h), f)
    for repeat, f in ((1, 0.79), (2, 0.81)):  # "steady" already has three seeds around 0.80
        s.asked(JobKey("steady", 0, repeat))
        s.observe(JobKey("steady", 0, repeat), f)
    assert s.next_job() == JobKey("lucky", 0, 1)  # the single high seed is measured again before it is believed
