"""The genetic search: operators, constraint repair, caching, failures, checkpoint / resume."""

from __future__ import annotations

import collections
import logging
import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from layermap.config import ConfigError, load_config
from layermap.errors import LayermapError
from layermap.searching.run import resume_search, run_search
from layermap.mapping import baselines, satisfies
from layermap.searching.operators import (crossover_two_point, crossover_uniform, initial_genomes, mutate_genes,
                                select_survivors)
from layermap.storage.store import Store, StoreError
from layermap.storage.runs import lock_run, read_run_info
from layermap.evaluators.synthetic import SyntheticEvaluator, read_call_log

ROOT = Path(__file__).resolve().parents[1]


class CountingEvaluator(SyntheticEvaluator):
    """A synthetic evaluator that remembers every genome it was asked to evaluate (local executor)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.calls: list[str] = []

    def evaluate(self, genes):
        self.calls.append("-".join(map(str, genes)))
        return super().evaluate(genes)


def make_config(*overrides: str):
    base = ["search.population=8", "search.generations=4", "search.seed=3"]
    return load_config(None, [*base, *overrides])


def trajectory(result):
    return [(g.generation, g.best, g.best_genome, g.unique) for g in result.generations]


def populations(run_dir: Path) -> list[list[str]]:
    info = read_run_info(run_dir)
    with Store(info.store_path(run_dir)) as store:
        return [g.population for g in store.generations(info.run_id)]


# -- operators -------------------------------------------------------------------------------------
def test_two_point_crossover_swaps_one_segment_and_is_reproducible():
    a0, b0 = list(range(1, 7)), list(range(11, 17))
    outcomes = set()
    for seed in range(30):
        a, b = crossover_two_point(random.Random(seed), list(a0), list(b0))
        swapped = [i for i in range(6) if a[i] != a0[i]]
        assert swapped and swapped == list(range(swapped[0], swapped[-1] + 1))       # one contiguous segment
        assert all(b[i] == a0[i] and a[i] == b0[i] for i in swapped)
        assert crossover_two_point(random.Random(seed), list(a0), list(b0)) == (a, b)  # same seed, same result
        outcomes.add(tuple(a))
    assert len(outcomes) > 5


def test_crossover_falls_back_for_short_genomes():
    assert crossover_two_point(random.Random(0), [1, 2], [3, 4]) == ([1, 4], [3, 2])
    assert crossover_two_point(random.Random(0), [5], [7]) == ([5], [7])
    a, b = crossover_uniform(random.Random(1), [1, 2, 3, 4, 5, 6], [7, 8, 9, 10, 11, 12])
    assert all({x, y} == {i + 1, i + 7} for i, (x, y) in enumerate(zip(a, b)))


def test_mutation_changes_genes_at_the_expected_rate_to_other_values():
    rng, n_layers, prob, trials = random.Random(7), 12, 0.25, 3000
    changed, values = 0, collections.Counter()
    for _ in range(trials):
        genes = [rng.randint(0, n_layers) for _ in range(4)]
        (mutated,) = mutate_genes(rng, list(genes), n_layers, prob)
        for old, new in zip(genes, mutated):
            assert 0 <= new <= n_layers
            if new != old:
                changed += 1
                values[new] += 1
    forced = (1 - prob) ** 4 / 4                       # a mutant with no drawn gene gets one changed gene
    assert abs(changed / (4 * trials) - (prob + forced)) < 0.02
    assert set(values) == set(range(n_layers + 1))                     # every value reachable, 0 included
    assert mutate_genes(random.Random(5), [3, 6, 9, 12], 12, 0.5) == mutate_genes(random.Random(5), [3, 6, 9, 12], 12, 0.5)


def test_survivors_are_the_best_distinct_genomes():
    class Ind(list):
        def __init__(self, genes, fit):
            super().__init__(genes)
            self.fit = fit

    pool = [Ind([1, 2], 5.0), Ind([1, 2], 5.0), Ind([3, 4], 7.0), Ind([0, 4], float("-inf")), Ind([2, 2], 1.0)]
    chosen = select_survivors(pool, 3, fitness=lambda ind: ind.fit)
    assert [list(c) for c in chosen] == [[3, 4], [1, 2], [2, 2]]


def test_initial_population_seeds_baselines_and_is_distinct_and_valid():
    genomes = initial_genomes(random.Random(0), 12, 4, 12, "increasing", seeds=[(1, 5, 0, 7)])
    assert genomes[0] == (1, 5, 0, 7)
    assert set(baselines(4, 12).values()) <= set(genomes)
    assert len(set(genomes)) == 12 and all(satisfies(g, "increasing") for g in genomes)
    tiny = initial_genomes(random.Random(0), 5, 1, 2, "free", seed_baselines=False)   # space of 3 < 5
    assert set(tiny) == {(0,), (1,), (2,)} and len(tiny) == 5


# -- the search ------------------------------------------------------------------------------------
def test_same_seed_same_search_and_every_genome_respects_the_constraint(tmp_path):
    config = make_config("search.constraint='non-decreasing'", "search.generations=5")
    ev = SyntheticEvaluator(teacher_layers=8, student_layers=4)
    first = run_search(config, ev, tmp_path / "a", progress=False)
    second = run_search(config, ev, tmp_path / "b", progress=False)
    other = run_search(make_config("search.constraint='non-decreasing'", "search.generations=5", "search.seed=4"), ev,
                       tmp_path / "c", progress=False)
    assert populations(tmp_path / "a") == populations(tmp_path / "b")
    assert populations(tmp_path / "a") != populations(tmp_path / "c")
    assert trajectory(first) == trajectory(second) and other.generations
    info = read_run_info(tmp_path / "a")
    with Store(info.store_path(tmp_path / "a")) as store:
        genomes = {r.genome for r in store.run_evaluations(info.run_id)}
    assert len(genomes) > 8
    assert all(satisfies(tuple(map(int, g.split("-"))), "non-decreasing") for g in genomes)


def test_a_repeated_genome_is_evaluated_once(tmp_path, caplog):
    # a space of 9 genomes searched with 8 offspring a generation: genomes must repeat once it is exhausted
    config = make_config("search.cx_prob=0.0", "search.mut_prob=0.3", "search.generations=6")
    ev = CountingEvaluator(teacher_layers=2, student_layers=2)
    with caplog.at_level(logging.INFO, logger="layermap"):
        result = run_search(config, ev, tmp_path / "run", progress=True)
    assert len(ev.calls) == len(set(ev.calls)) == 9
    assert sum(g.evaluated for g in result.generations) > len(ev.calls)          # repeats happened and were not re-run
    assert result.computed == len(ev.calls) and result.cached == 0
    assert "offspring repeat a known genome after 50 breedings" in caplog.text       # logged by layermap.searching.run


def test_mutants_always_differ_from_their_parent():
    rng = random.Random(0)
    for _ in range(500):
        parent = [rng.randint(0, 6) for _ in range(3)]
        (child,) = mutate_genes(rng, list(parent), 6, 1 / 3)
        assert child != parent


@pytest.mark.parametrize("constraint", ["free", "non-decreasing"])
def test_every_generation_breeds_lambda_new_genomes_while_any_remain(tmp_path, constraint):
    """Issue 9.5: two identical tournament winners, unchanged mutants and copies no longer waste offspring."""
    config = make_config(f"search.constraint={constraint!r}", "search.generations=6")
    ev = CountingEvaluator(teacher_layers=6, student_layers=3)
    result = run_search(config, ev, tmp_path / "run", progress=False)
    assert len(ev.calls) == len(set(ev.calls)) == 8 + 6 * 8                      # gen 0 + lambda new per generation
    assert all(g.evaluated == 8 and g.computed == 8 for g in result.generations)


def test_a_second_run_on_a_shared_store_computes_nothing_it_knows(tmp_path):
    db = tmp_path / "shared.sqlite"
    config = make_config(f"run.store_path={str(db)!r}")
    first_ev = CountingEvaluator(teacher_layers=6, student_layers=3)
    first = run_search(config, first_ev, tmp_path / "one", progress=False)
    second_ev = CountingEvaluator(teacher_layers=6, student_layers=3)
    second = run_search(config, second_ev, tmp_path / "two", progress=False)
    assert first.computed == len(first_ev.calls) > 0
    assert second.computed == 0 and second_ev.calls == [] and second.cached == first.computed
    assert trajectory(second) == trajectory(first)
    assert not (tmp_path / "one" / "layermap.sqlite").exists()
    third_ev = CountingEvaluator(teacher_layers=6, student_layers=3)
    run_search(make_config(f"run.store_path={str(db)!r}", "search.seed=9"), third_ev, tmp_path / "three", progress=False)
    assert not set(third_ev.calls) & set(first_ev.calls)                              # only new genomes computed


def test_failures_are_recorded_scored_worst_and_the_run_goes_on(tmp_path):
    uniform = "-".join(map(str, baselines(3, 6)["uniform"]))
    ev = SyntheticEvaluator(teacher_layers=6, student_layers=3, fail_genomes=(uniform,), nan_genomes=("1-2-3",))
    result = run_search(make_config(), ev, tmp_path / "run", progress=False)
    info = read_run_info(tmp_path / "run")
    with Store(info.store_path(tmp_path / "run")) as store:
        failed = {r.genome: r for r in store.run_evaluations(info.run_id) if r.status == "failed"}
    assert set(failed) == {uniform, "1-2-3"}                                   # both are baselines, seeded in gen 0
    assert "RuntimeError: synthetic failure" in failed[uniform].error and "non-finite fitness" in failed["1-2-3"].error
    assert failed[uniform].fitness is None
    assert result.failed == 2 and result.generations[0].failed == 2 and len(result.generations) == 5
    assert all(uniform not in pop for pop in populations(tmp_path / "run")[1:])    # worst fitness: never survives
    assert result.best_record.ok


def test_progress_without_a_terminal_is_one_line_per_evaluation(tmp_path, capsys):
    """The lines are logged (``layermap.searching.run``); the command line's handler (``console``) prints them."""
    from layermap.logs import console

    with console():
        result = run_search(make_config(), SyntheticEvaluator(teacher_layers=6, student_layers=3), tmp_path / "run",
                            progress=True)
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == result.computed > 0
    assert all(line.startswith("gen ") and "fitness" in line and "best" in line for line in lines)
    assert not any(" eval 0/" in line for line in lines)              # counts what has finished
    with console():
        run_search(make_config(), SyntheticEvaluator(teacher_layers=6, student_layers=3), tmp_path / "quiet", progress=False)
    assert capsys.readouterr().err == ""
    run_search(make_config(), SyntheticEvaluator(teacher_layers=6, student_layers=3), tmp_path / "library", progress=True)
    assert capsys.readouterr().err == ""           # library use without a handler: progress lines are not printed


