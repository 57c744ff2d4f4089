"""The device class in fingerprints and records: Ray workers' device, records stamped by the process that computed them
and checked against the fingerprint's class, a resume on another device class, and compare's fingerprint."""

from __future__ import annotations

import pytest

from layermap.config import RunSettings, load_config
from layermap.evolution import executors as ex
from layermap.evolution.evolve import former_device_class, resume_search, run_search
from layermap.evolution.fitness import ProxyEvaluator
from layermap.evolution.records import EvaluationRecord, TaskScore
from layermap.evolution.store import StoreError
from layermap.final import compare as compare_mod

RAY_GPU = ["run.executor=ray", "run.device=auto", "run.gpus_per_eval=1"]


def test_ray_workers_device_class_is_what_they_are_given_not_the_drivers():
    assert ex.fingerprint_device_class(RunSettings(executor="ray", device="auto", gpus_per_eval=0)) == "cpu"
    assert ex.fingerprint_device_class(RunSettings(executor="ray", device="auto", gpus_per_eval=1)) == "cuda"
    assert ex.fingerprint_device_class(RunSettings(executor="ray", device="cpu", gpus_per_eval=1)) == "cpu"
    assert ex.worker_device(RunSettings(executor="ray", device="auto", gpus_per_eval=0.5)) == "cuda:0"
    assert ex.fingerprint_device_class(RunSettings(executor="process", device="cpu")) == "cpu"


def test_a_ray_driver_without_a_gpu_fingerprints_its_gpu_workers_as_cuda(tiny_config_toml):
    ev = ProxyEvaluator(load_config(str(tiny_config_toml), RAY_GPU))          # this machine has no CUDA
    assert ev.device_class == "cuda"
    assert ev.fingerprint == ev.fingerprint_on("cuda") != ev.fingerprint_on("cpu")
    ev.set_device("cpu")                     # what a worker given no GPU would compute on: its own class
    assert ev.device_class == "cpu" and ev.fingerprint == ev.fingerprint_on("cpu")


class _Stamping:
    """A device evaluator whose records say they were computed on ``computed``."""

    def __init__(self, device_class: str, computed: str | None, fail: bool = False):
        self.device_class, self.computed, self.fail, self._device = device_class, computed, fail, "cpu"

    def evaluate(self, genes):
        if self.fail:
            raise RuntimeError("boom")
        env = {"device": self.computed} if self.computed else {}
        return EvaluationRecord(genome="x", fitness=50.0, tasks={"sst2": TaskScore({}, 50.0)}, environment=env)


def test_a_record_from_another_device_class_fails_instead_of_being_cached():
    [(_, good)] = ex.LocalExecutor(_Stamping("cpu", "cpu")).submit([(1, 2)])
    assert good.ok and good.environment["device"] == "cpu"
    [(_, bad)] = ex.LocalExecutor(_Stamping("cuda", "cpu")).submit([(1, 2)])
    assert not bad.ok and bad.error.startswith("DeviceMismatch: this genome was evaluated on cpu, but the run's "
                                               "fingerprint is for cuda")
    assert bad.environment["device"] == "cpu"
    chunked = ex.LocalExecutor(_Stamping("cuda", "cpu"), RunSettings(population=2)).submit([(1, 2), (2, 3)])
    assert [r.ok for _, r in chunked] == [False, False]


def test_records_without_an_environment_are_stamped_by_the_computing_process():
    unstamped = ex.evaluate_safely(_Stamping("cpu", None), (1, 2))
    assert unstamped.ok and unstamped.environment["device"] == "cpu" and "torch" in unstamped.environment
    failed = ex.evaluate_safely(_Stamping("cpu", None, fail=True), (1, 2))
    assert not failed.ok and failed.environment["device"] == "cpu"
    assert ex.evaluate_chunk_safely(_Stamping("cpu", None, fail=True), [(1, 2), (2, 3)])[1].environment["device"] == "cpu"


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
    assert compare_mod._device_and_cache(config) == {}


def test_tf32_for_ray_workers_given_no_gpu_is_one_sentence(tiny_config_toml):
    from layermap.config import ConfigError

    with pytest.raises(ConfigError, match="distill.precision = 'tf32' needs a CUDA GPU, but the run uses cpu"):
        ProxyEvaluator(load_config(str(tiny_config_toml), ["run.executor=ray", "run.device=auto",
                                                           'distill.precision="tf32"']))
    gpu = ProxyEvaluator(load_config(str(tiny_config_toml), [*RAY_GPU, 'distill.precision="tf32"']))
    assert gpu.device_class == "cuda"                # the GPU workers check it where they run
