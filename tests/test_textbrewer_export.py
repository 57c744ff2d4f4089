"""The TextBrewer export trains as it is: two ``GeneralDistiller`` steps on tiny random BERTs with the exported
``DistillationConfig`` and the adaptor module written beside it, for both attention numberings.

TextBrewer is installed with ``--no-deps``; it imports a TensorBoard ``SummaryWriter`` at import time (tensorboardX,
else torch.utils.tensorboard, which needs tensorboard). Neither is a layermap dependency, so when both are absent
a test-only stub module ``tensorboardX`` stands in: with ``log_dir=None`` TextBrewer never builds a writer.
"""

from __future__ import annotations

import importlib.util
import json
import warnings

import pytest
import torch

import layermap
from layermap.cli.main import main

from conftest import import_textbrewer

EVOLVE = ["evolve", "--synthetic", "8", "--set", "student.layers=3", "--set", "search.population=6",
          "--set", "search.generations=2", "--set", "run.shared_fitness=false", "--quiet"]


def _textbrewer():
    return import_textbrewer()


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("tb") / "run"
    assert main([*EVOLVE, "--out", str(out)]) == 0
    return out


def _load(path):
    spec = importlib.util.spec_from_file_location(f"adaptor_{abs(hash(str(path)))}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _bert(layers: int, width: int, seed: int, heads: int = 4):
    from transformers import BertConfig, BertModel

    torch.manual_seed(seed)
    return BertModel(BertConfig(vocab_size=60, hidden_size=width, num_hidden_layers=layers, num_attention_heads=heads,
                                intermediate_size=2 * width, max_position_embeddings=32))


def _batches(n: int):
    g = torch.Generator().manual_seed(0)
    mask = torch.ones(2, 12, dtype=torch.long)
    mask[1, 8:] = 0                                         # padding, left out of every loss through inputs_mask
    return [{"input_ids": torch.randint(1, 60, (2, 12), generator=g), "attention_mask": mask} for _ in range(n)]


@pytest.mark.parametrize("index, scores", [("hf", False), ("textbrewer-examples", False), ("hf", True)])
def test_general_distiller_trains_two_steps_with_the_export_and_its_adaptor(run_dir, tmp_path, index, scores):
    tb = _textbrewer()
    torch.set_num_threads(1)
    path = tmp_path / "matches.json"
    done = layermap.export(run_dir, path, format="textbrewer", attention_index=index)
    assert done.adaptor_path == tmp_path / "matches.adaptor.py" and done.adaptor_path.is_file()
    assert 'from_json_file("matches.json")' in done.adaptor_path.read_text()
    provenance = json.loads(done.provenance_path.read_text())
    assert provenance["attention_index"] == index and "before the softmax" in provenance["attention_feature"]
    adaptors = _load(done.adaptor_path)
    assert adaptors.ATTENTION_INDEX == index

    teacher, student = _bert(8, 64, 0), _bert(3, 32, 1)         # the synthetic run: 8 teacher layers, 3 x 32 wide
    adaptors.prepare(teacher)
    adaptors.prepare(student)
    adaptor_T = adaptors.score_adaptor(teacher) if scores else adaptors.adaptor_T
    adaptor_S = adaptors.score_adaptor(student) if scores else adaptors.adaptor_S
    seen = []

    def watched_S(batch, outputs):
        features = adaptor_S(batch, outputs)
        seen.append(features)
        return features

    config = tb.DistillationConfig.from_json_file(str(path))
    assert any(m.feature == "attention" for m in config.intermediate_matches)
    before = [p.detach().clone() for p in student.parameters()]
    distiller = tb.GeneralDistiller(tb.TrainingConfig(device="cpu", output_dir=str(tmp_path / "ckpt"), log_dir=None,
                                                                      ckpt_steps=2),
                                    config, teacher, student, adaptor_T, watched_S)
    optimizer = torch.optim.AdamW(student.parameters(), lr=1e-3)
    with distiller:
        distiller.train(optimizer, _batches(2), num_steps=2)
    assert len(seen) == 2
    assert any(not torch.equal(a, b) for a, b in zip(before, student.parameters()))      # the student learnt
    total, losses = distiller.compute_loss(adaptor_S(_batches(1)[0], student(**_batches(1)[0])),
                                           adaptor_T(_batches(1)[0], teacher(**_batches(1)[0])))
    attention = [k for k in losses if k.startswith("unweighted_attention")]
    assert attention and torch.isfinite(total)
    if scores:                                   # pre-softmax scores are not probabilities: rows do not sum to 1
        row_sums = seen[-1]["attention"][0].sum(-1)
        assert not torch.allclose(row_sums, torch.ones_like(row_sums))


def test_the_1_based_matches_with_hugging_faces_tuple_fail_as_the_issue_says(run_dir, tmp_path):
    """The mismatch the numbering option exists for: textbrewer-examples matches read through adaptor_T of an hf
    export index past the end of outputs.attentions when the top teacher layer is mapped."""
    tb = _textbrewer()
    torch.set_num_threads(1)
    path = tmp_path / "m.json"
    layermap.export(run_dir, path, format="textbrewer", attention_index="textbrewer-examples")
    config = tb.DistillationConfig.from_json_file(str(path))
    hf = _load(layermap.export(run_dir, tmp_path / "h.json", format="textbrewer").adaptor_path)
    teacher, student = hf.prepare(_bert(8, 64, 0)), hf.prepare(_bert(3, 32, 1))
    distiller = tb.GeneralDistiller(tb.TrainingConfig(device="cpu", output_dir=str(tmp_path), log_dir=None),
                                    config, teacher, student, hf.adaptor_T, hf.adaptor_S)
    batch = _batches(1)[0]
    student_top = max(m.layer_S for m in config.intermediate_matches if m.feature == "attention")
    if student_top < 3 and max(m.layer_T for m in config.intermediate_matches if m.feature == "attention") < 8:
        pytest.skip("the run's best maps neither top layer, so the 1-based matches stay inside the tuple")
    with pytest.raises(IndexError):
        distiller.compute_loss(hf.adaptor_S(batch, student(**batch)), hf.adaptor_T(batch, teacher(**batch)))


@pytest.mark.parametrize("scores", [False, True], ids=["probabilities", "scores"])
def test_a_student_with_fewer_heads_trains_two_steps_on_head_averaged_attention(run_dir, tmp_path, scores):
    """TextBrewer's attention_mse compares (B, H, L, L) elementwise: a 2-head student of a 4-head teacher crashed at
    the first step; the adaptors average both sides over heads, as layermap's fitness did."""
    tb = _textbrewer()
    torch.set_num_threads(1)
    path = tmp_path / "matches.json"
    adaptors = _load(layermap.export(run_dir, path, format="textbrewer").adaptor_path)
    assert adaptors.AVERAGE_HEADS is None                  # a synthetic run records no head counts: prepare() decides
    teacher, student = adaptors.prepare(_bert(8, 64, 0, heads=4)), adaptors.prepare(_bert(3, 32, 1, heads=2))
    adaptor_T = adaptors.score_adaptor(teacher) if scores else adaptors.adaptor_T
    adaptor_S = adaptors.score_adaptor(student) if scores else adaptors.adaptor_S
    config = tb.DistillationConfig.from_json_file(str(path))
    batch = _batches(1)[0]
    features = adaptor_S(batch, student(**batch))
    assert features["attention"][0].shape == (2, 1, 12, 12)
    before = [p.detach().clone() for p in student.parameters()]
    distiller = tb.GeneralDistiller(tb.TrainingConfig(device="cpu", output_dir=str(tmp_path / "ckpt"), log_dir=None,
                                                      ckpt_steps=2), config, teacher, student, adaptor_T, adaptor_S)
    with distiller:
        distiller.train(torch.optim.AdamW(student.parameters(), lr=1e-3), _batches(2), num_steps=2)
    assert any(not torch.equal(a, b) for a, b in zip(before, student.parameters()))
    total, losses = distiller.compute_loss(adaptor_S(batch, student(**batch)), adaptor_T(batch, teacher(**batch)))
    assert any(k.startswith("unweighted_attention") for k in losses) and torch.isfinite(total)
    adaptors.AVERAGE_HEADS = False                         # per-head maps: the crash the averaging avoids
    with pytest.raises(RuntimeError), warnings.catch_warnings():
        warnings.simplefilter("ignore")                    # torch's broadcasting warning before the error
        distiller.compute_loss(adaptor_S(batch, student(**batch)), adaptor_T(batch, teacher(**batch)))


def test_the_export_bakes_in_the_runs_head_counts():
    from layermap.exporting.textbrewer import heads_differ

    def row(teacher_heads, student_heads):
        return type("Row", (), {"description": {"teacher_heads": teacher_heads, "student": {"heads": student_heads}}})()

    assert heads_differ(row(12, 4)) is True and heads_differ(row(12, 12)) is False and heads_differ(row(None, 4)) is None


def test_the_adaptor_template_is_a_real_module_shipped_as_package_data_and_rendered_settings_are_set():
    """The adaptor is no string inside the code: ``adaptor_template.py`` parses, runs as a working (hf) adaptor, is
    package data in pyproject.toml, and the export sets its numbering, head averaging and attention tuple."""
    import tomllib
    from importlib import resources
    from pathlib import Path

    from layermap.exporting.textbrewer import render_adaptor
    from layermap.mapping import LayerMapping

    template = resources.files("layermap.exporting").joinpath("adaptor_template.py")
    spec = importlib.util.spec_from_file_location("adaptor_template", str(template))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.ATTENTION_INDEX == "hf" and module.AVERAGE_HEADS is None
    assert all(callable(getattr(module, name)) for name in ("prepare", "adaptor_T", "adaptor_S", "score_adaptor"))
    pyproject = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text("utf-8"))
    assert "adaptor_template.py" in pyproject["tool"]["setuptools"]["package-data"]["layermap.exporting"]

    text = render_adaptor(LayerMapping((0, 2, 0, 6), teacher_layers=6), "textbrewer-examples", "t", True)
    assert text.startswith('"""TextBrewer adaptors for the layer mapping 0-2-0-6 that layermap exported (teacher t).')
    assert 'ATTENTION_INDEX = "textbrewer-examples"\n' in text and "AVERAGE_HEADS = True " in text
    assert '"attention": (None,) + tuple(attentions)}' in text and "{MAPPING}" not in text
    compile(text, "intermediate_matches.adaptor.py", "exec")
