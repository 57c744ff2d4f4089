"""The device class in fingerprints and records: Ray workers' device, records stamped by the process that computed them
and checked against the fingerprint's class, a resume on another device class, and compare's fingerprint."""

from __future__ import annotations

import pytest

from layermap.config import RunSettings, load_config
from layermap.executors.devices import fingerprint_device_class, worker_device
from layermap.executors.local import LocalExecutor
from layermap.executors.safety import (GenomeWorker, as_worker, evaluate_chunk_safely, evaluate_safely,
                                       on_fingerprint_device)
from layermap.searching.run import former_device_class, resume_search, run_search
from layermap.evaluators.proxy import ProxyEvaluator
from layermap.storage.records import EvaluationRecord, TaskScore
from layermap.searching.state import SeedSetEvaluator
from layermap.evaluators.shaped import ShapedEvaluator
from layermap.storage.store import StoreError
from layermap.final import fingerprints as fingerprints_mod
from layermap.final import run as compare_mod

RAY_GPU = ["run.executor=ray", "run.device=auto", "run.gpus_per_eval=1"]


def test_ray_workers_device_class_is_what_they_are_given_not_the_drivers():
    assert fingerprint_device_class(RunSettings(executor="ray", device="auto", gpus_per_eval=0)) == "cpu"
    assert fingerprint_device_class(RunSettings(executor="ray", device="auto", gpus_per_eval=1)) == "cuda"
    assert fingerprint_device_class(RunSettings(executor="ray", device="cpu", gpus_per_eval=1)) == "cpu"
    assert worker_device(RunSettings(executor="ray", device="auto", gpus_per_eval=0.5)) == "cuda:0"
    assert fingerprint_device_class(RunSettings(executor="process", device="cpu")) == "cpu"


def test_a_ray_driver_without_a_gpu_fingerprints_its_gpu_workers_as_cuda(tiny_config_toml):
    ev = ProxyEvaluator(load_config(str(tiny_config_toml), RAY_GPU))          # this machine has no CUDA
    assert ev.device_class == "cuda"
    assert ev.fingerprint == ev.fingerprint_on("cuda") != ev.fingerprint_on("cpu")
    ev.set_device("cpu")                     # what a worker given no GPU would compute on: its own class
    assert ev.device_class == "cpu" and ev.fingerprint == ev.fingerprint_on("cpu")


class _Stamping:
    """A device evaluator whose records say they were computed on ``computed``."""

    fingerprint = "fp"

    def __init__(self, device_class: str, computed: str | None, fail: bool = False):
        self.device_class, self.computed, self.fail = device_class, computed, fail

    def prepare(self):
        pass

    def set_device(self, device):
        pass

    def with_seed_set(self, seed_set):
        return self

    def evaluate(self, genes):
        if self.fail:
            raise RuntimeError("boom")
        env = {"device": self.computed} if self.computed else {}
        return EvaluationRecord(genome="x", fitness=50.0, tasks={"sst2": TaskScore({}, 50.0)}, environment=env)

    def evaluate_many(self, genomes):
        return [self.evaluate(g) for g in genomes]


def test_a_record_from_another_device_class_fails_instead_of_being_cached():
    [(_, good)] = LocalExecutor(_Stamping("cpu", "cpu")).submit([(1, 2)])
    assert good.ok and good.environment["device"] == "cpu"
    [(_, bad)] = LocalExecutor(_Stamping("cuda", "cpu")).submit([(1, 2)])
    assert not bad.ok and bad.error.startswith("DeviceMismatch: this genome was evaluated on cpu, but the run's "
                                               "fingerprint is for cuda")
    assert bad.environment["device"] == "cpu"
    chunked = LocalExecutor(_Stamping("cuda", "cpu"), RunSettings(population=2)).submit([(1, 2), (2, 3)])
    assert [r.ok for _, r in chunked] == [False, False]


def test_the_search_s_wrapped_evaluator_refuses_a_record_from_another_device_class():
    """Every search runs its evaluator inside the seed-set worker (and a joint shape search inside the shaped wrapper
    too): the device check must see the inner evaluator's class through both."""
    for worker in (SeedSetEvaluator(_Stamping("cuda", "cpu")), SeedSetEvaluator(ShapedEvaluator(_Stamping("cuda", "cpu")))):
        assert worker.device_class == "cuda"
        for population in (1, 2):
            out = list(LocalExecutor(worker, RunSettings(population=population)).submit([((1, 2), 0), ((2, 3), 1)]))
            assert [r.ok for _, r in out] == [False, False]
            assert all(r.error.startswith("DeviceMismatch: this genome was evaluated on cpu") for _, r in out)
    [(_, same)] = LocalExecutor(SeedSetEvaluator(_Stamping("cpu", "cpu"))).submit([((1, 2), 0)])
    assert same.ok


