"""Search replays against a landscape table (layermap/replay.py, `layermap bench search|landscape`) and the
enumerate strategy that builds a table with the normal search machinery."""

from __future__ import annotations

import json
import random
import statistics

import pytest

from layermap.cli.main import main
from layermap.config import Config, ConfigError, load_config
from layermap.searching.run import resume_search, run_search
from layermap.mapping import enumerate_space, format_genes
from layermap.study.replay import (METHODS, LandscapeRow, TableEvaluator, aging_evolution, build_table, censored_quantile,
                             draw_regret, evals_to, load_table, local_search, neighbours, random_search, regret_curve,
                             replay, summarise, write_csv)
from layermap.evaluators.synthetic import SyntheticEvaluator

SPACE = [g for g in enumerate_space(3, 6, "non-decreasing") if 0 not in g]      # 56 genomes


def synthetic_rows(seed_sets=("s0", "s1"), noise=1.0):
    ev = SyntheticEvaluator(teacher_layers=6, student_layers=3, noise=noise)
    return [LandscapeRow(format_genes(g), s, ev.score(g) + 0.25 * i, {"syn_a": ev.score(g) + 1, "syn_b": ev.score(g) - 1})
            for i, s in enumerate(seed_sets) for g in SPACE]


@pytest.fixture
def table():
    return build_table(synthetic_rows())


@pytest.fixture
def table_csv(tmp_path):
    path = tmp_path / "landscape.csv"
    write_csv(synthetic_rows(), path)
    return path


def test_table_is_the_mean_over_seed_sets(table):
    assert table.size == 56 and table.constraint == "non-decreasing" and table.teacher_layers == 6
    assert table.seed_sets == ("s0", "s1")
    ev = SyntheticEvaluator(teacher_layers=6, student_layers=3, noise=1.0)
    assert table.fitness[(2, 4, 6)] == pytest.approx(ev.score((2, 4, 6)) + 0.125)
    assert table.target(None) == {table.ranked()[0]}
    assert len(table.target(0.05)) == 3          # ceil(0.05 * 56)


def test_partial_genomes_are_dropped():
    rows = synthetic_rows()[:-5]                 # the last 5 genomes lack seed set s1
    t = build_table(rows)
    assert t.size == 51 and len(t.dropped) == 5


def test_random_search_matches_the_analytic_expectation(table):
    n = table.size
    for quantile in (None, 0.05):
        target = table.target(quantile)
        k = len(target)
        counts = [evals_to(random_search(table, n, random.Random(seed)), target) for seed in range(3000)]
        assert None not in counts
        expected = (n + 1) / (k + 1)
        se = statistics.pstdev(counts) / len(counts) ** 0.5
        assert abs(statistics.fmean(counts) - expected) < 4 * se + 0.1


def test_every_method_finds_the_optimum_with_the_whole_space_as_budget(table):
    result = replay(table, seeds=3, budget=table.size).to_json()
    for method in METHODS:
        assert all(isinstance(v, int) and 1 <= v <= table.size for v in result["methods"][method]["evals_to_optimum"]), method
        assert result["methods"][method]["summary"]["optimum"]["success_rate"] == 1.0


def test_trajectories_are_distinct_table_genomes_within_budget(table):
    for search in (random_search, local_search, aging_evolution):
        trajectory = search(table, 20, random.Random(3))
        assert len(trajectory) == 20 == len(set(trajectory)) and all(g in table.fitness for g in trajectory)
    full = local_search(table, 10_000, random.Random(0))
    assert sorted(full) == table.genomes               # restarts until the table is exhausted


def test_neighbours_differ_in_one_gene(table):
    for n in neighbours(table, (2, 4, 6)):
        assert sum(a != b for a, b in zip(n, (2, 4, 6))) == 1 and n in table.fitness
    assert (2, 4, 5) in neighbours(table, (2, 4, 6)) and (2, 4, 0) not in neighbours(table, (2, 4, 6))


def test_ga_replay_drives_the_real_search(table):
    result = replay(table, seeds=2, budget=20, methods=("ga",))
    first = result.trajectories["ga"][0]
    assert {(2, 4, 6), (4, 5, 6), (1, 2, 3)} <= set(first[:8])      # the seeded baselines of generation 0
    assert len(first) == 20 == len(set(first))
    assert result.ga_settings["population"] == Config().search.population
    ev = TableEvaluator({"1-2-3": 50.0}, 6, 3)
    assert not ev.evaluate((0, 0, 6)).ok and ev.evaluate((1, 2, 3)).fitness == 50.0 and ev.calls == ["1-2-3"]


