"""The final stage's statistics on known numbers: paired intervals, seed aggregation, table shape, loyalty."""

from __future__ import annotations

import csv
import io
import json
import math

import numpy as np
import pytest

from layermap.final.comparison import (AVERAGE, BETTER, SAME, WORSE, Cell, build_table, label_loyalty, loyalty,
                                 paired_difference, probability_loyalty, regression_loyalty, render_csv,
                                 render_markdown, t_quantile, write_table)


def test_t_quantiles_match_the_tables():
    assert t_quantile(0.975, 2) == pytest.approx(4.3027, abs=1e-4)
    assert t_quantile(0.975, 4) == pytest.approx(2.7764, abs=1e-4)
    assert t_quantile(0.975, 1000) == pytest.approx(1.9623, abs=1e-3)


def test_paired_difference_on_known_numbers():
    # differences 1, 2, 3: mean 2, sd 1, half-width t(0.975, 2) / sqrt(3) = 2.484
    p = paired_difference([11, 12, 13], [10, 10, 10], "ref")
    assert p.mean == pytest.approx(2.0)
    assert p.low == pytest.approx(2 - 4.302653 / math.sqrt(3), abs=1e-4)
    assert p.high == pytest.approx(2 + 4.302653 / math.sqrt(3), abs=1e-4)
    assert p.verdict == SAME and p.n == 3 and p.reference == "ref"
    assert paired_difference([20, 21, 22], [10, 10.5, 11]).verdict == BETTER
    assert paired_difference([1, 1.2, 0.9], [10, 10.5, 11]).verdict == WORSE


def test_paired_difference_pairs_by_seed_not_by_mean():
    """A constant offset under large seed noise is significant only because pairing removes the noise."""
    ref = [50.0, 70.0, 60.0, 80.0]
    better = [r + 1.0 + e for r, e in zip(ref, (0.1, -0.1, 0.05, -0.05))]
    assert paired_difference(better, ref).verdict == BETTER
    assert np.std(ref, ddof=1) > 10                       # unpaired, a 1-point gap would drown


def test_paired_difference_needs_two_pairs_for_an_interval():
    p = paired_difference([3.0], [1.0])
    assert p.mean == 2.0 and p.low is None and p.high is None and "one seed" in p.verdict


def _cells():
    # two mappings, two tasks, three seed units (distillation seed 0, fine-tuning seeds 0..2)
    scores = {("2-4-6", "sst2"): [80, 82, 81], ("2-4-6", "cola"): [20, 22, 21],
              ("1-3-5", "sst2"): [84, 85, 86], ("1-3-5", "cola"): [21, 23, 22]}
    return [Cell(m, 0, t, s, float(v), metrics={"accuracy": float(v)}) for (m, t), vs in scores.items()
            for s, v in enumerate(vs)]


def test_build_table_aggregates_seeds_and_pairs_against_the_best_baseline():
    units = [(0, 0), (0, 1), (0, 2)]
    table = build_table(_cells(), ["1-3-5", "2-4-6"], ["sst2", "cola"], units,
                        kinds={"2-4-6": ["uniform"]}, proxy_fitness={"1-3-5": 61.5})
    assert table["reference"] == "2-4-6" and table["reference_kind"] == "best baseline"
    rows = {(r["mapping"], r["task"]): r for r in table["rows"]}
    assert len(table["rows"]) == 2 * 3                    # mappings x (tasks + average)
    sst = rows[("2-4-6", "sst2")]
    assert sst["mean"] == pytest.approx(81.0) and sst["std"] == pytest.approx(1.0) and sst["scores"] == [80, 82, 81]
    assert sst["metrics"][1] == {"accuracy": 82.0}
    avg = rows[("1-3-5", AVERAGE)]
    assert avg["scores"] == pytest.approx([52.5, 54.0, 54.0])      # per unit: mean over tasks
    assert avg["proxy_fitness"] == 61.5
    assert avg["paired"]["reference"] == "2-4-6"
    assert avg["paired"]["mean"] == pytest.approx(np.mean([52.5 - 50, 54 - 52, 54 - 51]))
    assert rows[("2-4-6", AVERAGE)]["paired"] is None
    assert rows[("1-3-5", "sst2")]["paired"]["verdict"] == BETTER  # +4, +3, +5


def test_build_table_without_baselines_uses_the_best_mapping_and_tolerates_a_missing_cell():
    cells = [c for c in _cells() if not (c.mapping == "1-3-5" and c.task == "cola" and c.seed == 2)]
    table = build_table(cells, ["1-3-5", "2-4-6"], ["sst2", "cola"], [(0, 0), (0, 1), (0, 2)])
    rows = {(r["mapping"], r["task"]): r for r in table["rows"]}
    assert table["reference_kind"] == "best mapping"
    assert rows[("1-3-5", "cola")]["n"] == 2 and rows[("1-3-5", "cola")]["scores"][2] is None
    assert rows[("1-3-5", AVERAGE)]["scores"][2] is None and rows[("1-3-5", AVERAGE)]["n"] == 2


def test_loyalty_on_known_distributions():
    p = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    assert label_loyalty(p, p) == 100.0 and probability_loyalty(p, p) == pytest.approx(100.0)
    q = np.array([[0.1, 0.9], [0.2, 0.8], [0.6, 0.4]])
    assert label_loyalty(p, q) == pytest.approx(200 / 3)
    disjoint = probability_loyalty(np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]]))
    assert disjoint == pytest.approx(0.0, abs=1e-3)       # JS in bits is 1 for disjoint supports
    # JS(p, q) for the first row, in bits, by hand
    m = (p[0] + q[0]) / 2
    js = 0.5 * sum(a * math.log2(a / b) for a, b in zip(p[0], m)) + 0.5 * sum(a * math.log2(a / b) for a, b in zip(q[0], m))
    assert probability_loyalty(p[:1], q[:1]) == pytest.approx(100 * (1 - math.sqrt(js)))
    assert regression_loyalty(np.array([1.0, 2, 3]), np.array([2.0, 4, 6])) == pytest.approx(100.0)
    assert set(loyalty(p, q)) == {"label", "probability"} and set(loyalty(p[:, 0], q[:, 0])) == {"correlation"}


def test_rendered_files_hold_every_row(tmp_path):
    table = build_table(_cells(), ["1-3-5", "2-4-6"], ["sst2", "cola"], [(0, 0), (0, 1), (0, 2)],
                        kinds={"2-4-6": ["uniform"]})
    table["cells"] = {"computed": 12, "cached": 0}
    md = render_markdown(table, ["# header"])
    assert "| 1-3-5 | given |" in md and "SST-2" in md and "CoLA" in md and "reference" in md
    table["source"] = {"run_dir": "/runs/demo", "top": ["1-3-5"]}      # compared from a run folder
    assert "| 1-3-5 | searched |" in render_markdown(table)
    assert {r["kind"] for r in csv.DictReader(io.StringIO(render_csv(table)))} == {"searched", "uniform"}
    del table["source"]
    lines = list(csv.DictReader(io.StringIO(render_csv(table))))
    assert len(lines) == 6 and {r["task"] for r in lines} == {"sst2", "cola", "average"}
    write_table(tmp_path, table)
    loaded = json.loads((tmp_path / "comparison.json").read_text())
    assert loaded["cells"] == {"computed": 12, "cached": 0}
    assert all({"mapping", "task", "mean", "std", "scores"} <= set(r) for r in loaded["rows"])
