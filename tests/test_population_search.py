"""run.population: executors hand genomes to the evaluator in chunks; evolve stores the same per-genome results."""

from __future__ import annotations

import collections
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from layermap.config import ConfigError, load_config
from layermap.distill import population as pop
from layermap.searching.run import resume_search, run_search
from layermap.executors.local import LocalExecutor
from layermap.executors.process import ProcessExecutor
from layermap.executors.safety import evaluate_chunk_safely
from layermap.evaluators.proxy import ProxyEvaluator
from layermap.storage.records import EvaluationRecord
from layermap.storage.store import Store
from layermap.storage.runs import read_run_info
from layermap.evaluators.synthetic import SyntheticEvaluator, read_call_log

ROOT = Path(__file__).resolve().parents[1]


class ChunkedSynthetic(SyntheticEvaluator):
    """A synthetic evaluator with evaluate_many: it records each chunk it is given."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.chunks: list[list[str]] = []

    def evaluate_many(self, genomes):
        self.chunks.append(["-".join(map(str, g)) for g in genomes])
        out = []
        for genes in genomes:
            try:
                out.append(self.evaluate(genes))
            except Exception as exc:  # noqa: BLE001
                out.append(exc)
        return out


def _records(run_dir: Path) -> dict[str, EvaluationRecord]:
    info = read_run_info(run_dir)
    with Store(info.store_path(run_dir)) as store:
        return {r.genome: r.record for r in store.run_evaluations(info.run_id) if r.record is not None}


def test_run_population_is_checked():
    with pytest.raises(ConfigError, match="run.population must be at least 1"):
        load_config(None, ["run.population=0"])
    with pytest.raises(ConfigError, match="distill.precision must be one of"):
        load_config(None, ['distill.precision="fp16"'])


def test_local_executor_hands_out_chunks_and_a_failure_stays_with_its_genome():
    from layermap.config import RunSettings

    ev = ChunkedSynthetic(teacher_layers=6, student_layers=2, fail_genomes=("1-2",))
    genomes = [(1, 1), (1, 2), (2, 2), (3, 3), (4, 4)]
    got = dict(LocalExecutor(ev, RunSettings(population=2)).submit(iter(genomes)))
    assert ev.chunks == [["1-1", "1-2"], ["2-2", "3-3"]]          # the last chunk of one: evaluate() alone
    assert not got[(1, 2)].ok and "synthetic failure" in got[(1, 2)].error
    assert all(got[g].ok for g in genomes if g != (1, 2))


def test_a_chunk_that_raises_fails_each_of_its_genomes():
    class Broken(ChunkedSynthetic):
        def evaluate_many(self, genomes):
            raise torch.OutOfMemoryError("CUDA out of memory")

    records = evaluate_chunk_safely(Broken(teacher_layers=6, student_layers=2), [(1, 1), (2, 2)])
    assert [r.genome for r in records] == ["1-1", "2-2"]
    assert all(not r.ok and "out of memory" in r.error for r in records)


def test_process_executor_dispatches_chunks():
    from layermap.config import RunSettings

    ev = SyntheticEvaluator(teacher_layers=6, student_layers=2)
    ex = ProcessExecutor(ev, RunSettings(executor="process", workers=2, population=3, threads=1))
    try:
        got = dict(ex.submit(iter([(1, 1), (1, 2), (2, 2), (3, 3), (4, 4)])))
    finally:
        ex.close()
    assert len(got) == 5 and all(r.ok for r in got.values())
    assert got[(3, 3)].fitness == ev.score((3, 3))


def test_evolve_with_population_4_stores_the_same_fitness_as_population_1(tiny_config_toml, tmp_path):
    base = ["proxy.head=\"probe\"", "run.executor=\"local\"", "run.shared_fitness=false"]
    one = run_search(load_config(str(tiny_config_toml), [*base, "run.population=1"]),
                     ProxyEvaluator(load_config(str(tiny_config_toml), base)), tmp_path / "one", progress=False)
    config4 = load_config(str(tiny_config_toml), [*base, "run.population=4"])
    four = run_search(config4, ProxyEvaluator(config4), tmp_path / "four", progress=False)
    a, b = _records(tmp_path / "one"), _records(tmp_path / "four")
    assert set(a) == set(b) and len(a) >= 6
    for genome in a:
        assert a[genome].ok and b[genome].ok
        assert b[genome].fitness == pytest.approx(a[genome].fitness, abs=1e-9), genome
        assert b[genome].distill_loss == pytest.approx(a[genome].distill_loss, rel=1e-4), genome
    assert one.best_genome == four.best_genome


KILL_SCRIPT = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, sys.argv[3])
    from test_population_search import ChunkedSynthetic
    from layermap.config import load_config
    from layermap.searching.run import run_search
    config = load_config(None, ["search.population=8", "search.generations=4", "search.seed=3", "run.population=4"])
    ev = ChunkedSynthetic(teacher_layers=8, student_layers=3, delay=0.08, log_path=sys.argv[2])
    run_search(config, ev, sys.argv[1], progress=False)
""")