def test_runs_in_separate_folders_share_the_user_wide_fitness_cache(tmp_path):
    first = CountingEvaluator(teacher_layers=6, student_layers=3)
    a = run_search(make_config(), first, tmp_path / "a", progress=False)
    second = CountingEvaluator(teacher_layers=6, student_layers=3)
    b = run_search(make_config(), second, tmp_path / "b", progress=False)
    assert a.computed == len(first.calls) > 0
    assert b.computed == 0 and second.calls == [] and b.cached == a.computed
    assert b.best_genome == a.best_genome
    third = CountingEvaluator(teacher_layers=6, student_layers=3)
    c = run_search(make_config("run.shared_fitness=false"), third, tmp_path / "c", progress=False)
    assert c.computed == len(third.calls) == a.computed


@pytest.mark.parametrize("seed", [0, 1])
def test_search_reaches_the_synthetic_optimum(tmp_path, seed):
    ev = SyntheticEvaluator(teacher_layers=6, student_layers=3, optimum=(1, 4, 5))
    config = load_config(None, ["search.population=12", "search.generations=25", f"search.seed={seed}"])
    result = run_search(config, ev, tmp_path / "run", progress=False)
    assert result.best_genome == (1, 4, 5) and result.best_record.fitness == 100.0
    fits = [f for _, r in result.hall_of_fame for f in [r.fitness]]
    assert fits == sorted(fits, reverse=True) and len({g for g, _ in result.hall_of_fame}) == 5


