"""Issue 21: racing as a strategy object on one evaluate step, paired racing on shared seed sets, the confirmation
on fresh seed sets, the no-baseline final pick."""

from __future__ import annotations

import ast
import collections
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from layermap.cli.main import main
from layermap.config import ConfigError, load_config
from layermap.searching import state as search_state
from layermap.searching.run import run_search
from layermap.storage.records import EvaluationRecord
from layermap.storage.store import Store
from layermap.storage.runs import open_run, read_run_info
from layermap.report.verdict import verdict_of
from layermap.mapping import baseline_names
from layermap.stats import paired_one_sided, pooled_residual_std, seed_set_shifts, shift_adjusted_mean
from layermap.study.noisy_replay import noisy_replay
from layermap.study.null_confirmation import null_rejection_rate, shift_bias
from layermap.study.replay import load_table
from layermap.evaluators.synthetic import SyntheticEvaluator, read_call_log

ROOT = Path(__file__).resolve().parents[1]
RACING = ['search.strategy="racing"', "search.population=6", "search.generations=3", "search.seed=5",
          "search.replicate_cap=4", "search.confirm_seed_sets=1", "search.noise_std=2.0"]


def noisy(**kw) -> SyntheticEvaluator:
    return SyntheticEvaluator(teacher_layers=6, student_layers=3, noise=2.0, noise_dist="gaussian", **kw)


def run_rows(run_dir: Path) -> list[EvaluationRecord]:
    info = read_run_info(run_dir)
    with Store(info.store_path(run_dir)) as store:
        return [r.record for r in store.run_evaluations(info.run_id) if r.record is not None]


# -- the structure ---------------------------------------------------------------------------------------
def _imports(path: Path, level: int = 1) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == level:
            found.add(node.module or "")
            found.update(alias.name for alias in node.names if not node.module)
    return found


def test_racing_and_the_ga_share_one_evaluate_step_without_an_import_cycle():
    searching = ROOT / "layermap/searching"
    strategies = searching / "strategies"
    assert "run" not in _imports(searching / "state.py") and "strategies" not in str(_imports(searching / "state.py"))
    for module in ("ga.py", "racing.py", "nsga2.py", "enumerate.py"):      # a strategy never reaches back to the run
        assert not any("run" == m.split(".")[-1] for m in _imports(strategies / module, level=2)), module
    source = (searching / "run.py").read_text(encoding="utf-8")
    assert not any(f"strategy {op}" in source for op in ("==", "!=", "in")), "run.py branches on the strategy"
    assert "state" in _imports(strategies / "racing.py", level=2) and "state" in _imports(strategies / "ga.py", level=2)


def test_every_strategy_is_one_object_behind_one_protocol_and_one_registry():
    from layermap.config import SEARCH_STRATEGIES
    from layermap.searching.strategies.protocol import Strategy
    from layermap.searching.strategies.registry import STRATEGIES

    assert set(STRATEGIES) == set(SEARCH_STRATEGIES)
    assert all(isinstance(cls(), Strategy) for cls in STRATEGIES.values())


def test_one_executor_serves_every_seed_set(tmp_path, monkeypatch):
    made = []
    real = search_state.create_executor

    def counting(evaluator, settings, name=None):
        made.append(evaluator)
        return real(evaluator, settings, name)

    monkeypatch.setattr(search_state, "create_executor", counting)
    result = run_search(load_config(None, RACING), noisy(), tmp_path / "run", progress=False)
    seed_sets = {r.seed_set for r in run_rows(tmp_path / "run")}
    assert seed_sets == {0, 1, 2, 3} and result.best_record.seed_sets == 4
    assert len(made) == 1 and isinstance(made[0], search_state.SeedSetEvaluator)


def test_the_seed_set_evaluator_evaluates_a_mixed_chunk_per_seed_set():
    ev = search_state.SeedSetEvaluator(noisy())
    records = ev.run_jobs([((1, 2, 3), 0), ((1, 2, 3), 2), ((2, 4, 6), 0)])
    assert [(r.genome, r.seed_set) for r in records] == [("1-2-3", 0), ("1-2-3", 2), ("2-4-6", 0)]
    assert records[0].fitness == pytest.approx(noisy().score((1, 2, 3)))
    assert records[1].fitness == pytest.approx(noisy().with_seed_set(2).score((1, 2, 3)))
    assert ev.run_jobs([((1, 2, 3), 2)])[0].fitness == records[1].fitness


DRIVER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from layermap.config import load_config
    from layermap.searching.run import run_search
    from layermap.study.synthetic import SyntheticEvaluator
    config = load_config(None, sys.argv[4:])
    ev = SyntheticEvaluator(teacher_layers=6, student_layers=3, noise=2.0, noise_dist="gaussian", delay=0.05,
                            log_path=sys.argv[2])
    go = Path(sys.argv[3])
    while not go.exists():
        time.sleep(0.01)
    run_search(config, ev, sys.argv[1], progress=False)
