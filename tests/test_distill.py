import numpy as np
import pytest
import torch

from layermap.config import DistillSettings
from layermap.distill.corpus import load_segments
from layermap.distill.loop import DistillError, LiveTeacher, batch_order, distill, forward_layers
from layermap.mapping import LayerMapping, MappingError
from layermap.distill.models import StudentSpec, build_student, load_teacher
from layermap.distill.teacher_cache import build_teacher_cache


@pytest.fixture(scope="module")
def setup(tiny_teacher_dir, tiny_corpus, tmp_path_factory):
    teacher = load_teacher(str(tiny_teacher_dir))
    cache = str(tmp_path_factory.mktemp("cache"))
    segments = load_segments(str(tiny_corpus), teacher.tokenizer, seq_len=32, max_segments=64, cache_dir=cache,
                             progress=False)
    return teacher, segments, cache


def _run(setup, genes=(2, 4), steps=30, source=None, **kw):
    teacher, segments, _ = setup
    student = build_student(teacher.model.config, StudentSpec(2, 16, 2, 32), seed=0)
    settings = DistillSettings(max_steps=steps, batch_size=8, learning_rate=3e-3, **kw.pop("settings", {}))
    loss_fn, stats = distill(student, source or LiveTeacher(teacher.model), LayerMapping(genes, 4), segments, settings,
                             teacher_width=32, **kw)
    return student, stats


def test_loss_falls(setup):
    _, stats = _run(setup)
    assert len(stats.losses) == 30
    assert np.mean(stats.losses[-5:]) < 0.7 * np.mean(stats.losses[:5])
    assert 0 < stats.teacher_seconds < stats.seconds


def test_same_seed_same_losses_and_weights(setup):
    a, sa = _run(setup, steps=5)
    b, sb = _run(setup, steps=5)
    assert sa.losses == sb.losses
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_different_mappings_train_differently(setup):
    _, a = _run(setup, genes=(1, 2), steps=5)
    _, b = _run(setup, genes=(0, 4), steps=5)
    assert a.losses != b.losses


def test_batch_order_covers_each_epoch():
    order = batch_order(10, 3, 7, seed=0)
    assert order.shape == (7, 3)
    assert len(set(order[:3].ravel())) == 9                 # one epoch = 3 full batches, no repeats
    assert np.array_equal(order, batch_order(10, 3, 7, seed=0))


class _NaNTeacher:
    def __init__(self, inner, bad_step):
        self.inner, self.bad_step, self.calls = inner, bad_step, 0

    def outputs(self, *args):
        self.calls += 1
        out = self.inner.outputs(*args)
        if self.calls == self.bad_step:
            out.hidden[0].fill_(float("nan"))
        return out


def test_nan_loss_names_the_step(setup):
    teacher = setup[0]
    with pytest.raises(DistillError, match="at step 3 of 10"):
        _run(setup, steps=10, source=_NaNTeacher(LiveTeacher(teacher.model), 3))


def test_mapping_without_any_loss_is_rejected(setup):
    with pytest.raises(MappingError, match="no loss at all"):
        teacher, segments, _ = setup
        student = build_student(teacher.model.config, StudentSpec(2, 16, 2, 32))
        distill(student, LiveTeacher(teacher.model), LayerMapping((0, 0), 4, embedding=False), segments,
                DistillSettings(max_steps=1), teacher_width=32)


class _Crash(Exception):
    pass


class _CrashingTeacher(_NaNTeacher):
    def outputs(self, *args):
        self.calls += 1
        if self.calls == self.bad_step:
            raise _Crash()
        return self.inner.outputs(*args)


def test_checkpoint_resume_matches_uninterrupted_run(setup, tmp_path):
    teacher = setup[0]
    full_student, full = _run(setup, steps=10)
    ckpt = tmp_path / "ckpt"
    with pytest.raises(_Crash):
        _run(setup, steps=10, source=_CrashingTeacher(LiveTeacher(teacher.model), 7), checkpoint_dir=ckpt,
             settings={"checkpoint_every": 4})
    assert (ckpt / "checkpoint.pt").is_file()
    resumed_student, resumed = _run(setup, steps=10, checkpoint_dir=ckpt, settings={"checkpoint_every": 4})
    np.testing.assert_allclose(resumed.losses, full.losses, rtol=1e-5)
    for p, q in zip(full_student.parameters(), resumed_student.parameters()):
        torch.testing.assert_close(p, q)


