"""``layermap evolve | show | export`` through a local argparse (as cli.py wires them)."""

from __future__ import annotations

import argparse
import json

import pytest

from layermap.config import load_config
from layermap.errors import LayermapError
from layermap.searching.run import run_search
from layermap.mapping import LayerMapping
from layermap.cli.search import register
from layermap.exporting.textbrewer import textbrewer_matches
from layermap.storage.store import Store
from layermap.storage.runs import read_run_info

EVOLVE = ["evolve", "--synthetic", "8", "--set", "student.layers=3", "--set", "search.population=6",
          "--set", "search.generations=3", "--quiet"]


def cli(*argv: str) -> int:
    """What cli.main does: parse, run the handler, turn a LayermapError into exit code 2."""
    parser = argparse.ArgumentParser(prog="layermap")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    try:
        return args.func(args)
    except LayermapError as exc:
        print(f"layermap: error: {exc}")
        return 2


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "run"
    assert cli(*EVOLVE, "--out", str(out)) == 0
    return out


def test_evolve_prints_a_summary_and_writes_the_run_folder(tmp_path, capsys):
    assert cli(*EVOLVE, "--out", str(tmp_path / "run")) == 0
    out = capsys.readouterr().out
    assert "best mapping" in out and "computed" in out and str(tmp_path / "run") in out
    assert {p.name for p in (tmp_path / "run").iterdir()} >= {"config.toml", "run.json", "layermap.sqlite"}
    assert "population = 6" in (tmp_path / "run" / "config.toml").read_text()


def test_evolve_refuses_a_non_empty_out_and_bad_resume_flags(run_dir, capsys):
    assert cli(*EVOLVE, "--out", str(run_dir)) == 2
    assert f"pass --resume {run_dir}" in capsys.readouterr().out
    assert cli("evolve", "--quiet") == 2
    assert "--out RUN_DIR" in capsys.readouterr().out
    assert cli("evolve", "--resume", str(run_dir), "--set", "search.population=9") == 2
    assert "cannot change on --resume" in capsys.readouterr().out
    assert cli("evolve", "--resume", str(run_dir), "--teacher", "bert-base-uncased") == 2
    assert "--teacher cannot be used with --resume" in capsys.readouterr().out


@pytest.mark.parametrize("setting, message", [
    ("search.popsize=4", "unknown setting search.popsize"),
    ("search.population=1", "search.population must be at least 2"),
    ("search.cx_prob='high'", "search.cx_prob must be a number"),
    ("search.seed_mappings=['1-2-99']", "teacher layer 99"),
])
def test_bad_settings_exit_2_with_one_sentence(tmp_path, capsys, setting, message):
    assert cli(*EVOLVE, "--set", setting, "--out", str(tmp_path / "run")) == 2
    assert message in capsys.readouterr().out
    assert not (tmp_path / "run").exists()


def test_resume_of_a_finished_run_computes_nothing(run_dir, capsys):
    info = read_run_info(run_dir)
    with Store(info.store_path(run_dir)) as store:
        before = len(store.run_evaluations(info.run_id))
    assert cli("evolve", "--resume", str(run_dir), "--workers", "2", "--quiet") == 0
    with Store(info.store_path(run_dir)) as store:
        assert len(store.run_evaluations(info.run_id)) == before
    assert "best mapping" in capsys.readouterr().out


def test_cache_flag_shares_one_store_between_runs(tmp_path, capsys):
    db = tmp_path / "shared.sqlite"
    assert cli(*EVOLVE, "--cache", str(db), "--out", str(tmp_path / "a")) == 0
    assert cli(*EVOLVE, "--cache", str(db), "--out", str(tmp_path / "b")) == 0
    capsys.readouterr()
    assert cli("show", str(tmp_path / "b"), "--json") == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["evaluations"]["computed"] == 0 and shown["evaluations"]["cached"] > 0
    assert not (tmp_path / "b" / "layermap.sqlite").exists()


