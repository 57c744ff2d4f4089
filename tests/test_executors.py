"""Executors: failures become records, the process pool matches local, a dead worker fails only its genome, Ray."""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

import pytest
import torch

from layermap.executors.devices import pick_worker_device
from layermap.config import RunSettings, load_config
from layermap.errors import LayermapError
from layermap.searching.run import run_search
from layermap.executors.local import LocalExecutor
from layermap.executors.registry import create_executor
from layermap.executors.safety import evaluate_safely
from layermap.executors.protocol import evaluate_each
from layermap.evaluators.synthetic import SyntheticEvaluator

ROOT = Path(__file__).resolve().parents[1]
GENOMES = [(1, 2, 3), (2, 4, 6), (0, 0, 6), (3, 3, 3), (4, 5, 6), (1, 1, 1)]


class Raising:
    fingerprint = "raising"
    device_class = None

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    def prepare(self):
        pass

    def set_device(self, device):
        pass

    def evaluate(self, genes):
        raise self.exc

    def evaluate_many(self, genomes):
        return evaluate_each(self, genomes)


def read_log(path: Path) -> list[tuple[str, int, str]]:
    """(genome, pid, device) per logged evaluation (the synthetic log's 4th column, the seed, is left out)."""
    return [(g, int(pid), device) for g, pid, device, *_ in (line.split() for line in path.read_text().splitlines())]


def comparable(pairs) -> dict:
    return {g: (r.status, r.fitness, r.tasks, r.error and r.error.split(" (at ")[0]) for g, r in pairs}


def test_exceptions_nan_and_out_of_memory_become_failed_records():
    oom = evaluate_safely(Raising(torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")), (1, 2))
    assert oom.status == "failed" and oom.fitness is None
    assert oom.error.startswith("OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB (at test_executors.py:")
    runtime = evaluate_safely(Raising(RuntimeError("CUDA error: out of memory")), (1, 2))
    assert runtime.error.startswith("RuntimeError: CUDA error: out of memory") and runtime.genome == "1-2"
    nan = evaluate_safely(SyntheticEvaluator(teacher_layers=4, student_layers=2, nan_genomes=("1-2",)), (1, 2))
    assert nan.status == "failed" and "non-finite fitness nan" in nan.error
    ok = evaluate_safely(SyntheticEvaluator(teacher_layers=4, student_layers=2), (1, 2))
    assert ok.ok and ok.timings["total"] >= 0 and math.isfinite(ok.fitness)


def test_local_executor_yields_every_genome():
    ev = SyntheticEvaluator(teacher_layers=6, student_layers=3, fail_genomes=("3-3-3",))
    results = dict(LocalExecutor(ev).submit(GENOMES))
    assert set(results) == set(GENOMES)
    assert results[(3, 3, 3)].error.startswith("RuntimeError: synthetic failure for genome 3-3-3")
    assert results[(2, 4, 6)].fitness == ev.score((2, 4, 6))


def test_registry_and_missing_ray_are_clear_errors(monkeypatch):
    ev = SyntheticEvaluator(teacher_layers=6, student_layers=3)
    with pytest.raises(LayermapError, match="unknown executor 'dask'"):
        create_executor(ev, RunSettings(), "dask")
    monkeypatch.setitem(sys.modules, "ray", None)                      # makes `import ray` fail
    with pytest.raises(LayermapError, match=r"pip install 'layermap\[ray\]'"):
        create_executor(ev, RunSettings(executor="ray"))


def test_workers_are_pinned_round_robin_to_gpus(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert [pick_worker_device(slot, "auto") for slot in range(3)] == ["cuda:0", "cuda:1", "cuda:0"]
    assert pick_worker_device(1, "cpu") == "cpu" and pick_worker_device(1, "cuda:3") == "cuda:3"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert pick_worker_device(1, "auto") == "cpu"


def test_process_executor_with_two_workers_matches_local(tmp_path):
    log = tmp_path / "calls.log"
    ev = SyntheticEvaluator(teacher_layers=6, student_layers=3, fail_genomes=("3-3-3",), log_path=str(log))
    config = load_config(None, ["search.population=6", "search.generations=2", "search.seed=5",
                                "run.executor='process'", "run.workers=2"])
    parallel = run_search(config, ev, tmp_path / "process", progress=False)
    local = run_search(config.replace(run=RunSettings(shared_fitness=False)), SyntheticEvaluator(teacher_layers=6, student_layers=3,
                                                                             fail_genomes=("3-3-3",)),
                       tmp_path / "local", progress=False)
    assert [g.best_genome for g in parallel.generations] == [g.best_genome for g in local.generations]
    assert (parallel.best_record.fitness, parallel.computed, parallel.failed) == \
           (local.best_record.fitness, local.computed, local.failed)
    entries = read_log(log)
    assert len({pid for _, pid, _ in entries}) == 2 and os.getpid() not in {pid for _, pid, _ in entries}
    assert {device for _, _, device in entries} == {"cpu"}                 # set_device ran in each worker


def test_a_dead_worker_fails_only_its_genome_and_the_pool_is_rebuilt():
    ev = SyntheticEvaluator(teacher_layers=6, student_layers=3, crash_genomes=("3-3-3",), fail_genomes=("1-1-1",))
    executor = create_executor(ev, RunSettings(executor="process", workers=1))
    try:
        results = dict(executor.submit([(1, 2, 3), (3, 3, 3), (2, 4, 6), (1, 1, 1)]))
        again = dict(executor.submit([(4, 5, 6)]))
    finally:
        executor.close()
    assert results[(3, 3, 3)].status == "failed" and results[(3, 3, 3)].error.startswith("WorkerDied")
    assert results[(1, 1, 1)].error.startswith("RuntimeError: synthetic failure")
    assert results[(1, 2, 3)].ok and results[(2, 4, 6)].ok and again[(4, 5, 6)].ok


def test_ray_executor_matches_local_and_fails_a_crashing_genome(tmp_path, monkeypatch):
    try:
        import ray
    except ImportError:
        pytest.skip("ray not installed (pip install layermap[ray])")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        ev = SyntheticEvaluator(teacher_layers=6, student_layers=3, fail_genomes=("3-3-3",), crash_genomes=("1-1-1",),
                                log_path=str(tmp_path / "calls.log"))
        executor = create_executor(ev, RunSettings(executor="ray", workers=2))
        remote = dict(executor.submit(GENOMES))
        executor.close()                                       # does not shut down a Ray it did not start
        assert ray.is_initialized()
    finally:
        ray.shutdown()
    local = dict(LocalExecutor(SyntheticEvaluator(teacher_layers=6, student_layers=3, fail_genomes=("3-3-3",)))
                 .submit([g for g in GENOMES if g != (1, 1, 1)]))
    crashed = remote.pop((1, 1, 1))
    assert comparable(remote.items()) == comparable(local.items())
    assert crashed.status == "failed" and crashed.error.startswith("WorkerCrashedError")
    assert [g for g, _, _ in read_log(tmp_path / "calls.log")].count("1-1-1") == 2      # max_retries=1: tried twice
