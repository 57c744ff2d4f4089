import logging

import numpy as np
import pytest
from transformers import AutoTokenizer

from layermap.distill import corpus as corpus_mod
from proxy_tasks import hub
from layermap.distill.corpus import CorpusError, corpus_identity, load_segments, slice_segments, tokenize_corpus


def _warnings(caplog) -> list[str]:
    """The warnings layermap logged since the last call (library code logs; it does not print)."""
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and r.name.startswith("layermap")]
    caplog.clear()
    return lines


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
    with pytest.raises(CorpusError, match="is empty"):
        tokenize_corpus(str(empty), tok, 32, cache_dir=str(tmp_path), progress=False)
    short = tmp_path / "short.txt"
    short.write_text("the movie .\n")
    with pytest.raises(CorpusError, match="no segments"):
        tokenize_corpus(str(short), tok, 32, cache_dir=str(tmp_path), progress=False)


def test_datasets_name_is_loaded_with_datasets(tok, tmp_path, monkeypatch):
    import datasets

    rows = {"text": ["the movie was good " * 5, "", "the king of the city " * 5, ""]}
    calls = []

    def fake_load(name, config=None, split=None):
        calls.append((name, config, split))
        return datasets.Dataset.from_dict(rows)
    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    monkeypatch.setattr(hub, "_resolve_online", lambda *args: None)   # no Hub: the HF cache names the commit
    refs = tmp_path / "hub" / "datasets--wikitext" / "refs"
    refs.mkdir(parents=True)
    (refs / "main").write_text("cd" * 20)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    seg = tokenize_corpus("wikitext:wikitext-103-raw-v1", tok, 16, cache_dir=str(tmp_path), progress=False)
    assert calls == [("wikitext", "wikitext-103-raw-v1", "train")] and len(seg) >= 2
    assert corpus_identity("wikitext:wikitext-103-raw-v1") == "datasets:wikitext:wikitext-103-raw-v1@" + "cd" * 20
    (refs / "main").write_text("ef" * 20)                  # the dataset moved on: its tokenised cache is not reused
    monkeypatch.setattr(hub, "_REVISIONS", {})
    tokenize_corpus("wikitext:wikitext-103-raw-v1", tok, 16, cache_dir=str(tmp_path), progress=False)
    assert len(calls) == 2


def test_identity_is_a_hash_of_the_token_ids(tok, tiny_corpus, tmp_path, monkeypatch):
    """Issue 9.4: the same sampling parameters over other token ids must give another identity."""
    from layermap.distill.corpus import content_identity

    full = tokenize_corpus(str(tiny_corpus), tok, 32, cache_dir=str(tmp_path), progress=False)
    a = slice_segments(full, count=20, seed=1)
    assert a.identity == content_identity(a.input_ids, a.lengths)
    changed = corpus_mod.Segments(full.input_ids.copy(), full.lengths, identity=full.identity)
    changed.input_ids[:, 1] += 1                    # e.g. another tokenisation, same parameters
    b = slice_segments(changed, count=20, seed=1)
    assert b.identity != a.identity
    # numpy's random stream changes: same parameters, other rows -> another identity
    monkeypatch.setattr(np.random, "default_rng", lambda seed: np.random.Generator(np.random.PCG64(seed + 99)))
    c = slice_segments(full, count=20, seed=1)
    assert not np.array_equal(c.input_ids, a.input_ids) and c.identity != a.identity


def test_undecodable_bytes_are_counted_in_a_warning(tok, tmp_path, caplog):
    latin = tmp_path / "latin1.txt"
    latin.write_bytes(("caf\xe9 the movie was good and the film was great " * 8 + "\n\n").encode("latin-1") * 3)
    seg = tokenize_corpus(str(latin), tok, 16, cache_dir=str(tmp_path), progress=False)
    assert len(seg) > 0
    err = "\n".join(_warnings(caplog))
    assert "24 bytes that are not UTF-8" in err and len(err.strip().splitlines()) == 1


def test_unreadable_corpus_is_one_sentence(tok, tmp_path, monkeypatch):
    import builtins

    path = tmp_path / "c.txt"
    path.write_text("the movie was good . " * 50 + "\n")
    real_open = builtins.open

    def fake_open(file, *a, **k):
        if str(file) == str(path):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *a, **k)
    monkeypatch.setattr(builtins, "open", fake_open)
    with pytest.raises(CorpusError, match="cannot be read \\(Permission denied\\)"):
        tokenize_corpus(str(path), tok, 16, cache_dir=str(tmp_path), progress=False)
