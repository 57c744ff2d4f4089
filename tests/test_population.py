"""Lockstep population distillation (layermap.distill.population) against sequential distill() runs."""

import numpy as np
import pytest
import torch

from layermap.config import ConfigError, DistillSettings
from layermap.distill import population as pop
from layermap.distill.corpus import load_segments
from layermap.distill.loop import DistillError, LiveTeacher, distill
from layermap.distill.models import StudentSpec, build_student, load_teacher
from layermap.distill.teacher_cache import build_teacher_cache
from layermap.mapping import LayerMapping

SPEC = StudentSpec(2, 16, 2, 32)          # 16 wide against the 32-wide teacher: every student has a projection
SETTINGS = DistillSettings(max_steps=24, batch_size=8, learning_rate=3e-3)
GENOMES = [(2, 4), (0, 3), (1, 1)]         # (0, 3): a zero gene


@pytest.fixture(scope="module")
def setup(tiny_teacher_dir, tiny_corpus, tmp_path_factory):
    teacher = load_teacher(str(tiny_teacher_dir))
    assert teacher.model.config.hidden_dropout_prob > 0       # the equality below holds with dropout on
    segments = load_segments(str(tiny_corpus), teacher.tokenizer, seq_len=32, max_segments=64,
                             cache_dir=str(tmp_path_factory.mktemp("cache")), progress=False)
    return teacher, segments


@pytest.fixture(scope="module")
def sequential(setup):
    teacher, segments = setup
    runs = {}
    for genes in GENOMES:
        student = build_student(teacher.model.config, SPEC, seed=0)
        loss_fn, stats = distill(student, LiveTeacher(teacher.model), LayerMapping(genes, 4), segments, SETTINGS,
                                 teacher_width=32)
        runs[genes] = (student, loss_fn, stats)
    return runs


def _population(setup, genomes, source=None, settings=SETTINGS, **kw):
    teacher, segments = setup
    students = [build_student(teacher.model.config, SPEC, seed=0) for _ in genomes]
    return pop.distill_population(students, source or LiveTeacher(teacher.model), [LayerMapping(g, 4) for g in genomes],
                                  segments, settings, teacher_width=32, **kw)


def _assert_same_run(result, run):
    student, loss_fn, stats = run
    assert result.ok and len(result.stats.losses) == len(stats.losses) == SETTINGS.max_steps
    np.testing.assert_allclose(result.stats.losses, stats.losses, rtol=1e-4)
    # rtol 1e-4 per tensor; the atol floor is for tensors whose gradient is zero in exact arithmetic (the key bias of a
    # layer without an attention loss: softmax ignores it), which hold float noise of ~1e-7 in either run
    for (name, p), q in zip(result.student.named_parameters(), student.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-6, msg=name)
    torch.testing.assert_close(result.loss_fn.projection.weight, loss_fn.projection.weight, rtol=1e-4, atol=1e-6)


def test_lockstep_equals_sequential_runs(setup, sequential):
    results = _population(setup, GENOMES, sync_every=7)       # 24 steps: chunks of 7, 7, 7 and 3
    for genes, result in zip(GENOMES, results):
        _assert_same_run(result, sequential[genes])
    assert results[0].stats.losses != results[1].stats.losses
    assert not results[0].student.training                    # as distill(): handed back in eval mode


def test_one_teacher_pass_serves_every_student(setup, sequential, tmp_path):
    teacher, segments = setup
    cache = build_teacher_cache(teacher, segments, cache_dir=str(tmp_path), progress=False)
    calls = []

    class Counting:
        def outputs(self, indices, ids, mask, hidden_layers, att_layers):
            calls.append((tuple(hidden_layers), tuple(att_layers)))
            return cache.outputs(indices, ids, mask, hidden_layers, att_layers)

    results = _population(setup, GENOMES, source=Counting())
    assert len(calls) == SETTINGS.max_steps                   # one read per step for all three students
    assert calls[0] == ((0, 1, 2, 3, 4), (1, 2, 3, 4))        # the union of the layers the mappings read
    for genes, result in zip(GENOMES, results):               # the float16 cache is close to the live teacher
        assert result.ok
        np.testing.assert_allclose(result.stats.losses, sequential[genes][2].losses, rtol=2e-2)


