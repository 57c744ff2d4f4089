import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from layermap.cli.main import main

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args, cwd=None):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "layermap", *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=600)


def test_baselines_table_and_json(capsys):
    assert main(["baselines", "--teacher-layers", "12", "--student-layers", "4"]) == 0
    out = capsys.readouterr().out
    assert "uniform  3-6-9-12" in out and "last     0-0-0-12" in out
    assert main(["baselines", "--teacher-layers", "6", "--student-layers", "3", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"uniform": "2-4-6", "top": "4-5-6", "bottom": "1-2-3", "last": "0-0-6"}


def test_python_dash_m_layermap_runs_the_cli_as_the_console_script_does():
    for module in ("layermap", "layermap.cli"):        # python -m layermap; the older python -m layermap.cli
        proc = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True,
                              env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=120)
        assert proc.returncode == 0 and "usage: layermap" in proc.stdout and "evolve" in proc.stdout, proc.stderr
        assert proc.stderr == ""
    assert run_cli("baselines", "--teacher-layers", "6", "--student-layers", "3").stdout.split()[:2] == ["uniform", "2-4-6"]


def _distill_args(teacher, corpus, out, mapping="2-4", **extra):
    args = ["distill", "--teacher", teacher, "--student-layers", "2", "--hidden-size", "16", "--heads", "2",
            "--mapping", mapping, "--corpus", corpus, "--max-segments", "32", "--max-steps", "4", "--batch-size", "8",
            "--seq-len", "32", "--quiet", "--out", out]
    for k, v in extra.items():
        args += [f"--{k.replace('_', '-')}", v]
    return [str(a) for a in args]


def test_distill_writes_a_loadable_student(tiny_teacher_dir, tiny_corpus, tmp_path, capsys):
    from transformers import AutoModel, AutoTokenizer

    out = tmp_path / "student"
    assert main(_distill_args(tiny_teacher_dir, tiny_corpus, out, cache_dir=tmp_path / "c", init="teacher")) == 0
    model = AutoModel.from_pretrained(out)
    assert model.config.num_hidden_layers == 2 and model.config.hidden_size == 16
    assert AutoTokenizer.from_pretrained(out).cls_token == "[CLS]"
    mapping = json.loads((out / "mapping.json").read_text())
    assert mapping["mapping"] == "2-4" and mapping["metadata"]["teacher"] == str(tiny_teacher_dir)
    assert len(json.loads((out / "distill_log.json").read_text())["losses"]) == 4
    assert not (out / "checkpoints").exists()
    assert "segments/s" in capsys.readouterr().out


@pytest.mark.parametrize("mapping,needle", [
    ("2-x", "malformed"),
    ("2-9", "teacher has layers 1..4"),
    ("1-2-3", "has 3 genes but the student has 2 layers"),
])
def test_distill_bad_mapping_is_one_sentence_exit_2(tiny_teacher_dir, tiny_corpus, tmp_path, mapping, needle):
    res = run_cli(*_distill_args(tiny_teacher_dir, tiny_corpus, tmp_path / "o", mapping=mapping))
    assert res.returncode == 2, res.stderr
    assert needle in res.stderr and "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_distill_missing_corpus_and_teacher(tiny_teacher_dir, tmp_path):
    res = run_cli(*_distill_args(tiny_teacher_dir, tmp_path / "missing.txt", tmp_path / "o"))
    assert res.returncode == 2 and "does not exist" in res.stderr and "Traceback" not in res.stderr
    res = run_cli(*_distill_args(tmp_path / "no-teacher", tmp_path / "missing.txt", tmp_path / "o"))
    assert res.returncode == 2 and "teacher path" in res.stderr and "Traceback" not in res.stderr


def test_fitness_json(tiny_config_toml, capsys):
    assert main(["fitness", "--config", str(tiny_config_toml), "--mapping", "0-4", "--json", "--quiet"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["mapping"] == "0-4" and set(d["tasks"]) == {"sst2", "rte"}
    assert d["fitness"] == pytest.approx(sum(t["score"] for t in d["tasks"].values()) / 2)


def test_fitness_table_and_task_override(tiny_config_toml, capsys):
    assert main(["fitness", "--config", str(tiny_config_toml), "--mapping", "uniform", "--tasks", "mrpc", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "mrpc" in out and "f1" in out and "fitness" in out and "sst2" not in out


@pytest.mark.parametrize("extra,needle", [
    (["--tasks", "sst3"], "unknown GLUE task 'sst3'"),
    (["--tasks", "cola"], "CoLA"),
    (["--mapping", "1-2-3"], "has 3 genes"),
    (["--set", "distill.max_step=3"], "unknown setting distill.max_step"),
])
def test_fitness_bad_input_exit_2(tiny_config_toml, extra, needle):
    args = ["fitness", "--config", tiny_config_toml, "--mapping", "1-2", "--quiet"] + extra
    if "--mapping" in extra:
        args = ["fitness", "--config", tiny_config_toml, "--quiet"] + extra
    res = run_cli(*args)
    assert res.returncode == 2, res.stderr
    assert needle in res.stderr and "Traceback" not in res.stderr


@pytest.mark.parametrize("flag,needle", [
    ("--corpus", "corpus file"),
    ("--glue-dir", "GLUE directory"),
])
def test_evolve_with_missing_inputs_fails_before_making_a_run(tiny_config_toml, tmp_path, capsys, flag, needle):
    out = tmp_path / "run"
    code = main(["evolve", "--config", str(tiny_config_toml), flag, str(tmp_path / "missing.txt"), "--quiet",
                 "--out", str(out)])
    assert code == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err
    assert not out.exists() or not any(out.iterdir())


def test_every_option_has_help_and_every_command_ends_its_help_with_an_example():
    import argparse

    from layermap.cli.main import build_parser

    def walk(parser, name):
        yield name, parser
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub_name, sub in action.choices.items():
                    yield from walk(sub, f"{name} {sub_name}")

    for name, parser in walk(build_parser(), "layermap"):
        missing = [a.dest for a in parser._actions
                   if not a.help and a.dest != "help" and not isinstance(a, argparse._SubParsersAction)]
        assert not missing, f"{name}: options without help: {missing}"
        assert parser.epilog and "example" in parser.epilog and "layermap" in parser.epilog, name
        help_text = parser.format_help()
        assert "layermap" in help_text[help_text.rindex("example"):], name      # the help ends with an example


def test_validate_checks_everything_and_sizes_the_work_without_training(tiny_config_toml, tmp_path, capsys):
    assert main(["validate", "--config", str(tiny_config_toml), "--no-references"]) == 0
    out = capsys.readouterr().out
    assert "search space: 25 genomes (free)" in out                   # (4 + 1)^2 for a 4-layer teacher, 2-layer student
    assert "at most 10 distinct genomes" in out and "final stage (compare)" in out and "sst2 ok" in out
    assert "warning: the final stage's tasks" in out and "CoLA" in out      # the tiny GLUE folder has no CoLA
    assert not (tmp_path / "cache").exists()                         # nothing was tokenised, cached or trained
    assert main(["validate", "--config", str(tiny_config_toml), "--glue-dir", str(tmp_path)]) == 2
    assert "SST-2/train.tsv" in capsys.readouterr().err
    assert main(["validate", "--config", str(tiny_config_toml), "--set", 'search.strategy="racing"',
                 "--set", "search.replicate_cap=3"]) == 0
    assert "up to 2 seed sets each, then the answer and the best baseline under 1 fresh one(s) (search.replicate_cap, search.confirm_seed_sets) -> at most 30 evaluations" in capsys.readouterr().out
