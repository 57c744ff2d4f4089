"""Fingerprint identities (issue 9, item 2): the teacher's tokenizer, hub revisions resolved to commits
(from a fake Hugging Face cache or a monkeypatched Hub, never the network), files hashed once per process."""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil

import pytest

from layermap.distill import identity
from proxy_tasks import hub as hub_mod
from layermap.final.fingerprints import compare_fingerprint
from layermap.config import load_config
from layermap.distill.corpus import corpus_identity
from layermap.evaluators.proxy import ProxyEvaluator
from layermap.distill.models import teacher_identity
from proxy_tasks import data_fingerprint

REAL_ONLINE = hub_mod._resolve_online
SHA = "0123456789abcdef0123456789abcdef01234567"
OTHER_SHA = "fedcba9876543210fedcba9876543210fedcba98"


def _warnings(caplog) -> list[str]:
    """The warnings layermap logged since the last call (library code logs; it does not print)."""
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and r.name.startswith("layermap")]
    caplog.clear()
    return lines


@pytest.fixture(autouse=True)
def _fresh_memo(monkeypatch, tmp_path):
    """Every test starts with empty in-process memos, an empty fake HF cache and no Hub."""
    monkeypatch.setattr(hub_mod, "_REVISIONS", {})
    monkeypatch.setattr(identity, "_DIGESTS", {})
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_DATASETS_CACHE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE",
                "HF_DATASETS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(hub_mod, "_resolve_online", lambda *a: None)


def _fake_hub_repo(root, repo_type, repo_id, sha, revision="main"):
    repo = root / f"{repo_type}s--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / revision).write_text(sha)
    (repo / "snapshots" / sha).mkdir(parents=True)
    return repo


@pytest.fixture
def teacher_copy(tiny_teacher_dir, tmp_path):
    return shutil.copytree(tiny_teacher_dir, tmp_path / "teacher")


# -- the tokenizer belongs to the teacher's identity ---------------------------------------------------------
@pytest.mark.parametrize("change", ["vocab", "tokenizer_config", "added_file"])
def test_new_tokenizer_files_beside_the_same_weights_change_every_fingerprint(teacher_copy, tiny_config_toml, change):
    config = load_config(str(tiny_config_toml))
    config = dataclasses.replace(config, teacher=dataclasses.replace(config.teacher, name=str(teacher_copy)))
    before = (teacher_identity(str(teacher_copy)), ProxyEvaluator(config).fingerprint, compare_fingerprint(config))
    if change == "vocab":
        with open(teacher_copy / "vocab.txt", "a", encoding="utf-8") as f:
            f.write("zebra\n")
    elif change == "tokenizer_config":
        cfg = json.loads((teacher_copy / "tokenizer_config.json").read_text())
        cfg["do_lower_case"] = not cfg.get("do_lower_case", True)
        (teacher_copy / "tokenizer_config.json").write_text(json.dumps(cfg, indent=1))
    else:
        (teacher_copy / "spm.model").write_bytes(b"a sentencepiece model")
    after = (teacher_identity(str(teacher_copy)), ProxyEvaluator(config).fingerprint, compare_fingerprint(config))
    assert all(a != b for a, b in zip(before, after))
    assert teacher_identity(str(teacher_copy)) == after[0]                      # stable


def test_weight_shards_belong_to_the_identity(teacher_copy):
    (teacher_copy / "model-00001-of-00002.safetensors").write_bytes(b"one")
    first = teacher_identity(str(teacher_copy))
    (teacher_copy / "model-00001-of-00002.safetensors").write_bytes(b"two!")
    assert teacher_identity(str(teacher_copy)) != first


# -- hashing once ------------------------------------------------------------------------------------------
def test_each_file_is_hashed_once_per_process_and_again_when_it_changes(tiny_config_toml, monkeypatch):
    """`layermap compare --mappings` fingerprints the proxy fitness and the compare folder: one read per file."""
    import proxy_tasks.data as data

    hashed, splits = [], []
    real_hash, real_splits = identity._hash_file, data._hash_splits
    monkeypatch.setattr(identity, "_hash_file", lambda path, **kw: hashed.append(path.name) or real_hash(path, **kw))
    monkeypatch.setattr(data, "_hash_splits", lambda spec, paths: splits.append(spec.name) or real_splits(spec, paths))
    monkeypatch.setattr(data, "_FINGERPRINTS", {})
    config = load_config(str(tiny_config_toml))
    first = ProxyEvaluator(config).fingerprint
    compare_fingerprint(config)
    for task in ("sst2", "rte"):
        data_fingerprint(task, config.proxy.glue_dir)
    assert ProxyEvaluator(config).fingerprint == first
    assert sorted(set(hashed)) == sorted(hashed) and "model.safetensors" in hashed and "vocab.txt" in hashed
    assert "corpus.txt" in hashed
    assert sorted(splits) == ["rte", "sst2"]
    corpus = config.corpus.path
    with open(corpus, "a", encoding="utf-8") as f:
        f.write("\none more paragraph .\n")
    assert ProxyEvaluator(config).fingerprint != first and hashed.count("corpus.txt") == 2


