"""benchmarks/bench_budget.py (issue 30, Deliver 3) on tiny compare folders: the 0-step folder and one distilled
budget, read into points with their paired tests, yardsticks, noise and cost, and drawn."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from layermap.config import load_config
from layermap.final.run import run_compare

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import bench_budget  # noqa: E402

EXTRACTED = ("compare.finetune_learning_rates=[1e-3, 3e-3]", "compare.select_examples=8", "compare.score_examples=16",
             'compare.finetune_pooling="mean"', 'compare.init="teacher"', "student.hidden_size=0", "student.heads=0",
             "compare.teacher_cache=false", "compare.seeds=2")


def test_the_budget_benchmark_reads_each_distilled_genome_against_its_undistilled_self_and_the_truncation(
        compare_toml, tmp_path):
    zero = tmp_path / "zero"
    run_compare(load_config(str(compare_toml), [*EXTRACTED, "compare.references=true", "compare.max_steps=0",
                                                "compare.epochs=0"]), ["1-2", "2-4"], zero, progress=False)
    budget = tmp_path / "s2-lr1e-3"
    run_compare(load_config(str(compare_toml), [*EXTRACTED, "compare.references=false", "compare.max_steps=2",
                                                "compare.learning_rate=1e-3"]), ["1-2", "2-4", "1-2+2-4"], budget,
                progress=False, recipe_from=zero)
    out = tmp_path / "out"
    assert bench_budget.main(["--zero", str(zero), "--folders", str(budget), "--out", str(out), "--task", "sst2"]) == 0
    result = json.loads((out / "budget.json").read_text())
    assert result["truncation_genes"] == "1-2"
    assert {(p["mapping"], p["steps"], p["lr"]) for p in result["points"]} == {("1-2", 2, 1e-3), ("2-4", 2, 1e-3),
                                                                                ("1-2+2-4", 2, 1e-3)}
    split = next(p for p in result["points"] if p["mapping"] == "1-2+2-4")
    assert split["starts_from"] == "1-2" and split["diff_truncation"] == split["diff_self"]   # read against its start
    assert set(result["yardsticks"]) == {"teacher", "truncation", "random"}
    for p in result["points"]:
        assert len(p["diff_self"]) == 2 and len(p["diff_truncation"]) == 2      # paired over both fine-tuning seeds
        assert p["vs_self"]["verdict"] in ("pays", "costs", "no difference")
        assert p["vs_self"]["detectable"] > 0
    one_two = next(p for p in result["points"] if p["mapping"] == "1-2")
    assert one_two["diff_self"] == one_two["diff_truncation"]       # the truncation is 1-2's undistilled self
    (overall,) = result["overall"]                  # one budget: every coupled genome's differences in one test
    assert overall["genomes"] == ["1-2", "2-4"] and overall["vs_self"]["n"] == 4
    (split,) = result["split"]                      # the split genome against the coupled genome of its start
    assert (split["mapping"], split["coupled"]) == ("1-2+2-4", "1-2") and len(split["diff_coupled"]) == 2
    assert split["vs_coupled"]["verdict"] in ("pays", "costs", "no difference")
    assert "| 1-2+2-4 | 1-2 | 2 | 0.001 |" in (out / "budget.txt").read_text()
    assert result["seed_noise"]["df"] > 0 and list(result["cpu_seconds_per_1000_steps"]) == ["2 steps, lr 0.001"]
    assert (out / "budget.png").stat().st_size > 0 and "| 2-4 | 2 | 0.001 |" in (out / "budget.txt").read_text()


def test_a_folder_that_is_not_a_compare_folder_is_one_sentence(tmp_path, capsys):
    assert bench_budget.main(["--zero", str(tmp_path), "--folders", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "is not a compare folder" in capsys.readouterr().err
