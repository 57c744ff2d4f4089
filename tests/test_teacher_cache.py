"""The teacher cache: keyed by the slice's token ids, verified on open, stale builds removed, fp16 overflow caught."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from layermap.distill.corpus import Segments, content_identity, load_segments
from layermap.distill.models import load_teacher
from layermap.distill.teacher_cache import TeacherCacheError, build_teacher_cache, remove_stale_builds


@pytest.fixture(scope="module")
def teacher(tiny_teacher_dir):
    return load_teacher(str(tiny_teacher_dir))


@pytest.fixture()
def segments(teacher, tiny_corpus, tmp_path):
    return load_segments(str(tiny_corpus), teacher.tokenizer, seq_len=16, max_segments=12, cache_dir=str(tmp_path),
                         progress=False)


def test_other_token_ids_under_the_same_parameters_get_another_cache(teacher, segments, tmp_path):
    first = build_teacher_cache(teacher, segments, cache_dir=str(tmp_path), progress=False)
    ids = segments.input_ids.copy()
    ids[:, 1] = ids[::-1, 1]                          # another tokenisation of the "same" slice
    other = Segments(ids, segments.lengths, identity=content_identity(ids, segments.lengths))
    second = build_teacher_cache(teacher, other, cache_dir=str(tmp_path), progress=False)
    assert second.folder != first.folder
    meta = json.loads((first.folder / "meta.json").read_text())
    assert meta["segments"] == segments.identity and set(meta["files"]) == {"hidden.npy", "q.npy", "k.npy"}


def test_a_damaged_or_foreign_cache_is_refused_on_open(teacher, segments, tmp_path):
    cached = build_teacher_cache(teacher, segments, cache_dir=str(tmp_path), progress=False)
    hidden = np.load(cached.folder / "hidden.npy", mmap_mode="r+")
    hidden[0, 0, 0, 0] = np.inf                      # an inf written into the cache
    hidden.flush()
    del hidden, cached
    with pytest.raises(TeacherCacheError, match="is damaged"):
        build_teacher_cache(teacher, segments, cache_dir=str(tmp_path), progress=False)
    folder = next((tmp_path / "teacher").iterdir())
    meta = json.loads((folder / "meta.json").read_text())
    meta["segments"] = "something-else"
    (folder / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(TeacherCacheError, match="another teacher or corpus slice"):
        build_teacher_cache(teacher, segments, cache_dir=str(tmp_path), progress=False)


def test_folders_of_killed_builds_are_removed_by_the_next_build(teacher, segments, tmp_path):
    root = tmp_path / "teacher"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = root / f"abc.tmp{int(dead.stdout)}"
    stale.mkdir(parents=True)
    (stale / "hidden.npy").write_bytes(b"x" * 100)
    live = root / f"def.tmp{os.getppid()}"            # a build still running (our parent is alive)
    live.mkdir()
    build_teacher_cache(teacher, segments, cache_dir=str(tmp_path), progress=False)
    assert not stale.exists() and live.exists()
    assert remove_stale_builds(root) == []


def test_fp16_overflow_is_a_clear_error(teacher, segments, tmp_path, monkeypatch):
    real = teacher.model.forward

    def loud(*a, **k):
        out = real(*a, **k)
        out.hidden_states[-1].mul_(1e6)
        return out
    monkeypatch.setattr(teacher.model, "forward", loud)
    with pytest.raises(TeacherCacheError, match="beyond float16"):
        build_teacher_cache(teacher, segments, cache_dir=str(tmp_path), progress=False)
    assert not any((tmp_path / "teacher").iterdir())   # nothing half-written is left
