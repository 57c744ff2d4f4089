"""The Python API, used the way a notebook would: only ``import layermap``."""

from __future__ import annotations

import importlib
import json

import layermap
from layermap.final.run import CompareResult  # noqa: F401  (importing the submodule must not shadow the function)
from layermap.evaluators.proxy import ProxyEvaluator

def test_the_api_names_survive_importing_their_submodules():
    assert callable(layermap.fitness) and callable(layermap.compare)
    assert importlib.import_module("layermap.final.run").run_compare
    assert layermap.__version__ and "search" in layermap.__all__ and "compare" in dir(layermap)


def test_a_notebook_runs_a_search_reads_it_exports_compares_and_plots(compare_toml, tmp_path):
    tiny_config_toml = compare_toml
    run = tmp_path / "run"
    result = layermap.search(str(tiny_config_toml), run, search={"generations": 1, "offspring": 2}, progress=False)
    assert result.best_record is not None and result.best_record.ok
    loaded = layermap.load_result(run)
    assert loaded.best_genome == result.best_genome and loaded.best_mapping.teacher_layers == 4
    loaded.best_mapping.to_json(tmp_path / "best.json", fitness=loaded.best_record.fitness)
    assert layermap.LayerMapping.from_json(tmp_path / "best.json").genes == result.best_genome
    record = layermap.fitness("1-2", str(tiny_config_toml))
    assert record.ok and set(record.tasks) == {"sst2", "rte"}
    cmp = layermap.compare(run, tmp_path / "cmp", overrides=["compare.tasks=['sst2']", "compare.max_steps=3"],
                           progress=False)
    assert isinstance(cmp, layermap.CompareResult) and cmp.computed == 2 * len(cmp.table["mappings"])
    assert result.best_record.genome in cmp.table["mappings"]
    assert {"2-4", "3-4", "1-2", "0-4"} <= set(cmp.table["mappings"])
    table = json.loads((tmp_path / "cmp" / "comparison.json").read_text())
    assert table["cells"]["computed"] == cmp.computed
    files = layermap.plot(tmp_path / "cmp")
    assert files and all(p.stat().st_size > 0 for p in files)


def test_help_and_version_do_not_import_torch():
    import subprocess
    import sys

    code = ("import sys\nfrom layermap.cli.main import main\nfor argv in (['--help'], ['--version'], ['compare', '--help']):\n"
            "    try:\n        main(argv)\n    except SystemExit:\n        pass\nprint('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "False"
    assert "layermap compare" in out and layermap.__version__ in out


def test_verdict_and_export_on_a_run_folder_and_on_a_loaded_result(tmp_path, capsys):
    import dataclasses

    import pytest

    from layermap.cli.main import main

    run = tmp_path / "run"
    assert main(["evolve", "--synthetic", "8", "--set", "student.layers=3", "--set", "search.population=6",
                 "--set", "search.generations=2", "--quiet", "--out", str(run)]) == 0
    assert main(["show", str(run)]) == 0
    shown = capsys.readouterr().out.strip().splitlines()[-1]
    verdict = layermap.verdict(run)
    assert isinstance(verdict, layermap.Verdict) and verdict == layermap.verdict(layermap.load_result(run))
    assert verdict.sentence == shown and verdict.best == layermap.load_result(run).best_record.genome
    assert verdict.baseline is not None and verdict.noise_std is None and verdict.difference_needed is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        verdict.best = "1-2-3"
    noisy = layermap.verdict(run, noise_std=0.5)
    assert noisy.difference_needed == pytest.approx(2 * (2 * 0.5 ** 2) ** 0.5) and noisy.ties >= 1
    assert noisy.noise_std_from == "noise_std" and "to exceed seed noise" in noisy.sentence
    assert noisy.to_dict()["difference"] == pytest.approx(noisy.best_fitness - noisy.baseline_fitness)
    with pytest.raises(layermap.LayermapError, match="noise_std must be a standard error >= 0"):
        layermap.verdict(run, noise_std=-1)

    done = layermap.export(layermap.load_result(run))
    assert done.path == run / "best_mapping.json" and done.adaptor_path is None
    assert layermap.LayerMapping.from_json(done.path).text == verdict.best
    tb = layermap.export(run, tmp_path / "m.json", format="textbrewer", attention_index="textbrewer-examples")
    assert json.loads(tb.provenance_path.read_text())["attention_index"] == "textbrewer-examples"
    assert 'ATTENTION_INDEX = "textbrewer-examples"' in tb.adaptor_path.read_text()
    with pytest.raises(layermap.LayermapError, match="unknown attention index"):
        layermap.export(run, tmp_path / "x.json", format="textbrewer", attention_index="one-based")
