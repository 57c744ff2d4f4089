"""transformers below the supported floor is refused before any work (CLI: one sentence, exit 2; API: an error), the
floor in pyproject.toml is the one the code checks, and a padded batch's mask works on the installed transformers."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import torch

import layermap
from layermap import versions
from layermap.cli.main import main

ROOT = Path(__file__).resolve().parents[1]
FLOOR = ".".join(map(str, versions.TRANSFORMERS_FLOOR))


@pytest.fixture
def old_transformers(monkeypatch):
    monkeypatch.setattr(versions, "installed_version", lambda package: "4.39.3" if package == "transformers" else None)


def test_the_pyproject_floor_is_the_floor_the_code_checks():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    (spec,) = [d for d in deps if re.match(r"transformers\b", d)]
    assert spec.replace(" ", "") == f"transformers>={FLOOR}"


@pytest.mark.parametrize("text, parts", [("4.46.3", (4, 46, 3)), ("5.0.0rc1", (5, 0, 0)), ("4.57.dev0", (4, 57)),
                                         ("5.25.0", (5, 25, 0))])
def test_release_reads_the_leading_numbers(text, parts):
    assert versions.release(text) == parts


def test_the_installed_transformers_passes_the_check():
    versions.check_transformers()


def test_the_cli_refuses_an_old_transformers_in_one_sentence_exit_2(old_transformers, capsys, tmp_path):
    out = tmp_path / "student"
    assert main(["distill", "--teacher", str(tmp_path / "t"), "--student-layers", "2", "--mapping", "1-2",
                 "--corpus", "c.txt", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"layermap: error: transformers 4.39.3 is older than {FLOOR}, the oldest version layermap supports; "
                   f"upgrade it (pip install 'transformers>={FLOOR}')"]
    assert not out.exists()
    assert main(["baselines", "--teacher-layers", "4", "--student-layers", "2"]) == 2       # every command
    assert "older than" in capsys.readouterr().err


def test_a_missing_transformers_is_one_sentence_too(monkeypatch, capsys):
    monkeypatch.setattr(versions, "installed_version", lambda package: None)
    assert main(["baselines", "--teacher-layers", "4", "--student-layers", "2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "transformers is not installed" in err[0]


def test_the_api_entry_points_refuse_an_old_transformers_before_any_work(old_transformers, tmp_path):
    for call in (lambda: layermap.search("smoke", tmp_path / "run"), lambda: layermap.resume(tmp_path / "run"),
                 lambda: layermap.fitness("1-2", "smoke"),
                 lambda: layermap.compare(["1-2"], tmp_path / "cmp", config="smoke")):
        with pytest.raises(versions.UnsupportedVersion, match=f"older than {FLOOR}"):
            call()
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("implementation", ["sdpa", "eager"])
def test_a_padded_batch_forward_equals_the_2d_mask_forward(implementation):
    """What every distillation step does with a padded batch: the prepared mask of models.model_mask (4D on
    transformers 5, 3D on 4) gives the real tokens the hidden states the plain 2D mask gives them."""
    from transformers import BertConfig, BertModel

    from layermap.distill.loop import forward_layers

    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                     attn_implementation=implementation)
    model = BertModel(cfg).eval()
    ids = torch.randint(5, 50, (3, 8))
    mask = torch.ones(3, 8, dtype=torch.long)
    mask[1, 5:] = 0
    mask[2, 2:] = 0
    with torch.no_grad():
        reference = model(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states
        out = forward_layers(model, ids, mask.bool()[:, None, None, :], (1, 2), (1, 2))     # Batch.keys of batches.py
    real = mask.bool()
    for k in (1, 2):
        assert torch.allclose(out.hidden[k][real], reference[k][real], atol=1e-5)


def test_transformers_4_gets_the_3d_mask_it_accepts(monkeypatch):
    """transformers 4 refuses a 4D mask ("Wrong shape for input_ids"); it takes (B, 1, L) for every attention
    implementation (checked on 4.40.2, 4.46.3 and 4.57.6, see layermap.versions)."""
    from transformers import BertConfig

    from layermap.distill import models

    keys = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]], dtype=torch.bool)[:, None, None, :]
    monkeypatch.setattr(models, "_TRANSFORMERS_MAJOR", 4)
    for implementation in ("sdpa", "eager"):
        cfg = BertConfig(hidden_size=32, num_attention_heads=4, attn_implementation=implementation)
        assert torch.equal(models.model_mask(cfg, keys), keys[:, 0])                       # (B, 1, L)
    assert models.model_mask(cfg, None) is None