# -- hub names resolve to commits --------------------------------------------------------------------------
def test_a_hub_teacher_is_named_by_the_commit_in_the_hf_cache(tmp_path, monkeypatch, caplog):
    hub = tmp_path / "hub_cache"
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    _fake_hub_repo(hub, "model", "org/bert-tiny", SHA)
    (hub / "models--org--bert-tiny" / "refs" / "v1").write_text(OTHER_SHA)
    assert teacher_identity("org/bert-tiny") == f"hub:org/bert-tiny@{SHA}"
    assert teacher_identity("org/bert-tiny", "v1") == f"hub:org/bert-tiny@{OTHER_SHA}"
    assert teacher_identity("org/bert-tiny", SHA) == f"hub:org/bert-tiny@{SHA}"           # a commit is itself
    (hub / "models--org--bert-tiny" / "snapshots" / OTHER_SHA).mkdir()
    assert teacher_identity("org/bert-tiny", OTHER_SHA[:10]) == f"hub:org/bert-tiny@{OTHER_SHA}"   # short commit
    assert _warnings(caplog) == []


def test_the_hub_answer_comes_before_the_cache(tmp_path, monkeypatch):
    hub = tmp_path / "hub_cache"
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    _fake_hub_repo(hub, "model", "org/bert-tiny", SHA)
    asked = []
    monkeypatch.setattr(hub_mod, "_resolve_online",
                        lambda repo, revision, kind: asked.append((repo, revision, kind)) or OTHER_SHA)
    assert teacher_identity("org/bert-tiny") == f"hub:org/bert-tiny@{OTHER_SHA}"
    assert asked == [("org/bert-tiny", "main", "model")]


def test_online_lookup_uses_hfapi_and_is_skipped_offline(monkeypatch):
    import huggingface_hub

    monkeypatch.setattr(hub_mod, "_resolve_online", REAL_ONLINE)          # the real one, with a fake HfApi
    calls = []

    class FakeApi:
        def model_info(self, repo_id, revision=None, timeout=None):
            calls.append(("model", repo_id, revision))
            return type("Info", (), {"sha": SHA})()

        def dataset_info(self, repo_id, revision=None, timeout=None):
            calls.append(("dataset", repo_id, revision))
            raise OSError("no network")

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    assert hub_mod.resolve_revision("org/m", "main", "model") == SHA
    assert hub_mod._resolve_online("org/d", "main", "dataset") is None
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert hub_mod._resolve_online("org/m", "main", "model") is None
    assert calls == [("model", "org/m", "main"), ("dataset", "org/d", "main")]


def test_an_unresolved_hub_name_falls_back_to_its_name_with_one_warning(caplog):
    assert teacher_identity("org/unknown") == "hub:org/unknown@main"
    assert teacher_identity("org/unknown") == "hub:org/unknown@main"
    err = _warnings(caplog)
    assert len(err) == 1 and "org/unknown@main" in err[0] and "by name only" in err[0] and "teacher" in err[0]


def test_a_datasets_corpus_carries_its_commit(tmp_path, monkeypatch, caplog):
    hub = tmp_path / "hub_cache"
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    _fake_hub_repo(hub, "dataset", "org/wiki", SHA)
    assert corpus_identity("org/wiki") == f"datasets:org/wiki@{SHA}"
    assert corpus_identity("org/wiki:en") == f"datasets:org/wiki:en@{SHA}"
    # the datasets cache folder <org>___<name>/<config>/<version>/<sha> when the hub cache has no ref
    folder = tmp_path / "ds_cache" / "org___books" / "plain" / "0.0.0" / OTHER_SHA
    folder.mkdir(parents=True)
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "ds_cache"))
    assert corpus_identity("org/books:plain") == f"datasets:org/books:plain@{OTHER_SHA}"
    assert _warnings(caplog) == []
    assert corpus_identity("org/nothing") == "datasets:org/nothing@main"
    err = _warnings(caplog)
    assert len(err) == 1 and "corpus (org/nothing@main)" in err[0] and "by name only" in err[0]


def test_hub_glue_tasks_carry_their_commit(tmp_path, monkeypatch, caplog):
    assert data_fingerprint("mnli", None) == "nyu-mll/glue/mnli@main"
    err = _warnings(caplog)
    assert len(err) == 1 and "GLUE task mnli (nyu-mll/glue@main)" in err[0] and "by name only" in err[0]
    hub = tmp_path / "hub_cache"
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    _fake_hub_repo(hub, "dataset", "nyu-mll/glue", SHA)
    assert data_fingerprint("sst2", None) == f"nyu-mll/glue/sst2@{SHA}"
    assert data_fingerprint("SST-2", None) == f"nyu-mll/glue/sst2@{SHA}"
    assert _warnings(caplog) == []


def test_a_hub_commit_changes_the_fitness_fingerprint(tiny_config_toml, tmp_path, monkeypatch, tiny_teacher_dir):
    from layermap.distill import models

    hub = tmp_path / "hub_cache"
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    repo = _fake_hub_repo(hub, "model", "org/bert-tiny", SHA)
    monkeypatch.setattr(models.AutoConfig, "from_pretrained",
                        classmethod(lambda cls, name, revision="main", **kw: load_tiny_config(tiny_teacher_dir)))
    config = load_config(str(tiny_config_toml), ["teacher.name='org/bert-tiny'"])
    first = ProxyEvaluator(config).fingerprint
    (repo / "refs" / "main").write_text(OTHER_SHA)                     # main moved on the Hub
    monkeypatch.setattr(hub_mod, "_REVISIONS", {})                    # a new process
    assert ProxyEvaluator(config).fingerprint != first


def load_tiny_config(folder):
    from transformers import BertConfig

    return BertConfig.from_json_file(str(folder / "config.json"))