def test_cached_teacher_matches_live_teacher(setup):
    teacher, segments, cache = setup
    cached = build_teacher_cache(teacher, segments, cache_dir=cache, progress=False)
    idx = np.array([3, 1, 7])
    ids, mask = segments.batch(idx)
    live = forward_layers(teacher.model, ids, mask, (0, 2, 4), (2, 4))
    got = cached.outputs(idx, ids, mask, (0, 2, 4), (2, 4))
    for k in (0, 2, 4):
        torch.testing.assert_close(got.hidden[k], live.hidden[k], atol=2e-2, rtol=1e-2)
    for k in (2, 4):
        torch.testing.assert_close(got.scores[k], live.scores[k], atol=2e-2, rtol=1e-2)
    _, a = _run(setup, steps=8)
    _, b = _run(setup, steps=8, source=cached)
    np.testing.assert_allclose(a.losses, b.losses, rtol=2e-2)


def test_teacher_cache_is_built_once(setup, monkeypatch):
    teacher, segments, cache = setup
    first = build_teacher_cache(teacher, segments, cache_dir=cache, progress=False)

    def boom(*a, **k):
        raise AssertionError("teacher ran again")
    monkeypatch.setattr(teacher.model, "forward", boom)
    second = build_teacher_cache(teacher, segments, cache_dir=cache, progress=False)
    assert second.folder == first.folder


def test_a_foreign_checkpoint_is_refused_not_resumed(setup, tmp_path):
    """Crash a 2-4 distillation after a checkpoint, rerun into the same folder with 1-3: refused (issue 9.1)."""
    teacher = setup[0]
    ckpt = tmp_path / "ckpt"
    with pytest.raises(_Crash):
        _run(setup, steps=10, source=_CrashingTeacher(LiveTeacher(teacher.model), 7), checkpoint_dir=ckpt,
             settings={"checkpoint_every": 4}, run_digest="run-a")
    with pytest.raises(DistillError, match="belongs to another distillation"):
        _run(setup, genes=(1, 3), steps=10, checkpoint_dir=ckpt, settings={"checkpoint_every": 4}, run_digest="run-a")
    with pytest.raises(DistillError, match="belongs to another distillation"):     # another seed
        _run(setup, steps=10, checkpoint_dir=ckpt, settings={"checkpoint_every": 4, "seed": 1}, run_digest="run-a")
    with pytest.raises(DistillError, match="belongs to another distillation"):     # another teacher / corpus (caller's digest)
        _run(setup, steps=10, checkpoint_dir=ckpt, settings={"checkpoint_every": 4}, run_digest="run-b")
    # checkpoint_every does not shape the run: the same distillation resumes
    _, stats = _run(setup, steps=10, checkpoint_dir=ckpt, settings={"checkpoint_every": 2}, run_digest="run-a")
    assert len(stats.losses) == 10


def test_checkpoint_keeps_the_cuda_rng_state(setup, tmp_path, monkeypatch):
    teacher = setup[0]
    fake = [torch.ByteTensor([1, 2, 3])]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: fake)
    with pytest.raises(_Crash):
        _run(setup, steps=10, source=_CrashingTeacher(LiveTeacher(teacher.model), 7), checkpoint_dir=tmp_path,
             settings={"checkpoint_every": 4})
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    assert torch.equal(state["cuda_rng"][0], fake[0])
    restored = []
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", restored.append)
    _run(setup, steps=10, checkpoint_dir=tmp_path, settings={"checkpoint_every": 4})
    assert restored and torch.equal(restored[0][0], fake[0])


def test_the_resume_line_is_logged_and_the_cli_handler_prints_it(setup, tmp_path, caplog, capsys):
    """Library code logs (``layermap.distill.loop``) instead of printing; a notebook sees it through logging
    (caplog here), the command line through its stderr handler (``layermap.logs.console``)."""
    import logging

    from layermap.logs import console

    teacher = setup[0]
    for ckpt in (tmp_path / "a", tmp_path / "b"):
        with pytest.raises(_Crash):
            _run(setup, steps=10, source=_CrashingTeacher(LiveTeacher(teacher.model), 7), checkpoint_dir=ckpt,
                 settings={"checkpoint_every": 4})
    with caplog.at_level(logging.INFO, logger="layermap"):
        _run(setup, steps=10, checkpoint_dir=tmp_path / "a", settings={"checkpoint_every": 4}, progress=True)
    assert [r.name for r in caplog.records if "resuming" in r.getMessage()] == ["layermap.distill.loop"]
    assert "resuming distilling from the checkpoint at step 4 of 10" in caplog.text
    capsys.readouterr()
    with console():
        _run(setup, steps=10, checkpoint_dir=tmp_path / "b", settings={"checkpoint_every": 4}, progress=True)
    assert "resuming distilling from the checkpoint at step 4 of 10" in capsys.readouterr().err
    assert not [h for h in logging.getLogger("layermap").handlers if type(h).__name__ == "StderrHandler"]
