"""benchmarks/slice_compare.py (issue 30, Deliver 5) on tiny compare folders that differ only in student.slice: the
genomes and the truncation row paired by fine-tuning seed, per genome and pooled, with the yardsticks and the size of
difference a null could have seen."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from layermap.config import load_config
from layermap.final.run import run_compare

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import slice_compare  # noqa: E402

NARROW = ("compare.finetune_learning_rates=[1e-3, 3e-3]", "compare.select_examples=8", "compare.score_examples=16",
          'compare.init="teacher"', "compare.teacher_cache=false", "compare.seeds=3", "compare.references=true",
          "compare.max_steps=0", "compare.epochs=0")


def test_two_slices_are_paired_by_seed_per_genome_and_pooled(compare_toml, tmp_path):
    folders = {}
    for slicing in ("leading", "importance"):
        folders[slicing] = tmp_path / slicing
        run_compare(load_config(str(compare_toml), [*NARROW, f'student.slice="{slicing}"']), ["1-3", "3-4"],
                    folders[slicing], progress=False)
    table = json.loads((folders["leading"] / "comparison.json").read_text())
    assert table["student"]["slice"] == "leading"
    assert len(table["references"]["truncation"]["sst2"]["scores"]) == 3          # the reference rows' seeds, to pair
    out = tmp_path / "slices"
    assert slice_compare.main(["--a", str(folders["leading"]), "--b", str(folders["importance"]),
                               "--out", str(out)]) == 0
    r = json.loads(out.with_suffix(".json").read_text())
    assert r["slices"] == {"a": "leading", "b": "importance"}
    assert {row["genome"] for row in r["rows"]} == {"1-3", "3-4", "1-2"}           # 1-2: the truncation row
    for row in r["rows"]:
        d = row["difference"]
        assert row["seeds"] == [0, 1, 2] and d["n"] == 3
        assert d["mean"] == pytest.approx(row["b"]["mean"] - row["a"]["mean"])
        assert d["low"] <= d["mean"] <= d["high"] and d["p_holm"] >= d["p"]
    assert r["pooled"]["n"] == 3 * len(r["rows"]) and r["pooled"]["detectable"] > 0
    md = out.with_suffix(".md").read_text()
    assert "| teacher |" in md and "| random |" in md and "detects" in md
    bare = [{k: v for k, v in json.loads((folders[s] / "comparison.json").read_text()).items() if k != "references"}
            for s in ("leading", "importance")]                        # folders made without reference rows
    assert "No yardsticks" in slice_compare.markdown(slice_compare.compare(*bare), "a", "b")
    borrowed = slice_compare.compare(*bare, yardsticks=table)
    assert borrowed["references"]["a"]["teacher"] == {t: table["references"]["teacher"][t]["mean"] for t in r["tasks"]}