""")


def test_two_racing_runs_sharing_a_cache_compute_each_replicate_once(tmp_path):
    log, go = tmp_path / "calls.log", tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", DRIVER, str(tmp_path / name), str(log), str(go), *RACING],
                              env=env, stderr=subprocess.PIPE, text=True) for name in "ab"]
    time.sleep(1.0)
    go.touch()
    errors = [p.communicate(timeout=180)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errors
    calls = collections.Counter(read_call_log(log, with_seed=True))
    assert {seed for _, seed in calls} == {0, 1, 2, 3}                        # replicates were shared too
    assert calls and set(calls.values()) == {1}, calls                        # each (genome, seed set) once
    a, b = ({(r.genome, r.seed_set): r.fitness for r in run_rows(tmp_path / n) if r.ok} for n in "ab")
    assert a == b


# -- paired racing -------------------------------------------------------------------------------------------
def test_the_additive_model_removes_a_common_seed_set_shift_measured_on_the_anchors():
    values = {"a": {0: 10.0, 1: 15.0, 2: 8.0}, "b": {0: 12.0, 1: 17.0}, "c": {0: 11.0}, "d": {0: 13.0, 1: 14.0}}
    shifts = seed_set_shifts(values, anchors=["a", "b", "c"])          # "d" was chosen for replication: not an anchor
    assert shifts == {0: 0.0, 1: 5.0, 2: -2.0}
    assert shift_adjusted_mean(values["a"], shifts) == pytest.approx(10.0) and shift_adjusted_mean(values["b"], shifts) == 12.0
    assert shift_adjusted_mean(values["d"], shifts) == pytest.approx(11.0)
    assert pooled_residual_std(values, shifts) is None                        # too few degrees of freedom


def test_the_seed_set_shift_is_unbiased_under_the_winner_s_curse():
    """50 equal genomes, the 5 best on seed set 0 replicated on seed set 1 (2,000 null runs, noise 1): measured on
    the anchors (every baseline, replicated whatever its score) the shift is within 0.2 sigma of the true one; measured
    on the replicated genomes, as racing did, it absorbed the winner's curse."""
    for true in (0.0, 1.5):
        after = shift_bias(runs=2000, true_shift=true)
        assert abs(after.mean_shift - true) < 0.2, after
    before = shift_bias(runs=2000, anchored=False)
    assert before.mean_shift < -1.5 and before.leader_bias > 2.2               # measured -1.70 and +2.34
    assert shift_bias(runs=2000).leader_bias < before.leader_bias - 0.5        # measured +1.60: the max of 50 draws


def test_racing_evaluates_every_anchor_under_every_race_seed_set_whatever_its_score(tmp_path):
    result = run_search(load_config(None, RACING), noisy(), tmp_path / "run", progress=False)
    rows = run_rows(tmp_path / "run")
    race_sets = {0, 1, 2}                                                       # cap 4, one confirmation seed set
    for genome in baseline_names(3, 6):
        assert {r.seed_set for r in rows if r.genome == genome and r.ok} >= race_sets, genome
    assert result.best_record is not None


def test_racing_refuses_a_student_deeper_than_the_teacher_in_one_sentence(tmp_path):
    from layermap.errors import LayermapError

    with pytest.raises(LayermapError, match="measures the seed-set shifts on the baselines, which need a student no "
                                            "deeper than the teacher"):
        run_search(load_config(None, [*RACING, "student.layers=4"]),
                   SyntheticEvaluator(teacher_layers=3, student_layers=4, noise=2.0, noise_dist="gaussian"),
                   tmp_path / "run", progress=False)


def test_racing_with_a_common_seed_set_shift_picks_the_optimum_at_least_as_often_as_before():
    """Synthetic 56-genome landscape, Gaussian noise = its genome spread (1.76) plus a common shift of std 3.5 per
    seed set.  Today's racing (issue 17: unpaired means over different seed sets) found the optimum in 3 of these 8
    replays (measured with that code: regrets 1 1 0 1 1 1 0 0; 8 of 20 replays, 40 %)."""
    table = load_table(ROOT / "results/benchmarks/landscape_synthetic.csv")
    shifted = noisy_replay(table, seeds=8, budget=56, methods=("racing",), noise_std=1.7598, shift_std=3.5).to_json()
    plain = noisy_replay(table, seeds=8, budget=56, methods=("racing",), noise_std=1.7598).to_json()
    racing = shifted["methods"]["racing"]
    assert sum(r == 0 for r in racing["regret"]) >= 3                          # measured: 5 of 8
    assert racing["picks"] == plain["methods"]["racing"]["picks"]             # the shift cannot move a paired race


# -- the confirmation ------------------------------------------------------------------------------------------
def test_the_confirmation_under_no_true_difference_rejects_within_a_binomial_bound_of_five_percent():
    for genomes in (6, 50, 200):
        rate = null_rejection_rate(runs=1500, genomes=genomes, confirm=1, seed=genomes)
        assert rate.tested > 300 and rate.rate <= rate.upper_bound(), (genomes, rate)
    # testing on the data that chose the pick: the winner's curse, plain with one baseline (measured 12.3 %); with
    # four, the reference is the best of them on the same data and its own curse partly offsets the pick's (2.9 %)
    chosen = null_rejection_rate(runs=1500, genomes=50, baselines=1, confirm=0, seed=3)
    assert chosen.rate > 0.08


