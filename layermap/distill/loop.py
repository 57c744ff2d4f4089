"""The task-agnostic distillation loop (proxy and full), written out as a plain ``for`` loop.

One step::

    ids, mask    = batches[step]                                # (B, L), already on the device
    T            = teacher.outputs(indices, ids, mask)           # only the layers the mapping reads
    S            = student forward with hidden states + hooked Q/K of mapped layers (math SDPA kernel)
    loss, parts  = TransformerDistillationLoss(S, T, mask)
    loss.backward(); clip; fused AdamW step; linear warm-up/decay step
    every ``sync_every`` steps: the host reads the loss buffer, NaN check

The host reads nothing from the device between two sync points (:mod:`layermap.distill.batches`): a non-finite loss
is found at the next sync point and raised with the step it appeared at.

The teacher side is a :class:`TeacherSource`: :class:`LiveTeacher` runs the teacher, and
:class:`layermap.distill.teacher_cache.CachedTeacher` reads outputs precomputed once for a corpus
slice (shared by every genome of a search).
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch import nn
from transformers import PreTrainedModel

from proxy_tasks.optim import linear_warmup_decay, param_groups, warmup_steps

from ..config import DistillSettings, digest
from .batches import SYNC_EVERY, DeviceBatches, read_losses
from .corpus import Segments
from ..errors import LayermapError
from .losses import LayerOutputs, LossWeights, TransformerDistillationLoss
from ..mapping import LayerMapping, MappingError
from ..logs import get_logger
from .models import attention_scores, capture_qk, model_mask, student_attention
from .precision import autocast, check_precision, tf32_matmuls

_log = get_logger(__name__)


class DistillError(LayermapError):
    """Distillation that cannot go on (a NaN loss, an unusable checkpoint)."""


class TeacherSource(Protocol):
    """``mask`` is the batch's real keys, (B, 1, 1, L) bool, or None when the batch has no padding
    (:class:`layermap.distill.batches.Batch`); a forward turns it into its model's mask with ``models.model_mask``."""

    def outputs(self, indices: np.ndarray, ids: torch.Tensor, mask: torch.Tensor | None,
                hidden_layers: tuple[int, ...], att_layers: tuple[int, ...]) -> LayerOutputs: ...


@dataclass
class LiveTeacher:
    """Runs the teacher on every batch, hooking attention only for the layers asked for."""

    model: PreTrainedModel

    @torch.no_grad()
    def outputs(self, indices, ids, mask, hidden_layers, att_layers) -> LayerOutputs:
        return forward_layers(self.model, ids, mask, hidden_layers, att_layers)


def forward_layers(model: PreTrainedModel, ids: torch.Tensor, mask: torch.Tensor | None,
                   hidden_layers: tuple[int, ...], att_layers: tuple[int, ...]) -> LayerOutputs:
    """One forward of an encoder -> the asked-for hidden states and pre-softmax attention scores.  ``mask``: a 2D
    attention mask, or the (B, 1, 1, L) real keys of a :class:`layermap.distill.batches.Batch` (None: no padding)."""
    heads = model.config.num_attention_heads
    if mask is not None and mask.dim() == 4:
        mask = model_mask(model.config, mask)
    with capture_qk(model, att_layers) as qk:
        out = model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
    hidden = {k: out.hidden_states[k] for k in hidden_layers}                    # each (B, L, D)
    scores = {k: attention_scores(qk[k]["q"], qk[k]["k"], heads) for k in att_layers}  # each (B, H, L, L)
    return LayerOutputs(hidden=hidden, scores=scores)