def test_a_search_whose_records_come_from_another_device_class_caches_none_of_them(tiny_config_toml, tmp_path):
    config = load_config(str(tiny_config_toml), ["search.generations=1", "run.shared_fitness=false"])
    cuda = _Fast(config)
    cuda._device_class = "cuda"                       # the fingerprint names cuda; the records say cpu
    cuda.evaluate = lambda genes: EvaluationRecord(genome="x", fitness=50.0, tasks={"sst2": TaskScore({}, 50.0)},
                                                   environment={"device": "cpu"})
    result = run_search(config, cuda, tmp_path / "run", progress=False)
    assert result.best_record is None and result.failed > 0


def test_every_worker_and_evaluator_the_executors_run_keeps_the_contract(tiny_config_toml, compare_toml, tmp_path):
    from layermap.executors.protocol import Evaluator, Worker
    from layermap.study.replay import TableEvaluator
    from layermap.evaluators.synthetic import SyntheticEvaluator

    gpu = ProxyEvaluator(load_config(str(tiny_config_toml), RAY_GPU))        # device class cuda on this CPU machine
    synthetic = SyntheticEvaluator(teacher_layers=6, student_layers=3)
    evaluators = [gpu, ShapedEvaluator(gpu), synthetic, ShapedEvaluator(synthetic),
                  TableEvaluator({"1-2": 50.0}, teacher_layers=4, student_layers=2)]
    for evaluator in evaluators:
        assert isinstance(evaluator, Evaluator), type(evaluator).__name__
        for worker in (SeedSetEvaluator(evaluator), GenomeWorker(evaluator), as_worker(evaluator)):
            assert isinstance(worker, Worker), type(worker).__name__
            assert worker.device_class == evaluator.device_class and worker.fingerprint == evaluator.fingerprint
            assert worker.run_jobs.__self__ is worker            # its own member, never one a wrapper forwards
    assert SeedSetEvaluator(ShapedEvaluator(gpu)).device_class == "cuda"
    compare = compare_mod.CompareWorker(load_config(str(compare_toml), RAY_GPU), tmp_path / "cmp", "fp")
    assert isinstance(compare, Worker) and compare.device_class == "cuda" and as_worker(compare) is compare
    with pytest.raises(TypeError, match="lacks device_class, prepare, set_device, evaluate_many"):
        SeedSetEvaluator(type("Bare", (), {"fingerprint": "x", "evaluate": lambda self, g: None})())


def test_the_executors_probe_no_attribute_of_what_they_run():
    import re
    from pathlib import Path

    import layermap.executors

    sources = "".join(p.read_text("utf-8") for p in Path(layermap.executors.__file__).parent.glob("*.py")
                      if p.name != "protocol.py")             # the protocol names what a thing lacks, for its error
    probes = re.findall(r"(?:getattr|hasattr)\((\w+)", sources)
    assert set(probes) <= {"pool"}, probes                    # only the process pool's own internals


def test_a_compare_cell_from_another_device_class_fails_instead_of_being_cached(compare_toml, tmp_path):
    worker = compare_mod.CompareWorker(load_config(str(compare_toml), RAY_GPU), tmp_path / "cmp", "fp")
    cell = {"status": "complete", "score": 80.0, "environment": {"device": "cpu"}}
    refused = on_fingerprint_device(worker, cell)
    assert refused["status"] == "failed" and refused["error"].startswith("DeviceMismatch: this cell was evaluated on cpu")
    assert on_fingerprint_device(worker, {**cell, "environment": {"device": "cuda"}})["status"] == "complete"


def test_a_ray_driver_keys_the_reference_rows_by_the_device_it_measures_them_on(tiny_config_toml, tmp_path):
    """The driver measures the reference rows on its own device (here the CPU), whatever its GPU workers compute on."""
    from layermap.evaluators.references import build_references
    from layermap.storage.store import Store

    gpu = ProxyEvaluator(load_config(str(tiny_config_toml), RAY_GPU))
    cpu = ProxyEvaluator(load_config(str(tiny_config_toml)))
    assert gpu.device_class == "cuda" and gpu.reference_fingerprint == cpu.reference_fingerprint
    gpu.compute_references = lambda: build_references([{"sst2": 80.0}] * 2, [{"sst2": 50.0}] * 2, [{"sst2": 50.0}] * 2,
                                                      fingerprint=gpu.reference_fingerprint)
    with Store(tmp_path / "store.sqlite") as store:
        gpu.references(store)
        assert store.lookup_references(cpu.reference_fingerprint) is not None
    assert gpu.describe()["reference_fingerprint"] == cpu.reference_fingerprint


