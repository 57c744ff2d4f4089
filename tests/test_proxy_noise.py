"""Noise of the proxy fitness: replicates and standard errors, the probe head, ties in `show`,
and the test-retest statistics of benchmarks/bench_noise.py."""

from __future__ import annotations

import argparse
import json
import math

import pytest

from layermap.config import ConfigError, load_config
from layermap.evaluators.proxy import ProxyEvaluator
from layermap.stats import average_ranks, kendall_tau, reliability, spearman_rho
from layermap.storage.records import EvaluationRecord, TaskScore


@pytest.fixture
def config(tiny_config_toml):
    return load_config(str(tiny_config_toml))


# -- repeats -----------------------------------------------------------------------------------
def test_repeats_store_every_replicate_and_a_standard_error(tiny_config_toml):
    config = load_config(str(tiny_config_toml), ["proxy.repeats=3", "proxy.learning_rate=5e-3"])
    record = ProxyEvaluator(config).evaluate((2, 4))
    assert record.ok and record.replicates == 3
    assert len(record.fitness_replicates) == 3
    for task in record.tasks.values():
        assert len(task.replicates) == 3
        assert task.score == pytest.approx(sum(task.replicates) / 3)
        assert task.std == pytest.approx(_sample_std(task.replicates))
    assert record.fitness == pytest.approx(sum(record.fitness_replicates) / 3)
    # each replicate fitness is the mean over tasks of that seed's scores
    for r, value in enumerate(record.fitness_replicates):
        assert value == pytest.approx(sum(t.replicates[r] for t in record.tasks.values()) / len(record.tasks))
    assert record.fitness_stderr == pytest.approx(_sample_std(record.fitness_replicates) / math.sqrt(3))
    # the first replicate is the single-seed fitness: seed proxy.seed + 0
    single = ProxyEvaluator(load_config(str(tiny_config_toml), ["proxy.learning_rate=5e-3"])).evaluate((2, 4))
    assert single.fitness_stderr is None and single.fitness_replicates == [pytest.approx(single.fitness)]
    assert record.fitness_replicates[0] == pytest.approx(single.fitness)
    # the record survives the store's JSON round trip
    again = EvaluationRecord.from_json(record.to_json())
    assert again.fitness_stderr == record.fitness_stderr and again.tasks["sst2"].replicates == record.tasks["sst2"].replicates


def test_old_records_without_the_new_fields_still_load():
    old = {"genome": "1-2-3", "status": "complete", "fitness": 61.0, "distill_loss": 1.0, "timings": {"total": 1.0},
           "peak_memory_mb": 10.0, "error": None, "tasks": {"sst2": {"metrics": {"accuracy": 61.0}, "score": 61.0}}}
    record = EvaluationRecord.from_json(json.dumps(old))
    assert record.ok and record.fitness_stderr is None and record.fitness_replicates == [] and record.replicates == 1
    assert record.tasks["sst2"] == TaskScore(metrics={"accuracy": 61.0}, score=61.0, replicates=[], std=None)


def test_committed_demo_store_still_loads():
    from pathlib import Path

    from layermap.storage.runs import open_run

    run = Path(__file__).resolve().parents[1] / "results" / "demo-run"
    if not (run / "run.json").is_file():
        pytest.skip("no committed demo run")
    _, store, row = open_run(run)
    with store:
        records = [r.record for r in store.run_evaluations(row.run_id) if r.record is not None]
    assert records and all(r.ok for r in records)


@pytest.mark.parametrize("setting, message", [
    ("proxy.repeats=0", "proxy.repeats must be at least 1"),
    ("proxy.head='linear'", "proxy.head must be 'finetune' or 'probe'"),
])
def test_bad_head_and_repeats_are_config_errors(tiny_config_toml, setting, message):
    with pytest.raises(ConfigError, match=message):
        load_config(str(tiny_config_toml), [setting])
    with pytest.raises(ConfigError, match="needs proxy.head = 'finetune'"):
        load_config(str(tiny_config_toml), ["proxy.head='probe'", "proxy.repeats=2"])


def test_fingerprint_keeps_old_key_for_defaults_and_changes_with_head_and_repeats(config, tiny_config_toml):
    import dataclasses

    from layermap.config import digest
    from layermap.evaluators.proxy_identity import proxy_identity

    legacy = {k: getattr(config.proxy, k) for k in config.proxy.__dataclass_fields__
              if k not in ("glue_dir", "head", "repeats", "pooling", "probe_pairs", "probe_c", "reference_seed_sets",
                           "allow_invalid", "task_noise")}
    assert proxy_identity(config.proxy) == legacy           # records made before head/repeats keep their key
    base = ProxyEvaluator(config).fingerprint
    probe = ProxyEvaluator(load_config(str(tiny_config_toml), ["proxy.head='probe'"])).fingerprint
    rep = ProxyEvaluator(load_config(str(tiny_config_toml), ["proxy.repeats=2"])).fingerprint
    assert len({base, probe, rep}) == 3
    # the probe ignores fine-tuning epochs, but not the seed that draws the task subsamples
    probe_lr = load_config(str(tiny_config_toml), ["proxy.head='probe'", "proxy.learning_rate=1.0"])
    probe_seed = load_config(str(tiny_config_toml), ["proxy.head='probe'", "proxy.seed=4"])
    assert ProxyEvaluator(probe_lr).fingerprint == probe != ProxyEvaluator(probe_seed).fingerprint
    assert digest(legacy)  # sanity: JSON-able


