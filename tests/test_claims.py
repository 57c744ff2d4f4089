"""Claims in the shared fitness cache (issue 9, item 17): two searches with the same settings started together
compute every genome once between them; a stale claim is taken over; a failed evaluation does not block."""

from __future__ import annotations

import collections
import logging
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from layermap.config import load_config
from layermap.distill.corpus import default_cache_dir
from layermap.searching.run import SHARED_CACHE_NAME, run_search
from layermap.mapping import baselines
from layermap.storage.store import Store
from layermap.storage.runs import open_run
from layermap.evaluators.synthetic import SyntheticEvaluator, read_call_log

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = ["search.population=8", "search.generations=3", "search.seed=3"]

DRIVER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from layermap.config import load_config
    from layermap.searching.run import run_search
    from layermap.study.synthetic import SyntheticEvaluator
    config = load_config(None, sys.argv[4:])
    ev = SyntheticEvaluator(teacher_layers=8, student_layers=3, delay=0.1, log_path=sys.argv[2])
    go = Path(sys.argv[3])
    while not go.exists():               # start together: both wait for the same signal after their imports
        time.sleep(0.01)
    run_search(config, ev, sys.argv[1], progress=False)
""")


def _evaluations(run_dir: Path) -> dict[str, tuple]:
    """genome -> (status, fitness, computed) of every evaluation row of the run."""
    _, store, row = open_run(run_dir)
    with store:
        return {r.genome: (r.status, r.fitness, r.computed) for r in store.run_evaluations(row.run_id)}


def _populations(run_dir: Path) -> list[list[str]]:
    _, store, row = open_run(run_dir)
    with store:
        return [g.population for g in store.generations(row.run_id)]


def _shared_store() -> Store:
    return Store(default_cache_dir() / SHARED_CACHE_NAME)


@pytest.mark.parametrize("executors", [("local", "local"), ("process", "local")])
def test_two_drivers_started_together_compute_each_genome_once(tmp_path, executors):
    log, go = tmp_path / "calls.log", tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}            # LAYERMAP_CACHE: the test's own, shared by both
    procs = [subprocess.Popen([sys.executable, "-c", DRIVER, str(tmp_path / name), str(log), str(go), *SETTINGS,
                               f"run.executor={executor!r}", "run.workers=2", "run.threads=1"],
                              env=env, stderr=subprocess.PIPE, text=True) for name, executor in zip("ab", executors)]
    time.sleep(1.0)
    go.touch()
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errors
    calls = collections.Counter(read_call_log(log))
    assert calls and set(calls.values()) == {1}, calls                       # nothing computed twice
    a, b = _evaluations(tmp_path / "a"), _evaluations(tmp_path / "b")
    assert {g: f for g, (_, f, _) in a.items()} == {g: f for g, (_, f, _) in b.items()}    # the same fitnesses
    assert all(status == "complete" for status, _, _ in [*a.values(), *b.values()])
    computed = [g for g, (_, _, c) in a.items() if c] + [g for g, (_, _, c) in b.items() if c]
    assert sorted(computed) == sorted(calls)                                 # each genome computed by exactly one run
    assert _populations(tmp_path / "a") == _populations(tmp_path / "b")      # and both follow the same trajectory
    with _shared_store() as shared:
        assert shared.claims() == []                                         # every claim released


def _claim_for_someone_else(genome: str, evaluator, *, age: float, owner: str = "elsewhere:4242:20260101-000000-abcdef"):
    with _shared_store() as shared:
        assert shared.claim(evaluator.fingerprint, genome, owner) == "claimed"
        shared._db.execute("UPDATE claims SET heartbeat = ?", (time.time() - age,))


def test_a_stale_claim_is_taken_over_at_once(tmp_path):
    ev = SyntheticEvaluator(teacher_layers=6, student_layers=3)
    uniform = "-".join(map(str, baselines(3, 6)["uniform"]))           # seeded into generation 0
    _claim_for_someone_else(uniform, ev, age=3600)                     # its owner stopped beating an hour ago
    clock = time.perf_counter()
    result = run_search(load_config(None, SETTINGS), ev, tmp_path / "run", progress=False)
    assert time.perf_counter() - clock < 10
    assert _evaluations(tmp_path / "run")[uniform] == ("complete", pytest.approx(ev.score((2, 4, 6))), True)
    assert result.computed == len(_evaluations(tmp_path / "run"))
    with _shared_store() as shared:
        assert shared.claims() == []


def test_a_live_claim_is_waited_for_until_it_goes_stale(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("LAYERMAP_CLAIM_STALE_SECONDS", "2")
    ev = SyntheticEvaluator(teacher_layers=6, student_layers=3)
    uniform = "-".join(map(str, baselines(3, 6)["uniform"]))
    _claim_for_someone_else(uniform, ev, age=0)                        # live now, but nobody refreshes it
    clock = time.perf_counter()
    with caplog.at_level(logging.INFO, logger="layermap"):            # the line is logged by layermap.searching.run
        run_search(load_config(None, SETTINGS), ev, tmp_path / "run", progress=True)
    assert 1.5 < time.perf_counter() - clock < 30
    assert _evaluations(tmp_path / "run")[uniform][0] == "complete"
    err = caplog.text
    assert "waiting for 1 genome(s) another run is computing" in err and uniform in err


def test_the_owners_record_is_used_when_it_arrives(tmp_path):
    """A waiting driver takes the owner's complete record (computed = 0) instead of computing the genome."""
    ev = SyntheticEvaluator(teacher_layers=6, student_layers=3)
    uniform = "-".join(map(str, baselines(3, 6)["uniform"]))
    owner = "elsewhere:4242:20260101-000000-abcdef"
    _claim_for_someone_else(uniform, ev, age=0, owner=owner)

    def finish_elsewhere():
        time.sleep(1.0)
        with _shared_store() as shared:
            shared.remember(ev.fingerprint, ev.evaluate((2, 4, 6)))
            shared.release(owner, ev.fingerprint, uniform)
    helper = threading.Thread(target=finish_elsewhere)
    helper.start()
    log = tmp_path / "calls.log"
    counted = SyntheticEvaluator(teacher_layers=6, student_layers=3, log_path=str(log))
    run_search(load_config(None, SETTINGS), counted, tmp_path / "run", progress=False)
    helper.join()
    assert uniform not in read_call_log(log)
    assert _evaluations(tmp_path / "run")[uniform] == ("complete", pytest.approx(ev.score((2, 4, 6))), False)