def test_a_search_killed_mid_chunk_loses_only_that_chunk_and_resumes(tmp_path):
    log = tmp_path / "calls.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(tmp_path / "run"), str(log), str(ROOT / "tests")],
                            env=env)
    deadline = time.time() + 60
    while len(read_call_log(log)) < 6 and time.time() < deadline and proc.poll() is None:   # inside the 2nd chunk
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    before = collections.Counter(read_call_log(log))
    info = read_run_info(tmp_path / "run")
    with sqlite3.connect(info.store_path(tmp_path / "run")) as db:
        rows = db.execute("SELECT genome, status FROM evaluations").fetchall()
    finished = {g for g, s in rows if s != "running"}
    unfinished = {g for g, s in rows if s == "running"}
    assert len(finished) == 4 and len(unfinished) == 4       # the first chunk stored, the second claimed and lost

    factory = lambda config: ChunkedSynthetic(teacher_layers=8, student_layers=3, log_path=str(log))  # noqa: E731
    resumed = resume_search(tmp_path / "run", factory, progress=False)
    after = collections.Counter(read_call_log(log)) - before
    assert not any(after[g] for g in finished)               # nothing stored was evaluated again
    assert all(after[g] == 1 for g in unfinished)            # the lost chunk's genomes were, once
    reference = run_search(load_config(None, ["search.population=8", "search.generations=4", "search.seed=3",
                                              "run.shared_fitness=false"]),
                           SyntheticEvaluator(teacher_layers=8, student_layers=3), tmp_path / "ref", progress=False)
    assert resumed.best_genome == reference.best_genome
    assert {g: r.fitness for g, r in _records(tmp_path / "run").items()} == \
           {g: r.fitness for g, r in _records(tmp_path / "ref").items()}


def test_a_population_too_large_for_memory_names_the_largest_that_fits():
    def trial(k):
        if k > 5:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    assert pop.largest_population(16, trial) == 5
    assert pop.largest_population(4, trial) == 4
    with pytest.raises(ConfigError, match=r"run.population = 16 does not fit .* largest population that fits is 5: "
                                          r"set run.population = 5"):
        pop.check_population_fits(16, trial, "cuda:0")
    with pytest.raises(ConfigError, match="not even one student fits"):
        pop.check_population_fits(2, lambda k: (_ for _ in ()).throw(torch.OutOfMemoryError("oom")), "cuda:0")


def test_the_evaluator_refuses_a_population_the_gpu_cannot_hold(tiny_config_toml, monkeypatch):
    config = load_config(str(tiny_config_toml), ["run.population=8"])
    ev = ProxyEvaluator(config)
    st = ev._load()
    st.device = torch.device("cuda:0")                       # as if on a GPU; the trial is what runs out of memory

    def trial(k):
        if k > 3:
            raise torch.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(ev, "_trial_population", trial)
    with pytest.raises(ConfigError, match="largest population that fits is 3"):
        ev.prepare()


def test_an_unexpected_error_in_the_memory_trial_is_one_sentence():
    def trial(k):
        raise RuntimeError("Vmap does not currently support same randomness with a batched tensor input.\nmore")

    with pytest.raises(ConfigError) as err:
        pop.check_population_fits(16, trial, "cuda:0")
    text = str(err.value)
    assert "\n" not in text and "memory trial of a population of 16 students on cuda:0 failed" in text
    assert "RuntimeError: Vmap does not currently support same randomness" in text and "run.population = 1" in text


def test_the_worst_case_mappings_read_every_teacher_layer_and_map_every_student_layer():
    mappings = pop.worst_case_mappings(3, 3, 8)
    assert [m.text for m in mappings] == ["1-2-3", "4-5-6", "7-8-1"]
    assert {k for m in mappings for k in m.teacher_layers_used()} == set(range(1, 9))
    assert all(m.embedding and all(g > 0 for g in m.genes) for m in mappings)
    assert {k for m in pop.worst_case_mappings(2, 3, 8) for k in m.teacher_layers_used()} == set(range(1, 7))


def test_the_memory_trial_distils_the_worst_case(tiny_config_toml):
    """The trial's teacher serves all N teacher layers (a uniform-only trial served M of them)."""
    ev = ProxyEvaluator(load_config(str(tiny_config_toml), ["run.population=2"]))
    st = ev._load()
    asked = []
    inner = st.source

    class Recording:
        def outputs(self, indices, ids, mask, hidden_layers, att_layers):
            asked.append((tuple(hidden_layers), tuple(att_layers)))
            return inner.outputs(indices, ids, mask, hidden_layers, att_layers)

    st.source = Recording()
    ev._trial_population(2)
    assert asked == [((0, 1, 2, 3, 4), (1, 2, 3, 4))]        # 2 students x 2 layers cover the tiny teacher's 4