@dataclass
class DistillStats:
    steps: int
    losses: list[float] = field(default_factory=list)
    step_seconds: list[float] = field(default_factory=list)       # wall time of each step
    teacher_step_seconds: list[float] = field(default_factory=list)  # of which the teacher side
    segments: int = 0

    @property
    def seconds(self) -> float:
        return float(sum(self.step_seconds))

    @property
    def teacher_seconds(self) -> float:
        return float(sum(self.teacher_step_seconds))

    @property
    def final_loss(self) -> float:
        tail = self.losses[-10:]
        return float(sum(tail) / len(tail)) if tail else float("nan")

    @property
    def segments_per_second(self) -> float:
        return self.segments / self.seconds if self.seconds else 0.0


def total_steps(settings: DistillSettings, num_segments: int) -> int:
    """``max_steps``, else ``epochs`` over the slice (at least one step); 0 when both are 0 (no distillation)."""
    if settings.max_steps:
        return settings.max_steps
    if not settings.epochs:
        return 0
    return max(1, math.ceil(settings.epochs * num_segments / settings.batch_size))


def batch_order(num_segments: int, batch_size: int, steps: int, seed: int) -> np.ndarray:
    """(steps, batch) segment indices: a fresh seeded permutation per epoch, no partial batches."""
    batch_size = min(batch_size, num_segments)
    per_epoch = num_segments // batch_size
    rows, epoch = [], 0
    while len(rows) < steps:
        perm = np.random.default_rng([seed, epoch]).permutation(num_segments)
        rows.extend(perm[i * batch_size:(i + 1) * batch_size] for i in range(per_epoch))
        epoch += 1
    return np.stack(rows[:steps])


def _optimizer(student: nn.Module, loss_fn: nn.Module, settings: DistillSettings, steps: int):
    """AdamW over the student and the loss's projection, and the linear warm-up/decay schedule shared with
    fine-tuning (:mod:`proxy_tasks.optim`; warm-up steps rounded down, as distillation always has)."""
    opt = torch.optim.AdamW(param_groups((student, loss_fn), settings.weight_decay), lr=settings.learning_rate,
                            fused=True)      # as the population's: no host read of a step counter, one kernel
    return opt, distill_schedule(opt, settings, steps)


def distill_schedule(opt: torch.optim.Optimizer, settings: DistillSettings, steps: int):
    """The distillation's learning-rate schedule: linear warm-up over ``distill.warmup_ratio`` of ``steps`` (rounded
    down), then linear decay to 0."""
    warmup = warmup_steps(settings.warmup_ratio, steps, round_up=False)

    def lr_lambda(step: int) -> float:     # a plain function: the scheduler's state_dict stays as it was
        return linear_warmup_decay(step, steps, warmup)

    return torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda)


def check_mapping(mapping: LayerMapping, student_layers: int) -> None:
    """A mapping a student can be distilled with: some loss at all, and one gene per student layer."""
    if not mapping.embedding and not mapping.teacher_layers_used():
        raise MappingError(f"mapping {mapping} has no loss at all (every gene 0 and no embedding loss); map at least one layer")
    if mapping.student_layers != student_layers:
        raise MappingError(f"mapping {mapping} has {mapping.student_layers} genes but the student has {student_layers} layers")