def test_records_without_an_environment_are_stamped_by_the_computing_process():
    unstamped = evaluate_safely(_Stamping("cpu", None), (1, 2))
    assert unstamped.ok and unstamped.environment["device"] == "cpu" and "torch" in unstamped.environment
    failed = evaluate_safely(_Stamping("cpu", None, fail=True), (1, 2))
    assert not failed.ok and failed.environment["device"] == "cpu"
    assert evaluate_chunk_safely(_Stamping("cpu", None, fail=True), [(1, 2), (2, 3)])[1].environment["device"] == "cpu"


class _Fast(ProxyEvaluator):
    """The proxy evaluator's fingerprint and devices, with an instant constant fitness."""

    def evaluate(self, genes):
        return EvaluationRecord(genome="x", fitness=float(sum(genes)), tasks={"sst2": TaskScore({}, 1.0)},
                                environment={"device": self.device_class})


def test_a_resume_on_another_device_class_says_so(tiny_config_toml, tmp_path):
    config = load_config(str(tiny_config_toml), ["search.generations=1", "run.shared_fitness=false"])
    cuda = _Fast(config)
    cuda._device_class = "cuda"                       # as if the run had been computed on a GPU
    run_search(config, cuda, tmp_path / "run", progress=False)
    assert former_device_class(ProxyEvaluator(config), cuda.fingerprint) == "cuda"
    with pytest.raises(StoreError) as err:
        resume_search(tmp_path / "run", lambda c: _Fast(c), progress=False)
    text = str(err.value)
    assert "\n" not in text and "was computed on cuda, but this resume would compute on cpu" in text
    assert "run.device = cuda:0" in text


def test_another_fingerprint_for_another_reason_names_no_device(tiny_config_toml):
    ev = ProxyEvaluator(load_config(str(tiny_config_toml)))
    other = ProxyEvaluator(load_config(str(tiny_config_toml), ["distill.seed=5"]))
    assert former_device_class(ev, other.fingerprint) is None


def test_compare_fingerprint_names_the_device_class_and_the_teacher_cache(compare_toml, tmp_path):
    base = load_config(str(compare_toml), ["compare.teacher_cache=false"])
    cached = load_config(str(compare_toml), ["compare.teacher_cache=true"])
    gpu = load_config(str(compare_toml), ["compare.teacher_cache=false", *RAY_GPU])
    fps = {compare_mod.compare_fingerprint(c) for c in (base, cached, gpu)}
    assert len(fps) == 3
    compare_mod._claim_folder(tmp_path / "cmp", base, compare_mod.compare_fingerprint(base))
    with pytest.raises(compare_mod.CompareError, match=r"\(device differs\)"):
        compare_mod._claim_folder(tmp_path / "cmp", gpu, compare_mod.compare_fingerprint(gpu))
    with pytest.raises(compare_mod.CompareError, match=r"\(compare.teacher_cache differs\)"):
        compare_mod._claim_folder(tmp_path / "cmp", cached, compare_mod.compare_fingerprint(cached))


def test_a_cpu_compare_without_teacher_cache_keeps_its_former_key(compare_toml):
    """Folders made before the device class and teacher_cache entered (CPU, no cache) keep their fingerprint."""
    config = load_config(str(compare_toml), ["compare.teacher_cache=false"])
    assert fingerprints_mod._device_and_cache(config) == {}


def test_tf32_for_ray_workers_given_no_gpu_is_one_sentence(tiny_config_toml):
    from layermap.config import ConfigError

    with pytest.raises(ConfigError, match="distill.precision = 'tf32' needs a CUDA GPU, but the run uses cpu"):
        ProxyEvaluator(load_config(str(tiny_config_toml), ["run.executor=ray", "run.device=auto",
                                                           'distill.precision="tf32"']))
    gpu = ProxyEvaluator(load_config(str(tiny_config_toml), [*RAY_GPU, 'distill.precision="tf32"']))
    assert gpu.device_class == "cuda"                # the GPU workers check it where they run
