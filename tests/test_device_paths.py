"""What a GPU would find that the CPU hides: the attention kernel CUDA picks under vmap, and host reads (device syncs)
inside the step loops of distill() and the lockstep population, for the live and the cached teacher."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from layermap.config import DistillSettings
from layermap.distill import batches as batches_mod
from layermap.distill import population as pop
from layermap.distill.corpus import load_segments
from layermap.distill.loop import LiveTeacher, distill
from layermap.distill.models import StudentSpec, build_student, load_teacher
from layermap.distill.teacher_cache import build_teacher_cache
from layermap.mapping import LayerMapping

SPEC = StudentSpec(2, 16, 2, 32)
SETTINGS = DistillSettings(max_steps=7, batch_size=8, learning_rate=3e-3)
GENOMES = [(2, 4), (0, 3)]


@pytest.fixture(scope="module")
def setup(tiny_teacher_dir, tiny_corpus, tmp_path_factory):
    teacher = load_teacher(str(tiny_teacher_dir))
    assert teacher.model.config.attention_probs_dropout_prob > 0        # dropout inside attention: the crash needs it
    segments = load_segments(str(tiny_corpus), teacher.tokenizer, seq_len=32, max_segments=64,
                             cache_dir=str(tmp_path_factory.mktemp("cache")), progress=False)
    return teacher, segments


def _students(teacher, n):
    return [build_student(teacher.model.config, SPEC, seed=0) for _ in range(n)]


def _cuda_like_sdpa(real):
    """F.scaled_dot_product_attention choosing its kernel as CUDA does: a fused kernel (here the memory-efficient one,
    whose vmap rule is the one CUDA's flash/cuDNN kernels share) whenever the backend flags allow one, else math.
    The CPU has no such kernel: where its vmap rule lets a call through (or there is no vmap), math computes it."""

    def sdpa(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, **kw):
        if torch.backends.cuda.flash_sdp_enabled() or torch.backends.cuda.mem_efficient_sdp_enabled():
            try:
                return torch.ops.aten._scaled_dot_product_efficient_attention(
                    q, k, v, attn_mask, dropout_p > 0, dropout_p, is_causal, scale=scale)[0]
            except NotImplementedError:          # past the vmap rule, at the CPU backend
                pass
        return real(q, k, v, attn_mask=attn_mask, dropout_p=dropout_p, is_causal=is_causal, scale=scale, **kw)

    return sdpa


def test_the_simulated_cuda_kernel_refuses_vmap_same_randomness_with_dropout():
    """The premise of the next test: the fused kernel's batch rule is what crashed the population on CUDA."""
    q = torch.randn(3, 2, 2, 5, 8)
    sdpa = _cuda_like_sdpa(F.scaled_dot_product_attention)
    with pytest.raises(RuntimeError, match="same randomness"):
        torch.func.vmap(lambda x: sdpa(x, x, x, dropout_p=0.1), randomness="same")(q)


def test_students_train_on_the_math_kernel_under_cuda_kernel_choice(setup, monkeypatch):
    """With SDPA dispatching as on CUDA, the population (vmap, randomness="same", dropout 0.1) and distill() both run,
    and they still agree: both take the math kernel."""
    teacher, segments = setup
    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention",
                        _cuda_like_sdpa(torch.nn.functional.scaled_dot_product_attention))
    mappings = [LayerMapping(g, 4) for g in GENOMES]
    results = pop.distill_population(_students(teacher, 2), LiveTeacher(teacher.model), mappings, segments, SETTINGS,
                                     teacher_width=32)
    assert all(r.ok for r in results)
    for mapping, result in zip(mappings, results):
        student = build_student(teacher.model.config, SPEC, seed=0)
        _, stats = distill(student, LiveTeacher(teacher.model), mapping, segments, SETTINGS, teacher_width=32)
        np.testing.assert_allclose(result.stats.losses, stats.losses, rtol=1e-4)


# -- host reads ----------------------------------------------------------------------------------------------
HOST_READS = {"item", "__bool__", "__int__", "__float__", "__index__", "tolist", "cpu", "numpy", "nonzero",
              "__array__", "unique", "masked_select", "argwhere", "equal", "allclose"}


class HostReads(TorchFunctionMode):
    """Records, from the first teacher read of the first step until the last sync point, every torch call that reads
    a tensor's values on the host (a device sync on a GPU) and every device transfer layermap itself makes without
    ``non_blocking=True``; the reads inside ``read_losses`` (the sync points) are counted apart."""

    def __init__(self, syncs: int):
        super().__init__()
        self.outside: list[str] = []
        self.expected, self.syncs = syncs, 0
        self.active = self.inside = False

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if self.active and not self.inside:
            name = getattr(func, "__name__", str(func))
            if name in HOST_READS:
                self.outside.append(name)
            moves = "device" in kwargs or any(isinstance(a, (torch.device, str)) for a in args[1:])
            if name in ("to", "copy_") and moves and not kwargs.get("non_blocking") and _from_layermap():
                self.outside.append(f"blocking {name}")
        return func(*args, **kwargs)


