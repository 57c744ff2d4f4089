"""proxy_tasks.holdout: a scoring split and a selection split carved from the training file, kept out of fine-tuning;
mean pooling and held-out scores in proxy_tasks.finetune."""

from __future__ import annotations

import dataclasses
import random

import pytest
import torch
import transformers

from proxy_tasks import TASKS, Example, FinetuneSettings, TaskData, TaskError, finetune_and_score
from proxy_tasks.holdout import SCORE, SELECT, hold_out, words

WORDS = "the a movie film plot actor scene story music was is very quite rather long short".split()
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "good", "bad", *WORDS]


def _sentences(n: int, seed: int, lengths=(3, 14)) -> tuple[Example, ...]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        toks = [rng.choice(WORDS) for _ in range(rng.randint(*lengths))]
        toks.insert(rng.randrange(len(toks) + 1), "good" if i % 2 else "bad")
        out.append(Example(" ".join(toks), None, i % 2))
    return tuple(out)


def _data(n_train=400, n_dev=40) -> TaskData:
    return TaskData(TASKS["sst2"], _sentences(n_train, 1), {"dev": _sentences(n_dev, 2, (8, 14))}, "toy")


def test_splits_are_disjoint_dev_like_and_of_the_asked_sizes():
    data = _data()
    out = hold_out(data, score=60, select=20, max_train=100)
    assert len(out.held_out[SCORE]) == 60 and len(out.held_out[SELECT]) == 20 and len(out.train) == 100
    ids = {id(e) for e in out.train}
    assert not ids & {id(e) for e in out.held_out[SCORE]} and not ids & {id(e) for e in out.held_out[SELECT]}
    assert not {id(e) for e in out.held_out[SCORE]} & {id(e) for e in out.held_out[SELECT]}
    floor = sorted(words(e) for e in data.dev["dev"])[len(data.dev["dev"]) // 10]
    assert min(words(e) for e in out.held_out[SCORE] + out.held_out[SELECT]) >= floor - 1
    assert out.dev == data.dev


def test_the_held_out_splits_do_not_move_with_max_train_or_its_seed():
    data = _data()
    a = hold_out(data, score=60, select=20, max_train=100, seed=0)
    b = hold_out(data, score=60, select=20, max_train=150, seed=3)
    assert a.held_out == b.held_out and a.train != b.train


def test_nothing_held_out_gives_the_data_back():
    data = _data()
    assert hold_out(data, score=0, select=0, max_train=None) is data


def test_a_training_phrase_that_leaks_into_a_held_out_text_is_dropped():
    # SST-2 style: sentences and their sub-phrases, with the labels they share
    held = Example("the plot was very good and the music was long", None, 1)
    containing = Example("i think the plot was very good and the music was long indeed", None, 1)
    big_part = Example("plot was very good and the music", None, 1)      # 7 of the held-out text's 11 words
    small_part = Example("very good", None, 1)                            # 2 words: no leak
    others = _sentences(200, 5, (9, 14))
    data = TaskData(TASKS["sst2"], (held, containing, big_part, small_part) + others,
                    {"dev": (held,) * 10}, "toy")
    out = hold_out(data, score=150, select=0, max_train=None)
    for h in out.held_out[SCORE]:                      # whatever was held out, no training text contains it
        assert not any(" ".join(h.text_a.split()) in " ".join(t.text_a.split()) for t in out.train)


def test_leak_rule_on_a_chosen_held_out_example():
    from proxy_tasks.holdout import _leaks

    held = Example("the plot was very good and the music was long", None, 1)
    train = (Example("i think the plot was very good and the music was long indeed", None, 1),
             Example("plot was very good and the music", None, 1),
             Example("very good", None, 1),
             Example("the music was long", None, 0))
    assert _leaks(train, [held], range(4), pair=False) == {0, 1}
    pairs = (Example("a b", "c d", 1), Example("a b", "c e", 0))
    assert _leaks(pairs, [Example("a  b", "c d ", 1)], range(2), pair=True) == {0}


@pytest.mark.parametrize("kw, needle", [(dict(score=390, select=0, max_train=None), "cannot hold out"),
                                         (dict(score=200, select=20, max_train=200), "fewer than the 200"),
                                         (dict(score=-1, select=0, max_train=None), "whole number")])
def test_a_training_file_that_cannot_spare_the_splits_is_one_sentence(kw, needle):
    with pytest.raises(TaskError, match=needle) as err:
        hold_out(_data(), **kw)
    assert "\n" not in str(err.value)


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    vocab_file = tmp_path_factory.mktemp("vocab") / "vocab.txt"
    vocab_file.write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
    return transformers.BertTokenizerFast(vocab=str(vocab_file))


@pytest.fixture(scope="module")
def encoder():
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=len(VOCAB), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                     intermediate_size=64, max_position_embeddings=64)
    return transformers.BertModel(config).eval()


def test_held_out_splits_are_scored_and_kept_out_of_training(encoder, tokenizer):
    torch.set_num_threads(1)
    data = hold_out(_data(), score=80, select=40, max_train=160)
    settings = FinetuneSettings(epochs=8.0, batch_size=16, learning_rate=2e-3, max_seq_len=32, pooling="mean")
    result = finetune_and_score(encoder, tokenizer, data, settings, keep_outputs=True)
    assert result.num_train == 160
    assert set(result.held_out) == {SCORE, SELECT} and list(result.held_out[SCORE]) == ["accuracy"]
    assert result.held_out_score(SCORE) >= 75.0          # the toy task is learnable: chance is 50
    assert result.outputs[SCORE].shape == (80, 2) and result.held_out_score("nothing") is None


def test_mean_pooling_differs_from_cls_and_rejects_other_names(encoder, tokenizer):
    data = _data(120, 40)
    base = FinetuneSettings(epochs=1.0, batch_size=16, learning_rate=2e-3, max_seq_len=32)
    cls = finetune_and_score(encoder, tokenizer, data, base, keep_outputs=True)
    mean = finetune_and_score(encoder, tokenizer, data, dataclasses.replace(base, pooling="mean"), keep_outputs=True)
    assert not (cls.outputs["dev"] == mean.outputs["dev"]).all()
    with pytest.raises(TaskError, match="pooling"):
        FinetuneSettings(pooling="max")
