"""`layermap distill --mapping FILE` takes the student's shape from the file: an `export --front` member names its
whole shape, any other mapping file its depth; a student flag that contradicts the file is one sentence, exit 2."""

from __future__ import annotations

import json

import pytest

from layermap.cli.main import main
from layermap.config import load_config
from layermap.searching.run import run_search
from layermap.evaluators.synthetic import SyntheticEvaluator

SHAPED = ["search.strategy=nsga2", "search.objectives=['fitness','params']", "shape.search=true",
          "shape.hidden_sizes=[16,32]", "shape.heads=[2]", "shape.ffn_ratios=[2,4]", "search.constraint=increasing",
          "student.layers=2", "search.population=6", "search.generations=1", "search.seed=1",
          "run.shared_fitness=false"]


@pytest.fixture(scope="module")
def front_files(tmp_path_factory):
    """The JSON files `layermap export --front` writes for a tiny shaped nsga2 run (4-layer, 32-wide teacher)."""
    tmp = tmp_path_factory.mktemp("front")
    run_search(load_config(None, SHAPED), SyntheticEvaluator(teacher_layers=4, student_layers=2, teacher_width=32),
               tmp / "run", progress=False)
    assert main(["export", str(tmp / "run"), "--front", str(tmp / "front")]) == 0
    files = sorted((tmp / "front").glob("front-*.json"))
    assert files
    return files


def _distill(teacher, corpus, mapping, out, *flags):
    return main(["distill", "--teacher", str(teacher), "--mapping", str(mapping), *flags, "--corpus", str(corpus),
                 "--max-segments", "16", "--max-steps", "2", "--batch-size", "8", "--seq-len", "32", "--quiet",
                 "--out", str(out)])


def test_an_exported_front_member_is_distilled_with_the_shape_it_names(front_files, tiny_teacher_dir, tiny_corpus,
                                                                      tmp_path, capsys):
    path = min(front_files, key=lambda p: json.loads(p.read_text())["metadata"]["shape"]["hidden_size"])
    meta = json.loads(path.read_text())["metadata"]
    assert meta["shape"]["hidden_size"] != 32              # narrower than the teacher: its width would be wrong
    assert _distill(tiny_teacher_dir, tiny_corpus, path, tmp_path / "s") == 0, capsys.readouterr().err
    saved = json.loads((tmp_path / "s" / "config.json").read_text())
    shape = meta["shape"]
    assert (saved["num_hidden_layers"], saved["hidden_size"], saved["num_attention_heads"], saved["intermediate_size"]) \
        == (shape["layers"], shape["hidden_size"], shape["heads"], shape["ffn"])
    mapping = json.loads((tmp_path / "s" / "mapping.json").read_text())
    assert mapping["genes"] == json.loads(path.read_text())["genes"]
    capsys.readouterr()
    flags = meta["student_flags"].split()                                  # the same shape, said again: fine
    assert _distill(tiny_teacher_dir, tiny_corpus, path, tmp_path / "s2", *flags[:2]) == 0


@pytest.mark.parametrize("flags, named", [
    (["--hidden-size", "8"], "--hidden-size 8 contradicts it"),
    (["--student-layers", "3", "--ffn", "7"], "--student-layers 3, --ffn 7 contradict it"),
])
def test_a_student_flag_that_contradicts_the_front_member_is_one_sentence_exit_2(front_files, tiny_teacher_dir,
                                                                                 tiny_corpus, tmp_path, capsys, flags,
                                                                                 named):
    path = front_files[0]
    meta = json.loads(path.read_text())["metadata"]
    capsys.readouterr()
    assert _distill(tiny_teacher_dir, tiny_corpus, path, tmp_path / "s", *flags) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"is for a student {meta['shape']['text']}; pass {meta['student_flags']}" in err[0]
    assert named in err[0]
    assert not (tmp_path / "s").exists()                                   # refused before any work


def test_a_plain_mapping_file_gives_the_depth_and_genes_need_student_layers(tiny_teacher_dir, tiny_corpus, tmp_path,
                                                                            capsys):
    from layermap.mapping import LayerMapping

    plain = tmp_path / "m.json"
    LayerMapping((1, 3, 4), 4).to_json(plain)
    assert _distill(tiny_teacher_dir, tiny_corpus, plain, tmp_path / "s", "--hidden-size", "16", "--heads", "2") == 0
    assert json.loads((tmp_path / "s" / "config.json").read_text())["num_hidden_layers"] == 3
    capsys.readouterr()
    assert _distill(tiny_teacher_dir, tiny_corpus, "1-3", tmp_path / "g") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "give the student's depth with --student-layers" in err[0]
