import numpy as np
import pytest
from transformers import AutoTokenizer

from layermap import corpus as corpus_mod
from layermap.corpus import CorpusError, load_segments, slice_segments, tokenize_corpus


@pytest.fixture
def tok(tiny_teacher_dir):
    return AutoTokenizer.from_pretrained(str(tiny_teacher_dir))


def test_segments_are_cls_body_sep_padded(tok, tiny_corpus, tmp_path):
    seg = tokenize_corpus(str(tiny_corpus), tok, 32, cache_dir=str(tmp_path), progress=False)
    assert seg.input_ids.shape[1] == 32 and len(seg) > 50
    for ids, n in zip(seg.input_ids, seg.lengths):
        assert ids[0] == tok.cls_token_id and ids[n - 1] == tok.sep_token_id
        assert 8 <= n <= 32 and not ids[n:].any()
    ids, mask = seg.batch(np.array([0, 1]))
    assert ids.shape == mask.shape == (2, 32) and mask.sum(1).tolist() == seg.lengths[:2].tolist()


def test_segments_do_not_cross_documents(tok, tmp_path):
    path = tmp_path / "c.txt"
    path.write_text("the movie " * 20 + "\n\n" + "king city " * 20 + "\n")
    seg = tokenize_corpus(str(path), tok, 16, cache_dir=str(tmp_path), progress=False)
    decoded = [tok.decode(ids[1:n - 1]) for ids, n in zip(seg.input_ids, seg.lengths)]
    assert all(("movie" in d) != ("king" in d) for d in decoded)


def test_second_run_reads_the_cache(tok, tiny_corpus, tmp_path, monkeypatch):
    first = tokenize_corpus(str(tiny_corpus), tok, 32, cache_dir=str(tmp_path), progress=False)
    monkeypatch.setattr(corpus_mod, "_flush", lambda *a, **k: pytest.fail("tokenised again"))
    second = tokenize_corpus(str(tiny_corpus), tok, 32, cache_dir=str(tmp_path), progress=False)
    assert np.array_equal(first.input_ids, second.input_ids) and first.identity == second.identity
    assert list((tmp_path / "corpus").glob("*.npz"))


def test_slices_are_deterministic(tok, tiny_corpus, tmp_path):
    full = tokenize_corpus(str(tiny_corpus), tok, 32, cache_dir=str(tmp_path), progress=False)
    a = slice_segments(full, count=20, seed=1)
    b = slice_segments(full, count=20, seed=1)
    c = slice_segments(full, count=20, seed=2)
    assert len(a) == 20 and np.array_equal(a.input_ids, b.input_ids) and a.identity == b.identity
    assert not np.array_equal(a.input_ids, c.input_ids) and a.identity != c.identity
    assert len(slice_segments(full, fraction=0.5)) == round(len(full) * 0.5)


def test_max_documents_reads_a_prefix(tok, tiny_corpus, tmp_path):
    few = load_segments(str(tiny_corpus), tok, seq_len=32, max_documents=5, cache_dir=str(tmp_path), progress=False)
    all_ = load_segments(str(tiny_corpus), tok, seq_len=32, cache_dir=str(tmp_path), progress=False)
    assert 0 < len(few) < len(all_)
    assert np.array_equal(few.input_ids, all_.input_ids[:len(few)])


def test_missing_and_empty_corpus(tok, tmp_path):
    with pytest.raises(CorpusError, match="does not exist"):
        tokenize_corpus(str(tmp_path / "missing.txt"), tok, 32, cache_dir=str(tmp_path), progress=False)
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    with pytest.raises(CorpusError, match="no segments"):
        tokenize_corpus(str(empty), tok, 32, cache_dir=str(tmp_path), progress=False)


def test_datasets_name_is_loaded_with_datasets(tok, tmp_path, monkeypatch):
    import datasets

    rows = {"text": ["the movie was good " * 5, "", "the king of the city " * 5, ""]}
    calls = []

    def fake_load(name, config=None, split=None):
        calls.append((name, config, split))
        return datasets.Dataset.from_dict(rows)
    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    seg = tokenize_corpus("wikitext:wikitext-103-raw-v1", tok, 16, cache_dir=str(tmp_path), progress=False)
    assert calls == [("wikitext", "wikitext-103-raw-v1", "train")] and len(seg) >= 2
