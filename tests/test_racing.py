"""Noise-aware search (issue 17): replicates as records, the racing strategy, the paired test, noisy replays."""

from __future__ import annotations

import collections
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from layermap.cli.main import main
from layermap.config import load_config
from layermap.searching.run import resume_search, run_search
from layermap.storage.records import EvaluationRecord
from layermap.evaluators.replicates import combine, final_pick
from layermap.storage.store import Store
from layermap.storage.runs import read_run_info
from layermap.mapping import enumerate_space, format_genes
from layermap.stats import paired_one_sided, replicate_mean
from layermap.study.noisy_replay import noisy_replay
from layermap.study.replay import LandscapeRow, build_table
from layermap.evaluators.synthetic import SyntheticEvaluator


@dataclass
class LoggingEvaluator(SyntheticEvaluator):
    """A noisy synthetic evaluator that logs (genome, seed) per call into a list its seed-set copies share, and
    interrupts the run (like Ctrl-C) at call number ``stop_after``."""

    calls: list = field(default_factory=list)
    stop_after: int = 0

    def evaluate(self, genes):
        if self.stop_after and len(self.calls) + 1 >= self.stop_after:
            raise KeyboardInterrupt
        self.calls.append((format_genes(genes), self.seed))
        return super().evaluate(genes)


def noisy(**kw) -> LoggingEvaluator:
    return LoggingEvaluator(teacher_layers=6, student_layers=3, noise=2.0, noise_dist="gaussian", **kw)


def racing_config(*extra: str):
    return load_config(None, ['search.strategy="racing"', "search.population=6", "search.generations=3", "search.seed=5",
                              "search.replicate_cap=3", "search.noise_std=2.0", *extra])


def store_rows(run_dir: Path):
    info = read_run_info(run_dir)
    with Store(info.store_path(run_dir)) as store:
        return [(r.genome, r.record.seed_set, r.generation, r.status) for r in store.run_evaluations(info.run_id)
                if r.record is not None]


# -- statistics on known numbers -------------------------------------------------------------------------
def test_one_sided_paired_test_on_known_numbers():
    # differences 2, 3, 2: mean 7/3, sd sqrt(1/3), se 1/3, t = 7; with 2 df, P(T > t) = (1 - t / sqrt(t^2 + 2)) / 2
    out = paired_one_sided({0: 3.0, 1: 5.0, 2: 4.0, 7: 9.0}, {0: 1.0, 1: 2.0, 2: 2.0})
    assert out["n"] == 3 and out["seed_sets"] == [0, 1, 2] and out["stderr_from"] == "pairs"
    assert out["difference"] == pytest.approx(7 / 3) and out["stderr"] == pytest.approx(1 / 3) and out["t"] == pytest.approx(7.0)
    assert out["p"] == pytest.approx((1 - 7 / math.sqrt(51)) / 2, rel=1e-9)
    worse = paired_one_sided({0: 1.0, 1: 2.0, 2: 2.0}, {0: 3.0, 1: 5.0, 2: 4.0})
    assert worse["p"] == pytest.approx(1 - out["p"])
    # one pair: the error is the measured noise of a difference, sqrt(2) * noise_std; p from the normal
    one = paired_one_sided({0: 2.0}, {0: 1.0}, noise_std=1.0)
    assert one["stderr"] == pytest.approx(math.sqrt(2)) and one["p"] == pytest.approx(0.23975, abs=1e-5)
    assert paired_one_sided({0: 2.0}, {0: 1.0})["p"] is None and paired_one_sided({0: 1.0}, {1: 1.0})["n"] == 0


def test_replicate_mean_uses_its_own_spread_only_from_three_replicates():
    assert replicate_mean([1.0, 2.0, 3.0], 5.0) == (2.0, pytest.approx(1 / math.sqrt(3)), "replicates")
    assert replicate_mean([1.0, 2.0], 5.0) == (1.5, pytest.approx(5 / math.sqrt(2)), "noise_std")
    assert replicate_mean([1.0, 2.0]) == (1.5, pytest.approx(0.5), "replicates")
    assert replicate_mean([4.0]) == (4.0, None, "")