def test_the_claim_of_a_failed_evaluation_does_not_block(tmp_path, monkeypatch):
    """Two drivers in threads; one genome fails.  Its owner releases the claim, so the other driver computes it
    (and fails too) at once instead of waiting for the claim to go stale."""
    monkeypatch.setenv("LAYERMAP_CLAIM_STALE_SECONDS", "120")
    uniform = "-".join(map(str, baselines(3, 8)["uniform"]))
    log = tmp_path / "calls.log"
    results, errors = {}, []

    def drive(name):
        try:
            ev = SyntheticEvaluator(teacher_layers=8, student_layers=3, delay=0.05, fail_genomes=(uniform,),
                                    log_path=str(log))
            results[name] = run_search(load_config(None, SETTINGS), ev, tmp_path / name, progress=False)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
    clock = time.perf_counter()
    threads = [threading.Thread(target=drive, args=(name,)) for name in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=100)
    assert not errors and set(results) == {"a", "b"}
    assert time.perf_counter() - clock < 60
    calls = collections.Counter(read_call_log(log))
    assert calls[uniform] <= 2 and all(n == 1 for g, n in calls.items() if g != uniform)
    assert _evaluations(tmp_path / "a")[uniform][0] == _evaluations(tmp_path / "b")[uniform][0] == "failed"
    assert _populations(tmp_path / "a") == _populations(tmp_path / "b")


def test_a_run_alone_with_its_private_store_claims_nothing(tmp_path):
    ev = SyntheticEvaluator(teacher_layers=6, student_layers=3)
    run_search(load_config(None, [*SETTINGS, "run.shared_fitness=false"]), ev, tmp_path / "run", progress=False)
    with Store(tmp_path / "run" / "layermap.sqlite") as store:
        assert store.claims() == []
    assert not (default_cache_dir() / SHARED_CACHE_NAME).exists()