def test_the_finetune_heads_pooling_keys_a_fitness_only_when_it_is_mean_and_reaches_the_head(config, tiny_config_toml):
    from layermap.evaluators.proxy_scoring import finetune_settings

    mean = load_config(str(tiny_config_toml), ["proxy.pooling='mean'"])
    assert ProxyEvaluator(mean).fingerprint != ProxyEvaluator(config).fingerprint
    assert finetune_settings(mean).pooling == "mean" and finetune_settings(config).pooling == "cls"
    probe = ["proxy.head='probe'"]                     # the probe fine-tunes nothing: pooling does not key it
    assert (ProxyEvaluator(load_config(str(tiny_config_toml), [*probe, "proxy.pooling='mean'"])).fingerprint
            == ProxyEvaluator(load_config(str(tiny_config_toml), probe)).fingerprint)
    with pytest.raises(ConfigError, match="proxy.pooling must be 'cls' or 'mean'"):
        load_config(str(tiny_config_toml), ["proxy.pooling='max'"])
    assert ProxyEvaluator(mean).evaluate((2, 4)).ok


# -- probe head --------------------------------------------------------------------------------
def test_probe_head_scores_deterministically_and_leaves_the_student_alone(tiny_config_toml):
    config = load_config(str(tiny_config_toml), ["proxy.head='probe'"])
    ev = ProxyEvaluator(config)
    a = ev.evaluate((2, 4))
    b = ProxyEvaluator(config).evaluate((2, 4))
    assert a.ok and set(a.tasks) == {"sst2", "rte"}
    assert a.fitness == b.fitness and a.tasks == b.tasks
    assert all(0 <= t.score <= 100 for t in a.tasks.values())
    assert a.fitness_stderr is None and a.fitness_replicates == [pytest.approx(a.fitness)]
    assert {"extract", "fit", "tokenize"} <= set(a.timings) and a.timings["extract"] > 0
    # a different genome is a different student: some score moves
    c = ev.evaluate((0, 1))
    assert c.tasks != a.tasks or c.distill_loss != a.distill_loss


def test_probe_learns_a_separable_task(tiny_teacher_dir, tiny_glue_dir):
    """The tiny SST-2's label is cued by words: even a random encoder's mean-pooled features separate it."""
    from transformers import AutoModel, AutoTokenizer

    from proxy_tasks import load_task
    from proxy_tasks.probe import ProbeSettings, extract_features, probe_and_score
    from proxy_tasks.batching import encode_examples

    model = AutoModel.from_pretrained(tiny_teacher_dir)
    tok = AutoTokenizer.from_pretrained(tiny_teacher_dir)
    data = load_task("sst2", str(tiny_glue_dir))
    before = [p.detach().clone() for p in model.parameters()]
    result = probe_and_score(model, tok, data, ProbeSettings(max_seq_len=32))
    assert result.score > 75 and set(result.metrics) == {"accuracy"}
    assert all(p.equal(q) for p, q in zip(before, model.parameters()))
    enc = encode_examples(tok, data.dev["dev"], data.task, 32)
    x = extract_features(model, enc, batch_size=7)
    assert x.shape == (len(data.dev["dev"]), 2 * model.config.hidden_size)
    assert (x == extract_features(model, enc, batch_size=64)).all() or abs(x - extract_features(model, enc)).max() < 1e-5


# -- show marks ties ---------------------------------------------------------------------------
def _record(genome: str, fitness: float, se: float | None) -> EvaluationRecord:
    return EvaluationRecord(genome=genome, fitness=fitness, fitness_stderr=se,
                            fitness_replicates=[fitness - 1, fitness + 1] if se else [fitness])


def test_within_noise_of_best_applies_the_stated_rule():
    from layermap.report.verdict import within_noise_of_best

    recs = [_record("1-2-3", 64.0, 0.5), _record("0-0-6", 62.7, 0.5), _record("2-4-6", 62.5, 0.5)]
    # 2 * sqrt(0.5^2 + 0.5^2) = 1.414: 1.3 behind ties, 1.5 behind does not
    assert within_noise_of_best(recs) == [True, True, False]
    assert within_noise_of_best(recs, noise_std=0.1) == [True, False, False]
    assert within_noise_of_best([_record("1-2-3", 64.0, None), _record("0-0-6", 63.9, 0.5)]) == [None, None]