def test_a_racing_verdict_tests_on_the_confirmation_seed_sets_only(tmp_path, capsys):
    run_search(load_config(None, RACING), noisy(), tmp_path / "run", progress=False)
    rows = run_rows(tmp_path / "run")
    at_three = collections.Counter(r.genome for r in rows if r.seed_set == 3)
    assert 1 <= len(at_three) <= 2                                             # only the pick and the best baseline
    race_sets = collections.Counter(r.seed_set for r in rows if r.genome not in at_three)
    assert max(race_sets) <= 2                                                  # the race never used seed set 3
    import layermap

    verdict = layermap.verdict(tmp_path / "run")
    assert verdict.best in at_three and verdict.best_seed_sets == 4
    if verdict.paired is not None:                                              # None: the pick is the baseline
        assert verdict.paired["seed_sets"] == [3] and verdict.paired["fresh"] is True
        assert "that took no part in choosing them" in verdict.sentence


def test_a_confirmation_needs_a_seed_set_left_under_the_cap(tmp_path, capsys):
    with pytest.raises(ConfigError, match="leaves no seed set for the race"):
        load_config(None, ['search.strategy="racing"', "search.replicate_cap=2", "search.confirm_seed_sets=2"])
    assert main(["evolve", "--synthetic", "6", "--set", 'search.strategy="racing"', "--set", "search.replicate_cap=2",
                 "--set", "search.confirm_seed_sets=2", "--quiet", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "search.confirm_seed_sets = 2 leaves no seed set for the race" in err
    assert not (tmp_path / "r").exists()


# -- the verdict's pick --------------------------------------------------------------------------------------
def test_a_racing_verdict_without_an_evaluated_baseline_names_the_capped_pick():
    lucky = EvaluationRecord(genome="3-3-3", fitness=99.0)                     # one lucky draw
    capped = EvaluationRecord(genome="1-3-5", fitness=97.0, seed_set_fitness={0: 96.0, 1: 97.0, 2: 98.0},
                              fitness_stderr=0.5)
    verdict = verdict_of([lucky, capped], "run", 3, 6, noise_std=1.0, min_seed_sets=3, confirm=1)
    assert verdict.baseline is None and verdict.best == "1-3-5" and verdict.best_fitness == 97.0
    assert verdict.best_seed_sets == 3 and verdict.ties is not None


def test_paired_one_sided_has_a_floor():
    # two differences of exactly 1: no spread; without a floor no test, with the pooled std a finite one
    assert paired_one_sided({0: 2.0, 1: 3.0}, {0: 1.0, 1: 2.0})["p"] is None
    floored = paired_one_sided({0: 2.0, 1: 3.0}, {0: 1.0, 1: 2.0}, pooled=(1.0, 10))
    assert floored["stderr_from"] == "pooled" and floored["stderr"] == pytest.approx(1.0) and floored["p"] > 0.1
    fresh = paired_one_sided({0: 5.0, 1: 6.0, 2: 9.0}, {0: 1.0, 1: 2.0, 2: 3.0}, noise_std=1.0, keys=range(2, 3))
    assert fresh["n"] == 1 and fresh["seed_sets"] == [2] and fresh["difference"] == 6.0


def test_with_no_distillation_genomes_that_make_one_student_are_evaluated_once(tmp_path):
    """Teacher initialisation and no distillation: a gene 0 starts its layer from the uniform mapping's layer, so
    0-0-6, 0-4-6 and 2-4-6 are one student (u = 2-4-6 for 3 of 6 layers), as are 0-4-5 and 2-4-5; the run computes
    each student once and gives every such genome its record (noted as cached), where before it computed each.  With
    distillation they are five students."""
    twins = ["0-0-6", "2-4-6", "0-4-6", "2-4-5", "0-4-5"]

    def calls_and_rows(steps: int, name: str):
        log = tmp_path / f"{name}.log"
        config = load_config(None, ['student.init="teacher"', f"distill.max_steps={steps}", "distill.epochs=0",
                                    "search.population=6", "search.generations=1", "search.offspring=2",
                                    "search.seed=3", f"search.seed_mappings={twins!r}", 'run.executor="local"',
                                    "run.shared_fitness=false"])
        run_search(config, SyntheticEvaluator(teacher_layers=6, student_layers=3, log_path=str(log)), tmp_path / name,
                   progress=False)
        return collections.Counter(read_call_log(log)), {r.genome: r.fitness for r in run_rows(tmp_path / name)}

    calls, rows = calls_and_rows(0, "undistilled")
    assert calls["2-4-6"] + calls["0-0-6"] + calls["0-4-6"] == 1 and calls["2-4-5"] + calls["0-4-5"] == 1, calls
    assert rows["0-0-6"] == rows["2-4-6"] == rows["0-4-6"] and rows["0-4-5"] == rows["2-4-5"]
    calls, _ = calls_and_rows(5, "distilled")
    assert all(calls[t] == 1 for t in twins), calls