# -- checkpoint / resume ---------------------------------------------------------------------------
KILL_SCRIPT = textwrap.dedent("""
    import sys
    from layermap.config import load_config
    from layermap.searching.run import run_search
    from layermap.study.synthetic import SyntheticEvaluator
    config = load_config(None, ["search.population=8", "search.generations=4", "search.seed=3"])
    ev = SyntheticEvaluator(teacher_layers=8, student_layers=3, delay=0.08, log_path=sys.argv[2])
    run_search(config, ev, sys.argv[1], progress=False)
""")


@pytest.mark.parametrize("kill_after", [3, 15])        # inside generation 0 / inside a later generation
def test_a_killed_search_resumes_without_rerunning_and_follows_the_same_trajectory(tmp_path, kill_after):
    log = tmp_path / "calls.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(tmp_path / "run"), str(log)], env=env)
    deadline = time.time() + 30
    while len(read_call_log(log)) < kill_after and time.time() < deadline and proc.poll() is None:
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)                                # mid-evaluation: it sleeps 80 ms after logging
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    info = read_run_info(tmp_path / "run")
    with sqlite3.connect(info.store_path(tmp_path / "run")) as db:
        rows = db.execute("SELECT genome, status FROM evaluations").fetchall()
    finished_before = {g for g, s in rows if s != "running"}
    unfinished = {g for g, s in rows if s == "running"}
    assert unfinished, "the kill should land while an evaluation is running"

    factory = lambda config: SyntheticEvaluator(teacher_layers=8, student_layers=3, log_path=str(log))  # noqa: E731
    resumed = resume_search(tmp_path / "run", factory, progress=False)
    calls = collections.Counter(read_call_log(log))
    assert all(n == 1 for g, n in calls.items() if g not in unfinished)          # no finished evaluation re-run
    assert all(calls[g] == 1 for g in finished_before)
    with Store(info.store_path(tmp_path / "run")) as store:
        final = store.run_evaluations(info.run_id)
    assert all(r.status != "running" for r in final) and len({r.genome for r in final}) == len(final)

    reference = run_search(load_config(None, ["search.population=8", "search.generations=4", "search.seed=3",
                                              "run.shared_fitness=false"]),         # computes everything, like the first run
                           SyntheticEvaluator(teacher_layers=8, student_layers=3), tmp_path / "ref", progress=False)
    assert populations(tmp_path / "run") == populations(tmp_path / "ref")
    assert trajectory(resumed) == trajectory(reference)
    assert [g for g, _ in resumed.hall_of_fame] == [g for g, _ in reference.hall_of_fame]
    assert (resumed.best_genome, resumed.computed, resumed.failed) == (reference.best_genome, reference.computed, reference.failed)
    assert [(g.computed, g.cached) for g in resumed.generations] == [(g.computed, g.cached) for g in reference.generations]


