"""benchmarks/extract_final.py (issue 30, Deliver 4) on tiny compare folders: the same genomes without and with
distillation, read into one table with the yardsticks, the pick's verdicts against every baseline in both, and what
distillation changed per genome."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from layermap.config import load_config
from layermap.final.run import run_compare

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import extract_final  # noqa: E402

EXTRACTED = ("compare.finetune_learning_rates=[1e-3, 3e-3]", "compare.select_examples=8", "compare.score_examples=16",
             'compare.finetune_pooling="mean"', 'compare.init="teacher"', "student.hidden_size=0", "student.heads=0",
             "compare.teacher_cache=false", "compare.seeds=2")


def test_welch_matches_scipy_above_the_floor_and_floors_a_spread_below_it():
    from scipy import stats

    a, b = [80.0, 82.5, 81.0], [78.0, 80.5]
    w = extract_final.welch(a, b)
    ref = stats.ttest_ind(a, b, equal_var=False)
    assert w["mean"] == pytest.approx(np.mean(a) - np.mean(b)) and w["p"] == pytest.approx(ref.pvalue)
    assert w["ci"][0] < w["mean"] < w["ci"][1] and w["detectable"] > w["ci"][1] - w["mean"]
    flat = extract_final.welch([80.0, 80.0, 80.0], [79.0, 79.0])   # no spread: the floor keeps the test finite
    assert 0 < flat["p"] < 1 and np.isfinite(flat["detectable"])


def test_the_summary_reads_both_folders_into_one_table_with_yardsticks_verdicts_and_changes(compare_toml, tmp_path):
    genomes = ["1-3", "1-2", "2-4", "3-4"]                  # the pick, the truncation, every other layer, the top
    zero = tmp_path / "zero"
    run_compare(load_config(str(compare_toml), [*EXTRACTED, "compare.references=true", "compare.max_steps=0",
                                                "compare.epochs=0"]), genomes, zero, progress=False)
    distilled = tmp_path / "distilled"
    run_compare(load_config(str(compare_toml), [*EXTRACTED, "compare.references=false", "compare.max_steps=2",
                                                "compare.distill_seeds=2"]), genomes, distilled, progress=False,
                recipe_from=zero)
    out = tmp_path / "out"
    assert extract_final.main(["--zero", str(zero), "--distilled", str(distilled), "--pick", "1-3",
                               "--out", str(out)]) == 0
    r = json.loads((out / "summary.json").read_text())
    assert r["genomes"] == genomes and r["distill_seeds"] == 2
    assert {"teacher", "truncation", "random", "constant"} <= set(r["yardsticks"])
    for g in genomes:
        for t in [*r["tasks"], "average"]:
            assert r["scores"][g][t]["undistilled"]["n"] == 2          # fine-tuning seeds of one student
            assert r["scores"][g][t]["distilled"]["n"] == 2            # distillation seeds
        c = r["changes"][g]
        assert c["ci"][0] <= c["mean"] <= c["ci"][1] and c["p_holm"] >= c["p"]
    for name in ("undistilled", "distilled"):
        assert set(r["verdicts"][name]["average"]["against"]) == {"1-2", "2-4", "3-4"}   # every baseline tested
    md = (out / "summary.md").read_text()
    assert "| 1-3 | the search's pick |" in md and "resolves" in md and (out / "summary.png").is_file()