def test_show_json_has_the_keys_and_the_store_counts(run_dir, capsys):
    assert cli("show", str(run_dir), "--json") == 0
    shown = json.loads(capsys.readouterr().out)
    assert {"best", "generations", "evaluations", "top"} <= set(shown)
    assert set(shown["best"]) == {"mapping", "fitness", "fitness_stderr", "replicates", "fitness_seed_sets",
                                 "fitness_replicates", "tasks"}
    assert set(shown["best"]["tasks"]) == {"syn_a", "syn_b"}
    assert [g["generation"] for g in shown["generations"]] == [0, 1, 2, 3]
    info = read_run_info(run_dir)
    with Store(info.store_path(run_dir)) as store:
        rows = store.run_evaluations(info.run_id)
    assert shown["evaluations"]["computed"] == sum(r.computed and r.status == "complete" for r in rows)
    assert shown["evaluations"]["computed"] == sum(g["computed"] for g in shown["generations"])
    fitnesses = [t["fitness"] for t in shown["top"]]
    assert fitnesses == sorted(fitnesses, reverse=True) and fitnesses[0] == shown["best"]["fitness"]
    assert cli("show", str(run_dir)) == 0
    table = capsys.readouterr().out
    assert "gen" in table and "best genome" in table and shown["best"]["mapping"] in table


def test_export_json_round_trips_with_provenance(run_dir, tmp_path, capsys):
    assert cli("show", str(run_dir), "--json") == 0
    best = json.loads(capsys.readouterr().out)["best"]
    assert cli("export", str(run_dir), "-o", str(tmp_path / "best.json")) == 0
    data = json.loads((tmp_path / "best.json").read_text())
    mapping = LayerMapping.from_dict(data)
    assert mapping.text == best["mapping"] and mapping.teacher_layers == 8
    meta = data["metadata"]
    assert meta["fitness"] == best["fitness"] and set(meta["tasks"]) == {"syn_a", "syn_b"}
    assert {"teacher", "student", "fingerprint", "run_id", "date"} <= set(meta)


def test_export_textbrewer_has_one_hidden_match_per_mapped_pair(run_dir, capsys):
    assert cli("export", str(run_dir), "--format", "textbrewer") == 0
    data = json.loads((run_dir / "intermediate_matches.json").read_text())
    provenance = json.loads((run_dir / "intermediate_matches.provenance.json").read_text())
    assert set(data) == {"intermediate_matches", "kd_loss_weight", "hard_label_weight"}
    assert {"teacher", "fitness", "layer_numbering", "fingerprint", "attention_feature"} <= set(provenance)
    assert provenance["attention_index"] == "hf" and (run_dir / "intermediate_matches.adaptor.py").is_file()
    mapping = LayerMapping.parse(provenance["mapping"], 8)
    hidden = [m for m in data["intermediate_matches"] if m["feature"] == "hidden"]
    attention = [m for m in data["intermediate_matches"] if m["feature"] == "attention"]
    assert [(m["layer_S"], m["layer_T"]) for m in hidden] == mapping.pairs()
    assert all(m["proj"] == ["linear", 32, 64] and m["loss"] == "hidden_mse" for m in hidden)
    assert [(m["layer_S"] + 1, m["layer_T"] + 1) for m in attention] == mapping.pairs()[1:]    # HF: 0-based
    same_width = textbrewer_matches(LayerMapping((0, 4, 0, 12), teacher_layers=12), 768, 768,
                                    attention_index="textbrewer-examples")
    assert [(m["layer_S"], m["layer_T"], m["feature"]) for m in same_width] == [
        (0, 0, "hidden"), (2, 4, "hidden"), (2, 4, "attention"), (4, 12, "hidden"), (4, 12, "attention")]
    hf = textbrewer_matches(LayerMapping((0, 4, 0, 12), teacher_layers=12), 768, 768)
    assert [(m["layer_S"], m["layer_T"]) for m in hf if m["feature"] == "attention"] == [(1, 3), (3, 11)]
    assert all("proj" not in m for m in same_width)


class AlwaysFails:
    fingerprint = "always-fails"
    device_class = None
    teacher_layers, student_layers = 6, 2

    def prepare(self):
        pass

    def set_device(self, device):
        pass

    def evaluate(self, genes):
        raise RuntimeError("no GPU today")

    def evaluate_many(self, genomes):
        return [self.evaluate(g) for g in genomes]