def test_resume_with_another_fingerprint_or_edited_config_is_refused(tmp_path):
    ev = SyntheticEvaluator(teacher_layers=6, student_layers=3)
    run_search(make_config(), ev, tmp_path / "run", progress=False)
    with pytest.raises(StoreError, match="fingerprint"):
        resume_search(tmp_path / "run", lambda c: SyntheticEvaluator(teacher_layers=6, student_layers=3, noise=1.0))
    text = (tmp_path / "run" / "config.toml").read_text()
    (tmp_path / "run" / "config.toml").write_text(text.replace("population = 8", "population = 9"))
    with pytest.raises(StoreError, match="search.population"):
        resume_search(tmp_path / "run", lambda c: ev)
    with pytest.raises(ConfigError, match="cannot change on --resume"):
        resume_search(tmp_path / "run", lambda c: ev, overrides=["search.seed=1"])


def test_two_drivers_never_share_a_run(tmp_path):
    ev = SyntheticEvaluator(teacher_layers=6, student_layers=3)
    run_search(make_config(), ev, tmp_path / "run", progress=False)
    holder = lock_run(tmp_path / "run")                     # as if another `evolve --resume` were running
    try:
        with pytest.raises(StoreError, match="in use by another layermap process"):
            resume_search(tmp_path / "run", lambda c: ev)
    finally:
        holder.close()
    assert resume_search(tmp_path / "run", lambda c: ev, progress=False).computed > 0