def distill(student: PreTrainedModel, teacher: TeacherSource, mapping: LayerMapping, segments: Segments,
            settings: DistillSettings, *, teacher_width: int, device: torch.device | str = "cpu",
            progress: bool = False, checkpoint_dir: str | os.PathLike | None = None,
            desc: str = "distilling", run_digest: str = "", sync_every: int = SYNC_EVERY) -> tuple[TransformerDistillationLoss, DistillStats]:
    """Distil ``student`` in place against ``teacher`` with ``mapping``; returns the loss module
    (it owns the learnt projection) and the statistics.  With ``checkpoint_dir`` and
    ``settings.checkpoint_every`` the run saves ``checkpoint.pt`` periodically and a later call
    with the same arguments resumes from it.

    Every checkpoint carries a digest of what shapes the run: ``run_digest`` (from the caller: the
    teacher's identity, the student spec and initialisation, the corpus, ...) together with what this
    function sees itself (mapping, settings except ``checkpoint_every``, the student's config, the
    corpus slice's identity, the teacher's width).  A checkpoint with another digest is refused
    (:class:`DistillError`), never resumed.
    """
    check_mapping(mapping, student.config.num_hidden_layers)
    device = torch.device(device)
    precision = settings.precision
    check_precision(precision, device)
    weights = LossWeights(settings.attention_weight, settings.hidden_weight, settings.embedding_weight)
    torch.manual_seed(settings.seed)                    # the projection's init, then the dropout stream
    loss_fn = TransformerDistillationLoss(mapping, student.config.hidden_size, teacher_width, weights).to(device)
    t_hidden, t_att = loss_fn.teacher_layers_needed()
    s_att = tuple(m for m, k in mapping.pairs() if m > 0)
    s_hidden = ((0,) if mapping.embedding else ()) + s_att
    steps = total_steps(settings, len(segments))
    if steps == 0:                                      # no distillation: the student is its initialisation
        student.to(device)
        return loss_fn, DistillStats(steps=0)
    order = batch_order(len(segments), settings.batch_size, steps, settings.seed)   # (steps, B)
    student.to(device).train()
    opt, sched = _optimizer(student, loss_fn, settings, steps)
    stats = DistillStats(steps=steps)
    digest_ = _run_digest(run_digest, student, mapping, segments, settings, teacher_width)
    start = _maybe_resume(checkpoint_dir, student, loss_fn, opt, sched, stats, digest_)
    if start and progress:
        _log.info(f"resuming {desc} from the checkpoint at step {start} of {steps}")

    from tqdm.auto import tqdm
    bar = tqdm(range(start, steps), desc=desc, disable=not progress, unit="step", leave=False)
    batches = DeviceBatches(segments, order, device, sync_every)
    buffer = torch.zeros(sync_every, device=device)                       # the losses since the last sync point
    first, chunk_start = start, time.perf_counter()

    def sync(step: int) -> None:
        """The host's read of the losses of steps ``first .. step``; a non-finite one is raised at its step."""
        nonlocal first, chunk_start
        values = read_losses(buffer[:step + 1 - first])
        elapsed = time.perf_counter() - chunk_start
        for i, value in enumerate(values.tolist()):
            if not math.isfinite(value):
                raise DistillError(
                    f"distillation loss became {value} at step {first + i + 1} of {steps} (mapping {mapping}); "
                    "lower distill.learning_rate or check the teacher and corpus")
        stats.losses.extend(values.tolist())
        stats.step_seconds.extend([elapsed / len(values)] * len(values))           # per-step times: the chunk's mean
        stats.segments += len(values) * len(order[0])
        bar.set_postfix(loss=f"{values[-1]:.4f}", refresh=False)
        first, chunk_start = step + 1, time.perf_counter()

    with tf32_matmuls(precision == "tf32"):             # forward and backward; the flags are restored after
        for step in bar:
            t0 = time.perf_counter()
            idx, ids, mask, keys = batches[step]                                          # (B, L), (B, L)
            t_out = teacher.outputs(idx, ids, keys, t_hidden, t_att)
            t1 = time.perf_counter()
            with autocast(precision, device), student_attention():
                s_out = forward_layers(student, ids, keys, s_hidden, s_att)
                loss, parts = loss_fn(s_out, t_out, mask)
            loss.backward()
            if settings.max_grad_norm:
                torch.nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], settings.max_grad_norm)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            buffer[step - first] = loss.detach().float()
            stats.teacher_step_seconds.append(t1 - t0)
            checkpoint = bool(checkpoint_dir and settings.checkpoint_every and (step + 1) % settings.checkpoint_every == 0
                              and step + 1 < steps)
            if step + 1 - first == sync_every or step + 1 == steps or checkpoint:
                sync(step)
            if checkpoint:
                _save_checkpoint(checkpoint_dir, step + 1, student, loss_fn, opt, sched, stats, digest_)
    bar.close()
    student.eval()
    return loss_fn, stats