def test_export_without_a_successful_evaluation_is_a_clear_error(tmp_path, capsys):
    config = load_config(None, ["search.population=2", "search.generations=1"])
    result = run_search(config, AlwaysFails(), tmp_path / "run", progress=False)
    assert result.best_genome is None and result.failed > 0
    assert cli("export", str(tmp_path / "run")) == 2
    assert f"no successful evaluation yet ({result.failed} failed)" in capsys.readouterr().out
    assert cli("show", str(tmp_path / "nowhere")) == 2
    assert "not a layermap run folder" in capsys.readouterr().out


def test_a_moved_run_folder_still_shows_and_exports(run_dir, tmp_path, capsys):
    import shutil

    moved = tmp_path / "moved"
    shutil.copytree(run_dir, moved)
    assert cli("show", str(moved), "--json") == 0
    assert json.loads(capsys.readouterr().out)["best"] is not None
    assert cli("export", str(moved)) == 0 and (moved / "best_mapping.json").is_file()


@pytest.mark.slow
def test_evolve_with_the_proxy_fitness_on_a_tiny_teacher(tiny_config_toml, tmp_path, capsys):
    out = tmp_path / "run"
    assert cli("evolve", "--config", str(tiny_config_toml), "--set", "search.population=2", "--set", "search.generations=1",
               "--set", "search.offspring=1", "--out", str(out), "--quiet") == 0
    assert "best mapping" in capsys.readouterr().out
    assert cli("export", str(out), "--format", "textbrewer") == 0
    hidden = [m for m in json.loads((out / "intermediate_matches.json").read_text())["intermediate_matches"]
              if m["feature"] == "hidden"]
    assert all(m["proj"] == ["linear", 16, 32] for m in hidden)      # tiny student 16 wide, tiny teacher 32


def _textbrewer_distillation_config():
    """TextBrewer's own DistillationConfig (see conftest.import_textbrewer)."""
    from conftest import import_textbrewer

    return import_textbrewer().DistillationConfig


def test_export_textbrewer_loads_with_textbrewers_own_distillation_config(run_dir, tmp_path):
    config_cls = _textbrewer_distillation_config()
    path = tmp_path / "matches.json"
    assert cli("export", str(run_dir), "--format", "textbrewer", "-o", str(path)) == 0
    config = config_cls.from_json_file(str(path))
    written = json.loads(path.read_text())["intermediate_matches"]
    assert [(m.layer_T, m.layer_S, m.feature, m.loss) for m in config.intermediate_matches] == [
        (m["layer_T"], m["layer_S"], m["feature"], m["loss"]) for m in written]
    assert config.kd_loss_weight == 0 and (tmp_path / "matches.provenance.json").is_file()


def test_store_flag_and_the_old_cache_flag_and_setting_names(tmp_path, capsys):
    from layermap.cli.main import main

    db = tmp_path / "shared.sqlite"
    assert main([*EVOLVE, "--store", str(db), "--out", str(tmp_path / "a")]) == 0
    assert "old name" not in capsys.readouterr().err
    assert main([*EVOLVE, "--cache", str(db), "--set", "run.shared_cache=false", "--out", str(tmp_path / "b")]) == 0
    err = capsys.readouterr().err
    assert "layermap: warning: --cache is the old name of --store; it still works, but write --store" in err
    assert "layermap: warning: run.shared_cache in --set is the old name of run.shared_fitness" in err
    config = (tmp_path / "b" / "config.toml").read_text()
    assert f'store_path = "{db}"' in config and "shared_fitness = false" in config and "cache_db" not in config
    assert main(["show", str(tmp_path / "b"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["evaluations"]["computed"] == 0


def test_export_help_says_why_there_is_no_torchdistill_format(run_dir, capsys):
    from layermap.cli.main import main

    with pytest.raises(SystemExit):
        main(["export", "--help"])
    assert "There is no torchdistill format" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        main(["export", str(run_dir), "--format", "torchdistill"])
    assert exc.value.code == 2 and "invalid choice: 'torchdistill'" in capsys.readouterr().err


def test_resume_takes_the_renamed_run_settings_under_both_names(run_dir, capsys):
    assert cli("evolve", "--resume", str(run_dir), "--set", "run.shared_fitness=false", "--quiet") == 0
    assert cli("evolve", "--resume", str(run_dir), "--set", "run.shared_cache=false", "--quiet") == 0
    assert cli("evolve", "--resume", str(run_dir), "--set", "run.store_path='elsewhere.sqlite'") == 2
    assert "run.store_path cannot change on --resume" in capsys.readouterr().out