def test_show_prints_plus_minus_and_marks_ties(tmp_path, capsys, tiny_config_toml):
    from layermap.cli.search import register
    from layermap.storage.store import Store

    class Ev:                                  # a fixed landscape with standard errors
        fingerprint = "f" * 32
        device_class = None
        teacher_layers, student_layers = 4, 2

        def prepare(self):
            pass

        def set_device(self, device):
            pass

        def evaluate_many(self, genomes):
            return [self.evaluate(g) for g in genomes]

        def describe(self):
            return {"teacher": "tiny", "teacher_layers": 4, "student": {"layers": 2}}

        def evaluate(self, genes):
            f = {(2, 4): 70.0, (1, 2): 69.5}.get(tuple(genes), 50.0 + sum(genes))
            return EvaluationRecord(genome="-".join(map(str, genes)), fitness=f, fitness_stderr=0.4,
                                    fitness_replicates=[f - 0.4, f + 0.4],
                                    tasks={"sst2": TaskScore({"accuracy": f}, f, [f - 0.4, f + 0.4], 0.57)})

    from layermap.searching.run import run_search

    config = load_config(str(tiny_config_toml), ["search.seed_mappings=['2-4', '1-2']", "search.population=4",
                                                 "search.generations=1", "run.shared_fitness=false"])
    run_search(config, Ev(), tmp_path / "run", progress=False)
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["show", str(tmp_path / "run")])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert any(line.startswith("= 2-4") and "70.00 ± 0.40" in line for line in out.splitlines())
    assert any(line.startswith("= 1-2") for line in out.splitlines())          # 0.5 behind < 2*sqrt(0.32) = 1.13
    assert "best - fitness < 2 * sqrt(se_best^2 + se^2)" in out and "2 genomes are tied" in out
    args = parser.parse_args(["show", str(tmp_path / "run"), "--json"])
    args.func(args)
    data = json.loads(capsys.readouterr().out)
    assert data["top"][0]["fitness_stderr"] == 0.4 and data["top"][1]["within_noise_of_best"] is True
    assert data["top"][-1]["within_noise_of_best"] is False