def test_combine_and_final_pick():
    a0 = EvaluationRecord(genome="1-2-3", fitness=60.0)
    a1 = EvaluationRecord(genome="1-2-3", fitness=64.0, seed_set=1)
    failed = EvaluationRecord.failure("1-2-3", "boom")
    one = combine({0: a0, 2: dataclasses_replace(failed, seed_set=2)}, noise_std=1.0)
    assert one is a0 and one.seed_sets == 1
    both = combine({0: a0, 1: a1}, noise_std=2.0)
    assert both.fitness == 62.0 and both.seed_sets == 2 and both.seed_set_fitness == {0: 60.0, 1: 64.0}
    assert both.fitness_stderr == pytest.approx(2.0 / math.sqrt(2))
    lucky = EvaluationRecord(genome="4-5-6", fitness=70.0)           # one lucky draw
    assert final_pick([lucky, both], 2) is both and final_pick([lucky, both], 1) is lucky


def dataclasses_replace(record, **kw):
    import dataclasses

    return dataclasses.replace(record, **kw)


# -- replicate bookkeeping ---------------------------------------------------------------------------------
def test_seed_set_r_is_the_fingerprint_of_the_raised_seeds():
    ev = SyntheticEvaluator(teacher_layers=6, student_layers=3, noise=1.0)
    assert ev.with_seed_set(2).fingerprint == SyntheticEvaluator(teacher_layers=6, student_layers=3, noise=1.0, seed=2).fingerprint
    assert ev.with_seed_set(1).score((1, 2, 3)) != ev.score((1, 2, 3))
    assert SyntheticEvaluator(teacher_layers=6, student_layers=3).fingerprint == \
        SyntheticEvaluator(teacher_layers=6, student_layers=3, noise_dist="uniform").fingerprint


