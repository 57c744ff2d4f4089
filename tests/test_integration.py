"""Real teacher (MiniLM-L6-H384, 6 layers, 12 heads) and real data (Wikipedia + GLUE TSVs).

Skipped, with the reason, when the teacher package or the data folder is absent.
"""

import json

import numpy as np
import pytest

from layermap.cli.main import main
from layermap.config import load_config
from layermap.evaluators.proxy import ProxyEvaluator

pytestmark = pytest.mark.integration


def test_distill_two_layer_student_from_minilm(minilm, shared_data, tmp_path, capsys):
    from transformers import AutoModel

    out = tmp_path / "student"
    code = main(["distill", "--teacher", str(minilm), "--student-layers", "2", "--hidden-size", "192", "--heads", "12",
                 "--mapping", "3-6", "--corpus", str(shared_data / "corpus" / "enwiki_sample.txt"),
                 "--max-documents", "300", "--max-segments", "480", "--max-steps", "40", "--batch-size", "16",
                 "--seq-len", "64", "--lr", "1e-3", "--quiet", "--cache-dir", str(tmp_path / "cache"), "--out", str(out)])
    assert code == 0
    losses = json.loads((out / "distill_log.json").read_text())["losses"]
    assert np.mean(losses[-10:]) <= 0.7 * np.mean(losses[:10]), (np.mean(losses[:10]), np.mean(losses[-10:]))
    model = AutoModel.from_pretrained(out)
    assert model.config.num_hidden_layers == 2 and model.config.vocab_size == 30522


def test_smoke_fitness_on_minilm_and_glue(minilm, shared_data, tmp_path):
    config = load_config("smoke", teacher={"name": str(minilm)},
                         corpus={"path": str(shared_data / "corpus" / "enwiki_sample.txt")},
                         proxy={"glue_dir": str(shared_data / "glue")}, run={"cache_dir": str(tmp_path / "cache")})
    ev = ProxyEvaluator(config)
    assert ev.teacher_layers == 6
    uniform = ev.evaluate((2, 4, 6))
    last = ev.evaluate((0, 0, 6))
    again = ProxyEvaluator(config).evaluate((2, 4, 6))
    for r in (uniform, last):
        assert r.ok and set(r.tasks) == {"sst2", "mrpc", "rte"}
        assert set(r.tasks["mrpc"].metrics) == {"accuracy", "f1"}
    assert again.fitness == uniform.fitness and again.distill_loss == uniform.distill_loss
    assert last.distill_loss != uniform.distill_loss