# -- test-retest statistics ----------------------------------------------------------------------
def test_rank_correlations_on_known_numbers():
    assert kendall_tau([1, 2, 3, 4], [1, 2, 3, 4]) == 1.0
    assert kendall_tau([1, 2, 3, 4], [4, 3, 2, 1]) == -1.0
    # one discordant pair out of 6: (5 - 1) / 6
    assert kendall_tau([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(4 / 6)
    # tau-b with a tie in y: pairs 6, ties_y 1, C = 5, D = 0 -> 5 / sqrt(6 * 5)
    assert kendall_tau([1, 2, 3, 4], [1, 2, 2, 4]) == pytest.approx(5 / math.sqrt(30))
    assert average_ranks([10, 20, 20, 5]) == [2.0, 3.5, 3.5, 1.0]
    # rho = 1 - 6 * sum d^2 / (n (n^2 - 1)) with d = (0, 1, -1, 0): 1 - 12 / 60 = 0.8
    assert spearman_rho([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)
    assert math.isnan(kendall_tau([1, 1, 1], [1, 2, 3]))


def test_rank_correlations_match_scipy():
    scipy_stats = pytest.importorskip("scipy.stats")
    import random

    rng = random.Random(3)
    x = [rng.choice(range(6)) for _ in range(15)]
    y = [rng.choice(range(6)) for _ in range(15)]
    assert kendall_tau(x, y) == pytest.approx(scipy_stats.kendalltau(x, y).statistic)
    assert spearman_rho(x, y) == pytest.approx(scipy_stats.spearmanr(x, y).statistic)


def test_reliability_on_known_numbers():
    # 3 genomes x 2 seed sets; genome means 1, 2, 6; every within-genome pair differs by 2 -> var 2
    scores = [[0.0, 2.0], [3.0, 1.0], [5.0, 7.0]]
    r = reliability(scores)
    assert r["seed_std"] == pytest.approx(math.sqrt(2.0))
    assert r["spread"] == pytest.approx(math.sqrt(((1 - 3) ** 2 + (2 - 3) ** 2 + (6 - 3) ** 2) / 2))   # sqrt(7)
    assert r["snr"] == pytest.approx(math.sqrt(7) / math.sqrt(2))
    assert r["signal_std"] == pytest.approx(math.sqrt(7 - 2 / 2))
    # columns (0, 3, 5) and (2, 1, 7): pairs (1,2) discordant, (1,3) and (2,3) concordant -> 1/3
    assert r["kendall_tau"] == pytest.approx(1 / 3)
    assert r["spearman_rho"] == pytest.approx(0.5)
    assert r["range_of_means"] == pytest.approx(5.0)
    # seed-set means 8/3 and 10/3, grand 3; residuals x - g_mean - s_mean + 3:
    # (0-1-8/3+3, 2-1-10/3+3) = (-2/3, 2/3); (3-2-8/3+3, 1-2-10/3+3) = (4/3, -4/3); (5-6-8/3+3, 7-6-10/3+3) = (-2/3, 2/3)
    # sum of squares = 2 * (4/9 + 16/9 + 4/9) = 48/9 over (3-1)(2-1) = 2 degrees of freedom
    assert r["seed_set_means"] == pytest.approx([8 / 3, 10 / 3])
    assert r["interaction_std"] == pytest.approx(math.sqrt(48 / 9 / 2))
    # a shift common to all genomes raises the seed std but not the interaction std or the ranks
    shifted = reliability([[a, b + 10.0] for a, b in scores])
    assert shifted["seed_std"] > 5 and shifted["interaction_std"] == pytest.approx(r["interaction_std"])
    assert shifted["kendall_tau"] == pytest.approx(r["kendall_tau"])
    with pytest.raises(ValueError):
        reliability([[1.0, 2.0], [3.0, 4.0]])


def test_pure_noise_has_low_snr_and_pure_signal_high():
    import random

    rng = random.Random(0)
    noise = [[rng.gauss(60, 2), rng.gauss(60, 2)] for _ in range(40)]
    signal = [[60 + g, 60 + g + rng.gauss(0, 0.1)] for g in range(40)]
    assert reliability(noise)["snr"] < 1.5 and abs(reliability(noise)["kendall_tau"]) < 0.3
    assert reliability(signal)["snr"] > 50 and reliability(signal)["kendall_tau"] > 0.95


def _sample_std(values):
    m = sum(values) / len(values)
    return math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1))


def test_fitness_json_prints_the_standard_error(tiny_config_toml, capsys):
    from layermap.cli.main import main

    assert main(["fitness", "--mapping", "2-4", "--config", str(tiny_config_toml), "--set", "proxy.repeats=2",
                 "--json", "--quiet"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["fitness_stderr"] is not None and out["fitness_stderr"] >= 0
    assert len(out["fitness_replicates"]) == 2 and len(out["tasks"]["sst2"]["replicates"]) == 2


# -- the best against the best baseline, with the run's measured noise ---------------------------------
def test_best_vs_baselines_says_whether_the_lead_exceeds_noise():
    from layermap.report.verdict import baseline_sentence, best_vs_baselines

    recs = [_record("2-5-6", 61.2, None), _record("0-0-6", 60.9, None), _record("1-2-3", 58.7, None)]
    tie = best_vs_baselines(recs, 3, 6, noise_std=0.88)
    assert tie["baseline"] == "0-0-6" and tie["baseline_kind"] == "last"
    assert tie["difference_needed"] == pytest.approx(2 * (2 * 0.88 ** 2) ** 0.5)
    assert tie["beyond_noise"] is False and tie["within_noise_of_best"] == 2
    assert "no significant difference" in baseline_sentence(tie)
    clear = best_vs_baselines(recs, 3, 6, noise_std=0.05)
    assert clear["beyond_noise"] is True and "beyond seed noise" in baseline_sentence(clear)
    unknown = best_vs_baselines(recs, 3, 6, noise_std=None)
    assert unknown["beyond_noise"] is None and "seed noise unknown" in baseline_sentence(unknown)
    assert best_vs_baselines([_record("3-3-3", 60.0, None)], 3, 6, 0.5) is None
    assert "no baseline" in baseline_sentence(None)


def test_search_noise_std_is_validated_and_used_by_show_and_the_summary(tmp_path, capsys):
    from layermap.cli.main import main

    with pytest.raises(ConfigError, match="search.noise_std"):
        load_config("smoke", ["search.noise_std=-1"])
    assert load_config("demo").search.noise_std > 0
    out = tmp_path / "run"
    assert main(["evolve", "--synthetic", "6", "--set", "student.layers=3", "--set", "search.population=4",
                 "--set", "search.generations=1", "--set", "search.noise_std=100", "--quiet", "--out", str(out)]) == 0
    summary = capsys.readouterr().out
    assert "a difference needs 282.84 to exceed seed noise" in summary
    assert main(["show", str(out), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["noise_std"] == 100 and shown["noise_std_from"] == "search.noise_std"
    assert shown["best_vs_baselines"]["beyond_noise"] is False
    assert all(t["within_noise_of_best"] for t in shown["top"])
    assert main(["show", str(out), "--noise-std", "0"]) == 0
    assert "se = --noise-std 0 for every genome" in capsys.readouterr().out
