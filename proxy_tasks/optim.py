"""The optimiser pieces that distillation (``layermap.distill.loop``) and fine-tuning (``proxy_tasks.finetune``) share:
AdamW parameter groups and the linear warm-up / linear decay learning-rate schedule.

Both loops computed these separately before; the numbers are kept bit for bit, because stored fitnesses are
keyed by a fingerprint of the settings, not of the code, and a changed learning rate would silently make new
evaluations disagree with stored ones.  That is why the schedule is ours and not
``transformers.get_linear_schedule_with_warmup``: that one starts the warm-up at 0 (``step / warmup``), ours at
``(step + 1) / warmup``, so the first step already learns.  The two loops also round the number of warm-up steps
differently (distillation down, fine-tuning up), which :func:`warmup_steps` makes explicit.
"""

from __future__ import annotations

import math
from typing import Iterable

import torch
from torch import nn

__all__ = ["param_groups", "named_param_groups", "warmup_steps", "linear_warmup_decay"]


def param_groups(modules: Iterable[nn.Module], weight_decay: float) -> list[dict]:
    """AdamW groups over the trainable parameters of ``modules``, in order: weight decay on matrices and
    embeddings, none on biases and LayerNorm (any parameter with fewer than 2 dimensions, or named LayerNorm)."""
    return named_param_groups(((name, p) for module in modules for name, p in module.named_parameters()
                               if p.requires_grad), weight_decay)


def named_param_groups(named: Iterable[tuple[str, torch.Tensor]], weight_decay: float, *, stacked: int = 0) -> list[dict]:
    """:func:`param_groups` over ``(name, tensor)`` pairs; ``stacked`` leading dimensions (a lockstep population's K
    students stacked on one tensor) do not count towards a parameter's dimensions."""
    decay, no_decay = [], []
    for name, p in named:
        (no_decay if p.ndim - stacked < 2 or "LayerNorm" in name else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def warmup_steps(ratio: float, total_steps: int, *, round_up: bool) -> int:
    """Warm-up steps for a ``ratio`` of ``total_steps``: rounded down (``int``, distillation) or up
    (``math.ceil``, fine-tuning)."""
    return math.ceil(ratio * total_steps) if round_up else int(ratio * total_steps)


def linear_warmup_decay(step: int, total_steps: int, warmup: int, peak: float = 1.0) -> float:
    """The learning rate of 0-based ``step``: ``peak * (step + 1) / warmup`` while ``step < warmup``, then
    ``peak * (total_steps - step) / max(1, total_steps - warmup)`` down to 0 (never below).  With ``peak = 1``
    it is the factor a ``torch.optim.lr_scheduler.LambdaLR`` multiplies the base rate by."""
    if step < warmup:
        return peak * (step + 1) / warmup
    return max(0.0, peak * (total_steps - step) / max(1, total_steps - warmup))