def test_a_nan_student_fails_alone(setup, sequential):
    teacher, segments = setup
    students = [build_student(teacher.model.config, SPEC, seed=0) for _ in GENOMES]
    with torch.no_grad():
        students[1].encoder.layer[1].output.dense.weight[0, 0] = float("nan")
    results = pop.distill_population(students, LiveTeacher(teacher.model), [LayerMapping(g, 4) for g in GENOMES],
                                     segments, SETTINGS, teacher_width=32, sync_every=5)
    assert not results[1].ok and isinstance(results[1].error, DistillError)
    assert "at step 1 of 24" in str(results[1].error) and results[1].stats.losses == []
    _assert_same_run(results[0], sequential[GENOMES[0]])
    _assert_same_run(results[2], sequential[GENOMES[2]])


def test_clipping_is_per_student():
    torch.manual_seed(0)
    a, b = torch.randn(3, 4, 5), torch.randn(3, 7)
    a.grad, b.grad = torch.randn(3, 4, 5), torch.randn(3, 7)
    a.grad[1] *= 1000
    b.grad[1] *= 1000
    expected = []
    for i in range(3):                                         # what clip_grad_norm_ does to each student alone
        ga, gb = a.grad[i].clone().requires_grad_(), b.grad[i].clone()
        pa, pb = torch.zeros_like(ga, requires_grad=True), torch.zeros_like(gb, requires_grad=True)
        pa.grad, pb.grad = ga.detach().clone(), gb
        torch.nn.utils.clip_grad_norm_([pa, pb], 5.0)
        expected.append((pa.grad, pb.grad))
    norms = pop.clip_per_student([a, b], 5.0)
    assert norms[1] > 1000 and norms[0] < 50
    for i in range(3):
        torch.testing.assert_close(a.grad[i], expected[i][0])
        torch.testing.assert_close(b.grad[i], expected[i][1])
    assert float(torch.cat([a.grad[1].flatten(), b.grad[1]]).norm()) == pytest.approx(5.0, rel=1e-5)


def test_a_student_with_huge_gradients_leaves_the_others_alone(setup, sequential, monkeypatch):
    original = pop.clip_per_student

    def scaled(params, max_norm):                             # student 1's gradients x 1e6 before clipping
        for p in params:
            if p.grad is not None:
                p.grad[1] *= 1e6
        return original(params, max_norm)

    monkeypatch.setattr(pop, "clip_per_student", scaled)
    results = _population(setup, GENOMES)
    _assert_same_run(results[0], sequential[GENOMES[0]])      # one norm over the stack would shrink these 1e6-fold
    _assert_same_run(results[2], sequential[GENOMES[2]])
    assert results[1].ok


def test_zero_genes_and_embedding_only(setup):
    teacher, segments = setup
    settings = DistillSettings(max_steps=6, batch_size=8, learning_rate=3e-3)
    results = _population(setup, [(0, 0), (4, 0)], settings=settings)
    for genes, result in zip([(0, 0), (4, 0)], results):
        student = build_student(teacher.model.config, SPEC, seed=0)
        _, stats = distill(student, LiveTeacher(teacher.model), LayerMapping(genes, 4), segments, settings, teacher_width=32)
        np.testing.assert_allclose(result.stats.losses, stats.losses, rtol=1e-4)
    plan = pop._Plan.build([LayerMapping(g, 4) for g in [(0, 0), (4, 0)]], 2, torch.device("cpu"))
    assert plan.teacher_att == (4,) and plan.student_att == (1,)
    assert plan.active.tolist() == [[False, False], [True, False]]


def test_bad_arguments(setup):
    with pytest.raises(ValueError, match="one mapping per student"):
        _population(setup, [])
    with pytest.raises(ConfigError, match="tf32"):
        _population(setup, [(1, 2)], settings=DistillSettings(max_steps=2, batch_size=8, precision="tf32"))


@pytest.mark.skipif(not __import__("layermap.distill.precision", fromlist=["x"]).bf16_supported("cpu"),
                    reason="this CPU has no bf16 support")
def test_bf16_population_agrees_with_sequential_bf16_to_bf16_rounding(setup):
    teacher, segments = setup
    settings = DistillSettings(max_steps=6, batch_size=8, learning_rate=3e-3, precision="bf16")
    results = _population(setup, [(2, 4), (0, 3)], settings=settings)
    student = build_student(teacher.model.config, SPEC, seed=0)
    _, stats = distill(student, LiveTeacher(teacher.model), LayerMapping((2, 4), 4), segments, settings, teacher_width=32)
    assert all(r.ok for r in results)
    np.testing.assert_allclose(results[0].stats.losses, stats.losses, rtol=2e-2)   # batched vs unbatched bf16 matmuls
    fp32 = _population(setup, [(2, 4)], settings=DistillSettings(max_steps=6, batch_size=8, learning_rate=3e-3))
    assert results[0].stats.losses != fp32[0].stats.losses                         # autocast did run in bf16