def _from_layermap() -> bool:
    import inspect

    frame = inspect.currentframe().f_back.f_back
    return "/layermap/" in frame.f_code.co_filename.replace("\\", "/")


def _counted(monkeypatch, source, syncs: int):
    """A HostReads mode and the teacher source that starts it; ``read_losses`` patched to count the sync points."""
    mode = HostReads(syncs)
    real = batches_mod.read_losses

    def read(losses):
        mode.inside, mode.syncs = True, mode.syncs + 1
        try:
            return real(losses)
        finally:
            mode.inside = False
            mode.active = mode.syncs < mode.expected

    class Starting:
        def outputs(self, *args):
            mode.active = True
            return source.outputs(*args)

    for module in ("layermap.distill.loop", "layermap.distill.population"):
        monkeypatch.setattr(f"{module}.read_losses", read)
    return mode, Starting()


@pytest.mark.parametrize("cached", [False, True], ids=["live", "cached"])
def test_no_host_read_between_sync_points(setup, tmp_path, monkeypatch, cached):
    teacher, segments = setup
    assert (segments.lengths < segments.seq_len).any()                 # padded batches too: they get a 4D mask
    source = (build_teacher_cache(teacher, segments, cache_dir=str(tmp_path), progress=False) if cached
              else LiveTeacher(teacher.model))
    mappings = [LayerMapping(g, 4) for g in GENOMES]
    students = _students(teacher, 3)
    settings = DistillSettings(max_steps=7, batch_size=8, learning_rate=3e-3, max_grad_norm=1.0)
    mode, counted = _counted(monkeypatch, source, 3)                   # steps 1-3, 4-6, 7
    with mode:
        pop.distill_population(students[:2], counted, mappings, segments, settings, teacher_width=32, sync_every=3)
    assert mode.outside == [] and mode.syncs == 3
    mode, counted = _counted(monkeypatch, source, 3)
    with mode:
        distill(students[2], counted, mappings[0], segments, settings, teacher_width=32, sync_every=3)
    assert mode.outside == [] and mode.syncs == 3


def test_the_counter_sees_a_host_read(setup, monkeypatch):
    """The counter is not blind: a loss read per step (what distill() did before) is counted, and so is a 2D mask
    handed to a model (transformers reads it)."""
    teacher, segments = setup

    class Reading(LiveTeacher):
        def outputs(self, indices, ids, keys, *layers):
            out = super().outputs(indices, ids, None if keys is None else keys[:, 0, 0].long(), *layers)
            float(out.hidden[0].sum())
            return out

    mode, counted = _counted(monkeypatch, Reading(teacher.model), 3)
    with mode:
        distill(_students(teacher, 1)[0], counted, LayerMapping(GENOMES[0], 4), segments, SETTINGS,
                teacher_width=32, sync_every=3)
    assert mode.outside.count("__float__") == SETTINGS.max_steps
    assert "__bool__" in mode.outside


def test_batches_without_padding_give_the_models_no_mask(setup):
    teacher, segments = setup
    order = np.array([np.flatnonzero(segments.lengths == segments.seq_len)[:4],
                      np.flatnonzero(segments.lengths < segments.seq_len)[:4]])
    assert order.shape == (2, 4)
    served = batches_mod.DeviceBatches(segments, order, "cpu", chunk=1)
    full, padded = served[0], served[1]
    assert full.keys is None and bool(full.mask.all())
    assert torch.equal(padded.keys[:, 0, 0], padded.mask.bool()) and not bool(padded.mask.all())
    ids, mask = segments.batch(order[1])
    assert torch.equal(padded.ids, ids) and torch.equal(padded.mask, mask)


@pytest.mark.parametrize("implementation", ["sdpa", "eager"])
def test_the_4d_mask_of_a_padded_batch_gives_what_the_2d_mask_gives(setup, implementation):
    from layermap.distill.loop import forward_layers

    teacher, segments = setup
    model = build_student(teacher.model.config, SPEC, seed=0).eval()
    model.config._attn_implementation = implementation
    order = np.flatnonzero(segments.lengths < segments.seq_len)[:4][None, :]
    batch = batches_mod.DeviceBatches(segments, order, "cpu")[0]
    with torch.no_grad():
        want = forward_layers(model, batch.ids, batch.mask, (0, 1, 2), (1, 2))
        got = forward_layers(model, batch.ids, batch.keys, (0, 1, 2), (1, 2))
    real = batch.mask.bool()
    for k in (1, 2):                                # padded positions' outputs are not compared (no loss reads them)
        torch.testing.assert_close(got.hidden[k][real], want.hidden[k][real])
    torch.testing.assert_close(got.scores[2], want.scores[2])
