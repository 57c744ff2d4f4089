"""Lockstep population distillation: K students of one spec, each with its own mapping, trained together.

:func:`distill_population` is :func:`layermap.distill.loop.distill` for K students at once::

    params        = stack_module_state(students)                    # every tensor (K, ...)
    for step:
        ids, mask = batches[step]                                    # (B, L) on the device: the same for every student
        T         = teacher.outputs(union of the K mappings' layers) # ONE teacher forward (or cache read) for all K
        loss      = vmap(student forward + per-student loss, randomness="same")(params, genes)   # (K,), math SDPA
        loss.sum().backward()                                        # students share no parameter: K separate grads
        clip each student's gradients on its own norm; one AdamW step (elementwise = per student); schedule step
        every ``sync_every`` steps: read the (steps, K) loss buffer, NaN check per student

Common random numbers: every student sees the same batches in the same order and the same dropout masks.
``vmap(..., randomness="same")`` draws each dropout mask once for the whole stack, consuming the random stream
exactly as one unbatched forward does, and :func:`distill` reseeds with ``distill.seed`` for every genome, so K
sequential runs draw the same masks too: lockstep training reproduces K sequential ``distill()`` runs (with
dropout on), up to float rounding (``tests/test_population.py``).  The projection of each student is
initialised from ``distill.seed`` as in :func:`distill`.

Per student: its genes (a zero gene adds nothing: its term is ``where(active, mse, 0)``, with zero gradient),
its width projection, its AdamW state (AdamW is elementwise and the schedule is shared), its gradient clipping
(on its own norm) and its failure: a non-finite loss marks that student failed (its result carries the
:class:`DistillError` the sequential loop would raise, at the step it would raise it); the others go on.  A
failed student's slice keeps being computed until the end (its values are discarded): removing it from the
stack would cost a re-stack for no gain in a lockstep run.

Losses stay on the device; the host reads them every ``sync_every`` steps and nothing else in between: the batches
are on the device ahead of their steps, a batch without padding gives the models no mask to check
(:mod:`layermap.distill.batches`), and the students' attention is the math SDPA kernel, inside vmap as in
:func:`distill` (:func:`layermap.distill.models.student_attention`: CUDA's fused kernels refuse vmap's "same"
randomness with dropout).
Why vmap over the Hugging Face model and not a hand-written batched encoder (einsum/``baddbmm`` on the stacked
weights): it runs the very modules :func:`distill` runs (attention implementation, dropout placement and random
stream, hooks), so equality with the sequential loop holds by construction, and on the CPU the two measured the
same.  Demo-shape student (3 x 192, 12 heads), K = 4, batch 16 x 64, forward + backward of the encoder without
dropout, one thread, CPU time per step over two rounds: vmap 665 / 750 ms, hand-written batched 702 / 617 ms,
four sequential forwards 598 ms (2-core shared CPU, noise about 10 %).  The word-embedding lookup and each
student's teacher tensors are gathered outside vmap (inside, their batched backward/gather cost more than the
students), and AdamW runs fused on the stacked tensors.  ``benchmarks/bench_population.py`` measures whole
steps against :func:`distill`.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap
from transformers import PreTrainedModel

from proxy_tasks.optim import named_param_groups

from ..config import ConfigError, DistillSettings
from ..logs import get_logger
from ..mapping import LayerMapping
from .batches import SYNC_EVERY, DeviceBatches, read_losses
from .corpus import Segments
from .loop import (DistillError, DistillStats, TeacherSource, batch_order, check_mapping,
                   distill_schedule, total_steps)
from .losses import LossWeights, TransformerDistillationLoss, attention_mse, hidden_mse
from .models import attention_scores, capture_qk, model_mask, student_attention
from .precision import autocast, check_precision, tf32_matmuls

_log = get_logger(__name__)


@dataclass
class StudentResult:
    """One student of a population: what :func:`distill` would have returned, or the error it would have raised.

    ``student`` is the caller's model, trained in place (a normal Hugging Face model: ``save_pretrained`` and the
    probe use it as they are); ``loss_fn`` owns the learnt projection.  When ``error`` is set the student failed
    and ``student``/``loss_fn`` hold meaningless weights."""

    mapping: LayerMapping
    student: PreTrainedModel
    loss_fn: TransformerDistillationLoss
    stats: DistillStats
    error: DistillError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def distill_population(students: Sequence[PreTrainedModel], teacher: TeacherSource, mappings: Sequence[LayerMapping],
                       segments: Segments, settings: DistillSettings, *, teacher_width: int,
                       device: torch.device | str = "cpu", sync_every: int = SYNC_EVERY,
                       progress: bool = False, desc: str = "distilling a population") -> list[StudentResult]:
    """Distil ``students[i]`` with ``mappings[i]`` in lockstep, in place; one :class:`StudentResult` per student.

    The students must share one config (the same spec); their initial weights may differ (``student.init =
    teacher`` extracts a different student per mapping).

    Long because it is one vmapped training loop: the per-student loss (``one_student``) closes over the stacked
    weights, the plan and the loss weights, and the step reads the teacher, runs the students, clips, steps and syncs
    once per ``sync_every``; cut into helpers, a dozen device tensors would cross their signatures on the hot path,
    and the bit-for-bit equivalence with :func:`~layermap.distill.loop.distill` (tests/test_population.py) is easier
    to keep where the whole step reads in one place."""
    if len(students) != len(mappings) or not students:
        raise ValueError(f"{len(students)} students for {len(mappings)} mappings; give one mapping per student")
    device = torch.device(device)
    precision = settings.precision                   # fp32 | tf32 | bf16 (layermap.distill.precision)
    check_precision(precision, device)
    config = students[0].config
    for i, (student, mapping) in enumerate(zip(students, mappings)):
        if student.config.to_dict() != config.to_dict():
            raise ValueError(f"student {i} has another config than student 0; a population shares one spec")
        check_mapping(mapping, config.num_hidden_layers)
    k_count, layers = len(students), config.num_hidden_layers
    weights = LossWeights(settings.attention_weight, settings.hidden_weight, settings.embedding_weight)

    loss_fns = []
    for mapping in mappings:                     # as distill(): the projection's init from distill.seed, then the
        torch.manual_seed(settings.seed)         # dropout stream (every reseed leaves the stream where one leaves it)
        loss_fns.append(TransformerDistillationLoss(mapping, config.hidden_size, teacher_width, weights).to(device))
    plan = _Plan.build(mappings, layers, device)
    steps = total_steps(settings, len(segments))
    if steps == 0:                                 # no distillation: every student is its initialisation
        return [StudentResult(m, s.to(device), f, DistillStats(steps=0)) for m, s, f in zip(mappings, students, loss_fns)]
    order = batch_order(len(segments), settings.batch_size, steps, settings.seed)   # (steps, B)

    for student in students:                       # stacked where they are, then moved: the K separate copies are not
        student.train()                            # duplicated on the device
    params, buffers = stack_module_state(list(students))                             # each (K, ...)
    params = {n: p.detach().to(device).requires_grad_(True) for n, p in params.items()}
    buffers = {n: b.detach().to(device) for n, b in buffers.items()}
    proj = {}
    if isinstance(loss_fns[0].projection, nn.Linear):
        proj = {n: torch.stack([dict(f.projection.named_parameters())[n].detach() for f in loss_fns]).requires_grad_(True)
                for n in ("weight", "bias")}                                          # (K, Dt, Ds), (K, Dt)
    base = copy.deepcopy(students[0]).to("meta").train()
    heads = config.num_attention_heads
    opt, sched = _optimizer(params, proj, settings, steps)
    all_params = list(params.values()) + list(proj.values())

    word_key = _word_embedding_key(students[0])
    stacked = {n: p for n, p in params.items() if n != word_key}                     # the word embeddings are looked up
    word = params[word_key]                                                          # outside vmap: (K, V, Ds)

    def one_student(p, b, pr, embeds, active, embed, t_emb, t_hid, t_att, mask, model_mask):
        """The loss of one student (unbatched view; vmap runs it for K).  ``t_hid[j]``/``t_att[j]``: the teacher
        layer its gene at student layer ``plan.student_att[j]`` names (any layer when that gene is 0)."""
        with capture_qk(base, plan.student_att) as qk:
            out = functional_call(base, (p, b), (), {"inputs_embeds": embeds, "attention_mask": model_mask,
                                                     "output_hidden_states": True})
        hidden = out.hidden_states                                                     # M+1 of (B, L, Ds)
        project = (lambda x: torch.nn.functional.linear(x, pr["weight"], pr["bias"])) if pr else (lambda x: x)
        zero = hidden[0].new_zeros(())
        emb = hid = att = zero
        if weights.embedding and plan.any_embedding:
            emb = torch.where(embed, hidden_mse(project(hidden[0]), t_emb, mask), zero)
        for j, m in enumerate(plan.student_att):                                       # layers some student maps
            if weights.hidden:
                hid = hid + torch.where(active[m - 1], hidden_mse(project(hidden[m]), t_hid[j], mask), zero)
            if weights.attention:
                s = attention_scores(qk[m]["q"], qk[m]["k"], heads)                    # (B, Hs, L, L)
                att = att + torch.where(active[m - 1], attention_mse(s, t_att[j], mask), zero)
        return weights.embedding * emb + weights.hidden * hid + weights.attention * att

    batched = vmap(one_student, in_dims=(0, 0, 0, 0, 0, 0, None, 0, 0, None, None), randomness="same")
    stats = [DistillStats(steps=steps) for _ in range(k_count)]
    failed: list[DistillError | None] = [None] * k_count
    buffer = torch.zeros(sync_every, k_count, device=device)                          # (N, K) losses on the device
    from tqdm.auto import tqdm

    bar = tqdm(range(steps), desc=desc, disable=not progress, unit="step", leave=False)
    batches = DeviceBatches(segments, order, device, sync_every)
    chunk_start, chunk_teacher, first = time.perf_counter(), 0.0, 0
    with tf32_matmuls(precision == "tf32"):
        for step in bar:
            t0 = time.perf_counter()
            idx, ids, mask, keys = batches[step]                                      # (B, L), (B, L), keys
            t_out = teacher.outputs(idx, ids, keys, plan.teacher_hidden, plan.teacher_att)
            t_emb = t_out.hidden[0] if plan.any_embedding else None                      # (B, L, Dt)
            # each student's teacher tensors, per student layer that some student maps: (K, B, L, Dt), (K, B, Ht, L, L)
            t_hid = [torch.stack([t_out.hidden[k] for k in plan.sources[m - 1]]) for m in plan.student_att] \
                if weights.hidden else []
            t_att = [torch.stack([t_out.scores[k] for k in plan.sources[m - 1]]) for m in plan.student_att] \
                if weights.attention else []
            chunk_teacher += time.perf_counter() - t0
            with autocast(precision, device), student_attention():
                embeds = word[:, ids]                                                  # (K, B, L, Ds)
                loss = batched(stacked, buffers, proj, embeds, plan.active, plan.embedding, t_emb, t_hid, t_att,
                               mask, model_mask(config, keys))                         # (K,)
            loss.float().sum().backward()
            if settings.max_grad_norm:
                clip_per_student(all_params, settings.max_grad_norm)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            buffer[step - first] = loss.detach().float()
            if step + 1 - first == sync_every or step + 1 == steps:
                values = read_losses(buffer[:step + 1 - first])                        # the one host sync: (n, K)
                elapsed = time.perf_counter() - chunk_start
                _record(values, first, steps, len(idx), elapsed, chunk_teacher, stats, failed, mappings)
                bar.set_postfix(loss=f"{float(np.nanmean(values[-1])):.4f}", refresh=False)
                first, chunk_start, chunk_teacher = step + 1, time.perf_counter(), 0.0
    bar.close()

    results = []
    for i, (student, mapping, loss_fn) in enumerate(zip(students, mappings, loss_fns)):
        with torch.no_grad():
            student.load_state_dict({**{n: p[i] for n, p in params.items()}, **{n: b[i] for n, b in buffers.items()}},
                                    strict=False)
            if proj:
                loss_fn.projection.weight.copy_(proj["weight"][i])
                loss_fn.projection.bias.copy_(proj["bias"][i])
        student.to(device).eval()                  # as distill() leaves it: on the device, in eval mode
        results.append(StudentResult(mapping=mapping, student=student, loss_fn=loss_fn, stats=stats[i], error=failed[i]))
    return results


def worst_case_mappings(k: int, student_layers: int, teacher_layers: int) -> list[LayerMapping]:
    """``k`` mappings whose lockstep chunk needs the most memory a chunk of ``k`` can need: every student layer mapped,
    the embedding loss on, and the ``k`` mappings together reading every teacher layer (student ``i`` maps layer ``j``
    to ``(i * M + j) % N + 1``; all N of them once ``k * M >= N``), so the teacher serves all its layers and each mapped
    student layer stacks ``k`` teacher tensors."""
    m, n = student_layers, teacher_layers
    return [LayerMapping(tuple((i * m + j) % n + 1 for j in range(m)), n) for i in range(k)]


def largest_population(k: int, trial: Callable[[int], None], device: torch.device | str = "the device") -> int:
    """The largest population size <= ``k`` for which ``trial(size)`` raises no ``torch.OutOfMemoryError``: ``k``
    halved until a size fits, then bisected between the last size that fit and the first that did not.
    Returns 0 when not even one student fits.  Any other error of the trial is a :class:`ConfigError` in one
    sentence (the trial is the first population this process distils: a failure there would fail every chunk)."""

    def fits(size: int) -> bool:
        try:
            trial(size)
            return True
        except torch.OutOfMemoryError:
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            return False
        except Exception as exc:  # noqa: BLE001 - whatever the trial meets, one sentence
            message = (str(exc).strip().splitlines() or [""])[0][:200]
            raise ConfigError(f"the memory trial of a population of {size} students on {device} failed "
                              f"({type(exc).__name__}: {message}); set run.population = 1 to distil one student at "
                              "a time") from None

    if fits(k):
        return k
    high, low = k, k // 2
    while low >= 1 and not fits(low):
        high, low = low, low // 2
    if low < 1:
        return 0
    while high - low > 1:                        # low fits, high does not
        mid = (low + high) // 2
        low, high = (mid, high) if fits(mid) else (low, mid)
    return low


def check_population_fits(k: int, trial: Callable[[int], None], device: torch.device | str) -> None:
    """A ``run.population`` the device's memory cannot hold is a :class:`ConfigError` naming the largest that fits."""
    fit = largest_population(k, trial, device)
    if fit == k:
        return
    if fit == 0:
        raise ConfigError(f"not even one student fits in the memory of {device}; use a smaller student, "
                          "distill.batch_size or corpus.seq_len")
    raise ConfigError(f"run.population = {k} does not fit in the memory of {device}; the largest population that "
                      f"fits is {fit}: set run.population = {fit}")