def distill_run_digest(config, teacher_identity: str, segments_identity: str, *, sliced: bool = True) -> str:
    """What a caller passes as ``distill(run_digest=...)``: the teacher, student, corpus and distillation
    settings of a :class:`layermap.config.Config` (``distill.checkpoint_every`` excluded), the teacher's
    identity (its weights digest) and the corpus slice's identity (its token ids)."""
    parts = {k: v for k, v in config.to_dict().items() if k in ("teacher", "student", "corpus", "distill")}
    parts["distill"] = {k: v for k, v in parts["distill"].items() if k != "checkpoint_every"}
    parts["student"] = config.student.identity(sliced)    # (the slice only where it shapes the student: older keys)
    return digest({"config": parts, "teacher": teacher_identity, "segments": segments_identity})[:32]


def _run_digest(run_digest: str, student: PreTrainedModel, mapping: LayerMapping, segments: Segments,
                settings: DistillSettings, teacher_width: int) -> str:
    """The identity of one distillation: the caller's ``run_digest`` and everything this loop sees."""
    shaping = {k: getattr(settings, k) for k in settings.__dataclass_fields__ if k != "checkpoint_every"}
    if shaping.get("precision") == "fp32":          # checkpoints from before distill.precision keep their digest
        del shaping["precision"]
    student_config = {k: v for k, v in student.config.to_dict().items() if k not in ("_name_or_path", "transformers_version")}
    return digest({"caller": run_digest, "mapping": mapping.to_dict(), "settings": shaping, "student": student_config,
                   "segments": [segments.identity, len(segments), segments.seq_len], "teacher_width": teacher_width})[:32]


def _save_checkpoint(folder, step, student, loss_fn, opt, sched, stats: DistillStats, run_digest: str = "") -> None:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {"step": step, "run_digest": run_digest, "student": student.state_dict(), "loss_fn": loss_fn.state_dict(),
             "optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "rng": torch.get_rng_state(),
             "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
             "losses": stats.losses, "step_seconds": stats.step_seconds,
             "teacher_step_seconds": stats.teacher_step_seconds,
             "segments": stats.segments}
    tmp = folder / f"checkpoint.pt.tmp{os.getpid()}"
    torch.save(state, tmp)
    os.replace(tmp, folder / "checkpoint.pt")          # atomic: a kill never leaves half a checkpoint


def _maybe_resume(folder, student, loss_fn, opt, sched, stats: DistillStats, run_digest: str = "") -> int:
    if not folder or not (Path(folder) / "checkpoint.pt").is_file():
        return 0
    path = Path(folder) / "checkpoint.pt"
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - a truncated or foreign file, whatever torch raises
        raise DistillError(f"checkpoint {path} cannot be read ({str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__}); "
                           "delete it or use another --out folder") from None
    if not isinstance(state, dict) or state.get("run_digest") != run_digest:
        raise DistillError(
            f"checkpoint {path} belongs to another distillation (a different mapping, settings, student, corpus slice "
            f"or teacher, or an older layermap); delete {Path(folder)} to start afresh, or use another --out folder"
        )
    try:
        student.load_state_dict(state["student"])
        loss_fn.load_state_dict(state["loss_fn"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
    except (RuntimeError, KeyError, ValueError) as exc:
        raise DistillError(
            f"checkpoint {Path(folder) / 'checkpoint.pt'} does not match this run ({str(exc).splitlines()[0][:120]}); "
            "delete it or use another --out folder"
        ) from None
    torch.set_rng_state(state["rng"])
    cuda_rng = state.get("cuda_rng")
    if cuda_rng is not None and torch.cuda.is_available() and len(cuda_rng) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda_rng)
    stats.losses[:] = state["losses"]
    stats.step_seconds[:] = state["step_seconds"]
    stats.teacher_step_seconds[:] = state["teacher_step_seconds"]
    stats.segments = state["segments"]
    return int(state["step"])
