"""Tests of proxy_tasks.finetune with a tiny random BERT and a tiny WordPiece vocab."""

from __future__ import annotations

import dataclasses
import random

import pytest
import torch
import transformers
from conftest import make_tokenizer

from proxy_tasks import (
    TASKS,
    Example,
    FinetuneSettings,
    TaskData,
    TaskError,
    TaskResult,
    finetune_and_score,
    finetune_tasks,
)

WORDS = "the a movie film plot actor scene story music was is very quite rather long short".split()
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "good", "bad", *WORDS]
FAST = FinetuneSettings(epochs=1.0, batch_size=8, learning_rate=2e-3, max_seq_len=32, eval_batch_size=16)


@pytest.fixture(autouse=True)
def _one_thread():
    """Use one CPU thread: fast and stable on a small shared machine."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    vocab_file = tmp_path_factory.mktemp("vocab") / "vocab.txt"
    vocab_file.write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
    tok = make_tokenizer(vocab_file)                   # transformers 4 and 5 name the vocab argument apart
    assert tok.tokenize("Good movie") == ["good", "movie"]  # the vocab was really loaded
    return tok


@pytest.fixture(scope="module")
def encoder():
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=len(VOCAB),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    return transformers.BertModel(config).eval()


def _good_examples(n: int, seed: int) -> tuple[Example, ...]:
    """Single sentences; label 1 iff the sentence contains the word 'good'."""
    rng = random.Random(seed)
    examples = []
    for i in range(n):
        words = [rng.choice(WORDS) for _ in range(rng.randint(4, 9))]
        if i % 2:
            words.insert(rng.randrange(len(words) + 1), "good")
        examples.append(Example(" ".join(words), None, i % 2))
    return tuple(examples)


def _count_pairs(n: int, seed: int) -> tuple[Example, ...]:
    """Sentence pairs; the score is the number of 'good' words in the second text."""
    rng = random.Random(seed)
    examples = []
    for _ in range(n):
        count = rng.randint(0, 3)
        first = [rng.choice(WORDS) for _ in range(rng.randint(3, 6))]
        second = [rng.choice(WORDS) for _ in range(rng.randint(3, 6))]
        for _ in range(count):
            second.insert(rng.randrange(len(second) + 1), "good")
        examples.append(Example(" ".join(first), " ".join(second), float(count)))
    return tuple(examples)


def _sst2_like(n_train: int = 48, n_dev: int = 24) -> TaskData:
    return TaskData(TASKS["sst2"], _good_examples(n_train, 1), {"dev": _good_examples(n_dev, 2)}, "toy")


def test_result_shape_and_ranges(encoder, tokenizer):
    result = finetune_and_score(encoder, tokenizer, _sst2_like(), FAST)
    assert isinstance(result, TaskResult)
    assert result.task == "sst2" and list(result.metrics) == ["accuracy"]
    assert 0.0 <= result.score <= 100.0 and result.score == result.metrics["accuracy"]
    assert result.num_train == 48 and result.num_eval == 24
    assert result.train_seconds > 0 and result.eval_seconds > 0


def test_input_encoder_and_global_rng_unchanged(encoder, tokenizer):
    before = {name: tensor.clone() for name, tensor in encoder.state_dict().items()}
    flags = {name: p.requires_grad for name, p in encoder.named_parameters()}
    rng_state = torch.get_rng_state()
    finetune_and_score(encoder, tokenizer, _sst2_like(), FAST)
    after = encoder.state_dict()
    assert all(torch.equal(before[name], after[name]) for name in before)
    assert flags == {name: p.requires_grad for name, p in encoder.named_parameters()}
    assert not encoder.training  # the fixture's eval mode is kept
    assert torch.equal(rng_state, torch.get_rng_state())


def test_same_seed_gives_identical_results(encoder, tokenizer):
    # a regression task: its correlations are continuous, so any drift would show
    data = TaskData(TASKS["stsb"], _count_pairs(40, 1), {"dev": _count_pairs(40, 2)}, "toy")
    first = finetune_and_score(encoder, tokenizer, data, FAST)
    second = finetune_and_score(encoder, tokenizer, data, FAST)
    other_seed = finetune_and_score(encoder, tokenizer, data, dataclasses.replace(FAST, seed=7))
    assert first.metrics == second.metrics  # bit-identical floats
    assert other_seed.metrics != first.metrics  # the seed really matters


def test_learnable_toy_task_beats_chance(encoder, tokenizer):
    data = _sst2_like(n_train=192, n_dev=100)
    settings = FinetuneSettings(epochs=6.0, batch_size=16, learning_rate=2e-3, max_seq_len=32, seed=1)
    result = finetune_and_score(encoder, tokenizer, data, settings)
    assert result.metrics["accuracy"] >= 80.0  # chance is 50


def test_regression_path_learns_scores(encoder, tokenizer):
    data = TaskData(TASKS["stsb"], _count_pairs(192, 1), {"dev": _count_pairs(64, 2)}, "toy")
    settings = FinetuneSettings(epochs=6.0, batch_size=16, learning_rate=2e-3, max_seq_len=32)
    result = finetune_and_score(encoder, tokenizer, data, settings)
    assert list(result.metrics) == ["pearson", "spearman"]
    assert result.metrics["pearson"] > 50.0
    assert result.score == pytest.approx(sum(result.metrics.values()) / 2)


def test_mnli_like_two_dev_splits_and_fractional_epochs(encoder, tokenizer):
    pairs = [Example(e.text_a, e.text_b, int(e.label) % 3) for e in _count_pairs(30, 3)]
    data = TaskData(
        TASKS["mnli"],
        tuple(pairs[:20]),
        {"dev_matched": tuple(pairs[20:26]), "dev_mismatched": tuple(pairs[26:])},
        "toy",
    )
    settings = FinetuneSettings(epochs=0.5, batch_size=8, max_seq_len=32)
    results = finetune_tasks(encoder, tokenizer, [data, _sst2_like(16, 8)], settings, progress=True)
    assert [r.task for r in results] == ["mnli", "sst2"]
    assert list(results[0].metrics) == ["accuracy_matched", "accuracy_mismatched"]
    assert results[0].num_eval == 10
    assert all(0.0 <= value <= 100.0 for value in results[0].metrics.values())


def test_empty_splits_and_bad_settings_raise(encoder, tokenizer):
    dev = {"dev": _good_examples(4, 2)}
    with pytest.raises(TaskError, match="no training examples"):
        finetune_and_score(encoder, tokenizer, TaskData(TASKS["sst2"], (), dev, "toy"), FAST)
    with pytest.raises(TaskError, match="empty dev split"):
        finetune_and_score(encoder, tokenizer, TaskData(TASKS["sst2"], _good_examples(4, 1), {"dev": ()}, "toy"), FAST)
    with pytest.raises(TaskError, match="batch_size=0"):
        FinetuneSettings(batch_size=0)
    with pytest.raises(TaskError, match="learning_rate='fast'"):
        FinetuneSettings(learning_rate="fast")
    with pytest.raises(TaskError, match="max_position_embeddings=64"):
        finetune_and_score(encoder, tokenizer, _sst2_like(), FinetuneSettings(max_seq_len=128))