def test_bad_settings_are_clear_errors(tmp_path):
    with pytest.raises(ConfigError, match="unknown setting search.popsize"):
        load_config(None, ["search.popsize=8"])
    with pytest.raises(ConfigError, match="search.population must be an integer"):
        load_config(None, ["search.population='many'"])
    with pytest.raises(ConfigError, match="at least 2"):
        load_config(None, ["search.population=1"])
    with pytest.raises(ConfigError, match="seed_mappings"):
        load_config(None, ["search.seed_mappings=['3-x-9']"])
    config = make_config("search.seed_mappings=['3-6-13']")
    with pytest.raises(LayermapError, match="seed_mappings.*teacher layer 13"):
        run_search(config, SyntheticEvaluator(teacher_layers=12, student_layers=3), tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("")
    with pytest.raises(StoreError, match="--resume"):
        run_search(make_config(), SyntheticEvaluator(teacher_layers=6, student_layers=3), tmp_path / "full")


class FlakyEvaluator(CountingEvaluator):
    """Fails the genomes in ``flaky`` (as an out-of-memory would), with the fingerprint of a clean evaluator."""

    flaky: tuple = ()

    def evaluate(self, genes):
        text = "-".join(map(str, genes))
        if text in self.flaky:
            self.calls.append(text)
            from layermap.storage.records import EvaluationRecord

            return EvaluationRecord.failure(text, f"RuntimeError: CUDA out of memory ({text})", {"total": 0.0})
        return super().evaluate(genes)


def test_resume_with_retry_failed_evaluates_failed_genomes_again_and_keeps_each_error(tmp_path):
    uniform = "-".join(map(str, baselines(3, 6)["uniform"]))
    first = FlakyEvaluator(teacher_layers=6, student_layers=3)
    first.flaky = (uniform, "1-2-3")
    result = run_search(make_config(), first, tmp_path / "run", progress=False)
    assert result.failed == 2
    plain = CountingEvaluator(teacher_layers=6, student_layers=3)
    again = resume_search(tmp_path / "run", lambda c: plain, progress=False)           # no retry: nothing recomputed
    assert plain.calls == [] and again.failed == 2
    second = FlakyEvaluator(teacher_layers=6, student_layers=3)
    second.flaky = ("1-2-3",)                                                           # fails again
    resumed = resume_search(tmp_path / "run", lambda c: second, progress=False, overrides=["run.retry_failed=true"])
    assert sorted(second.calls) == sorted([uniform, "1-2-3"])
    info = read_run_info(tmp_path / "run")
    with Store(info.store_path(tmp_path / "run")) as store:
        rows = [r for r in store.run_evaluations(info.run_id) if r.genome in (uniform, "1-2-3")]
    assert [(r.genome, r.status) for r in rows if r.genome == uniform] == [(uniform, "failed"), (uniform, "complete")]
    errors = [r.error for r in rows if r.genome == "1-2-3"]
    assert len(errors) == 2 and all("out of memory" in e for e in errors)               # every attempt keeps its error
    assert uniform in {g for g, _ in resumed.hall_of_fame} or resumed.best_record.fitness >= plain.score(
        tuple(map(int, uniform.split("-"))))


def test_retry_failed_flag_on_the_command_line(tmp_path, capsys):
    from layermap.cli.main import main

    assert main(["evolve", "--synthetic", "6", "--set", "search.generations=1", "--set", "search.population=4",
                 "--quiet", "--out", str(tmp_path / "run")]) == 0
    assert main(["evolve", "--resume", str(tmp_path / "run"), "--retry-failed", "--quiet"]) == 0
    assert main(["evolve", "--retry-failed", "--synthetic", "6", "--out", str(tmp_path / "new")]) == 2
    assert "--retry-failed" in capsys.readouterr().err