def _word_embedding_key(model: PreTrainedModel) -> str:
    weight = model.get_input_embeddings().weight
    return next(n for n, p in model.named_parameters() if p is weight)


def clip_per_student(params: Sequence[torch.Tensor], max_norm: float) -> torch.Tensor:
    """Clip the gradients of stacked parameters (K leading dim) on each student's own total norm, as
    ``torch.nn.utils.clip_grad_norm_`` does for one model; returns the K norms before clipping."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.zeros(0)
    per_tensor = torch.stack([g.flatten(1).norm(dim=1) for g in grads], dim=1)       # (K, P)
    norms = per_tensor.norm(dim=1)                                                      # (K,)
    coef = (max_norm / (norms + 1e-6)).clamp(max=1.0)                                   # (K,)
    for g in grads:
        g.mul_(coef.view(-1, *([1] * (g.dim() - 1))))
    return norms


@dataclass(frozen=True)
class _Plan:
    """The union of the layers the K mappings read, and which teacher layer each student layer compares with."""

    teacher_hidden: tuple[int, ...]      # teacher hidden-state layers the teacher must produce (0 = embeddings)
    teacher_att: tuple[int, ...]         # teacher attention layers
    student_att: tuple[int, ...]         # student layers that at least one student maps
    any_embedding: bool
    sources: tuple[tuple[int, ...], ...]  # (M, K): teacher layer of student layer m for student i (gene 0: any used one)
    active: torch.Tensor                 # (K, M) gene > 0
    embedding: torch.Tensor              # (K,) the embedding loss is on

    @classmethod
    def build(cls, mappings: Sequence[LayerMapping], layers: int, device: torch.device) -> "_Plan":
        att = tuple(sorted({k for m in mappings for k in m.teacher_layers_used()}))
        any_embedding = any(m.embedding for m in mappings)
        hid = tuple(sorted(set(att) | ({0} if any_embedding else set())))
        student_att = tuple(sorted({i + 1 for m in mappings for i, g in enumerate(m.genes) if g > 0}))
        fill = att[0] if att else 0
        sources = tuple(tuple(m.genes[j] or fill for m in mappings) for j in range(layers))
        active = [[g > 0 for g in m.genes] for m in mappings]
        return cls(teacher_hidden=hid, teacher_att=att, student_att=student_att, any_embedding=any_embedding,
                   sources=sources, active=torch.tensor(active, dtype=torch.bool, device=device),
                   embedding=torch.tensor([m.embedding for m in mappings], dtype=torch.bool, device=device))


def _optimizer(params: dict[str, torch.Tensor], proj: dict[str, torch.Tensor], settings: DistillSettings, steps: int):
    """:func:`layermap.distill.loop._optimizer` on stacked tensors: the same decay groups (counted on the
    per-student shape), the same schedule."""
    named = list(params.items()) + [("projection." + n, p) for n, p in proj.items()]
    opt = torch.optim.AdamW(named_param_groups(named, settings.weight_decay, stacked=1), lr=settings.learning_rate,
                            fused=True)
    return opt, distill_schedule(opt, settings, steps)


def _record(values: np.ndarray, first: int, steps: int, batch: int, elapsed: float, teacher_seconds: float,
            stats: list[DistillStats], failed: list, mappings: Sequence[LayerMapping]) -> None:
    """Append a chunk of per-step losses (n, K) to each live student's stats; a non-finite loss fails its student
    with the message :func:`distill` raises, at the step it would raise it."""
    n = len(values)
    for i, st in enumerate(stats):
        if failed[i] is not None:
            continue
        column = values[:, i]
        bad = np.flatnonzero(~np.isfinite(column))
        good = column if not len(bad) else column[:bad[0]]
        st.losses.extend(float(v) for v in good)
        st.segments += batch * len(good)
        st.step_seconds.extend([elapsed / n] * len(good))              # per-step times: the chunk's mean
        st.teacher_step_seconds.extend([teacher_seconds / n] * len(good))
        if len(bad):
            value, step = float(column[bad[0]]), first + int(bad[0])
            failed[i] = DistillError(
                f"distillation loss became {value} at step {step + 1} of {steps} (mapping {mappings[i]}); "
                "lower distill.learning_rate or check the teacher and corpus")
            _log.info(f"population student {i} ({mappings[i]}) failed: {failed[i]}")
