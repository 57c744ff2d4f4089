"""``layermap quantize``: ONNX export and int8 quantisation of a tiny BERT saved with save_pretrained."""

from __future__ import annotations

import json
import sys

import pytest

pytest.importorskip("onnxruntime", reason='onnxruntime is absent: install the extra with pip install -e ".[deploy]"')
pytest.importorskip("onnx", reason='onnx is absent: install the extra with pip install -e ".[deploy]"')

from layermap.cli.main import main  # noqa: E402
from layermap.config import LatencySettings  # noqa: E402
from layermap.deploy.quantize import load_student, probe_predictions, quantize_student  # noqa: E402

FAST = LatencySettings(seq_len=16, warmup=1, repeats=3)


@pytest.fixture(scope="module")
def student_dir(tmp_path_factory, tiny_teacher_dir):
    """A 2-layer, 128-wide random BERT with the tiny teacher's tokenizer, saved with save_pretrained: wide enough
    that its weights, not the ONNX graph's ~0.2 MB of nodes, make most of the file."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    root = tmp_path_factory.mktemp("student")
    tokenizer = AutoTokenizer.from_pretrained(tiny_teacher_dir)
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=len(tokenizer), hidden_size=128, num_hidden_layers=2, num_attention_heads=4,
                         intermediate_size=512, max_position_embeddings=128)).save_pretrained(root)
    tokenizer.save_pretrained(root)
    return root


def test_quantize_matches_pytorch_in_fp32_shrinks_in_int8_and_scores_both(tmp_path, student_dir, tiny_glue_dir):
    report = quantize_student(student_dir, tmp_path / "onnx", settings=FAST, tasks=("sst2", "mrpc"),
                              glue_dir=str(tiny_glue_dir))
    assert report.max_abs_diff["onnx_fp32"] < 1e-4
    assert report.max_abs_diff["onnx_int8"] > report.max_abs_diff["onnx_fp32"]          # int8 is an approximation
    assert report.size_mb["onnx_int8"] < 0.5 * report.size_mb["onnx_fp32"]
    assert set(report.latency) == {"torch-fp32", "onnx-fp32", "onnx-int8"}
    assert all(lat.repeats == 3 and lat.median_ms > 0 for lat in report.latency.values())
    assert report.shape == "L2-H128-A4-F512"
    assert [t.task for t in report.tasks] == ["sst2", "mrpc"]
    for t in report.tasks:
        assert 0 <= t.fp32 <= 100 and 0 <= t.int8 <= 100 and 0 <= t.agreement <= 100
    written = json.loads((tmp_path / "onnx" / "quantize.json").read_text())
    assert written["tasks"][0]["agreement"] == report.tasks[0].agreement
    assert (tmp_path / "onnx" / "model.int8.onnx").is_file()


def test_the_probe_path_of_quantize_scores_as_the_probe_head(student_dir, tiny_glue_dir):
    from proxy_tasks import load_task
    from proxy_tasks.probe import ProbeSettings, probe_and_score

    model, tokenizer = load_student(student_dir)
    data = load_task("sst2", str(tiny_glue_dir))
    _, metrics, score, _ = probe_predictions(model, tokenizer, data)
    official = probe_and_score(model, tokenizer, data, ProbeSettings(max_seq_len=128))
    assert score == pytest.approx(official.score) and metrics == pytest.approx(official.metrics)


def test_quantize_command_writes_json(tmp_path, student_dir, capsys):
    rc = main(["quantize", str(student_dir), "--out", str(tmp_path / "q"), "--seq-len", "16", "--repeats", "2",
               "--warmup", "0", "--json"])
    assert rc == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["size_mb"]["onnx_int8"] < printed["size_mb"]["onnx_fp32"] and printed["tasks"] == []


def test_quantize_bad_input_is_one_sentence_and_exit_2(tmp_path, monkeypatch, capsys, student_dir):
    (tmp_path / "notes").mkdir()
    assert main(["quantize", str(tmp_path / "notes")]) == 2
    err = capsys.readouterr().err.strip()
    assert "is not a model folder (no config.json)" in err and len(err.splitlines()) == 1
    monkeypatch.setitem(sys.modules, "onnxruntime", None)             # as if the extra were not installed
    assert main(["quantize", str(student_dir)]) == 2
    assert 'pip install -e ".[deploy]"' in capsys.readouterr().err


def test_the_int8_probe_is_fitted_with_the_c_cross_validated_on_fp32(student_dir, tiny_glue_dir, monkeypatch):
    """Agreement is int8's alone: the second probe takes the first one's C instead of choosing its own."""
    import proxy_tasks.probe as probe_mod
    from proxy_tasks import load_task

    from layermap.deploy.quantize import compare_probe

    seen = []
    real = probe_mod.probe_and_score

    def spy(encoder, tokenizer, data, settings, **kwargs):
        result = real(encoder, tokenizer, data, settings, **kwargs)
        seen.append((settings.c, result.regularisation))
        return result

    monkeypatch.setattr(probe_mod, "probe_and_score", spy)
    model, tokenizer = load_student(student_dir)
    comparison = compare_probe(model, model, tokenizer, load_task("sst2", str(tiny_glue_dir)))
    (c_first, chosen), (c_second, used) = seen
    assert c_first is None and c_second == chosen == used and comparison.regularisation == chosen
    assert comparison.agreement == 100.0 and comparison.fp32 == comparison.int8      # the same features, the same C


def test_quantize_refuses_a_cuda_latency_device_in_one_sentence(tmp_path, student_dir, capsys):
    assert main(["quantize", str(student_dir), "--device", "cuda", "--out", str(tmp_path / "q")]) == 2
    err = capsys.readouterr().err.strip()
    assert "on the CPU only" in err and len(err.splitlines()) == 1 and not (tmp_path / "q").exists()
