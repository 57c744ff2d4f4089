"""Proxy-to-final fidelity (layermap/fidelity.py, ``layermap bench fidelity``)."""

from __future__ import annotations

import json

import pytest

from layermap.cli.main import main
from layermap.study.fidelity import (FidelityError, Scores, fidelity, final_scores, permutation_p, proxy_scores,
                               side_reliability)

MAPPINGS = ["1-1-4", "1-2-3", "2-4-6", "4-5-6", "5-5-5"]
TASKS = ["sst2", "mrpc"]


def _comparison(averages: dict[str, list[float]], proxy: dict[str, float] | None = None) -> dict:
    rows = []
    for m, scores in averages.items():
        for i, t in enumerate(TASKS):
            task_scores = [s + (1 if i else -1) for s in scores]
            rows.append({"mapping": m, "task": t, "mean": sum(task_scores) / len(task_scores), "scores": task_scores,
                         "proxy_fitness": (proxy or {}).get(m)})
        rows.append({"mapping": m, "task": "average", "mean": sum(scores) / len(scores), "scores": scores,
                     "proxy_fitness": (proxy or {}).get(m)})
    return {"mappings": list(averages), "tasks": TASKS, "rows": rows}


def _landscape(path, fitness: dict[str, tuple[float, float]]):
    lines = ["genome,seed_set,fitness,sst2"]
    for g, (a, b) in fitness.items():
        lines += [f"{g},d0-p0,{a},{a}", f"{g},d1-p1,{b},{b}"]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_exact_permutation_p_of_a_perfect_ranking():
    p, method = permutation_p([1, 2, 3, 4, 5], [10, 20, 30, 40, 50])
    assert method == "exact"
    assert p == pytest.approx(1 / 120)
    p_rev, _ = permutation_p([1, 2, 3, 4, 5], [50, 40, 30, 20, 10])
    assert p_rev == pytest.approx(1.0)


def test_random_permutations_above_the_exact_limit():
    x = list(range(10))
    p, method = permutation_p(x, [v * 2 for v in x])
    assert "random" in method
    assert p < 0.001


def test_fidelity_of_an_agreeing_and_a_reversed_proxy(tmp_path):
    comparison = _comparison({m: [50 + i, 50.5 + i, 49.5 + i] for i, m in enumerate(MAPPINGS)})
    final = final_scores(comparison)
    assert final["1-2-3"].mean == pytest.approx(51.0)
    assert final["1-2-3"].tasks == {"sst2": pytest.approx(50.0), "mrpc": pytest.approx(52.0)}
    agree = proxy_scores(_landscape(tmp_path / "a.csv", {m: (60 + i, 60.2 + i) for i, m in enumerate(MAPPINGS)}))
    r = fidelity(agree, final)
    assert r["n"] == 5 and r["kendall_tau"] == pytest.approx(1.0) and r["spearman_rho"] == pytest.approx(1.0)
    assert r["significant"] and r["tau_p_value"] == pytest.approx(1 / 120)
    assert r["per_task"]["sst2"]["kendall_tau"] == pytest.approx(1.0)
    assert r["proxy_reliability"]["kendall_tau"] == pytest.approx(1.0)
    assert r["final_reliability"]["replicates"] == 3
    reverse = proxy_scores(_landscape(tmp_path / "r.csv", {m: (60 - i, 60.1 - i) for i, m in enumerate(MAPPINGS)}))
    r = fidelity(reverse, final)
    assert r["kendall_tau"] == pytest.approx(-1.0) and not r["significant"]


def test_fidelity_needs_three_shared_mappings(tmp_path):
    final = final_scores(_comparison({m: [50.0, 51.0] for m in MAPPINGS}))
    proxy = {"1-2-3": Scores(60.0), "9-9-9": Scores(61.0), "2-4-6": Scores(59.0)}
    with pytest.raises(FidelityError, match="share 2 mapping"):
        fidelity(proxy, final)


def test_side_reliability_needs_equal_replicates():
    noisy = {m: Scores(i, [i, i + 0.5 * (-1) ** i]) for i, m in enumerate(MAPPINGS)}
    rel = side_reliability(noisy, MAPPINGS)
    assert rel["replicates"] == 2 and 0 < rel["pearson_r"] <= 1
    assert rel["mean_reliability"] == pytest.approx(2 * rel["pearson_r"] / (1 + rel["pearson_r"]))
    uneven = dict(noisy, **{"1-1-4": Scores(0.0, [0.0])})
    assert side_reliability(uneven, MAPPINGS) is None


def test_bench_fidelity_cli(tmp_path, capsys):
    folder = tmp_path / "cmp"
    folder.mkdir()
    proxy = {m: 60.0 + i for i, m in enumerate(MAPPINGS)}
    comparison = _comparison({m: [50 + i, 51 + i] for i, m in enumerate(MAPPINGS)}, proxy)
    (folder / "comparison.json").write_text(json.dumps(comparison))
    out, plot = tmp_path / "fid.json", tmp_path / "fid.png"
    assert main(["bench", "fidelity", str(folder), "--proxy", "compare", "--json", "-o", str(out),
                 "--plot", str(plot)]) == 0
    payload = json.loads(out.read_text())
    assert payload["sources"]["compare"]["kendall_tau"] == pytest.approx(1.0)
    assert json.loads(capsys.readouterr().out)["sources"]["compare"]["n"] == 5
    assert plot.stat().st_size > 0 and plot.with_suffix(".svg").exists()
    assert main(["bench", "fidelity", str(folder), "--proxy", "compare"]) == 0
    assert "predicts the final ranking beyond chance" in capsys.readouterr().out


def test_bench_fidelity_bad_input_is_one_sentence(tmp_path, capsys):
    assert main(["bench", "fidelity", str(tmp_path / "nope"), "--proxy", "compare"]) == 2
    err = capsys.readouterr().err.strip()
    assert "does not exist" in err and "Traceback" not in err and len(err.splitlines()) == 1
    folder = tmp_path / "cmp"
    folder.mkdir()
    (folder / "comparison.json").write_text(json.dumps(_comparison({m: [50.0, 51.0] for m in MAPPINGS})))
    assert main(["bench", "fidelity", str(folder), "--proxy", "compare"]) == 2
    assert "carries no proxy fitness" in capsys.readouterr().err
    assert main(["bench", "fidelity", str(folder), "--proxy", str(tmp_path / "missing.csv")]) == 2
    assert "does not exist" in capsys.readouterr().err