@pytest.mark.parametrize("setting, expected", [
    ('distill.precision="tf32"', "distill.precision = 'tf32' needs a CUDA GPU"),
    ("run.population=0", "run.population must be at least 1"),
    ('distill.precision="fp16"', "distill.precision must be one of fp32, tf32, bf16"),
])
def test_bad_population_and_precision_settings_are_one_sentence_and_exit_2(tiny_config_toml, tmp_path, capsys, setting,
                                                                           expected):
    from layermap.cli.main import main

    out = tmp_path / "search"
    code = main(["evolve", "--config", str(tiny_config_toml), "--quiet", "--out", str(out), "--set", setting])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "Traceback" not in err[0]
    assert expected in err[0], err[0]
    assert not out.exists()


def test_older_format_stores_stay_readable(tmp_path, capsys):
    """results/demo-run-2026-11 was written under FITNESS_FORMAT 2: show, export and plot read it as before."""
    from layermap.cli.main import main
    from layermap.evaluators.proxy_identity import FITNESS_FORMAT

    assert FITNESS_FORMAT == 3
    run = ROOT / "results" / "demo-run-2026-11"
    assert main(["show", str(run)]) == 0
    assert "(finished)" in capsys.readouterr().out
    assert main(["export", str(run), "-o", str(tmp_path / "best.json")]) == 0
    assert '"mapping": "2-5-6"' in (tmp_path / "best.json").read_text()
    assert main(["plot", str(run), "-o", str(tmp_path / "plots")]) == 0
    assert any(p.suffix == ".png" for p in (tmp_path / "plots").iterdir())


def test_the_gpu_preset_is_the_budget_of_issue_16():
    c = load_config("gpu")
    assert (c.distill.max_steps, c.distill.batch_size, c.corpus.seq_len, c.corpus.max_segments) == (1000, 32, 64, 16384)
    assert (c.proxy.head, c.proxy.max_train, c.proxy.teacher_cache) == ("probe", 8000, False)
    assert c.proxy.tasks == ("sst2",) and c.run.population > 1      # its one valid proxy task (issue 28, gpu.toml)


def test_compare_distils_its_mappings_as_one_population(compare_toml, tmp_path):
    import json

    from transformers import AutoModel

    from layermap.final.jobs import student_dir
    from layermap.final.run import run_compare

    base = ["compare.seeds=1", "compare.tasks=['sst2']", "run.executor=\"local\""]
    genomes = ["2-4", "1-2", "0-4"]
    one = run_compare(load_config(str(compare_toml), [*base, "run.population=1"]), genomes, tmp_path / "one", progress=False)
    three = run_compare(load_config(str(compare_toml), [*base, "run.population=3"]), genomes, tmp_path / "three",
                        progress=False)
    assert one.distilled == three.distilled == 3 and three.failed == 0
    for genome in genomes:
        a = json.loads((student_dir(tmp_path / "one", genome, 0) / "distill_log.json").read_text())
        b = json.loads((student_dir(tmp_path / "three", genome, 0) / "distill_log.json").read_text())
        assert b["population"] == 3 and "population" not in a
        assert b["losses"] == pytest.approx(a["losses"], rel=1e-4)
        sa = AutoModel.from_pretrained(student_dir(tmp_path / "one", genome, 0))
        sb = AutoModel.from_pretrained(student_dir(tmp_path / "three", genome, 0))
        for p, q in zip(sb.parameters(), sa.parameters()):
            torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-6)
    rows_a = {(r["mapping"], r["task"]): r["mean"] for r in one.table["rows"]}
    rows_b = {(r["mapping"], r["task"]): r["mean"] for r in three.table["rows"]}
    assert rows_b == pytest.approx(rows_a, abs=1e-6)


def test_compare_refuses_a_population_the_gpu_cannot_hold(compare_toml, tmp_path, monkeypatch):
    from layermap.final.worker import CompareWorker

    worker = CompareWorker(load_config(str(compare_toml), ["run.population=8"]), tmp_path / "cmp", "fp")
    worker._load_corpus()
    asked = []
    inner = worker._source

    class Recording:
        def outputs(self, indices, ids, mask, hidden_layers, att_layers):
            asked.append(tuple(att_layers))
            return inner.outputs(indices, ids, mask, hidden_layers, att_layers)

    worker._source = Recording()
    worker._trial_population(2)                               # the real trial, on the CPU: every teacher layer read
    assert asked == [(1, 2, 3, 4)]

    def trial(k):
        if k > 3:
            raise torch.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(worker, "_device_obj", lambda: torch.device("cuda:0"))     # as if on a GPU
    monkeypatch.setattr(worker, "_trial_population", trial)
    with pytest.raises(ConfigError, match="run.population = 8 does not fit .* set run.population = 3"):
        worker._check_population()