def test_censoring_gives_null(table):
    result = replay(table, seeds=6, budget=1, methods=("random", "local", "aging")).to_json()
    for method in ("random", "local", "aging"):
        values = result["methods"][method]["evals_to_optimum"]
        assert set(values) <= {None, 1} and None in values
    assert evals_to([(1, 1, 1)], {(2, 4, 6)}) is None
    assert censored_quantile([1, 2, None, None, None], 0.5) is None
    assert censored_quantile([1, 2, 3, None], 0.25) == pytest.approx(1.75)
    assert summarise([None, None])["success_rate"] == 0.0


def test_regret_curve(table):
    order = table.ranked()[::-1]                 # worst first
    curve = regret_curve(order, table.fitness, table.size + 3)
    assert curve == sorted(curve, reverse=True) and curve[-1] == 0.0 and len(curve) == table.size + 3
    assert curve[0] == pytest.approx(max(table.fitness.values()) - min(table.fitness.values()))


def test_bench_search_json_shape(table_csv, capsys, tmp_path):
    plot = tmp_path / "regret.png"
    assert main(["bench", "search", str(table_csv), "--seeds", "3", "--budget", "10", "--json", "--plot", str(plot)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out["methods"]) == {"ga", "random", "local", "aging"}
    for entry in out["methods"].values():
        for key in ("evals_to_optimum", "evals_to_top1", "evals_to_top5"):
            assert len(entry[key]) == 3 and all(v is None or (isinstance(v, int) and 1 <= v <= 10) for v in entry[key])
    assert out["random_expectation"]["optimum"]["analytic"] == pytest.approx(57 / 2)
    assert out["baselines"]["last"]["rank"] is None and 1 <= out["baselines"]["uniform"]["rank"] <= 56
    assert plot.is_file() and plot.with_suffix(".svg").is_file()


def test_bench_search_text_and_bad_table(table_csv, capsys, tmp_path):
    assert main(["bench", "search", str(table_csv), "--seeds", "2", "--methods", "random,local"]) == 0
    assert "random search, analytic" in capsys.readouterr().out
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    assert main(["bench", "search", str(bad)]) == 2
    assert "lacks the column" in capsys.readouterr().err


def test_enumerate_strategy_builds_a_resumable_table(tmp_path, capsys):
    ev = SyntheticEvaluator(teacher_layers=6, student_layers=3, noise=1.0)
    config = load_config(None, ["search.strategy=enumerate-mapped", "search.constraint=non-decreasing"])
    result = run_search(config, ev, tmp_path / "run", progress=False)
    assert len(result.generations) == 1
    store = tmp_path / "run" / "layermap.sqlite"
    table = load_table(store)
    assert table.size == 56 and table.fitness[(2, 4, 6)] == pytest.approx(ev.score((2, 4, 6)))
    resume_search(tmp_path / "run", progress=False)          # nothing left: no generation is bred
    assert load_table(store).size == 56
    csv_path = tmp_path / "landscape.csv"
    assert main(["bench", "landscape", str(store), "-o", str(csv_path)]) == 0
    lines = csv_path.read_text().splitlines()
    assert lines[0] == "genome,seed_set,fitness,syn_a,syn_b" and len(lines) == 57 and lines[1].startswith("1-1-1,d0-p0,")
    assert load_table(csv_path).fitness == pytest.approx(table.fitness)
    with pytest.raises(ConfigError):
        load_config(None, ["search.strategy=grid"])


def test_draw_regret_returns_a_figure(table):
    fig = draw_regret(replay(table, seeds=2, budget=5, methods=("random",)).to_json())
    assert fig.axes and fig.axes[0].get_lines()


def test_landscape_stats_and_ga_overrides(table):
    from layermap.study.replay import landscape_stats

    stats = landscape_stats(table)
    assert stats["seed_set_spearman"] == pytest.approx(1.0)       # the seed sets differ by a constant
    assert stats["seed_noise_std"] == pytest.approx(0.25 / 2 ** 0.5)
    assert set(stats["tasks"]) == {"syn_a", "syn_b"}
    assert stats["neighbour_correlation"] > 0.3                     # the synthetic landscape is smooth
    result = replay(table, seeds=1, budget=10, methods=("ga",), ga_overrides=["search.population=4"])
    assert result.ga_settings["population"] == 4
    with pytest.raises(ConfigError):
        replay(table, seeds=1, budget=10, methods=("ga",), ga_overrides=["proxy.seed=3"])