def test_racing_run_replicates_elites_and_answers_with_a_paired_test(tmp_path, capsys):
    ev = noisy()
    result = run_search(racing_config(), ev, tmp_path / "run", progress=False)
    rows = store_rows(tmp_path / "run")
    per_genome = collections.Counter(g for g, _, _, s in rows if s == "complete")
    assert max(per_genome.values()) == 3 and len(ev.calls) == len(set(ev.calls)) == result.computed
    assert result.best_record.seed_sets == 3                      # the answer has the cap's replicates
    assert sorted(result.best_record.seed_set_fitness) == [0, 1, 2]
    assert {s for _, s in ev.calls} == {0, 1, 2}
    assert result.hall_of_fame[0][0] == result.best_genome       # the hall of fame's order is the race's (shift-adjusted)
    assert main(["show", str(tmp_path / "run"), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["best"]["replicates"] == 3 and len(shown["best"]["fitness_seed_sets"]) == 3
    assert all("replicates" in entry for entry in shown["top"])
    paired = shown["best_vs_baselines"]["paired"]
    assert paired is None or paired["n"] >= 2              # None only when the pick is itself the best baseline
    assert main(["show", str(tmp_path / "run")]) == 0
    text = capsys.readouterr().out
    assert "n=3" in text and ("one-sided paired test" in text or "the best genome is the" in text)
    assert main(["export", str(tmp_path / "run"), "-o", str(tmp_path / "best.json")]) == 0
    exported = json.loads((tmp_path / "best.json").read_text())
    assert exported["metadata"]["replicates"] == 3 and exported["mapping"] == shown["best"]["mapping"]
    import layermap                                        # the public verdict gives the racing answer too
    verdict = layermap.verdict(tmp_path / "run")
    assert verdict.best == shown["best_vs_baselines"]["best"] and verdict.best_seed_sets == 3
    assert verdict.paired == paired and verdict.sentence == shown["verdict"]["sentence"]
    assert verdict.sentence in text


@pytest.mark.parametrize("stop_after", [4, 12, 30])      # in generation 0 / in its race / in a later generation
def test_an_interrupted_racing_run_resumes_reusing_every_replicate_on_the_same_trajectory(tmp_path, stop_after):
    first = noisy(stop_after=stop_after)
    with pytest.raises(KeyboardInterrupt):
        run_search(racing_config("run.shared_fitness=false"), first, tmp_path / "run", progress=False)
    second = noisy()
    resumed = resume_search(tmp_path / "run", lambda config: second, progress=False)
    both = collections.Counter(first.calls + second.calls)
    assert first.calls and second.calls and all(n == 1 for n in both.values())      # nothing computed twice

    reference_ev = noisy()
    reference = run_search(racing_config("run.shared_fitness=false"), reference_ev, tmp_path / "ref", progress=False)
    assert sorted(both) == sorted(reference_ev.calls)
    assert [(g.generation, g.best, g.best_genome) for g in resumed.generations] == \
        [(g.generation, g.best, g.best_genome) for g in reference.generations]
    assert [g for g, _ in resumed.hall_of_fame] == [g for g, _ in reference.hall_of_fame]
    assert (resumed.best_genome, resumed.computed) == (reference.best_genome, reference.computed)


def test_later_runs_reuse_replicates_and_compute_only_new_seed_sets(tmp_path):
    plain = noisy()                                                  # today's GA: seed set 0 only
    run_search(load_config(None, ["search.population=6", "search.generations=3", "search.seed=5"]), plain,
               tmp_path / "ga", progress=False)
    two = noisy()
    a = run_search(racing_config("search.replicate_cap=2"), two, tmp_path / "two", progress=False)
    assert a.cached > 0
    assert not set(two.calls) & set(plain.calls)                      # seed set 0 hits the plain run's cache entries
    four = noisy()
    b = run_search(racing_config("search.replicate_cap=4"), four, tmp_path / "four", progress=False)
    assert not set(four.calls) & set(two.calls + plain.calls)         # only what no earlier run computed
    assert b.cached > 0 and any(seed >= 2 for _, seed in four.calls)
    reused = {(g, s) for g, s, _, st in store_rows(tmp_path / "four") if st == "complete" and s == 1}
    assert reused & {(g, s) for g, s in two.calls if s == 1}         # seed set 1 replicates taken from the cap-2 run


# -- racing against the GA on a noisy landscape -------------------------------------------------------------
def synthetic_table():
    ev = SyntheticEvaluator(teacher_layers=6, student_layers=3, optimum=(1, 4, 6))
    genomes = [g for g in enumerate_space(3, 6, "non-decreasing") if 0 not in g]
    return build_table([LandscapeRow(format_genes(g), "s0", ev.score(g)) for g in genomes])


def test_racing_finds_the_true_optimum_more_often_than_the_ga_at_equal_budget():
    table = synthetic_table()
    spread = __import__("statistics").pstdev(table.fitness.values())
    result = noisy_replay(table, seeds=8, budget=table.size, methods=("ga", "racing"), noise_std=spread).to_json()
    ga, racing = result["methods"]["ga"], result["methods"]["racing"]
    assert ga["evaluations_median"] == racing["evaluations_median"] == table.size      # equal budgets
    assert racing["optimum_rate"] > ga["optimum_rate"]                                 # measured: 5 of 8 against 1 of 8
    assert racing["regret_mean"] < ga["regret_mean"]
    again = noisy_replay(table, seeds=2, budget=table.size, methods=("ga", "racing"), noise_std=spread).to_json()
    assert all(again["methods"][m]["picks"] == result["methods"][m]["picks"][:2] for m in ("ga", "racing"))   # seeded


def test_noisy_replay_on_seed_sets_draws_each_seed_sets_value():
    rows = [LandscapeRow(format_genes(g), s, v + (0.5 if s == "b" else -0.5))
            for g, v in synthetic_table().fitness.items() for s in ("a", "b")]
    table = build_table(rows)
    result = noisy_replay(table, seeds=3, budget=20, methods=("random", "racing")).to_json()
    assert result["noise"] == {"kind": "seed sets", "std": pytest.approx(math.sqrt(0.5))}
    assert result["methods"]["racing"]["settings"]["replicate_cap"] == 2          # capped at the table's seed sets
    assert all(e["evaluations_median"] <= 20 for e in result["methods"].values())


def test_proxy_seed_set_raises_both_seeds_and_takes_their_fingerprint(tiny_config_toml):
    import dataclasses

    from layermap.evaluators.proxy import ProxyEvaluator

    config = load_config(str(tiny_config_toml))
    base = ProxyEvaluator(config)
    two = base.with_seed_set(2)
    assert (two.config.distill.seed, two.config.proxy.seed) == (config.distill.seed + 2, config.proxy.seed + 2)
    raised = config.replace(distill=dataclasses.replace(config.distill, seed=config.distill.seed + 2),
                            proxy=dataclasses.replace(config.proxy, seed=config.proxy.seed + 2))
    assert two.fingerprint == ProxyEvaluator(raised).fingerprint != base.fingerprint
    assert base.config is config and base.fingerprint == ProxyEvaluator(config).fingerprint    # seed set 0 unchanged


def test_a_racing_run_of_the_proxy_fitness_replicates_under_raised_seeds(tiny_config_toml, tmp_path):
    from layermap.evaluators.proxy import ProxyEvaluator

    config = load_config(str(tiny_config_toml), ['search.strategy="racing"', "search.population=2", "search.generations=1",
                                                 "search.replicate_cap=2", "search.seed_baselines=false",
                                                 "search.offspring=1", "search.hall_of_fame=1", "distill.max_steps=2",
                                                 'proxy.tasks=["sst2"]'])
    result = run_search(config, ProxyEvaluator(config), tmp_path / "run", progress=False)
    rows = store_rows(tmp_path / "run")
    assert {s for _, s, _, _ in rows} == {0, 1} and result.best_record.seed_sets == 2
    info = read_run_info(tmp_path / "run")
    with Store(info.store_path(tmp_path / "run")) as store:
        fps = {r.record.seed_set: fp for r in store.run_evaluations(info.run_id)
               for fp in [store._db.execute("SELECT fingerprint FROM evaluations WHERE id = ?", (r.id,)).fetchone()[0]]}
    assert fps == {0: ProxyEvaluator(config).fingerprint, 1: ProxyEvaluator(config).with_seed_set(1).fingerprint}


def test_a_plain_record_keeps_its_old_json_and_a_replicate_round_trips():
    plain = EvaluationRecord(genome="1-2-3", fitness=60.0)
    assert "seed_set" not in plain.to_dict() and "seed_set_fitness" not in plain.to_dict()
    replicate = EvaluationRecord(genome="1-2-3", fitness=61.0, seed_set=2)
    both = combine({0: plain, 2: replicate})
    for record in (plain, replicate, both):
        assert EvaluationRecord.from_json(record.to_json()) == record


def test_bench_search_noise_std_prints_the_final_pick_regrets(tmp_path, capsys):
    table = Path(__file__).resolve().parents[1] / "results/benchmarks/landscape_synthetic.csv"
    out = tmp_path / "noisy.json"
    assert main(["bench", "search", str(table), "--noise-std", "1.5", "--seeds", "2", "--budget", "12",
                 "--methods", "random,racing", "--json", "-o", str(out)]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown == json.loads(out.read_text())
    assert shown["noise"] == {"kind": "gaussian", "std": 1.5} and set(shown["methods"]) == {"random", "racing"}
    assert all(len(e["regret"]) == 2 and min(e["regret"]) >= 0 for e in shown["methods"].values())
    assert main(["bench", "search", str(table), "--methods", "racing", "--seeds", "1"]) == 2
    assert "needs noisy evaluations" in capsys.readouterr().err
