"""TinyBERT transformer-distillation losses (Jiao et al. 2020), general stage.

For a mapping ``g`` the loss is::

    L = w_emb * MSE(P(E_S), E_T)
      + sum over m with g_m > 0 of  w_hid * MSE(P(H_S^m), H_T^{g_m}) + w_att * MSE(A_S^m, A_T^{g_m})

* ``A`` are attention scores *before* softmax (``Q K^T / sqrt(d_head)``, no mask added);
  the MSE runs over (query, key) positions where both tokens are real, padding masked out.
  When student and teacher head counts differ, both sides are averaged over heads first and
  the head-averaged score maps are compared (one map per layer); with equal head counts
  head ``h`` is compared with head ``h``.
* ``H`` are layer outputs and ``E`` the embedding output, compared over real tokens.  ``P``
  is one learnable linear projection from the student to the teacher width, shared by all
  layers and the embeddings as in TinyBERT, and the identity when the widths agree.
* Gene 0 contributes nothing; the general stage has no prediction-layer loss.

Each MSE is a mean over the compared elements, so the terms stay comparable across widths.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn

from ..mapping import LayerMapping


class LayerOutputs(NamedTuple):
    """Per-layer outputs of one forward: ``hidden[k]`` (B, L, D) for k = 0 (embeddings) .. N and
    ``scores[k]`` (B, H, L, L) pre-softmax attention scores for the layers that were asked for."""

    hidden: dict[int, torch.Tensor]
    scores: dict[int, torch.Tensor]


@dataclass(frozen=True)
class LossWeights:
    attention: float = 1.0
    hidden: float = 1.0
    embedding: float = 1.0


def attention_mse(student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """MSE of pre-softmax scores (B, Hs, L, L) vs (B, Ht, L, L) over real (query, key) pairs.

    ``mask`` is the (B, L) attention mask, 1 for real tokens.  Head counts that differ are
    averaged out on both sides before comparing.
    """
    if student.shape[1] != teacher.shape[1]:
        student = student.mean(dim=1, keepdim=True)    # (B, 1, L, L)
        teacher = teacher.mean(dim=1, keepdim=True)    # (B, 1, L, L)
    m = mask.to(student.dtype)
    pair = m[:, None, :, None] * m[:, None, None, :]   # (B, 1, L, L)
    sq = (student - teacher.to(student.dtype)) ** 2 * pair  # (B, H, L, L)
    return sq.sum() / (pair.sum() * student.shape[1]).clamp_min(1.0)


def hidden_mse(student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """MSE of (B, L, D) hidden states (already projected to the teacher width) over real tokens."""
    m = mask.to(student.dtype)[..., None]                # (B, L, 1)
    sq = (student - teacher.to(student.dtype)) ** 2 * m  # (B, L, D)
    return sq.sum() / (m.sum() * student.shape[-1]).clamp_min(1.0)


class TransformerDistillationLoss(nn.Module):
    """The whole general-distillation objective for one mapping; owns the projection ``P``."""

    def __init__(self, mapping: LayerMapping, student_width: int, teacher_width: int,
                 weights: LossWeights = LossWeights()) -> None:
        super().__init__()
        self.mapping = mapping
        self.weights = weights
        self.projection: nn.Module = (
            nn.Identity() if student_width == teacher_width else nn.Linear(student_width, teacher_width)
        )

    def teacher_layers_needed(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """(hidden-state layers, attention layers) of the teacher that this loss reads."""
        att = self.mapping.teacher_layers_used()
        hid = ((0,) if self.mapping.embedding else ()) + att
        return hid, att

    def forward(self, student: LayerOutputs, teacher: LayerOutputs, mask: torch.Tensor
                ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Total loss and its parts (``embedding``, ``hidden``, ``attention``), each a scalar."""
        zero = student.hidden[0].new_zeros(())
        parts = {"embedding": zero, "hidden": zero, "attention": zero}
        if self.mapping.embedding and self.weights.embedding:
            parts["embedding"] = hidden_mse(self.projection(student.hidden[0]), teacher.hidden[0], mask)
        for m, k in self.mapping.pairs():
            if m == 0:
                continue
            if self.weights.hidden:
                parts["hidden"] = parts["hidden"] + hidden_mse(self.projection(student.hidden[m]), teacher.hidden[k], mask)
            if self.weights.attention:
                parts["attention"] = parts["attention"] + attention_mse(student.scores[m], teacher.scores[k], mask)
        total = (self.weights.embedding * parts["embedding"] + self.weights.hidden * parts["hidden"]
                 + self.weights.attention * parts["attention"])
        return total, parts
